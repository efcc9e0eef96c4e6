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
    pub count: u64,
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
    Ok(DashboardView {
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
            .map(|o| OutcomeView {
                ceremony: if o.ceremony == "sign_in" {
                    "Sign-in".into()
                } else {
                    "Registration".into()
                },
                outcome: o.error_code.unwrap_or_else(|| "success".into()),
                count: o.count,
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
