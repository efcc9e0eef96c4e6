//! Server functions of the Enrollment tokens page (support-assisted recovery): issue a token
//! for a user, list the active ones, revoke one.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;
#[cfg(feature = "ssr")]
use crate::api::{display_time, parse_id};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenRow {
    pub id: String,
    pub user_id: String,
    pub prefix: String,
    pub add_authenticators: bool,
    pub issued_by: String,
    pub created_at: String,
    pub expires_at: String,
}

/// A token just issued: the secret is in this answer and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub token: String,
    pub user_id: String,
    pub expires_at: String,
    pub add_authenticators: bool,
    pub has_authenticators: bool,
}

#[server(prefix = "/portal/api", endpoint = "list_enrollment_tokens")]
pub async fn list_enrollment_tokens(id: String) -> Result<Vec<EnrollmentTokenRow>, PortalError> {
    use latchkey_core::end_users::Scope;
    let (request, access) = crate::state::tenant_request(&id).await?;
    let tokens = request
        .services
        .end_users()
        .active_enrollment_tokens(&access)
        .await?;
    Ok(tokens
        .into_iter()
        .map(|t| EnrollmentTokenRow {
            id: t.id.to_string(),
            user_id: t.user_id,
            prefix: t.prefix,
            add_authenticators: t.scopes.contains(&Scope::AddAuthenticators),
            issued_by: t.issued_by,
            created_at: display_time(t.created_at),
            expires_at: display_time(t.expires_at),
        })
        .collect())
}

#[server(prefix = "/portal/api", endpoint = "issue_enrollment_token")]
pub async fn issue_enrollment_token(
    id: String,
    user_id: String,
    add_authenticators: bool,
) -> Result<IssuedToken, PortalError> {
    use latchkey_core::end_users::{EnrollmentRequest, Scope};
    let (request, access) = crate::state::tenant_request(&id).await?;
    let issued = request
        .services
        .end_users()
        .issue_enrollment_token(
            &access,
            &user_id,
            EnrollmentRequest {
                scopes: if add_authenticators {
                    vec![Scope::AddAuthenticators]
                } else {
                    Vec::new()
                },
                ..EnrollmentRequest::default()
            },
            request.meta.clone(),
        )
        .await?;
    Ok(IssuedToken {
        token: issued.token,
        user_id: issued.user_id,
        expires_at: display_time(issued.expires_at),
        add_authenticators,
        has_authenticators: issued.has_authenticators,
    })
}

#[server(prefix = "/portal/api", endpoint = "revoke_enrollment_token")]
pub async fn revoke_enrollment_token(id: String, token: String) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let token = parse_id("token", &token)?;
    Ok(request
        .services
        .end_users()
        .revoke_enrollment_token(&access, token, request.meta.clone())
        .await?)
}
