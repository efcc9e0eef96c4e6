//! The end-user service as operators use it from the portal, on both databases: who may issue
//! and revoke enrollment tokens and revoke authenticators, and what a revoked or disabled thing
//! refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use latchkey_core::{
    Error, ErrorCode, ManualClock, Services,
    access::{OperatorIdentity, Role},
    audit::RequestMeta,
    both_backends,
    end_users::{EnrollmentRequest, Scope},
    tenants::NewTenant,
    tenants::config::PasskeyConfigInput,
    testing::{TestBackend, TestDb, insert_operator, soft_passkey::SoftPasskeys},
};
use uuid::Uuid;

both_backends!(
    owners_admins_and_support_issue_and_revoke_enrollment_tokens,
    support_revokes_authenticators_viewers_cannot,
    tenants_with_passkeys_off_refuse_enrollment,
    deleting_a_tenant_takes_its_users_passkeys_and_tokens_along
);

const ORIGIN: &str = "https://shop.example.com";

struct Fixture {
    _db: TestDb,
    services: Services,
    tenant: Uuid,
    members: Vec<(Role, OperatorIdentity)>,
    outsider: OperatorIdentity,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock));
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let tenant = services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![ORIGIN.into()],
            enable_passkeys: true,
            owner_email: Some(owner.email.clone()),
        })
        .await
        .unwrap();
    let mut members = vec![(Role::Owner, owner.clone())];
    for role in [Role::Admin, Role::Support, Role::Viewer] {
        let email = format!("{}@shop.test", role.as_str());
        let op = insert_operator(&conn, &email, false).await;
        services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&services, &owner, tenant).await,
                &email,
                role,
                RequestMeta::default(),
            )
            .await
            .unwrap();
        members.push((role, op));
    }
    let outsider = insert_operator(&conn, "outsider@other.test", true).await;
    Some(Fixture {
        _db: db,
        services,
        tenant,
        members,
        outsider,
    })
}

fn scoped() -> EnrollmentRequest {
    EnrollmentRequest {
        scopes: vec![Scope::AddAuthenticators],
        ..EnrollmentRequest::default()
    }
}

/// Registers a passkey for `user` with a token the owner issues.
async fn register(f: &Fixture, user: &str, passkeys: &mut SoftPasskeys) -> Uuid {
    let owner = &f.members[0].1;
    let issued = f
        .services
        .end_users()
        .issue_enrollment_token(
            &latchkey_core::testing::access(&f.services, owner, f.tenant).await,
            user,
            scoped(),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let users = f.services.end_users();
    let options = users
        .begin_registration(&issued.token, RequestMeta::default())
        .await
        .unwrap();
    let credential = passkeys.register(ORIGIN, &options.public_key).unwrap();
    users
        .finish_registration(
            &issued.token,
            &options.ceremony_id,
            &credential.to_string(),
            Some("Work phone"),
            None,
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .authenticator
        .id
}

async fn owners_admins_and_support_issue_and_revoke_enrollment_tokens(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let users = f.services.end_users();
    for (role, op) in &f.members {
        let issued = users
            .issue_enrollment_token(
                &latchkey_core::testing::access(&f.services, op, f.tenant).await,
                "user-1",
                EnrollmentRequest::default(),
                RequestMeta::default(),
            )
            .await;
        let listed = users
            .active_enrollment_tokens(
                &latchkey_core::testing::access(&f.services, op, f.tenant).await,
            )
            .await;
        match role {
            // Support issues recovery tokens (no `add:authenticators`; `roles.rs` has the rest).
            Role::Owner | Role::Admin | Role::Support => {
                assert!(issued.unwrap().token.starts_with("lk_enr_"));
                assert!(listed.is_ok());
            }
            Role::Viewer => {
                assert!(matches!(issued, Err(Error::Forbidden)), "{role:?}");
                assert!(matches!(listed, Err(Error::Forbidden)), "{role:?}");
            }
        }
    }
    // Not a member: the tenant does not exist for them.
    let outsider =
        latchkey_core::testing::as_caller(&f.services, &f.outsider, f.tenant, async |access| {
            users
                .issue_enrollment_token(
                    access,
                    "user-1",
                    EnrollmentRequest::default(),
                    RequestMeta::default(),
                )
                .await
        })
        .await;
    assert!(matches!(outsider, Err(Error::NotFound)));

    let admin = &f.members[1].1;
    let listed = users
        .active_enrollment_tokens(
            &latchkey_core::testing::access(&f.services, admin, f.tenant).await,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 3, "owner, admin and support each issued one");
    assert_eq!(listed[0].user_id, "user-1");
    let issued = users
        .issue_enrollment_token(
            &latchkey_core::testing::access(&f.services, admin, f.tenant).await,
            "user-2",
            scoped(),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let id = users
        .active_enrollment_tokens(
            &latchkey_core::testing::access(&f.services, admin, f.tenant).await,
        )
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.user_id == "user-2")
        .unwrap()
        .id;
    let viewer = &f.members[3].1;
    assert!(matches!(
        users
            .revoke_enrollment_token(
                &latchkey_core::testing::access(&f.services, viewer, f.tenant).await,
                id,
                RequestMeta::default()
            )
            .await,
        Err(Error::Forbidden)
    ));
    users
        .revoke_enrollment_token(
            &latchkey_core::testing::access(&f.services, admin, f.tenant).await,
            id,
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        users
            .active_enrollment_tokens(
                &latchkey_core::testing::access(&f.services, admin, f.tenant).await
            )
            .await
            .unwrap()
            .len(),
        3
    );
    let refused = users
        .begin_registration(&issued.token, RequestMeta::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::TokenInvalid);
}

async fn support_revokes_authenticators_viewers_cannot(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let first = register(&f, "user-1", &mut SoftPasskeys::new()).await;
    let second = register(&f, "user-1", &mut SoftPasskeys::new()).await;
    let users = f.services.end_users();
    let viewer = &f.members[3].1;
    let support = &f.members[2].1;

    let seen = users
        .authenticators(
            &latchkey_core::testing::access(&f.services, viewer, f.tenant).await,
            "user-1",
        )
        .await
        .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].name, "Work phone");
    let refused = users
        .revoke_authenticator(
            &latchkey_core::testing::access(&f.services, viewer, f.tenant).await,
            "user-1",
            first,
            "lost phone",
            RequestMeta::default(),
        )
        .await;
    assert!(matches!(refused, Err(Error::Forbidden)));
    let no_reason = users
        .revoke_authenticator(
            &latchkey_core::testing::access(&f.services, support, f.tenant).await,
            "user-1",
            first,
            "  ",
            RequestMeta::default(),
        )
        .await;
    assert_eq!(no_reason.unwrap_err().field(), Some("reason"));
    let revoked = users
        .revoke_authenticator(
            &latchkey_core::testing::access(&f.services, support, f.tenant).await,
            "user-1",
            first,
            "Lost phone (ticket 4711)",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.revoked_by.as_deref(), Some("support@shop.test"));
    assert_eq!(
        revoked.revoked_reason.as_deref(),
        Some("Lost phone (ticket 4711)")
    );
    let user = users
        .user(
            &latchkey_core::testing::access(&f.services, viewer, f.tenant).await,
            "user-1",
        )
        .await
        .unwrap();
    assert_eq!(user.authenticator_count, 1);
    // The other passkey still signs in; the revoked one would not be offered at all.
    let options = users
        .begin_authentication(f.tenant, Some("user-1"))
        .await
        .unwrap();
    let allowed = options.public_key["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    let seen = users
        .authenticators(
            &latchkey_core::testing::access(&f.services, viewer, f.tenant).await,
            "user-1",
        )
        .await
        .unwrap();
    let active: Vec<Uuid> = seen
        .iter()
        .filter(|a| a.revoked_at.is_none())
        .map(|a| a.id)
        .collect();
    assert_eq!(active, vec![second]);
    // An outsider finds nothing.
    let outsider =
        latchkey_core::testing::as_caller(&f.services, &f.outsider, f.tenant, async |access| {
            users.authenticators(access, "user-1").await
        })
        .await;
    assert!(matches!(outsider, Err(Error::NotFound)));
}

async fn tenants_with_passkeys_off_refuse_enrollment(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let owner = &f.members[0].1;
    let token = f
        .services
        .end_users()
        .issue_enrollment_token(
            &latchkey_core::testing::access(&f.services, owner, f.tenant).await,
            "user-1",
            EnrollmentRequest::default(),
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .token;
    let details = f
        .services
        .tenants()
        .get(&latchkey_core::testing::access(&f.services, owner, f.tenant).await)
        .await
        .unwrap();
    let input = PasskeyConfigInput {
        enabled: false,
        rp_id: "shop.example.com".into(),
        rp_name: String::new(),
        origins: ORIGIN.into(),
        related_origins: String::new(),
        ios_app_ids: String::new(),
        attestation: Default::default(),
        user_verification: Default::default(),
        resident_key: Default::default(),
        attachment: Default::default(),
        algorithms: vec![latchkey_core::tenants::config::Algorithm::Es256],
        timeout_seconds: 300,
        confirm_rp_id_change: false,
    };
    f.services
        .tenants()
        .update_passkey_config(
            &latchkey_core::testing::access(&f.services, owner, f.tenant).await,
            &input,
            details.config.version,
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let users = f.services.end_users();
    let refused = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::PasskeysDisabled);
    let refused = users
        .issue_enrollment_token(
            &latchkey_core::testing::access(&f.services, owner, f.tenant).await,
            "user-2",
            EnrollmentRequest::default(),
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::PasskeysDisabled);
    let refused = users
        .begin_authentication(f.tenant, None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::PasskeysDisabled);
    let unknown = users
        .begin_authentication(Uuid::new_v4(), None)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::NotFound);
}

async fn deleting_a_tenant_takes_its_users_passkeys_and_tokens_along(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    register(&f, "user-1", &mut SoftPasskeys::new()).await;
    let owner = &f.members[0].1;
    f.services
        .end_users()
        .issue_enrollment_token(
            &latchkey_core::testing::access(&f.services, owner, f.tenant).await,
            "user-2",
            EnrollmentRequest::default(),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    f.services
        .tenants()
        .delete(
            &latchkey_core::testing::access(&f.services, owner, f.tenant).await,
            "Shop",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let conn = f._db.connect().await;
    let left: Vec<String> = latchkey_core::testing::all_rows_as_text(&conn)
        .await
        .into_iter()
        .filter(|(table, _)| {
            matches!(
                table.as_str(),
                "end_users" | "authenticators" | "enrollment_tokens" | "validation_tokens"
            )
        })
        .map(|(table, row)| format!("{table}: {row}"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}
