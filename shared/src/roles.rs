//! Database roles (DESIGN §6.12): one PostgreSQL role per function, holding only the grants
//! that function needs, with its password taken from that function's own secret.
//!
//! Owns the grants matrix ([`GRANTS`]), creating and updating the roles, and the SCRAM
//! verifiers their passwords are sent as. It runs as the schema owner (migrate's user) and
//! never hands out what only the owner may have: schema changes, `TRUNCATE`, `UPDATE` or
//! `DELETE` on `events`, role attributes or memberships. A plain password never reaches the
//! server (statement logs would keep it): only its SCRAM-SHA-256 verifier does.

use std::{collections::BTreeSet, fmt::Write, num::NonZeroU32};

use aws_lc_rs::pbkdf2;
use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::{
    context::Context,
    crypto::{hmac_sha256, random_bytes, sha256},
    migrations,
    secrets::{SecretSource, SecretsError},
};

/// What one function's role may do: privileges per table, and functions it may execute.
#[derive(Debug, Clone, Copy)]
pub struct FunctionGrants {
    /// The function (`token-fetch`, …), as in `ROLE_SECRET_IDS`.
    pub function: &'static str,
    /// `(table, "SELECT, INSERT")`: every table the role may touch, and how.
    pub tables: &'static [(&'static str, &'static str)],
    /// Functions (with their argument types) the role may execute.
    pub routines: &'static [&'static str],
}

const HEALTH: (&str, &str) = ("schema_migrations", "SELECT");
const APPEND_EVENTS: (&str, &str) = ("events", "SELECT, INSERT");
// Every HTTP function may record its own requests in the request log (LOG_OWN_REQUESTS),
// without being able to read anybody's (the deduplication keys' insert returns their ids).
const OWN_REQUESTS: [(&str, &str); 2] = [("request_log", "INSERT"), ("request_log_keys", "SELECT, INSERT")];

/// The grants matrix. A table missing from a function's list is closed to it; a table no
/// function lists must be in [`OWNER_ONLY`] (a test checks every table is classified).
pub const GRANTS: &[FunctionGrants] = &[
    FunctionGrants {
        function: "oauth",
        tables: &[
            HEALTH,
            APPEND_EVENTS,
            ("clients", "SELECT"),
            ("connections", "SELECT, INSERT, UPDATE"),
            ("oauth_states", "SELECT, DELETE"),
            OWN_REQUESTS[0],
            OWN_REQUESTS[1],
        ],
        routines: &[],
    },
    FunctionGrants {
        function: "token-fetch",
        tables: &[
            HEALTH,
            APPEND_EVENTS,
            ("api_keys", "SELECT"),
            ("clients", "SELECT"),
            ("connections", "SELECT, INSERT, UPDATE"),
            ("oauth_states", "SELECT, INSERT, DELETE"),
            OWN_REQUESTS[0],
            OWN_REQUESTS[1],
        ],
        routines: &[],
    },
    FunctionGrants {
        function: "token-refresh",
        tables: &[HEALTH, APPEND_EVENTS, ("clients", "SELECT"), ("connections", "SELECT, UPDATE")],
        routines: &[],
    },
    FunctionGrants {
        function: "license-validate",
        tables: &[
            HEALTH,
            APPEND_EVENTS,
            ("licenses", "SELECT, UPDATE"),
            ("installations", "SELECT, INSERT, UPDATE, DELETE"),
            OWN_REQUESTS[0],
            OWN_REQUESTS[1],
        ],
        routines: &[],
    },
    FunctionGrants {
        function: "request-log",
        tables: &[
            HEALTH,
            ("api_keys", "SELECT"),
            ("request_log", "SELECT, INSERT"),
            // Which months still sit in the default partition (upkeep moves them out).
            ("request_log_default", "SELECT"),
            ("request_log_keys", "SELECT, INSERT, DELETE"),
        ],
        routines: &["request_log_create_partition(text, timestamptz, timestamptz)", "request_log_drop_partition(text)"],
    },
    FunctionGrants {
        function: "admin",
        tables: &[
            HEALTH,
            APPEND_EVENTS,
            ("api_keys", "SELECT, INSERT, UPDATE"),
            ("clients", "SELECT, INSERT, UPDATE, DELETE"),
            ("licenses", "SELECT, INSERT, UPDATE"),
            ("installations", "SELECT, INSERT, UPDATE, DELETE"),
            // A client in use by live connections cannot be deleted (ciphertexts only: the
            // tokens stay sealed to their connection). A client's changed expiry buffer is
            // copied to its connections (migration 0007): that one column, nothing else.
            ("connections", "SELECT, UPDATE (expiry_buffer_secs)"),
            OWN_REQUESTS[0],
            OWN_REQUESTS[1],
        ],
        routines: &[],
    },
    FunctionGrants {
        function: "events-relay",
        tables: &[HEALTH, ("events", "SELECT"), ("relay_state", "SELECT, UPDATE")],
        routines: &[],
    },
];

/// Tables that only migrate's user (the owner) may touch.
pub const OWNER_ONLY: &[&str] = &[];

/// The SQL run on every application (see the file for its two sections).
pub const ROLE_SQL: &str = include_str!("roles.sql");

/// Hash of everything `migrate` applies (the migrations, this module and its SQL): the
/// template passes it to the custom resource so that CloudFormation re-runs `migrate` when
/// any of it changes, and `migrate` refuses a template built for another schema.
pub fn schema_hash() -> String {
    let text = format!(
        "migrations:{}\nroles.rs:{}\nroles.sql:{}\n",
        migrations::bundle_hash(),
        hex::encode(sha256(include_str!("roles.rs").as_bytes())),
        hex::encode(sha256(ROLE_SQL.as_bytes())),
    );
    hex::encode(sha256(text.as_bytes()))
}

/// The grants of `function`, if it is one.
pub fn grants_of(function: &str) -> Option<&'static FunctionGrants> {
    GRANTS.iter().find(|g| g.function == function)
}

/// The matrix as a Markdown table (tables × functions; S I U D = SELECT INSERT UPDATE DELETE),
/// for `keyledger roles show` and the deploy guide (a test keeps the guide equal to it).
pub fn markdown_table() -> String {
    let mut tables: Vec<&str> = Vec::new();
    for (table, _) in GRANTS.iter().flat_map(|g| g.tables) {
        if !tables.contains(table) {
            tables.push(table);
        }
    }
    let mut out = String::from("| table |");
    for g in GRANTS {
        let _ = write!(out, " {} |", g.function);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(GRANTS.len()));
    out.push('\n');
    // A column-level privilege keeps its columns: `UPDATE (a)` is `U (a)`.
    fn letter(p: &str) -> String {
        let p = p.trim();
        let (privilege, columns) = p.split_once(' ').unwrap_or((p, ""));
        let short = match privilege {
            "SELECT" => "S",
            "INSERT" => "I",
            "UPDATE" => "U",
            "DELETE" => "D",
            other => other,
        };
        if columns.is_empty() { short.to_owned() } else { format!("{short} {columns}") }
    }
    for table in tables {
        let _ = write!(out, "| `{table}` |");
        for g in GRANTS {
            let cell = g.tables.iter().find(|(t, _)| *t == table).map_or_else(
                || "–".to_owned(),
                |(_, privileges)| privileges.split(',').map(letter).collect::<Vec<_>>().join(" "),
            );
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    let mut routines: Vec<&str> = GRANTS.iter().flat_map(|g| g.routines.iter().copied()).collect();
    routines.dedup();
    for routine in routines {
        let name = routine.split('(').next().unwrap_or(routine);
        let _ = write!(out, "| `{name}()` |");
        for g in GRANTS {
            let _ = write!(out, " {} |", if g.routines.contains(&routine) { "EXECUTE" } else { "–" });
        }
        out.push('\n');
    }
    out
}

/// Applying the roles failed; the message names the function, role or variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    /// `ROLE_SECRET_IDS` does not name exactly the functions of [`GRANTS`].
    #[error("ROLE_SECRET_IDS: {0}")]
    Config(String),
    /// A role secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretsError),
    /// A role cannot be created or updated safely.
    #[error("database role of '{function}': {reason}")]
    Refused {
        /// The function.
        function: String,
        /// Why.
        reason: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(String),
}

impl From<tokio_postgres::Error> for RolesError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        })
    }
}

/// The credentials of one function's role, as its secret holds them.
pub struct RoleLogin {
    /// The function.
    pub function: String,
    /// The role name (the secret's `username`).
    pub username: String,
    /// The password (the secret's `password`).
    pub password: SecretString,
}

/// The part of a per-function secret this module reads (`host`, `port`… are ignored).
#[derive(Deserialize)]
struct RoleSecret {
    username: String,
    password: SecretString,
}

/// One role as applied.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppliedRole {
    /// The function.
    pub function: String,
    /// Its role.
    pub role: String,
    /// False when the role existed already (its password and grants were reset).
    pub created: bool,
}

/// Reads every role secret named by `ROLE_SECRET_IDS` and applies the roles; `None` when the
/// variable is not set (local development runs every function as one user).
pub async fn apply_configured(ctx: &Context, client: &mut Client) -> Result<Option<Vec<AppliedRole>>, RolesError> {
    let ids = &ctx.config().role_secret_ids;
    if ids.is_empty() {
        return Ok(None);
    }
    let fetches = ids.iter().map(|(function, id)| async move {
        let raw = ctx.secrets().fetch(&SecretSource::SecretsManager(id.clone())).await?;
        let secret: RoleSecret = serde_json::from_str(raw.expose_secret()).map_err(|e| SecretsError::Malformed {
            name: format!("ROLE_SECRET_IDS[{function}] ({id})"),
            reason: format!("expected {{\"username\", \"password\", …}} ({:?})", e.classify()),
        })?;
        Ok::<_, RolesError>(RoleLogin {
            function: function.clone(),
            username: secret.username,
            password: secret.password,
        })
    });
    let logins = futures::future::try_join_all(fetches).await?;
    apply(client, &logins).await.map(Some)
}

/// Creates or updates the role of every function in `logins` and resets its grants to the
/// matrix, in one transaction under the migrations' advisory lock. `logins` must name each
/// function of [`GRANTS`] exactly once.
pub async fn apply(client: &mut Client, logins: &[RoleLogin]) -> Result<Vec<AppliedRole>, RolesError> {
    check_logins(logins)?;
    let (schema_sql, role_sql) = sections();
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migrations::LOCK_KEY]).await?;
    let row = tx.query_one("SELECT current_user::text AS me, current_database()::text AS database", &[]).await?;
    let (me, database): (String, String) = (row.get("me"), row.get("database"));
    tx.batch_execute(schema_sql).await?;
    let mut applied = Vec::new();
    for login in logins {
        let grants = grants_of(&login.function).expect("checked above");
        let refused = |reason: String| RolesError::Refused { function: login.function.clone(), reason };
        if login.username == me {
            return Err(refused(format!("'{}' is the user migrate runs as", login.username)));
        }
        let existing = tx.query_opt(INSPECT_ROLE, &[&login.username]).await?;
        if let Some(row) = &existing {
            let powers: Vec<&str> = [
                ("SUPERUSER", row.get::<_, bool>("rolsuper")),
                ("CREATEROLE", row.get("rolcreaterole")),
                ("CREATEDB", row.get("rolcreatedb")),
                ("REPLICATION", row.get("rolreplication")),
                ("BYPASSRLS", row.get("rolbypassrls")),
                ("membership in other roles", row.get("is_member")),
                ("ownership of objects in this database", row.get("owns_objects")),
            ]
            .into_iter()
            .filter_map(|(name, has)| has.then_some(name))
            .collect();
            if !powers.is_empty() {
                return Err(refused(format!(
                    "role '{}' already exists with {}; a function role must have none",
                    login.username,
                    powers.join(", ")
                )));
            }
        }
        let role = quote_ident(&login.username);
        let verifier = scram_sha256_verifier(login.password.expose_secret(), &random_bytes::<16>(), 4096);
        let verb = if existing.is_some() { "ALTER ROLE" } else { "CREATE ROLE" };
        tx.batch_execute(&format!("{verb} {role} WITH LOGIN PASSWORD '{verifier}'")).await?;
        let mut sql = role_sql.replace("{role}", &role).replace("{database}", &quote_ident(&database));
        for (table, privileges) in grants.tables {
            let _ = writeln!(sql, "GRANT {privileges} ON TABLE {} TO {role};", quote_ident(table));
        }
        for routine in grants.routines {
            let _ = writeln!(sql, "GRANT EXECUTE ON FUNCTION {routine} TO {role};");
        }
        tx.batch_execute(&sql).await?;
        applied.push(AppliedRole {
            function: login.function.clone(),
            role: login.username.clone(),
            created: existing.is_none(),
        });
    }
    tx.commit().await?;
    tracing::info!(roles = applied.len(), "database roles applied");
    Ok(applied)
}

/// roles.sql's two sections: the statements run once, and those run per role.
fn sections() -> (&'static str, &'static str) {
    let (schema, role) = ROLE_SQL.split_once("-- @role").expect("roles.sql has a '-- @role' section");
    (schema, role.split_once('\n').map_or("", |(_, rest)| rest))
}

const INSPECT_ROLE: &str = "
SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid) AS is_member,
       (EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid)
         OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.proowner = r.oid)
         OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = r.oid)) AS owns_objects
FROM pg_roles r WHERE r.rolname = $1";

fn check_logins(logins: &[RoleLogin]) -> Result<(), RolesError> {
    let known: BTreeSet<&str> = GRANTS.iter().map(|g| g.function).collect();
    let given: BTreeSet<&str> = logins.iter().map(|l| l.function.as_str()).collect();
    if let Some(unknown) = given.difference(&known).next() {
        return Err(RolesError::Config(format!("'{unknown}' is not a function with a database role")));
    }
    let missing: Vec<&str> = known.difference(&given).copied().collect();
    if !missing.is_empty() || given.len() != logins.len() {
        return Err(RolesError::Config(format!(
            "every function needs exactly one role secret; missing: {}",
            missing.join(", ")
        )));
    }
    let mut names = BTreeSet::new();
    for login in logins {
        let refused = |reason: String| RolesError::Refused { function: login.function.clone(), reason };
        let name = &login.username;
        let valid = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with("pg_")
            && !name.starts_with("rds");
        if !valid {
            return Err(refused(format!(
                "username '{name}' must be 1–63 characters of a-z, 0-9 and _, not starting with pg_ or rds"
            )));
        }
        if !names.insert(name.as_str()) {
            return Err(refused(format!("username '{name}' is used by another function too")));
        }
        let password = login.password.expose_secret();
        if password.len() < 16 || !password.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refused("the password must be at least 16 printable ASCII characters".into()));
        }
    }
    Ok(())
}

/// A PostgreSQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677), which
/// `CREATE/ALTER ROLE … PASSWORD` accepts as is. `password` must be printable ASCII, for
/// which SASLprep changes nothing.
pub fn scram_sha256_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    let rounds = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, password.as_bytes(), &mut salted);
    let stored_key = sha256(&hmac_sha256(&salted, b"Client Key"));
    let server_key = hmac_sha256(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${rounds}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(function: &str, username: &str) -> RoleLogin {
        RoleLogin {
            function: function.into(),
            username: username.into(),
            password: SecretString::from("correct-horse-battery-staple".to_owned()),
        }
    }

    fn all_logins() -> Vec<RoleLogin> {
        GRANTS.iter().map(|g| login(g.function, &format!("kl_{}", g.function.replace('-', "_")))).collect()
    }

    #[test]
    fn nobody_may_change_or_empty_the_event_log() {
        for g in GRANTS {
            for (table, privileges) in g.tables {
                assert!(!privileges.contains("TRUNCATE"), "{}: {table}", g.function);
                if *table == "events" {
                    assert!(!privileges.contains("UPDATE") && !privileges.contains("DELETE"), "{}", g.function);
                }
            }
        }
    }

    #[test]
    fn the_matrix_refuses_what_the_design_forbids() {
        let has = |f: &str, t: &str| grants_of(f).unwrap().tables.iter().any(|(table, _)| *table == t);
        for t in ["connections", "clients", "licenses", "installations", "oauth_states", "events"] {
            assert!(!has("request-log", t), "request-log must not read {t}");
        }
        for t in ["connections", "clients", "oauth_states", "api_keys"] {
            assert!(!has("license-validate", t), "license-validate must not read {t}");
        }
        assert!(!has("events-relay", "connections") && !has("events-relay", "clients"));
    }

    #[test]
    fn logins_must_cover_every_function_once_with_safe_names() {
        assert!(check_logins(&all_logins()).is_ok());
        let mut missing = all_logins();
        missing.pop();
        assert!(matches!(check_logins(&missing), Err(RolesError::Config(m)) if m.contains("events-relay")));
        let mut unknown = all_logins();
        unknown.push(login("billing", "kl_billing"));
        assert!(matches!(check_logins(&unknown), Err(RolesError::Config(m)) if m.contains("billing")));
        for bad in ["Admin", "kl-admin", "pg_admin", "rdsadmin", "x\"; DROP TABLE events; --", ""] {
            let mut logins = all_logins();
            logins[0].username = bad.into();
            assert!(matches!(check_logins(&logins), Err(RolesError::Refused { .. })), "{bad:?}");
        }
        let mut shared = all_logins();
        shared[1].username = shared[0].username.clone();
        assert!(check_logins(&shared).is_err());
        let mut weak = all_logins();
        weak[0].password = SecretString::from("short".to_owned());
        assert!(check_logins(&weak).is_err());
    }

    #[test]
    fn scram_verifiers_have_postgres_format_and_depend_on_password_and_salt() {
        let v = scram_sha256_verifier("pencil", b"0123456789abcdef", 4096);
        let (head, keys) = v.split_once('$').unwrap().1.split_once('$').unwrap();
        assert_eq!(head, format!("4096:{}", STANDARD.encode(b"0123456789abcdef")));
        let (stored, server) = keys.split_once(':').unwrap();
        assert_eq!((STANDARD.decode(stored).unwrap().len(), STANDARD.decode(server).unwrap().len()), (32, 32));
        assert_eq!(v, scram_sha256_verifier("pencil", b"0123456789abcdef", 4096));
        assert_ne!(v, scram_sha256_verifier("pencil2", b"0123456789abcdef", 4096));
        assert_ne!(v, scram_sha256_verifier("pencil", b"fedcba9876543210", 4096));
    }

    #[test]
    fn the_markdown_table_has_a_row_per_table_and_a_column_per_function() {
        let table = markdown_table();
        assert!(table.starts_with("| table | oauth | token-fetch |"));
        assert!(table.contains("| `events` | S I | S I | S I | S I | – | S I | S |"), "{table}");
        assert!(table.contains("`request_log_create_partition()`"));
    }
}
