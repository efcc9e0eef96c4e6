//! Server-side state shared by the router, page rendering and server functions, and the request
//! context every server function starts from.

use axum::{extract::FromRef, http::request::Parts};
use latchkey_core::{
    Services,
    access::{OperatorIdentity, TenantAccess, step_up::StepUp},
    audit::RequestMeta,
};
use leptos::prelude::*;
use tower_sessions::Session;

use crate::{PortalError, session};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub services: Services,
}

fn missing(what: &str) -> PortalError {
    tracing::error!("{what} missing from the request context");
    PortalError::new("internal", "Something went wrong on our side. Try again.")
}

/// The services, from the request's context (provided by the router for every page render and
/// server-function call).
pub fn services() -> Result<Services, PortalError> {
    use_context::<AppState>()
        .map(|state| state.services)
        .ok_or_else(|| missing("AppState"))
}

/// What a server function works with: the services, the caller's session and the request facts
/// for the audit log.
pub struct PortalRequest {
    pub services: Services,
    pub session: Session,
    pub meta: RequestMeta,
    /// Already resolved by the page guard for this request, if it ran.
    signed_in: Option<OperatorIdentity>,
}

/// The current request's context.
pub fn request() -> Result<PortalRequest, PortalError> {
    let services = services()?;
    let parts = use_context::<Parts>().ok_or_else(|| missing("request parts"))?;
    let session = parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| missing("session"))?;
    Ok(PortalRequest {
        services,
        session,
        meta: session::request_meta(&parts),
        signed_in: parts
            .extensions
            .get::<session::SignedIn>()
            .map(|s| s.0.clone()),
    })
}

/// The current request and its operator's access to the tenant `id` names: where every server
/// function acting in a tenant starts (see [`PortalRequest::tenant`]).
pub async fn tenant_request(id: &str) -> Result<(PortalRequest, TenantAccess), PortalError> {
    let request = request()?;
    let access = request.tenant(id).await?;
    Ok((request, access))
}

impl PortalRequest {
    /// The signed-in operator's access to the tenant `id` names, as the page sent it, carrying
    /// this session's step-up (the service decides whether the action needs it). A malformed id
    /// names no tenant: `not_found`, as on every edge.
    pub async fn tenant(&self, id: &str) -> Result<TenantAccess, PortalError> {
        let operator = self.operator().await?;
        let tenant_id = latchkey_core::tenants::parse_tenant_id(id)?;
        let access = self.services.tenant(&operator, tenant_id).await?;
        let step_up = self.step_up(&operator).await?;
        Ok(access.stepped_up(&step_up))
    }

    pub async fn current_operator(&self) -> Result<Option<OperatorIdentity>, PortalError> {
        if let Some(operator) = &self.signed_in {
            return Ok(Some(operator.clone()));
        }
        Ok(session::current_operator(&self.session, &self.services).await?)
    }

    /// The signed-in operator, or `unauthorized`: every server function that acts for an
    /// operator starts here.
    pub async fn operator(&self) -> Result<OperatorIdentity, PortalError> {
        self.current_operator()
            .await?
            .ok_or_else(|| latchkey_core::Error::Unauthorized.into())
    }

    /// The operator as the actions that need step-up take them: with when this session last
    /// verified their passkey (see `latchkey_core::access::step_up`).
    pub async fn step_up<'a>(
        &self,
        operator: &'a OperatorIdentity,
    ) -> Result<StepUp<'a>, PortalError> {
        let verified_at = session::passkey_verified_at(&self.session).await?;
        Ok(self.services.step_up(operator, verified_at))
    }

    /// Records that the session's operator just verified a passkey (a finished step-up).
    pub async fn record_step_up(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), PortalError> {
        Ok(session::record_passkey_verified(&self.session, at).await?)
    }

    pub async fn sign_in(&self, operator: &OperatorIdentity) -> Result<(), PortalError> {
        Ok(session::sign_in(&self.session, &self.services, operator).await?)
    }

    pub async fn sign_out(&self) -> Result<(), PortalError> {
        Ok(session::sign_out(&self.session).await?)
    }
}
