//! `keyledger`: the operator's command-line tool and the local all-in-one server.
//!
//! Thin by design: every command calls one function of `shared` and prints its result.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use shared::{
    Context, api_keys, auth::Scope, config::Config, crypto::KeyRing, events::Metadata, migrations, projections, roles,
    telemetry,
};

#[derive(Parser)]
#[command(name = "keyledger", version, about = "keyledger operator tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Schema migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Rebuild every projection from the event log into scratch tables and compare.
    Replay {
        /// Report differences (exit status 1 when there are any); nothing is changed.
        #[arg(long)]
        verify: bool,
    },
    /// Re-encrypt every ciphertext in the projections under the key ring's current key
    /// (batched, resumable, idempotent, safe while the functions serve); prints counts per
    /// table and key id, and the ciphertexts per key id the event log still holds.
    Rekey {
        /// Count what would be re-encrypted; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rows per transaction (each batch is committed on its own).
        #[arg(long, default_value_t = shared::rekey::BATCH)]
        batch_size: std::num::NonZeroU32,
        /// Stop after this many batches when work is left ("complete": false); the next run
        /// carries on.
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Encryption keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Per-function database roles (applied by `migrate up` too when ROLE_SECRET_IDS is set).
    Roles {
        #[command(subcommand)]
        action: RolesAction,
    },
    /// Seed demo data for local development (idempotent).
    Demo,
    /// Serve every HTTP function's routes on one local address (LISTEN_ADDR), like API Gateway.
    Serve,
    /// Import licenses and installations from the old license service's SQLite file.
    /// Idempotent: what is already imported is skipped.
    ImportLicenses {
        /// The SQLite file (tables `licenses` and `installations`).
        #[arg(long)]
        sqlite: std::path::PathBuf,
        /// Slot limit of an imported license (raised to its number of installations in the file).
        #[arg(long, default_value_t = 1)]
        max_installations: i32,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Applied, pending and changed migrations.
    Status,
    /// Apply pending migrations, then the database roles when ROLE_SECRET_IDS is set.
    Up,
    /// Print the hash of everything migrate applies (the template's SchemaHash parameter).
    Hash,
}

#[derive(Subcommand)]
enum RolesAction {
    /// Create or update one role per function from the secrets named by ROLE_SECRET_IDS.
    Apply,
    /// Print the grants matrix (Markdown).
    Show,
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Create a key and print it (shown this once).
    Create {
        /// A name for the key.
        #[arg(long)]
        name: String,
        /// A scope (repeatable): admin, tokens:read, tokens:refresh, connections:read,
        /// connections:write, licenses:read, licenses:write, requests:read, requests:write.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print a new key ring with one random key, for ENCRYPTION_KEYS.
    Generate {
        /// The key id.
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Print a new Ed25519 signing key ring with one random seed, for LICENSE_SIGNING_KEYS.
    GenerateSigning {
        /// The key id.
        #[arg(long, default_value = "s1")]
        id: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn context() -> anyhow::Result<Context> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    Ok(Context::new(config, "keyledger-cli"))
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keys { action: KeysAction::Generate { id } } => {
            use secrecy::ExposeSecret;
            println!("{}", KeyRing::generate_json(&id).expose_secret());
        }
        Command::Keys { action: KeysAction::GenerateSigning { id } } => {
            use secrecy::ExposeSecret;
            let ring = shared::signing::SigningKeys::generate_json(&id);
            // Print only a ring license-validate will accept (the id has a grammar).
            shared::signing::SigningKeys::parse(&ring).context("--id")?;
            println!("{}", ring.expose_secret());
        }
        Command::Migrate { action: MigrateAction::Hash } => println!("{}", roles::schema_hash()),
        Command::Roles { action: RolesAction::Show } => print!("{}", roles::markdown_table()),
        Command::Roles { action: RolesAction::Apply } => {
            let ctx = context()?;
            if ctx.config().role_secret_ids.is_empty() {
                bail!("ROLE_SECRET_IDS is not set: it names each function's role secret");
            }
            let mut client = ctx.db().get().await.context("connecting to the database")?;
            print(&roles::apply_configured(&ctx, &mut client).await?)?;
        }
        Command::Migrate { action } => {
            let ctx = context()?;
            let mut client = ctx.db().get().await.context("connecting to the database")?;
            match action {
                MigrateAction::Status => {
                    let status = migrations::status(&client).await?;
                    print(&status)?;
                    if !status.drifted.is_empty() {
                        return Ok(ExitCode::FAILURE);
                    }
                }
                MigrateAction::Up => {
                    print(&migrations::up(&mut client).await?)?;
                    if let Some(applied) = roles::apply_configured(&ctx, &mut client).await? {
                        print(&applied)?;
                    }
                }
                MigrateAction::Hash => unreachable!("handled above"),
            }
        }
        Command::Replay { verify } => {
            if !verify {
                bail!("only `replay --verify` exists: it rebuilds into scratch tables and compares");
            }
            let ctx = context()?;
            let mut client = ctx.db().get().await.context("connecting to the database")?;
            // With the key ring, sealed columns compare by plaintext (they differ as text after
            // `rekey`), and a key the log still needs but the ring lacks is reported.
            let ring = match ctx.config().encryption_keys {
                Some(_) => Some(ctx.keyring().await?),
                None => None,
            };
            let report = projections::replay_with_ring(&mut client, shared::PROJECTORS, ring.as_deref()).await?;
            print(&report)?;
            if !report.is_clean() {
                eprintln!("projections differ from the event log");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Rekey { dry_run, batch_size, max_batches } => {
            let ctx = context()?;
            let options = shared::rekey::Options { dry_run, batch_size, max_batches };
            let report = shared::rekey::rekey_with(&ctx, options).await?;
            print(&report)?;
            if !report.complete {
                eprintln!("stopped after --max-batches with rows left: run `keyledger rekey` again to carry on");
            }
            if !report.is_clean() {
                eprintln!("some ciphertexts could not be decrypted with this key ring (see \"failed\")");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::ApiKey { action: ApiKeyAction::Create { name, scopes } } => {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s).with_context(|| format!("unknown scope '{s}'")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let ctx = context()?;
            let created =
                api_keys::create(&ctx, api_keys::NewApiKey { name, scopes }, &Metadata::system("keyledger-cli"))
                    .await?;
            print(&created)?;
        }
        Command::ImportLicenses { sqlite, max_installations } => {
            if !sqlite.is_file() {
                bail!("no SQLite file at {}", sqlite.display());
            }
            let ctx = context()?;
            let report = shared::licenses::import::import_sqlite(
                &ctx,
                &sqlite,
                max_installations,
                &Metadata::system("keyledger-cli"),
            )
            .await?;
            print(&report)?;
        }
        Command::Demo => {
            let ctx = context()?;
            demo(&ctx).await?;
        }
        Command::Serve => {
            let ctx = context()?;
            let app = keyledger::local_router(ctx.clone());
            let listener = tokio::net::TcpListener::bind(ctx.config().listen_addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "keyledger local server listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Demo data for `scripts/dev`; each piece is created once.
async fn demo(ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.db().get().await.context("connecting to the database")?;
    let exists = !client
        .query("SELECT 1 FROM api_keys WHERE name = 'demo-service' AND revoked_at IS NULL", &[])
        .await?
        .is_empty();
    if !exists {
        let created = api_keys::create(
            ctx,
            api_keys::NewApiKey {
                name: "demo-service".into(),
                scopes: vec![Scope::TokensRead, Scope::ConnectionsRead, Scope::RequestsWrite, Scope::LicensesRead],
            },
            &Metadata::system("keyledger-cli"),
        )
        .await?;
        println!("demo service API key (shown once): {}", created.key);
    }
    Ok(())
}
