//! The tenant most tests use — "Shop", RP ID `shop.example.com`, passkeys on — and a user's
//! registration through the real ceremony (token, options, soft passkey, verification).

use uuid::Uuid;

use super::soft_passkey::SoftPasskeys;
use crate::{
    Services,
    access::{OperatorIdentity, TenantAccess},
    audit::RequestMeta,
    end_users::{EnrollmentRequest, Scope},
    tenants::NewTenant,
};

/// The shop's web origin.
pub const ORIGIN: &str = "https://shop.example.com";

/// Creates the shop, owned by `owner`.
pub async fn create(services: &Services, owner: &OperatorIdentity) -> Uuid {
    let created = services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![ORIGIN.into()],
            enable_passkeys: true,
            owner_email: Some(owner.email.clone()),
        })
        .await;
    match created {
        Ok(tenant) => tenant,
        Err(err) => panic!("cannot create the shop: {err}"),
    }
}

/// An enrollment token for `user` that may add passkeys (a new user, or one with passkeys).
pub async fn token(services: &Services, access: &TenantAccess, user: &str) -> String {
    let issued = services
        .end_users()
        .issue_enrollment_token(
            access,
            user,
            EnrollmentRequest {
                scopes: vec![Scope::AddAuthenticators],
                ..EnrollmentRequest::default()
            },
            RequestMeta::default(),
        )
        .await;
    match issued {
        Ok(issued) => issued.token,
        Err(err) => panic!("cannot issue a token for {user}: {err}"),
    }
}

/// Registers a new passkey of `passkeys` with `token` at [`ORIGIN`]: its id, or the refusal.
pub async fn register_with(
    services: &Services,
    token: &str,
    passkeys: &mut SoftPasskeys,
) -> crate::Result<Uuid> {
    let users = services.end_users();
    let options = users
        .begin_registration(token, RequestMeta::default())
        .await?;
    let credential = match passkeys.register(ORIGIN, &options.public_key) {
        Ok(credential) => credential,
        Err(err) => panic!("the soft passkey refused the options: {err}"),
    };
    users
        .finish_registration(
            token,
            &options.ceremony_id,
            &credential.to_string(),
            None,
            None,
            RequestMeta::default(),
        )
        .await
        .map(|registered| registered.authenticator.id)
}

/// Registers a new passkey for `user` (a fresh token each time).
pub async fn register(
    services: &Services,
    access: &TenantAccess,
    user: &str,
    passkeys: &mut SoftPasskeys,
) -> crate::Result<Uuid> {
    let token = token(services, access, user).await;
    register_with(services, &token, passkeys).await
}
