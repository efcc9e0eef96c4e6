//! The tenant's Dashboard page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayView {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub registrations: u64,
    pub sign_ins: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeView {
    /// "Sign-in" / "Registration".
    pub ceremony: String,
    /// "success" or the error code.
    pub outcome: String,
    /// The refusal in words (`None` for successes).
    pub reason: Option<String>,
    pub count: u64,
    /// The audit log filtered to these events (refusals only).
    pub audit_link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    pub provider: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardView {
    pub days: Vec<DayView>,
    pub outcomes: Vec<OutcomeView>,
    pub providers: Vec<ProviderView>,
    pub synced: u64,
    pub device_bound: u64,
    pub users: u64,
    pub users_with_passkey: u64,
    /// Users with a passkey among all users, e.g. `42 %`.
    pub adoption: Option<String>,
    /// Active passkeys per user who has one, e.g. `1.3`.
    pub passkeys_per_user: Option<String>,
    /// Successful sign-ins among all sign-ins in 30 days, e.g. `97.5 %`.
    pub sign_in_success: Option<String>,
    /// The health queue's size by reason, for roles that may read it.
    pub health: Option<Vec<super::HealthCountRow>>,
}

#[server(prefix = "/portal/api", endpoint = "tenant_dashboard")]
pub async fn tenant_dashboard(id: String) -> Result<DashboardView, PortalError> {
    use latchkey_core::access::Permission;
    let (request, access) = crate::state::tenant_request(&id).await?;
    let board = request.services.dashboards().tenant(&access).await?;
    let health = if access.allows(Permission::ReadCredentialHealth) {
        let counts = request
            .services
            .end_users()
            .credential_health_counts(&access)
            .await?;
        Some(super::health::count_rows(counts))
    } else {
        None
    };
    let percent = |share: f64| {
        let p = share * 100.0;
        // Whole percents, except near the ends, where a tenth tells 99.6 % from 100 %.
        if (1.0..=99.0).contains(&p) || p == 0.0 || p == 100.0 {
            format!("{p:.0} %")
        } else {
            format!("{p:.1} %")
        }
    };
    let adoption = board.adoption().map(percent);
    let passkeys_per_user = board.passkeys_per_user().map(|n| format!("{n:.1}"));
    let sign_in_success = board.sign_in_success_rate().map(percent);
    Ok(DashboardView {
        adoption,
        passkeys_per_user,
        sign_in_success,
        users: board.users,
        users_with_passkey: board.users_with_passkey,
        days: board
            .days
            .into_iter()
            .map(|d| DayView {
                date: d.date.format("%Y-%m-%d").to_string(),
                registrations: d.registrations,
                sign_ins: d.sign_ins,
                failures: d.failures,
            })
            .collect(),
        outcomes: board
            .outcomes
            .into_iter()
            .map(|o| {
                let sign_in = o.ceremony == "sign_in";
                let audit_link = o.error_code.as_ref().map(|code| {
                    if sign_in {
                        format!("/tenants/{id}/audit?action=user.signed_in&code={code}")
                    } else {
                        format!("/tenants/{id}/audit?code={code}")
                    }
                });
                OutcomeView {
                    ceremony: if sign_in {
                        "Sign-in".into()
                    } else {
                        "Registration".into()
                    },
                    reason: o
                        .error_code
                        .as_deref()
                        .map(|c| latchkey_core::audit::sentence::refusal(Some(c))),
                    outcome: o.error_code.unwrap_or_else(|| "success".into()),
                    count: o.count,
                    audit_link,
                }
            })
            .collect(),
        providers: board
            .providers
            .into_iter()
            .map(|p| ProviderView {
                provider: p.provider.unwrap_or_else(|| "Unknown provider".into()),
                count: p.count,
            })
            .collect(),
        synced: board.synced,
        device_bound: board.device_bound,
        health,
    })
}
