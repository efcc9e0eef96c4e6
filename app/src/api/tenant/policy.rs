//! The Passkeys page's authenticator policy section: the policy as a form, its dry run, the
//! users it affects, and saving it. The services validate and decide.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

use crate::PortalError;

/// The policy form's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PolicyForm {
    /// `any` / `allow` / `block`.
    pub models: String,
    /// One AAGUID per line.
    pub aaguids: String,
    pub allow_synced: bool,
    pub require_certified: bool,
    pub block_existing: bool,
    /// Days, or blank.
    pub unused_after_days: String,
}

/// A model people can pick by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice {
    pub aaguid: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    pub form: PolicyForm,
    /// The configuration version the form was loaded with.
    pub version: i64,
    pub can_configure: bool,
    /// The community AAGUID list, by name.
    pub models: Vec<ModelChoice>,
    /// The tenant asks for attestation `direct` (certification needs it).
    pub attestation_direct: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelImpactRow {
    pub aaguid: String,
    pub name: String,
    pub passkeys: u64,
    pub users: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunView {
    pub active_passkeys: u64,
    pub refused_passkeys: u64,
    pub affected_users: u64,
    pub users_left_without_passkey: u64,
    pub blocks_existing: bool,
    pub by_model: Vec<ModelImpactRow>,
    /// The form, encoded for the affected users' page link.
    pub link: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedUsersView {
    pub users: Vec<(String, Option<String>)>,
    pub next: Option<String>,
}

#[cfg(feature = "ssr")]
fn input_of(form: &PolicyForm) -> Result<latchkey_core::tenants::policy::PolicyInput, PortalError> {
    use latchkey_core::tenants::{
        config::enum_from,
        policy::{ExistingPasskeys, PolicyInput},
    };
    let unused_after_days = match form.unused_after_days.trim() {
        "" => None,
        days => Some(days.parse::<u32>().map_err(|_| {
            latchkey_core::Error::invalid(
                "unused_after_days",
                "Enter a whole number of days, or leave it blank.",
            )
        })?),
    };
    Ok(PolicyInput {
        models: enum_from("models", &form.models)?,
        aaguids: form.aaguids.split(['\n', ',']).map(str::to_owned).collect(),
        allow_synced: form.allow_synced,
        require_certified: form.require_certified,
        existing: if form.block_existing {
            ExistingPasskeys::Block
        } else {
            ExistingPasskeys::Flag
        },
        unused_after_days,
    })
}

#[cfg(feature = "ssr")]
fn form_of(policy: &latchkey_core::tenants::policy::AuthenticatorPolicy) -> PolicyForm {
    use latchkey_core::tenants::{config::enum_name, policy::ExistingPasskeys};
    PolicyForm {
        models: enum_name(&policy.models),
        aaguids: policy
            .aaguids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        allow_synced: policy.allow_synced,
        require_certified: policy.require_certified,
        block_existing: policy.existing == ExistingPasskeys::Block,
        unused_after_days: policy
            .unused_after_days
            .map(|d| d.to_string())
            .unwrap_or_default(),
    }
}

/// The form as the affected users' page link carries it (base64url JSON).
#[cfg(feature = "ssr")]
fn encode_form(form: &PolicyForm) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(form).unwrap_or_default())
}

#[cfg(feature = "ssr")]
fn decode_form(link: &str) -> Result<PolicyForm, PortalError> {
    use base64::Engine as _;
    let bad = || {
        latchkey_core::Error::invalid(
            "policy",
            "This link is not valid: preview the policy again.",
        )
    };
    if link.len() > 64 * 1024 {
        return Err(bad().into());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(link.trim())
        .map_err(|_| bad())?;
    Ok(serde_json::from_slice(&bytes).map_err(|_| bad())?)
}

#[server(prefix = "/portal/api", endpoint = "authenticator_policy")]
pub async fn authenticator_policy(id: String) -> Result<PolicyView, PortalError> {
    use latchkey_core::{access::Permission, end_users::aaguid, tenants::config::Attestation};
    let (request, access) = crate::state::tenant_request(&id).await?;
    let details = request.services.tenants().get(&access).await?;
    Ok(PolicyView {
        form: form_of(&details.config.policy),
        version: details.config.version,
        can_configure: details.role.allows(Permission::ManagePasskeyConfig),
        models: aaguid::by_name()
            .into_iter()
            .map(|(aaguid, name)| ModelChoice {
                aaguid: aaguid.to_string(),
                name: name.to_owned(),
            })
            .collect(),
        attestation_direct: details.config.attestation == Attestation::Direct,
    })
}

#[cfg(feature = "ssr")]
fn dry_run_view(
    run: latchkey_core::tenants::policy_changes::DryRun,
    form: &PolicyForm,
) -> DryRunView {
    DryRunView {
        active_passkeys: run.active_passkeys,
        refused_passkeys: run.refused_passkeys,
        affected_users: run.affected_users,
        users_left_without_passkey: run.users_left_without_passkey,
        blocks_existing: run.blocks_existing,
        by_model: run
            .by_model
            .into_iter()
            .map(|m| ModelImpactRow {
                aaguid: m.aaguid.to_string(),
                name: m
                    .provider_name
                    .unwrap_or_else(|| format!("Unknown model ({})", m.aaguid)),
                passkeys: m.passkeys,
                users: m.users,
            })
            .collect(),
        link: encode_form(form),
    }
}

#[server(prefix = "/portal/api", endpoint = "dry_run_policy", input = Json)]
pub async fn dry_run_policy(id: String, form: PolicyForm) -> Result<DryRunView, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let input = input_of(&form)?;
    let run = request
        .services
        .tenants()
        .dry_run_policy(&access, &input)
        .await?;
    Ok(dry_run_view(run, &form))
}

#[server(prefix = "/portal/api", endpoint = "save_policy", input = Json)]
pub async fn save_policy(
    id: String,
    form: PolicyForm,
    version: i64,
) -> Result<(PolicyForm, i64, DryRunView), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let input = input_of(&form)?;
    let (config, run) = request
        .services
        .tenants()
        .update_authenticator_policy(&access, &input, version, request.meta.clone())
        .await?;
    let saved = form_of(&config.policy);
    let view = dry_run_view(run, &saved);
    Ok((saved, config.version, view))
}

#[server(prefix = "/portal/api", endpoint = "users_affected_by_policy")]
pub async fn users_affected_by_policy(
    id: String,
    policy: String,
    after: Option<String>,
) -> Result<AffectedUsersView, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let form = decode_form(&policy)?;
    let input = input_of(&form)?;
    let after = after
        .filter(|a| !a.is_empty())
        .map(|a| crate::api::parse_id("after", &a))
        .transpose()?;
    let page = request
        .services
        .tenants()
        .users_affected_by(&access, &input, after, 50)
        .await?;
    Ok(AffectedUsersView {
        users: page
            .users
            .into_iter()
            .map(|u| (u.user_id, u.username))
            .collect(),
        next: page.next.map(|n| n.to_string()),
    })
}
