//! The Server API's view of the authenticator policy and the credential health queue, for
//! tenants that automate their checks or run their own support tools: read the policy, dry-run a
//! proposed one, list the queue. Saving a policy stays in the portal (an API key that leaks
//! must not be able to loosen it).

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use latchkey_core::{
    Services,
    end_users::health::HealthReason,
    tenants::policy::{AuthenticatorPolicy, ExistingPasskeys, ModelRule, PolicyInput},
    tenants::policy_changes::DryRun,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::BackendKey,
    extract::{ApiJson, ApiQuery},
};
use crate::http::problem::{ApiError, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Services: axum::extract::FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(get_policy))
        .routes(routes!(dry_run_policy))
        .routes(routes!(list_credential_health))
}

/// Which models the list names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelRuleName {
    /// Every model (the list is ignored).
    Any,
    /// Only the listed models.
    Allow,
    /// Every model but the listed ones.
    Block,
}

/// What happens at sign-in to a passkey that no longer complies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExistingName {
    /// It still signs in and is listed in the health queue.
    Flag,
    /// It is refused with `authenticator_not_allowed`.
    Block,
}

/// An authenticator policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"models": "block", "aaguids": ["ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"],
    "allow_synced": true, "require_certified": false, "existing": "flag", "unused_after_days": 180}))]
pub struct PolicyBody {
    pub models: ModelRuleName,
    /// AAGUIDs of the allow or block list (at most 500).
    #[serde(default)]
    pub aaguids: Vec<String>,
    /// Synced (backup-eligible) passkeys are allowed; `false` is device-bound only.
    #[serde(default = "yes")]
    pub allow_synced: bool,
    /// Only authenticators whose attestation verified against FIDO metadata (needs attestation
    /// `direct`).
    #[serde(default)]
    pub require_certified: bool,
    #[serde(default = "flag")]
    pub existing: ExistingName,
    /// The health queue lists passkeys unused for longer (7..=3650; absent: never).
    #[schema(nullable = false, minimum = 7, maximum = 3650)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unused_after_days: Option<u32>,
}

fn yes() -> bool {
    true
}

fn flag() -> ExistingName {
    ExistingName::Flag
}

impl From<PolicyBody> for PolicyInput {
    fn from(body: PolicyBody) -> Self {
        Self {
            models: match body.models {
                ModelRuleName::Any => ModelRule::Any,
                ModelRuleName::Allow => ModelRule::Allow,
                ModelRuleName::Block => ModelRule::Block,
            },
            aaguids: body.aaguids,
            allow_synced: body.allow_synced,
            require_certified: body.require_certified,
            existing: match body.existing {
                ExistingName::Flag => ExistingPasskeys::Flag,
                ExistingName::Block => ExistingPasskeys::Block,
            },
            unused_after_days: body.unused_after_days,
        }
    }
}

impl From<&AuthenticatorPolicy> for PolicyBody {
    fn from(p: &AuthenticatorPolicy) -> Self {
        Self {
            models: match p.models {
                ModelRule::Any => ModelRuleName::Any,
                ModelRule::Allow => ModelRuleName::Allow,
                ModelRule::Block => ModelRuleName::Block,
            },
            aaguids: p.aaguids.iter().map(Uuid::to_string).collect(),
            allow_synced: p.allow_synced,
            require_certified: p.require_certified,
            existing: match p.existing {
                ExistingPasskeys::Flag => ExistingName::Flag,
                ExistingPasskeys::Block => ExistingName::Block,
            },
            unused_after_days: p.unused_after_days,
        }
    }
}

/// Get the authenticator policy
#[utoipa::path(
    get,
    path = "/api/v1/authenticator-policy",
    tag = "Server API",
    responses(
        (status = 200, body = PolicyBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_policy(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
) -> Result<Json<PolicyBody>, ApiError> {
    let policy = services.tenants().policy(&key.access()).await?;
    Ok(Json(PolicyBody::from(&policy)))
}

/// Active passkeys of one model that a policy refuses.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelImpactResponse {
    pub aaguid: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    pub passkeys: u64,
    pub users: u64,
}

/// What a proposed policy does to the passkeys that exist today.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunResponse {
    pub active_passkeys: u64,
    /// Active passkeys the policy refuses (at their next sign-in when `blocks_existing`).
    pub refused_passkeys: u64,
    /// Users with at least one refused passkey.
    pub affected_users: u64,
    /// Users every one of whose active passkeys is refused.
    pub users_left_without_passkey: u64,
    pub blocks_existing: bool,
    /// Refused passkeys by model, most first.
    pub by_model: Vec<ModelImpactResponse>,
}

impl From<DryRun> for DryRunResponse {
    fn from(run: DryRun) -> Self {
        Self {
            active_passkeys: run.active_passkeys,
            refused_passkeys: run.refused_passkeys,
            affected_users: run.affected_users,
            users_left_without_passkey: run.users_left_without_passkey,
            blocks_existing: run.blocks_existing,
            by_model: run
                .by_model
                .into_iter()
                .map(|m| ModelImpactResponse {
                    aaguid: m.aaguid,
                    provider_name: m.provider_name,
                    passkeys: m.passkeys,
                    users: m.users,
                })
                .collect(),
        }
    }
}

/// Dry-run an authenticator policy
///
/// What the policy would do to the tenant's active passkeys if an admin saved it. Changes
/// nothing.
#[utoipa::path(
    post,
    path = "/api/v1/authenticator-policy/dry-run",
    tag = "Server API",
    request_body(content = PolicyBody, content_type = "application/json"),
    responses(
        (status = 200, body = DryRunResponse, example = json!({"active_passkeys": 1200,
            "refused_passkeys": 40, "affected_users": 38, "users_left_without_passkey": 12,
            "blocks_existing": false, "by_model": [{"aaguid": "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4",
            "provider_name": "Google Password Manager", "passkeys": 40, "users": 38}]})),
        (status = 400, description = "`invalid_request` (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn dry_run_policy(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiJson(body): ApiJson<PolicyBody>,
) -> Result<Json<DryRunResponse>, ApiError> {
    let run = services
        .tenants()
        .dry_run_policy(&key.access(), &body.into())
        .await?;
    Ok(Json(run.into()))
}

/// Why a passkey is in the health queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthReasonName {
    CounterRegressed,
    BackupStateChanged,
    MetadataDowngraded,
    BreaksPolicy,
    NotUserVerified,
    UnknownModel,
    Unused,
}

impl HealthReasonName {
    fn core(self) -> HealthReason {
        match self {
            Self::CounterRegressed => HealthReason::CounterRegressed,
            Self::BackupStateChanged => HealthReason::BackupStateChanged,
            Self::MetadataDowngraded => HealthReason::MetadataDowngraded,
            Self::BreaksPolicy => HealthReason::BreaksPolicy,
            Self::NotUserVerified => HealthReason::NotUserVerified,
            Self::UnknownModel => HealthReason::UnknownModel,
            Self::Unused => HealthReason::Unused,
        }
    }

    fn of(reason: HealthReason) -> Self {
        match reason {
            HealthReason::CounterRegressed => Self::CounterRegressed,
            HealthReason::BackupStateChanged => Self::BackupStateChanged,
            HealthReason::MetadataDowngraded => Self::MetadataDowngraded,
            HealthReason::BreaksPolicy => Self::BreaksPolicy,
            HealthReason::NotUserVerified => Self::NotUserVerified,
            HealthReason::UnknownModel => Self::UnknownModel,
            HealthReason::Unused => Self::Unused,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// One reason (default: every reason).
    pub reason: Option<HealthReasonName>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Items per page, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthItemResponse {
    pub reason: HealthReasonName,
    /// When the reason was raised (for states: the registration or the last use).
    pub flagged_at: DateTime<Utc>,
    pub authenticator_id: Uuid,
    pub user_id: String,
    pub name: String,
    pub aaguid: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// More about the reason (the metadata's status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthPageResponse {
    pub items: Vec<HealthItemResponse>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// List the credential health queue
///
/// Active passkeys that need attention, newest first: a counter that went backwards, a backup
/// state that flipped, a model FIDO metadata downgraded, a passkey the current policy refuses,
/// one registered without user verification, an unknown model, or (when the policy sets it) one
/// unused for too long. Dismissed items are left out.
#[utoipa::path(
    get,
    path = "/api/v1/credential-health",
    tag = "Server API",
    params(HealthQuery),
    responses(
        (status = 200, body = HealthPageResponse),
        (status = 400, description = "`invalid_request`: an unknown reason, a bad cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_credential_health(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiQuery(query): ApiQuery<HealthQuery>,
) -> Result<Json<HealthPageResponse>, ApiError> {
    let page = services
        .end_users()
        .credential_health(
            &key.access(),
            query.reason.map(HealthReasonName::core),
            query.after.as_deref(),
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(Json(HealthPageResponse {
        items: page
            .items
            .into_iter()
            .map(|i| HealthItemResponse {
                reason: HealthReasonName::of(i.reason),
                flagged_at: i.flagged_at,
                authenticator_id: i.authenticator_id,
                user_id: i.user_id,
                name: i.name,
                aaguid: i.aaguid,
                provider_name: i.provider_name,
                detail: i.detail,
            })
            .collect(),
        next: page.next,
    }))
}
