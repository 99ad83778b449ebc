//! The public checks an installation makes (DESIGN §6.6): validate, activate, deactivate.
//!
//! The decisions are pure functions at the top ([`license_code`], [`validate_code`],
//! [`plan_activation`], [`plan_deactivation`]), unit-tested below without a database; the
//! I/O around them is thin. Validation is one round trip to the PL/pgSQL `license_validate`,
//! which must decide on its own whether to touch `last_seen_at`: `tests/it/licenses_rules.rs`
//! proves that it and [`validate_code`] agree on every status × expiry × installation case.

use chrono::{DateTime, Utc};
use tokio_postgres::{Row, Transaction, types::Type};
use uuid::Uuid;

use super::{
    ActivateRequest, CheckAnswer, CheckCode, DeactivateRequest, DeactivationReason, Entitlements, Error,
    InstallationId, InstallationSummary, LicenseEvent, LicenseStatus, LicenseSummary, PROJECTOR, ValidateRequest,
    admin::pepper_hash, is_expired, stream,
};
use crate::{
    context::Context,
    crypto::constant_time_eq,
    events::{ExpectedVersion, Metadata},
    projections,
};

// ---- decisions -------------------------------------------------------------------------

/// The precedence of DESIGN §6.6 for a license that exists: revoked, suspended, expired;
/// `None` when the license itself is usable.
pub fn license_code(status: LicenseStatus, expired: bool) -> Option<CheckCode> {
    match status {
        LicenseStatus::Revoked => Some(CheckCode::Revoked),
        LicenseStatus::Suspended => Some(CheckCode::Suspended),
        LicenseStatus::Active if expired => Some(CheckCode::Expired),
        LicenseStatus::Active => None,
    }
}

/// The code of `validate` for a license that exists; only `VALID` touches `last_seen_at`.
/// `entitlements_missing`: the license lacks one the product asked for (after `EXPIRED`).
pub fn validate_code(status: LicenseStatus, expired: bool, entitlements_missing: bool, activated: bool) -> CheckCode {
    license_code(status, expired).unwrap_or(if entitlements_missing {
        CheckCode::EntitlementsMissing
    } else if activated {
        CheckCode::Valid
    } else {
        CheckCode::NotActivated
    })
}

/// What a check knows of a license when it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Stored status.
    pub status: LicenseStatus,
    /// `expires_at` has passed (by the database's clock).
    pub expired: bool,
    /// Installations that may hold a slot at once.
    pub max_installations: i32,
    /// Inactivity after which a slot may be taken over.
    pub max_inactive_days: Option<i32>,
    /// What the license grants.
    pub entitlements: Entitlements,
}

/// What an activation does, decided from the license and its slots alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer with this code and change nothing.
    Refuse(CheckCode),
    /// The installation already holds a slot: a sign of life, not a new slot.
    Touch,
    /// Take a new slot, first freeing these installations (reason `inactive`, longest
    /// unseen first).
    Activate {
        /// Installation ids that give up their slot.
        evict: Vec<String>,
    },
}

/// Decides an activation (DESIGN §6.6): the license's own code first; an installation that
/// is already active is touched; otherwise a free slot is taken, and when there is none, the
/// longest-unseen installations past `max_inactive_days` give theirs up. Slots may come in
/// any order.
pub fn plan_activation(
    terms: &Terms,
    slots: &[InstallationSummary],
    installation_id: &InstallationId,
    needed: &Entitlements,
    now: DateTime<Utc>,
) -> Plan {
    if let Some(code) = license_code(terms.status, terms.expired) {
        return Plan::Refuse(code);
    }
    if !terms.entitlements.missing(needed).is_empty() {
        return Plan::Refuse(CheckCode::EntitlementsMissing);
    }
    if slots.iter().any(|s| s.installation_id == installation_id.as_str()) {
        return Plan::Touch;
    }
    let used = slots.len() as i64;
    let needed = (used + 1 - i64::from(terms.max_installations)).max(0) as usize;
    if needed == 0 {
        return Plan::Activate { evict: Vec::new() };
    }
    let Some(days) = terms.max_inactive_days else { return Plan::Refuse(CheckCode::TooManyInstallations) };
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let mut stale: Vec<&InstallationSummary> = slots.iter().filter(|s| s.last_seen_at <= cutoff).collect();
    if stale.len() < needed {
        return Plan::Refuse(CheckCode::TooManyInstallations);
    }
    stale.sort_by(|a, b| {
        (a.last_seen_at, a.activated_at, &a.installation_id).cmp(&(b.last_seen_at, b.activated_at, &b.installation_id))
    });
    Plan::Activate { evict: stale.into_iter().take(needed).map(|s| s.installation_id.clone()).collect() }
}

/// Decides a deactivation: the license's own code first, then whether the installation
/// holds a slot. `None` means: free the slot (`DEACTIVATED`).
pub fn plan_deactivation(terms: &Terms, activated: bool) -> Option<CheckCode> {
    license_code(terms.status, terms.expired).or((!activated).then_some(CheckCode::NotActivated))
}

// ---- validate --------------------------------------------------------------------------

/// The whole validation in one statement (one round trip): `license_validate` in
/// `migrations/0001_init.sql` finds the license by key hash, touches the installation's
/// `last_seen_at` only when the license is usable (with `synchronous_commit` off for that
/// transaction alone) and reads the projection's `installations_used`. It is a PL/pgSQL
/// function so that its plans are cached in the backend; this unnamed statement itself is
/// trivial to plan.
const VALIDATE: &str = include_str!("sql/validate.sql");

/// `POST /v1/licenses/validate`: one SQL statement that reads and, when valid, updates
/// `last_seen_at`.
pub async fn validate(ctx: &Context, request: ValidateRequest) -> Result<CheckAnswer, Error> {
    let hash = pepper_hash(ctx, &request.license_key).await?;
    let hash_param = hash.as_slice();
    let installation_id = request.installation_id.as_str();
    let needed: &[String] = request.entitlements.as_ref().map_or(&[], |e| e.names());
    let rows = ctx
        .db()
        .read(VALIDATE, &[(&hash_param, Type::BYTEA), (&installation_id, Type::TEXT), (&needed, Type::TEXT_ARRAY)])
        .await?;
    let Some(row) = rows.first() else { return Ok(CheckAnswer::not_found(request.nonce)) };
    if !constant_time_eq(row.try_get::<_, &[u8]>("key_hash")?, &hash) {
        return Ok(CheckAnswer::not_found(request.nonce));
    }
    let status = LicenseStatus::from_db(row.try_get("status")?)?;
    let license = LicenseSummary {
        id: row.try_get("id")?,
        status,
        expires_at: row.try_get("expires_at")?,
        max_installations: row.try_get("max_installations")?,
        installations_used: row.try_get("installations_used")?,
        entitlements: row.try_get("entitlements")?,
    };
    let installation = match row.try_get::<_, Option<DateTime<Utc>>>("activated_at")? {
        Some(activated_at) => Some(InstallationSummary {
            installation_id: installation_id.to_owned(),
            activated_at,
            last_seen_at: row.try_get("last_seen_at")?,
        }),
        None => None,
    };
    let code =
        validate_code(status, row.try_get("expired")?, row.try_get("entitlements_missing")?, installation.is_some());
    Ok(CheckAnswer::new(code, Some(license), installation, row.try_get("checked_at")?, request.nonce))
}

// ---- activate and deactivate -----------------------------------------------------------

const LOCK_BY_HASH: &str = include_str!("sql/lock_by_hash.sql");

const SLOTS: &str = include_str!("sql/slots.sql");

pub(super) const TOUCH: &str = include_str!("sql/touch.sql");

/// A license row under its lock, with its slots.
pub(super) struct Locked {
    pub(super) id: Uuid,
    pub(super) terms: Terms,
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) version: i32,
    pub(super) now: DateTime<Utc>,
    pub(super) slots: Vec<InstallationSummary>,
}

impl Locked {
    pub(super) fn summary(&self, used: i64) -> LicenseSummary {
        LicenseSummary {
            id: self.id,
            status: self.terms.status,
            expires_at: self.expires_at,
            max_installations: self.terms.max_installations,
            installations_used: used,
            entitlements: self.terms.entitlements.names().to_vec(),
        }
    }

    pub(super) fn slot(&self, installation_id: &str) -> Option<InstallationSummary> {
        self.slots.iter().find(|s| s.installation_id == installation_id).cloned()
    }
}

fn slot_from_row(r: &Row) -> Result<InstallationSummary, Error> {
    Ok(InstallationSummary {
        installation_id: r.try_get("installation_id")?,
        activated_at: r.try_get("activated_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}

/// Takes the license row's lock for the rest of `tx`: every writer of a license stream
/// does, so the version read here is still current when the append happens.
pub(super) async fn lock(tx: &Transaction<'_>, hash: &[u8; 32]) -> Result<Option<Locked>, Error> {
    let hash_param = hash.as_slice();
    let rows = tx.query_typed(LOCK_BY_HASH, &[(&hash_param, Type::BYTEA)]).await?;
    let Some(row) = rows.first() else { return Ok(None) };
    if !constant_time_eq(row.try_get::<_, &[u8]>("key_hash")?, hash) {
        return Ok(None);
    }
    let id: Uuid = row.try_get("id")?;
    let expires_at = row.try_get("expires_at")?;
    let now = row.try_get("now")?;
    let slots =
        tx.query_typed(SLOTS, &[(&id, Type::UUID)]).await?.iter().map(slot_from_row).collect::<Result<_, _>>()?;
    Ok(Some(Locked {
        id,
        terms: Terms {
            status: LicenseStatus::from_db(row.try_get("status")?)?,
            expired: is_expired(expires_at, now),
            max_installations: row.try_get("max_installations")?,
            max_inactive_days: row.try_get("max_inactive_days")?,
            entitlements: Entitlements::try_from(row.try_get::<_, Vec<String>>("entitlements")?)
                .map_err(Error::Internal)?,
        },
        expires_at,
        version: row.try_get("version")?,
        now,
        slots,
    }))
}

pub(super) fn public_metadata(ctx: &Context, request_id: Option<String>) -> Metadata {
    Metadata { request_id, actor: "public".into(), function: ctx.function().to_owned() }
}

/// `POST /v1/licenses/activate`: takes a slot for the installation, idempotently. When
/// every slot is taken and the license has `max_inactive_days`, the longest-unseen
/// installations past that limit give up their slots (reason `inactive`) in the same append.
pub async fn activate(
    ctx: &Context,
    request: ActivateRequest,
    request_id: Option<String>,
) -> Result<CheckAnswer, Error> {
    let hash = pepper_hash(ctx, &request.license_key).await?;
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let Some(license) = lock(&tx, &hash).await? else {
        return Ok(CheckAnswer::not_found(request.nonce));
    };
    let installation_id = request.installation_id.as_str();
    let used = license.slots.len() as i64;
    let answer = |code, used, installation| {
        CheckAnswer::new(code, Some(license.summary(used)), installation, license.now, request.nonce.clone())
    };
    let needed = request.entitlements.clone().unwrap_or_default();
    match plan_activation(&license.terms, &license.slots, &request.installation_id, &needed, license.now) {
        Plan::Refuse(CheckCode::TooManyInstallations) => Ok(answer(CheckCode::TooManyInstallations, used, None)),
        Plan::Refuse(code) => Ok(answer(code, used, license.slot(installation_id))),
        Plan::Touch => {
            let mut existing = license.slot(installation_id);
            let touched = tx.query_typed(TOUCH, &[(&license.id, Type::UUID), (&installation_id, Type::TEXT)]).await?;
            if let (Some(row), Some(existing)) = (touched.first(), existing.as_mut()) {
                existing.last_seen_at = row.try_get("last_seen_at")?;
            }
            tx.commit().await?;
            Ok(answer(CheckCode::Valid, used, existing))
        }
        Plan::Activate { evict } => {
            let mut events: Vec<LicenseEvent> = evict
                .iter()
                .filter_map(|gone| license.slot(gone))
                .map(|s| LicenseEvent::InstallationDeactivated {
                    id: license.id,
                    installation_id: s.installation_id,
                    reason: DeactivationReason::Inactive,
                    last_seen_at: Some(s.last_seen_at),
                })
                .collect();
            let freed = events.len() as i64;
            events.push(LicenseEvent::InstallationActivated {
                id: license.id,
                installation_id: installation_id.to_owned(),
                name: request.name.clone().map(String::from).filter(|n| !n.is_empty()),
                activated_at: license.now,
            });
            projections::record(
                &tx,
                &PROJECTOR,
                &stream(license.id),
                ExpectedVersion::Exact(license.version),
                &events,
                &public_metadata(ctx, request_id),
            )
            .await?;
            tx.commit().await?;
            let installation = InstallationSummary {
                installation_id: installation_id.to_owned(),
                activated_at: license.now,
                last_seen_at: license.now,
            };
            Ok(answer(CheckCode::Valid, used + 1 - freed, Some(installation)))
        }
    }
}

/// `POST /v1/licenses/deactivate`: the installation gives up its slot (reason `customer`).
pub async fn deactivate(
    ctx: &Context,
    request: DeactivateRequest,
    request_id: Option<String>,
) -> Result<CheckAnswer, Error> {
    let hash = pepper_hash(ctx, &request.license_key).await?;
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let Some(license) = lock(&tx, &hash).await? else {
        return Ok(CheckAnswer::not_found(request.nonce));
    };
    let used = license.slots.len() as i64;
    let installation = license.slot(request.installation_id.as_str());
    if let Some(code) = plan_deactivation(&license.terms, installation.is_some()) {
        return Ok(CheckAnswer::new(code, Some(license.summary(used)), installation, license.now, request.nonce));
    }
    let Some(installation) = installation else { unreachable!("plan_deactivation refuses a missing slot") };
    let event = LicenseEvent::InstallationDeactivated {
        id: license.id,
        installation_id: installation.installation_id.clone(),
        reason: DeactivationReason::Customer,
        last_seen_at: Some(installation.last_seen_at),
    };
    projections::record(
        &tx,
        &PROJECTOR,
        &stream(license.id),
        ExpectedVersion::Exact(license.version),
        &[event],
        &public_metadata(ctx, request_id),
    )
    .await?;
    tx.commit().await?;
    Ok(CheckAnswer::new(
        CheckCode::Deactivated,
        Some(license.summary(used - 1)),
        Some(installation),
        license.now,
        request.nonce,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes_ago: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() - chrono::Duration::minutes(minutes_ago)
    }

    pub(super) fn slot(id: &str, days_unseen: i64) -> InstallationSummary {
        InstallationSummary {
            installation_id: id.into(),
            activated_at: at(60 * 24 * 400),
            last_seen_at: at(60 * 24 * days_unseen),
        }
    }

    fn terms(status: LicenseStatus, expired: bool, max: i32, inactive: Option<i32>) -> Terms {
        Terms { status, expired, max_installations: max, max_inactive_days: inactive, entitlements: ents(&["pro"]) }
    }

    fn ents(names: &[&str]) -> Entitlements {
        Entitlements::try_from(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn plan(t: &Terms, slots: &[InstallationSummary], who: &str) -> Plan {
        plan_activation(t, slots, &id(who), &Entitlements::default(), at(0))
    }

    #[test]
    fn missing_entitlements_come_after_expired_and_before_slots() {
        let t = terms(LicenseStatus::Active, false, 1, None);
        let sso = ents(&["pro", "sso"]);
        assert_eq!(
            plan_activation(&t, &[slot("a", 0)], &id("a"), &sso, at(0)),
            Plan::Refuse(CheckCode::EntitlementsMissing)
        );
        assert_eq!(plan_activation(&t, &[slot("a", 0)], &id("a"), &ents(&["pro"]), at(0)), Plan::Touch);
        let expired = terms(LicenseStatus::Active, true, 1, None);
        assert_eq!(plan_activation(&expired, &[], &id("a"), &sso, at(0)), Plan::Refuse(CheckCode::Expired));
        assert_eq!(validate_code(LicenseStatus::Active, true, true, true), CheckCode::Expired);
        assert_eq!(validate_code(LicenseStatus::Active, false, true, true), CheckCode::EntitlementsMissing);
        assert_eq!(validate_code(LicenseStatus::Active, false, true, false), CheckCode::EntitlementsMissing);
    }

    fn id(s: &str) -> InstallationId {
        InstallationId::parse(s).unwrap()
    }

    #[test]
    fn precedence_is_revoked_suspended_expired() {
        assert_eq!(license_code(LicenseStatus::Revoked, true), Some(CheckCode::Revoked));
        assert_eq!(license_code(LicenseStatus::Suspended, true), Some(CheckCode::Suspended));
        assert_eq!(license_code(LicenseStatus::Active, true), Some(CheckCode::Expired));
        assert_eq!(license_code(LicenseStatus::Active, false), None);
        assert_eq!(validate_code(LicenseStatus::Active, false, false, false), CheckCode::NotActivated);
        assert_eq!(validate_code(LicenseStatus::Active, false, false, true), CheckCode::Valid);
        assert_eq!(validate_code(LicenseStatus::Suspended, false, false, true), CheckCode::Suspended);
    }

    #[test]
    fn an_unusable_license_refuses_before_looking_at_slots() {
        let slots = [slot("a", 0)];
        for (status, expired, code) in [
            (LicenseStatus::Revoked, true, CheckCode::Revoked),
            (LicenseStatus::Suspended, true, CheckCode::Suspended),
            (LicenseStatus::Active, true, CheckCode::Expired),
        ] {
            let t = terms(status, expired, 1, Some(1));
            assert_eq!(plan(&t, &slots, "a"), Plan::Refuse(code));
            assert_eq!(plan(&t, &slots, "b"), Plan::Refuse(code));
        }
    }

    #[test]
    fn an_active_installation_is_touched_not_given_a_second_slot() {
        let t = terms(LicenseStatus::Active, false, 1, None);
        assert_eq!(plan_activation(&t, &[slot("a", 3)], &id("a"), &Entitlements::default(), at(0)), Plan::Touch);
    }

    #[test]
    fn a_free_slot_is_taken_and_a_full_license_refuses() {
        let t = terms(LicenseStatus::Active, false, 2, None);
        assert_eq!(
            plan_activation(&t, &[slot("a", 0)], &id("b"), &Entitlements::default(), at(0)),
            Plan::Activate { evict: vec![] }
        );
        assert_eq!(
            plan_activation(&t, &[slot("a", 0), slot("b", 900)], &id("c"), &Entitlements::default(), at(0)),
            Plan::Refuse(CheckCode::TooManyInstallations)
        );
    }

    #[test]
    fn inactive_installations_give_up_their_slots_longest_unseen_first() {
        let t = terms(LicenseStatus::Active, false, 2, Some(30));
        let slots = [slot("recent", 1), slot("old", 40), slot("older", 90)];
        // Three slots used of two: two must go for a new one, but only two are stale.
        assert_eq!(plan(&t, &slots, "new"), Plan::Activate { evict: vec!["older".into(), "old".into()] });
        let one_stale = [slot("recent", 1), slot("old", 40)];
        assert_eq!(plan(&t, &one_stale, "new"), Plan::Activate { evict: vec!["old".into()] });
        let none_stale = [slot("recent", 1), slot("also", 29)];
        assert_eq!(plan(&t, &none_stale, "new"), Plan::Refuse(CheckCode::TooManyInstallations));
        // Exactly at the limit counts as stale.
        let limit = [slot("recent", 1), slot("edge", 30)];
        assert_eq!(plan(&t, &limit, "new"), Plan::Activate { evict: vec!["edge".into()] });
    }

    #[test]
    fn deactivation_follows_the_same_precedence() {
        let active = terms(LicenseStatus::Active, false, 1, None);
        assert_eq!(plan_deactivation(&active, true), None);
        assert_eq!(plan_deactivation(&active, false), Some(CheckCode::NotActivated));
        let expired = terms(LicenseStatus::Active, true, 1, None);
        assert_eq!(plan_deactivation(&expired, true), Some(CheckCode::Expired));
    }
}
