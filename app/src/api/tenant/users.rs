//! The Users pages of the support console: search users, a user's authenticators, revoke (one or
//! all) and rename. The services authorize; these only parse and shape what the pages show.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;
#[cfg(feature = "ssr")]
use crate::api::{display_time, parse_id};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub user_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub created_at: String,
    pub active_authenticators: u64,
    /// The match was on the username, not the user ID.
    pub by_username: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersPageView {
    pub users: Vec<UserRow>,
    pub next: Option<String>,
    pub total_users: u64,
    /// "3", or "more than 1,000".
    pub matches: String,
}

#[cfg(feature = "ssr")]
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[server(prefix = "/portal/api", endpoint = "search_users")]
pub async fn search_users(
    id: String,
    query: String,
    after: Option<String>,
) -> Result<UsersPageView, PortalError> {
    use latchkey_core::end_users::{MatchCount, MatchedOn, UserSearch};
    let (request, access) = crate::state::tenant_request(&id).await?;
    let page = request
        .services
        .end_users()
        .search_users(
            &access,
            &UserSearch {
                query,
                after: after.filter(|a| !a.is_empty()),
                limit: None,
            },
        )
        .await?;
    Ok(UsersPageView {
        users: page
            .users
            .into_iter()
            .map(|u| UserRow {
                user_id: u.user_id,
                username: u.username,
                display_name: u.display_name,
                created_at: display_time(u.created_at),
                active_authenticators: u.active_authenticators,
                by_username: u.matched_on == MatchedOn::Username,
            })
            .collect(),
        next: page.next,
        total_users: page.total_users,
        matches: match page.matches {
            MatchCount::Exactly(n) => thousands(n),
            MatchCount::MoreThan(n) => format!("more than {}", thousands(n)),
        },
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatorRow {
    pub id: String,
    pub name: String,
    pub provider: Option<String>,
    pub aaguid: String,
    /// Where the provider's icons are served, when the list has them.
    pub icon_light: Option<String>,
    pub icon_dark: Option<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub attachment: Option<String>,
    pub transports: Vec<String>,
    pub user_verified: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub sign_count: i64,
    pub counter_regressed_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    pub revoked_reason: Option<String>,
    /// "certified: FIDO_CERTIFIED_L1 (YubiKey 5)", "self", "none".
    pub attestation: String,
    pub metadata_status: Option<String>,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::end_users::AuthenticatorView> for AuthenticatorRow {
    fn from(a: latchkey_core::end_users::AuthenticatorView) -> Self {
        let provider = latchkey_core::end_users::aaguid::provider(a.aaguid);
        let icon = |has: bool, variant: &str| {
            has.then(|| format!("/provider-icons/{}/{variant}", a.aaguid))
        };
        Self {
            id: a.id.to_string(),
            name: a.name,
            provider: a.provider_name,
            aaguid: a.aaguid.to_string(),
            icon_light: icon(provider.is_some_and(|p| p.icon_light.is_some()), "light"),
            icon_dark: icon(provider.is_some_and(|p| p.icon_dark.is_some()), "dark"),
            backup_eligible: a.backup_eligible,
            backup_state: a.backup_state,
            attachment: a.attachment,
            transports: a.transports,
            user_verified: a.user_verified,
            created_at: display_time(a.created_at),
            last_used_at: a.last_used_at.map(display_time),
            sign_count: a.sign_count,
            counter_regressed_at: a.counter_regressed_at.map(display_time),
            revoked_at: a.revoked_at.map(display_time),
            revoked_by: a.revoked_by,
            revoked_reason: a.revoked_reason,
            attestation: match (a.certification_level, a.certified_model) {
                (Some(level), Some(model)) => format!("{}: {level} ({model})", a.attestation_trust),
                (Some(level), None) => format!("{}: {level}", a.attestation_trust),
                _ => a.attestation_trust,
            },
            metadata_status: a.metadata_status,
        }
    }
}

/// One of the user's bound devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRow {
    pub id: String,
    /// "Chrome 156 on Linux" (or "Unknown device" without a user agent).
    pub summary: String,
    pub user_agent: Option<String>,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub sign_in_count: i64,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::end_users::DeviceView> for DeviceRow {
    fn from(d: latchkey_core::end_users::DeviceView) -> Self {
        Self {
            id: d.id.to_string(),
            summary: d
                .user_agent_summary
                .unwrap_or_else(|| "Unknown device".into()),
            user_agent: d.user_agent,
            first_seen_at: display_time(d.first_seen_at),
            last_seen_at: display_time(d.last_seen_at),
            sign_in_count: d.sign_in_count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetailView {
    pub user_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub created_at: String,
    pub authenticators: Vec<AuthenticatorRow>,
    pub devices: Vec<DeviceRow>,
    /// The operator may revoke and rename (support, admin, owner).
    pub can_revoke: bool,
    /// The operator may issue a recovery enrollment token (support and up).
    pub can_issue_tokens: bool,
    /// … with `add:authenticators` (admin, owner); support's tokens register only for a user
    /// with no passkey left.
    pub can_add_authenticators: bool,
}

#[server(prefix = "/portal/api", endpoint = "user_details")]
pub async fn user_details(id: String, user_id: String) -> Result<UserDetailView, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let detail = request
        .services
        .end_users()
        .user_detail(&access, &user_id)
        .await?;
    Ok(UserDetailView {
        user_id: detail.user.user_id,
        username: detail.user.username,
        display_name: detail.user.display_name,
        created_at: display_time(detail.user.created_at),
        authenticators: detail
            .authenticators
            .into_iter()
            .map(AuthenticatorRow::from)
            .collect(),
        devices: detail.devices.into_iter().map(DeviceRow::from).collect(),
        can_revoke: detail.may_revoke,
        can_issue_tokens: detail.may_issue_tokens,
        can_add_authenticators: detail.may_add_authenticators,
    })
}

#[server(prefix = "/portal/api", endpoint = "revoke_authenticator")]
pub async fn revoke_authenticator(
    id: String,
    user_id: String,
    authenticator_id: String,
    reason: String,
) -> Result<AuthenticatorRow, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let authenticator_id = parse_id("authenticator_id", &authenticator_id)?;
    let revoked = request
        .services
        .end_users()
        .revoke_authenticator(
            &access,
            &user_id,
            authenticator_id,
            &reason,
            request.meta.clone(),
        )
        .await?;
    Ok(revoked.into())
}

/// Forgets one of the user's bound devices (its next sign-in is reported as new).
#[server(prefix = "/portal/api", endpoint = "revoke_device")]
pub async fn revoke_device(
    id: String,
    user_id: String,
    device_id: String,
) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let device_id = parse_id("device_id", &device_id)?;
    Ok(request
        .services
        .end_users()
        .revoke_device(&access, &user_id, device_id, request.meta.clone())
        .await?)
}

#[server(prefix = "/portal/api", endpoint = "revoke_all_authenticators")]
pub async fn revoke_all_authenticators(
    id: String,
    user_id: String,
    reason: String,
) -> Result<u64, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    Ok(request
        .services
        .end_users()
        .revoke_all_authenticators(&access, &user_id, &reason, request.meta.clone())
        .await?)
}

#[server(prefix = "/portal/api", endpoint = "rename_authenticator")]
pub async fn rename_authenticator(
    id: String,
    user_id: String,
    authenticator_id: String,
    name: String,
) -> Result<AuthenticatorRow, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let authenticator_id = parse_id("authenticator_id", &authenticator_id)?;
    let renamed = request
        .services
        .end_users()
        .rename_authenticator(
            &access,
            &user_id,
            authenticator_id,
            &name,
            request.meta.clone(),
        )
        .await?;
    Ok(renamed.into())
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
