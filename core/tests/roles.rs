//! Tenant roles as the services enforce them, on both databases: what each role may do (a table
//! written out here, independent of the code's own rule table), non-members see nothing, only
//! instance admins create tenants, only owners manage members, a tenant never loses its last
//! owner, and every change is audited. Also the decided edges (README, "Roles"): viewers see the
//! dashboard's counts, support issues recovery tokens without `add:authenticators`, instance
//! admins read only the instance's own audit events, and only they create operator accounts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use latchkey_core::testing::stepped_up;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    access::{OperatorIdentity, Permission, Role},
    audit::RequestMeta,
    both_backends,
    testing::{TestBackend, TestDb},
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

both_backends!(
    each_role_may_do_exactly_its_share,
    non_members_and_non_admins_are_refused,
    members_and_roles_are_managed_by_owners_only,
    a_tenant_keeps_at_least_one_owner,
    support_issues_recovery_tokens_only_without_add_authenticators,
    instance_admins_read_only_the_instances_own_audit_events,
    only_instance_admins_create_operator_accounts
);

use Permission::*;

/// The spec's "Who uses it", as (permission, owner, admin, support, viewer).
const EXPECTED: &[(Permission, bool, bool, bool, bool)] = &[
    (ViewTenant, true, true, true, true),
    (ReadUsers, true, true, true, true),
    (ReadDashboard, true, true, true, true),
    (ReadAuditLog, true, true, true, false),
    (RevokeCredentials, true, true, true, false),
    (ManagePasskeyConfig, true, true, false, false),
    (ManageApiKeys, true, true, false, false),
    (IssueEnrollmentTokens, true, true, false, false),
    (IssueRecoveryTokens, true, true, true, false),
    (ManageMembers, true, false, false, false),
    (RenameTenant, true, false, false, false),
    (DeleteTenant, true, false, false, false),
    (ValidateTokens, false, false, false, false),
    (DryRunPolicy, true, true, false, false),
    (ReadCredentialHealth, true, true, true, false),
    (DismissHealthFlags, true, true, true, false),
    (CheckOrigins, true, true, false, false),
    (ManageWebhooks, true, true, false, false),
];

struct Fixture {
    _db: TestDb,
    conn: DatabaseConnection,
    services: Services,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock));
    Some(Fixture {
        _db: db,
        conn,
        services,
    })
}

async fn operator(conn: &DatabaseConnection, email: &str, admin: bool) -> OperatorIdentity {
    latchkey_core::testing::insert_operator(conn, email, admin).await
}

fn meta() -> RequestMeta {
    RequestMeta::default()
}

/// A tenant with one member of each role, created by an instance admin (its owner).
async fn tenant_with_every_role(f: &Fixture) -> (Uuid, Vec<(Role, OperatorIdentity)>) {
    let owner = operator(&f.conn, "owner@example.com", true).await;
    let tenant = f
        .services
        .tenants()
        .create(&owner, "Acme", meta())
        .await
        .unwrap();
    let mut members = vec![(Role::Owner, owner.clone())];
    for role in [Role::Admin, Role::Support, Role::Viewer] {
        let email = format!("{}@example.com", role.as_str());
        let op = operator(&f.conn, &email, false).await;
        f.services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&f.services, &owner, tenant).await,
                &email,
                role,
                meta(),
            )
            .await
            .unwrap();
        members.push((role, op));
    }
    (tenant, members)
}

async fn each_role_may_do_exactly_its_share(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (tenant, members) = tenant_with_every_role(&f).await;
    assert_eq!(
        EXPECTED.len(),
        Permission::ALL.len(),
        "every permission is in the table"
    );
    for &(permission, owner, admin, support, viewer) in EXPECTED {
        for (role, op) in &members {
            let allowed = match role {
                Role::Owner => owner,
                Role::Admin => admin,
                Role::Support => support,
                Role::Viewer => viewer,
            };
            let result =
                latchkey_core::testing::authorize(&f.services, op, tenant, permission).await;
            match (allowed, result) {
                (true, Ok(answered)) => assert_eq!(answered, *role),
                (false, Err(err)) => assert_eq!(err.code(), ErrorCode::Forbidden),
                (expected, got) => {
                    panic!("{role:?} / {permission:?}: expected allowed={expected}, got {got:?}")
                }
            }
        }
    }
}

async fn non_members_and_non_admins_are_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (tenant, members) = tenant_with_every_role(&f).await;
    // An instance admin who is not a member sees nothing of the tenant: not found, not forbidden.
    let outsider = operator(&f.conn, "outsider@example.com", true).await;
    for permission in Permission::ALL {
        let err = latchkey_core::testing::authorize(&f.services, &outsider, tenant, permission)
            .await
            .expect_err("outsider");
        assert_eq!(err.code(), ErrorCode::NotFound, "{permission:?}");
    }
    // An unknown tenant looks the same.
    let err =
        latchkey_core::testing::authorize(&f.services, &members[0].1, Uuid::new_v4(), ViewTenant)
            .await
            .expect_err("unknown tenant");
    assert_eq!(err.code(), ErrorCode::NotFound);
    // Only instance admins create tenants, whatever their tenant roles.
    for (role, op) in &members[1..] {
        let err = f
            .services
            .tenants()
            .create(op, "Mine", meta())
            .await
            .expect_err("not an instance admin");
        assert_eq!(err.code(), ErrorCode::Forbidden, "{role:?}");
    }
}

async fn members_and_roles_are_managed_by_owners_only(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (tenant, members) = tenant_with_every_role(&f).await;
    let newcomer = operator(&f.conn, "new@example.com", false).await;
    for (role, op) in &members[1..] {
        let added = f
            .services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&f.services, op, tenant).await,
                "new@example.com",
                Role::Viewer,
                meta(),
            )
            .await;
        assert_eq!(
            added.expect_err("not an owner").code(),
            ErrorCode::Forbidden,
            "{role:?}"
        );
        let changed = f
            .services
            .tenants()
            .set_role(
                &latchkey_core::testing::access(&f.services, op, tenant).await,
                op.id,
                Role::Owner,
                meta(),
            )
            .await;
        assert_eq!(
            changed.expect_err("no self-promotion").code(),
            ErrorCode::Forbidden,
            "{role:?}"
        );
    }
    let owner = &members[0].1;
    f.services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&f.services, owner, tenant).await,
            "new@example.com",
            Role::Support,
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        latchkey_core::testing::authorize(&f.services, &newcomer, tenant, RevokeCredentials)
            .await
            .unwrap(),
        Role::Support
    );
    // A demotion takes effect on the very next check.
    f.services
        .tenants()
        .set_role(
            &latchkey_core::testing::access(&f.services, owner, tenant).await,
            newcomer.id,
            Role::Viewer,
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        latchkey_core::testing::authorize(&f.services, &newcomer, tenant, RevokeCredentials)
            .await
            .expect_err("demoted")
            .code(),
        ErrorCode::Forbidden
    );
    // Adding twice, or a malformed address, is a field error.
    for email in ["new@example.com", "not an address"] {
        let err = f
            .services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&f.services, owner, tenant).await,
                email,
                Role::Viewer,
                meta(),
            )
            .await
            .expect_err(email);
        assert_eq!(err.field(), Some("email"), "{email}");
    }
    // Someone who is not an operator yet gets an invitation bound to the tenant and role.
    let added = f
        .services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&f.services, owner, tenant).await,
            "nobody@example.com",
            Role::Support,
            meta(),
        )
        .await
        .unwrap();
    let latchkey_core::tenants::MemberAdded::Invited(invitation) = added else {
        panic!("expected an invitation, got {added:?}");
    };
    let info = f
        .services
        .operators()
        .token_info(&invitation.token)
        .await
        .unwrap();
    assert_eq!(info.email.as_deref(), Some("nobody@example.com"));
    assert!(!info.grants_instance_admin);
    let events = f.services.audit().recent(Some(tenant), 100).await.unwrap();
    let role_change = events
        .iter()
        .find(|e| e.action == "member.role_changed")
        .expect("role change audited");
    assert_eq!(role_change.details.as_ref().unwrap()["from"], "support");
    assert_eq!(role_change.details.as_ref().unwrap()["to"], "viewer");
    assert_eq!(
        role_change.actor_id.as_deref(),
        Some(owner.id.to_string().as_str())
    );
}

async fn a_tenant_keeps_at_least_one_owner(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (tenant, members) = tenant_with_every_role(&f).await;
    let owner = &members[0].1;
    let err = f
        .services
        .tenants()
        .set_role(
            &latchkey_core::testing::access(&f.services, owner, tenant).await,
            owner.id,
            Role::Admin,
            meta(),
        )
        .await
        .expect_err("last owner");
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(
        latchkey_core::testing::authorize(&f.services, owner, tenant, DeleteTenant)
            .await
            .unwrap(),
        Role::Owner,
        "the refused change changed nothing"
    );
    // With a second owner, the first may step down.
    let admin = &members[1].1;
    f.services
        .tenants()
        .set_role(
            &latchkey_core::testing::access(&f.services, owner, tenant).await,
            admin.id,
            Role::Owner,
            meta(),
        )
        .await
        .unwrap();
    f.services
        .tenants()
        .set_role(
            &latchkey_core::testing::access(&f.services, owner, tenant).await,
            owner.id,
            Role::Admin,
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        latchkey_core::testing::authorize(&f.services, owner, tenant, ManageMembers)
            .await
            .expect_err("stepped down")
            .code(),
        ErrorCode::Forbidden
    );
}

async fn support_issues_recovery_tokens_only_without_add_authenticators(backend: TestBackend) {
    use latchkey_core::end_users::{EnrollmentRequest, Scope};
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (_, members) = tenant_with_every_role(&f).await;
    // The same members in a tenant with passkeys on (tokens need them).
    let tenant = f
        .services
        .tenants()
        .create_for_automation(latchkey_core::tenants::NewTenant {
            name: "Shop".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec!["https://shop.example.com".into()],
            enable_passkeys: true,
            owner_email: Some(members[0].1.email.clone()),
        })
        .await
        .unwrap();
    for (role, op) in &members[1..] {
        f.services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&f.services, &members[0].1, tenant).await,
                &op.email,
                *role,
                meta(),
            )
            .await
            .unwrap();
    }
    let issue = |op: OperatorIdentity, scopes: Vec<Scope>| {
        let services = f.services.clone();
        async move {
            services
                .end_users()
                .issue_enrollment_token(
                    &latchkey_core::testing::access(&services, &op, tenant).await,
                    "user-1",
                    EnrollmentRequest {
                        scopes,
                        ..EnrollmentRequest::default()
                    },
                    meta(),
                )
                .await
                .map(drop)
                .map_err(|e| e.code())
        }
    };
    for (role, op) in &members {
        let recovery = issue(op.clone(), Vec::new()).await;
        let scoped = issue(op.clone(), vec![Scope::AddAuthenticators]).await;
        let expected = match role {
            Role::Owner | Role::Admin => (Ok(()), Ok(())),
            Role::Support => (Ok(()), Err(ErrorCode::Forbidden)),
            Role::Viewer => (Err(ErrorCode::Forbidden), Err(ErrorCode::Forbidden)),
        };
        assert_eq!((recovery, scoped), expected, "{role:?}");
    }
    // Support lists the tenant's tokens (to revoke one sent to the wrong place).
    let support = &members[2].1;
    let listed = f
        .services
        .end_users()
        .active_enrollment_tokens(
            &latchkey_core::testing::access(&f.services, support, tenant).await,
        )
        .await;
    assert!(listed.is_ok_and(|tokens| !tokens.is_empty()));
}

async fn instance_admins_read_only_the_instances_own_audit_events(backend: TestBackend) {
    use latchkey_core::audit::AuditFilter;
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (tenant, members) = tenant_with_every_role(&f).await;
    let admin = operator(&f.conn, "root@example.com", true).await;
    f.services
        .operators()
        .invite(
            latchkey_core::operators::Inviter::Operator(stepped_up(&admin)),
            "someone@example.com",
            false,
            meta(),
        )
        .await
        .unwrap();
    let audit = f.services.audit();
    let instance = audit
        .instance_page(&admin, &AuditFilter::default())
        .await
        .unwrap();
    assert!(!instance.events.is_empty());
    assert!(
        instance.events.iter().all(|e| e.tenant_id.is_none()),
        "no tenant's events in the instance log"
    );
    // The tenant's own events are its members' (support and up) to read.
    let own = audit
        .tenant_page(
            &latchkey_core::testing::access(&f.services, &members[2].1, tenant).await,
            &AuditFilter::default(),
        )
        .await
        .unwrap();
    assert!(own.events.iter().all(|e| e.tenant_id == Some(tenant)));
    assert!(!own.events.is_empty());
    let outsider = latchkey_core::testing::as_caller(&f.services, &admin, tenant, async |access| {
        audit.tenant_page(access, &AuditFilter::default()).await
    })
    .await;
    assert_eq!(outsider.err().map(|e| e.code()), Some(ErrorCode::NotFound));
    let viewer = audit
        .tenant_page(
            &latchkey_core::testing::access(&f.services, &members[3].1, tenant).await,
            &AuditFilter::default(),
        )
        .await;
    assert_eq!(viewer.err().map(|e| e.code()), Some(ErrorCode::Forbidden));
}

async fn only_instance_admins_create_operator_accounts(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (tenant, members) = tenant_with_every_role(&f).await;
    // An owner who is not an instance admin, beside one who is.
    let plain_owner = operator(&f.conn, "plain@example.com", false).await;
    let admin_owner = members[0].1.clone();
    f.services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&f.services, &admin_owner, tenant).await,
            "plain@example.com",
            Role::Owner,
            meta(),
        )
        .await
        .unwrap();
    let refused = f
        .services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&f.services, &plain_owner, tenant).await,
            "stranger@example.com",
            Role::Viewer,
            meta(),
        )
        .await;
    let err = refused.expect_err("a new account needs an instance admin");
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(err.field(), Some("email"));
    // Existing operators, yes; and an instance admin who owns the tenant invites.
    operator(&f.conn, "known@example.com", false).await;
    f.services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&f.services, &plain_owner, tenant).await,
            "known@example.com",
            Role::Viewer,
            meta(),
        )
        .await
        .unwrap();
    f.services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&f.services, &admin_owner, tenant).await,
            "stranger@example.com",
            Role::Viewer,
            meta(),
        )
        .await
        .unwrap();
}
