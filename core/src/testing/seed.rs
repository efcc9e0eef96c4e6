//! A large tenant for measurements: many users, many credentials each, a month of activity.
//!
//! Rows are written straight into the tables (multi-row inserts, a transaction per batch)
//! rather than through ceremonies: a million WebAuthn registrations would take an hour and
//! measure nothing the support pages care about. Consequently the seeded credentials hold no
//! usable public key and cannot sign in; everything the support console shows is realistic
//! (providers from the AAGUID list, synced and device-bound, transports, counters, revocations).

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    DatabaseConnection, EntityTrait, TransactionTrait,
};
use uuid::Uuid;

use crate::{
    end_users::aaguid,
    entities::{audit_event, authenticator, end_user},
};

/// What to create.
#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    pub users: u64,
    pub credentials_per_user: u64,
    /// Successful sign-ins recorded in the audit log per day, for the last 30 days.
    pub sign_ins_per_day: u64,
}

impl Default for SeedPlan {
    /// The support console's target: 100k users, 1M credentials.
    fn default() -> Self {
        Self {
            users: 100_000,
            credentials_per_user: 10,
            sign_ins_per_day: 1_000,
        }
    }
}

/// Providers the seeded credentials come from: (AAGUID, synced).
const PROVIDERS: [(&str, bool); 6] = [
    ("dd4ec289-e01d-41c9-bb89-70fa845d4bf2", true), // iCloud Keychain (Managed)
    ("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4", true), // Google Password Manager
    ("bada5566-a7aa-401f-bd96-45619a55120d", true), // 1Password
    ("08987058-cadc-4b81-b6e1-30de50dcbe96", false), // Windows Hello
    ("adce0002-35bc-c60a-648b-0b25f1f05503", false), // Chrome on Mac
    ("00000000-0000-0000-0000-000000000000", false), // no attestation: unknown
];

const FIRST: [&str; 8] = [
    "ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken",
];
const LAST: [&str; 8] = [
    "lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "allen", "thompson",
];

/// Users per insert statement (7 columns) and credentials per statement (24 columns): well under
/// SQLite's and PostgreSQL's bind-parameter limits.
const USER_BATCH: usize = 1000;
const CREDENTIAL_BATCH: usize = 500;

/// The user ID of the `n`th seeded user: `user-000042`.
pub fn seeded_user_id(n: u64) -> String {
    format!("user-{n:06}")
}

/// Fills `tenant_id` per the plan. Answers the number of (users, credentials) created.
pub async fn large_tenant(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    plan: SeedPlan,
    now: DateTime<Utc>,
) -> Result<(u64, u64), sea_orm::DbErr> {
    let mut users = Vec::with_capacity(USER_BATCH);
    let mut credentials = Vec::with_capacity(CREDENTIAL_BATCH);
    let mut created = (0, 0);
    let providers: Vec<(Uuid, bool, Option<String>)> = PROVIDERS
        .iter()
        .filter_map(|(id, synced)| {
            let id = Uuid::parse_str(id).ok()?;
            Some((id, *synced, aaguid::provider(id).map(|p| p.name.clone())))
        })
        .collect();
    let txn = db.begin().await?;
    for n in 0..plan.users {
        let user_pk = Uuid::new_v4();
        let first = FIRST[(n % 8) as usize];
        let last = LAST[((n / 8) % 8) as usize];
        let external_id = seeded_user_id(n);
        let username = format!("{first}.{last}{n}@example.com");
        let created_at = now - Duration::minutes((plan.users - n) as i64 % (90 * 24 * 60));
        users.push(end_user::ActiveModel {
            id: Set(user_pk),
            tenant_id: Set(tenant_id),
            external_id_key: Set(external_id.to_lowercase()),
            external_id: Set(external_id),
            username_key: Set(Some(username.to_lowercase())),
            username: Set(Some(username)),
            display_name: Set(Some(format!("{} {}", capital(first), capital(last)))),
            created_at: Set(created_at),
            updated_at: Set(created_at),
        });
        for c in 0..plan.credentials_per_user {
            let (aaguid, synced, provider_name) = &providers[((n + c) % 6) as usize];
            let id = Uuid::new_v4();
            let revoked = (n + c) % 17 == 0;
            credentials.push(authenticator::ActiveModel {
                id: Set(id),
                tenant_id: Set(tenant_id),
                user_id: Set(user_pk),
                credential_id: Set(id.simple().to_string()),
                credential: Set("{}".to_owned()),
                name: Set(provider_name.clone().unwrap_or_else(|| "Passkey".into())),
                aaguid: Set(*aaguid),
                provider_name: Set(provider_name.clone()),
                transports: Set(if *synced {
                    r#"["hybrid","internal"]"#.to_owned()
                } else {
                    r#"["usb","nfc"]"#.to_owned()
                }),
                algorithm: Set(-7),
                backup_eligible: Set(*synced),
                backup_state: Set(*synced),
                // A few of each health reason, as a real tenant has them.
                user_verified: Set((n + c) % 211 != 0),
                sign_count: Set(if *synced { 0 } else { (n % 500) as i64 }),
                attachment: Set(Some(
                    if *synced {
                        "platform"
                    } else {
                        "cross-platform"
                    }
                    .to_owned(),
                )),
                user_agent: Set(Some("Mozilla/5.0 (seed)".to_owned())),
                created_at: Set(created_at + Duration::minutes(c as i64)),
                last_used_at: Set(Some(if (n + c) % 89 == 0 {
                    now - Duration::days(400)
                } else {
                    now - Duration::hours(((n + c) % 720) as i64)
                })),
                counter_regressed_at: Set(((n + c) % 997 == 0).then(|| now - Duration::days(2))),
                revoked_at: Set(revoked.then_some(now - Duration::days(1))),
                revoked_by: Set(revoked.then(|| "support@example.com".to_owned())),
                revoked_reason: Set(revoked.then(|| "Lost device (seeded)".to_owned())),
                backup_state_changed_at: Set(
                    (*synced && (n + c) % 503 == 0).then(|| now - Duration::days(3))
                ),
                attestation_trust: Set("none".to_owned()),
                certification: Set(None),
                metadata_flagged_at: Set(None),
                metadata_status: Set(None),
                sign_in_count: Set(((n + c) % 40) as i64),
            });
            if credentials.len() == CREDENTIAL_BATCH {
                // Their users first (pushed above): the foreign key is checked at once.
                created.0 += flush_users(&txn, &mut users).await?;
                created.1 += flush_credentials(&txn, &mut credentials).await?;
            }
        }
        if users.len() == USER_BATCH {
            created.0 += flush_users(&txn, &mut users).await?;
        }
    }
    created.0 += flush_users(&txn, &mut users).await?;
    created.1 += flush_credentials(&txn, &mut credentials).await?;
    txn.commit().await?;
    seed_activity(db, tenant_id, plan, now).await?;
    Ok(created)
}

async fn flush_users(
    txn: &sea_orm::DatabaseTransaction,
    rows: &mut Vec<end_user::ActiveModel>,
) -> Result<u64, sea_orm::DbErr> {
    let n = rows.len() as u64;
    if n > 0 {
        end_user::Entity::insert_many(std::mem::take(rows))
            .exec_without_returning(txn)
            .await?;
    }
    Ok(n)
}

async fn flush_credentials(
    txn: &sea_orm::DatabaseTransaction,
    rows: &mut Vec<authenticator::ActiveModel>,
) -> Result<u64, sea_orm::DbErr> {
    let n = rows.len() as u64;
    if n > 0 {
        authenticator::Entity::insert_many(std::mem::take(rows))
            .exec_without_returning(txn)
            .await?;
    }
    Ok(n)
}

/// A month of sign-ins (and a few failures and registrations) in the audit log.
async fn seed_activity(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    plan: SeedPlan,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let txn = db.begin().await?;
    let mut rows = Vec::with_capacity(CREDENTIAL_BATCH);
    for day in 0..30i64 {
        let per_day = plan.sign_ins_per_day + (day as u64 * 37) % (plan.sign_ins_per_day / 3 + 1);
        for i in 0..per_day {
            let at = now - Duration::days(day) - Duration::seconds((i * 7 % 86_000) as i64);
            let user = seeded_user_id((i * 31 + day as u64) % plan.users.max(1));
            let (action, failure) = match i % 50 {
                0 => ("user.signed_in", Some("credential_unknown")),
                1 => ("user.signed_in", Some("user_verification_required")),
                2 | 3 => ("authenticator.registered", None),
                _ => ("user.signed_in", None),
            };
            rows.push(audit_event::ActiveModel {
                id: NotSet,
                occurred_at: Set(at),
                tenant_id: Set(Some(tenant_id)),
                actor_kind: Set(if failure.is_some() {
                    "anonymous"
                } else {
                    "end_user"
                }
                .to_owned()),
                actor_id: Set(failure.is_none().then(|| user.clone())),
                actor_label: Set(None),
                action: Set(action.to_owned()),
                target_kind: Set(Some("user".to_owned())),
                target_id: Set(Some(user)),
                outcome: Set(if failure.is_some() {
                    "failure"
                } else {
                    "success"
                }
                .to_owned()),
                error_code: Set(failure.map(str::to_owned)),
                details: Set(None),
                ip: Set(Some("203.0.113.7".to_owned())),
                user_agent: Set(Some("Mozilla/5.0 (seed)".to_owned())),
            });
            if rows.len() == CREDENTIAL_BATCH {
                audit_event::Entity::insert_many(std::mem::take(&mut rows))
                    .exec_without_returning(&txn)
                    .await?;
            }
        }
    }
    if !rows.is_empty() {
        audit_event::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await
}

fn capital(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
