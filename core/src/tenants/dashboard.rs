//! A tenant's dashboard: registrations and sign-ins per day, outcomes by error code, and the
//! active credentials by provider and by kind (synced or device-bound).
//!
//! The activity figures come from the audit log (the only record of failures), grouped by UTC day
//! in the database; the credential figures from the authenticators table. Each is one grouped
//! query on an index that starts with the tenant.

use chrono::{DateTime, Days, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, SimpleExpr},
};

use crate::{
    Clock, Result,
    access::{Permission, TenantAccess},
    entities::{audit_event, authenticator, end_user},
};

/// How many days the activity chart covers, today included.
pub const DASHBOARD_DAYS: u64 = 30;

/// The audit actions the dashboard counts, and what it calls them.
const REGISTERED: &str = "authenticator.registered";
const SIGNED_IN: &str = "user.signed_in";
const REGISTRATION_STEPS: [&str; 2] = ["registration.started", "registration.finished"];

/// One day of activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayActivity {
    pub date: NaiveDate,
    pub registrations: u64,
    pub sign_ins: u64,
    /// Refused registrations and sign-ins.
    pub failures: u64,
}

/// Ceremonies of one kind that ended one way in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// `sign_in` or `registration`.
    pub ceremony: &'static str,
    /// `None` for successes, else the spec's error code.
    pub error_code: Option<String>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCount {
    /// `None` when the AAGUID is not in the community list (or is all zeros).
    pub provider: Option<String>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// Oldest first, one entry per day (zero days included).
    pub days: Vec<DayActivity>,
    pub outcomes: Vec<OutcomeCount>,
    /// Largest first.
    pub providers: Vec<ProviderCount>,
    /// Active credentials that may be synced between devices (backup eligible) …
    pub synced: u64,
    /// … and those bound to one device.
    pub device_bound: u64,
    /// The tenant's users …
    pub users: u64,
    /// … and those with at least one active passkey.
    pub users_with_passkey: u64,
}

impl Dashboard {
    pub fn active_credentials(&self) -> u64 {
        self.synced + self.device_bound
    }

    /// Users with a passkey among all users, 0 to 1 (`None` without users).
    pub fn adoption(&self) -> Option<f64> {
        (self.users > 0).then(|| self.users_with_passkey as f64 / self.users as f64)
    }

    /// Active passkeys per user who has one.
    pub fn passkeys_per_user(&self) -> Option<f64> {
        (self.users_with_passkey > 0)
            .then(|| self.active_credentials() as f64 / self.users_with_passkey as f64)
    }

    /// Successful sign-ins among all sign-ins of the period, 0 to 1 (`None` without any).
    pub fn sign_in_success_rate(&self) -> Option<f64> {
        let (ok, all) = self
            .outcomes
            .iter()
            .filter(|o| o.ceremony == "sign_in")
            .fold((0, 0), |(ok, all), o| {
                (
                    ok + if o.error_code.is_none() { o.count } else { 0 },
                    all + o.count,
                )
            });
        (all > 0).then(|| ok as f64 / all as f64)
    }
}

pub struct Dashboards<'a> {
    db: &'a DatabaseConnection,
    clock: &'a dyn Clock,
}

impl Dashboards<'_> {
    /// The tenant's users, and those with an active passkey: two counts over the users' tenant
    /// indexes, the second over the partial one of users whose `active_passkeys` (kept by the
    /// database's triggers, migration 000019) is above zero.
    async fn adoption(&self, tenant_id: uuid::Uuid) -> Result<(u64, u64)> {
        let users = || {
            end_user::Entity::find()
                .select_only()
                .column_as(Expr::cust("COUNT(*)"), "n")
                .filter(end_user::Column::TenantId.eq(tenant_id))
        };
        let with_passkey = users()
            // Spelled as the partial index's condition, which is how SQLite recognises it.
            .filter(Expr::cust("active_passkeys > 0"))
            .into_tuple::<i64>()
            .one(self.db);
        let users = users().into_tuple::<i64>().one(self.db);
        let (users, with_passkey) = tokio::join!(users, with_passkey);
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        Ok((count(users?), count(with_passkey?)))
    }
}

/// The UTC day of an event as `YYYY-MM-DD`, computed by the database.
fn utc_day(backend: DatabaseBackend) -> SimpleExpr {
    match backend {
        DatabaseBackend::Postgres => {
            Expr::cust("to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
        }
        // SQLite stores the time as UTC text starting with the date.
        _ => Expr::cust("substr(occurred_at, 1, 10)"),
    }
}

impl<'a> Dashboards<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection, clock: &'a dyn Clock) -> Self {
        Self { db, clock }
    }

    /// The dashboard of `tenant_id`, for any member (`viewer` and up).
    pub async fn tenant(&self, access: &TenantAccess) -> Result<Dashboard> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ReadDashboard)?;
        let today = self.clock.now().date_naive();
        let first = today
            .checked_sub_days(Days::new(DASHBOARD_DAYS - 1))
            .unwrap_or(today);
        let since: DateTime<Utc> = first.and_time(chrono::NaiveTime::MIN).and_utc();

        let ceremony_actions = [
            REGISTERED,
            SIGNED_IN,
            REGISTRATION_STEPS[0],
            REGISTRATION_STEPS[1],
        ];
        let rows = audit_event::Entity::find()
            .select_only()
            .column_as(utc_day(self.db.get_database_backend()), "day")
            .column(audit_event::Column::Action)
            .column(audit_event::Column::Outcome)
            .column(audit_event::Column::ErrorCode)
            .column_as(audit_event::Column::Id.count(), "n")
            .filter(audit_event::Column::TenantId.eq(tenant_id))
            .filter(audit_event::Column::Action.is_in(ceremony_actions))
            .filter(audit_event::Column::OccurredAt.gte(since))
            .group_by(Expr::cust("day"))
            .group_by(audit_event::Column::Action)
            .group_by(audit_event::Column::Outcome)
            .group_by(audit_event::Column::ErrorCode)
            .into_tuple::<(String, String, String, Option<String>, i64)>()
            .all(self.db);
        let by_provider = authenticator::Entity::find()
            .select_only()
            .column(authenticator::Column::ProviderName)
            .column(authenticator::Column::BackupEligible)
            // COUNT(*), not COUNT(id): the grouping index covers it (SQLite would read every
            // row for its id — 5× slower on a million credentials).
            .column_as(Expr::cust("COUNT(*)"), "n")
            .filter(authenticator::Column::TenantId.eq(tenant_id))
            .filter(authenticator::Column::RevokedAt.is_null())
            .group_by(authenticator::Column::ProviderName)
            .group_by(authenticator::Column::BackupEligible)
            .into_tuple::<(Option<String>, bool, i64)>()
            .all(self.db);
        // The month's events, the providers' pass over up to a million index entries (~0.15 s
        // at 1M passkeys, the longest) and the users' counts: side by side on the pool's
        // connections, so the page waits for the longest rather than for their sum.
        let (rows, by_provider, adoption) =
            tokio::join!(rows, by_provider, self.adoption(tenant_id));
        let rows = rows?;

        let mut days: Vec<DayActivity> = (0..DASHBOARD_DAYS)
            .filter_map(|i| first.checked_add_days(Days::new(i)))
            .map(|date| DayActivity {
                date,
                registrations: 0,
                sign_ins: 0,
                failures: 0,
            })
            .collect();
        let mut outcomes: Vec<OutcomeCount> = Vec::new();
        for (day, action, outcome, error_code, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            let success = outcome == "success";
            let ceremony = if action == SIGNED_IN {
                "sign_in"
            } else {
                "registration"
            };
            // Successful registration steps are counted once, by the registered authenticator.
            if success && REGISTRATION_STEPS.contains(&action.as_str()) {
                continue;
            }
            if let Some(entry) = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .ok()
                .and_then(|date| days.iter_mut().find(|d| d.date == date))
            {
                match (success, ceremony) {
                    (false, _) => entry.failures += n,
                    (true, "sign_in") => entry.sign_ins += n,
                    (true, _) => entry.registrations += n,
                }
            }
            let error_code = (!success).then_some(error_code).flatten();
            match outcomes
                .iter_mut()
                .find(|o| o.ceremony == ceremony && o.error_code == error_code)
            {
                Some(o) => o.count += n,
                None => outcomes.push(OutcomeCount {
                    ceremony,
                    error_code,
                    count: n,
                }),
            }
        }
        outcomes.sort_by(|a, b| {
            (
                a.ceremony,
                a.error_code.is_some(),
                std::cmp::Reverse(a.count),
            )
                .cmp(&(
                    b.ceremony,
                    b.error_code.is_some(),
                    std::cmp::Reverse(b.count),
                ))
        });

        let by_provider = by_provider?;
        let (mut synced, mut device_bound) = (0, 0);
        let mut providers: Vec<ProviderCount> = Vec::new();
        for (provider, backup_eligible, n) in by_provider {
            let n = u64::try_from(n).unwrap_or(0);
            if backup_eligible {
                synced += n;
            } else {
                device_bound += n;
            }
            match providers.iter_mut().find(|p| p.provider == provider) {
                Some(p) => p.count += n,
                None => providers.push(ProviderCount { provider, count: n }),
            }
        }
        providers.sort_by(|a, b| b.count.cmp(&a.count).then(a.provider.cmp(&b.provider)));

        let (users, users_with_passkey) = adoption?;
        Ok(Dashboard {
            days,
            outcomes,
            providers,
            synced,
            device_bound,
            users,
            users_with_passkey,
        })
    }
}
