//! Tenants' API keys on both databases: who may manage them, shown once and stored as hashes
//! only, revocation effective on the next request of every instance, and audit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    access::{OperatorIdentity, Role},
    audit::RequestMeta,
    both_backends,
    testing::{TestBackend, TestDb, insert_operator},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use uuid::Uuid;

both_backends!(
    owners_and_admins_manage_keys_support_and_viewers_cannot,
    keys_are_shown_once_and_stored_only_as_hashes,
    revoked_keys_are_refused_at_once_on_every_instance,
    the_cli_creates_keys_for_existing_tenants
);

struct Fixture {
    _db: TestDb,
    conn: DatabaseConnection,
    services: Services,
    clock: ManualClock,
    tenant: Uuid,
    members: Vec<(Role, OperatorIdentity)>,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()));
    let owner = insert_operator(&conn, "owner@acme.test", true).await;
    let tenant = services
        .tenants()
        .create(&owner, "Acme", RequestMeta::default())
        .await
        .unwrap();
    let mut members = vec![(Role::Owner, owner.clone())];
    for role in [Role::Admin, Role::Support, Role::Viewer] {
        let email = format!("{}@acme.test", role.as_str());
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
    Some(Fixture {
        _db: db,
        conn,
        services,
        clock,
        tenant,
        members,
    })
}

async fn owners_and_admins_manage_keys_support_and_viewers_cannot(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let keys = f.services.api_keys();
    for (role, op) in &f.members {
        let created = keys
            .create(
                &latchkey_core::testing::access(&f.services, op, f.tenant).await,
                "Backend",
                RequestMeta::default(),
            )
            .await;
        let listed = keys
            .list(&latchkey_core::testing::access(&f.services, op, f.tenant).await)
            .await;
        match role {
            Role::Owner | Role::Admin => {
                let created = created.unwrap();
                assert_eq!(created.info.created_by, op.email);
                assert!(listed.unwrap().iter().any(|k| k.id == created.info.id));
            }
            _ => {
                assert_eq!(
                    created.expect_err("read-only").code(),
                    ErrorCode::Forbidden,
                    "{role:?}"
                );
                assert_eq!(
                    listed.expect_err("read-only").code(),
                    ErrorCode::Forbidden,
                    "{role:?}"
                );
            }
        }
    }
    let stranger = insert_operator(&f.conn, "stranger@else.test", true).await;
    let err = latchkey_core::testing::as_caller(&f.services, &stranger, f.tenant, async |access| {
        keys.create(access, "x", RequestMeta::default()).await
    })
    .await
    .expect_err("stranger");
    assert_eq!(err.code(), ErrorCode::NotFound);
    let err = keys
        .create(
            &latchkey_core::testing::access(&f.services, &f.members[0].1, f.tenant).await,
            "  ",
            RequestMeta::default(),
        )
        .await
        .expect_err("empty name");
    assert_eq!(err.field(), Some("name"));
}

async fn keys_are_shown_once_and_stored_only_as_hashes(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let owner = &f.members[0].1;
    let created = f
        .services
        .api_keys()
        .create(
            &latchkey_core::testing::access(&f.services, owner, f.tenant).await,
            "Backend",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert!(created.secret.starts_with("lk_sk_"));
    assert_eq!(
        created.secret.len(),
        "lk_sk_".len() + 43,
        "256 bits, base64url"
    );
    assert!(created.secret.starts_with(&created.info.prefix));
    assert!(!format!("{created:?}").contains(&created.secret));
    let principal = f
        .services
        .api_keys()
        .authenticate(&created.secret)
        .await
        .unwrap();
    assert_eq!(principal.tenant_id(), f.tenant);

    // Nothing in the database holds the secret or its random part: scan every row as text.
    let random = &created.secret["lk_sk_".len()..];
    for table in ["api_keys", "audit_events"] {
        let backend = f.conn.get_database_backend();
        let sql = match backend {
            sea_orm::DbBackend::Postgres => format!("SELECT CAST(t AS TEXT) AS row FROM {table} t"),
            _ => format!("SELECT * FROM {table}"),
        };
        let rows = f
            .conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap();
        assert!(!rows.is_empty());
        for row in rows {
            let text = format!("{row:?}");
            assert!(!text.contains(random), "{table} holds the secret: {text}");
        }
    }
}

async fn revoked_keys_are_refused_at_once_on_every_instance(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let admin = &f.members[1].1;
    let other = latchkey_core::testing::services(f.conn.clone(), Arc::new(f.clock.clone()));
    let created = f
        .services
        .api_keys()
        .create(
            &latchkey_core::testing::access(&f.services, admin, f.tenant).await,
            "Backend",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert!(other.api_keys().authenticate(&created.secret).await.is_ok());
    f.clock.advance(TimeDelta::minutes(5));
    assert!(other.api_keys().authenticate(&created.secret).await.is_ok());
    let listed = f
        .services
        .api_keys()
        .list(&latchkey_core::testing::access(&f.services, admin, f.tenant).await)
        .await
        .unwrap();
    assert_eq!(
        listed[0].last_used_at,
        Some(Utc.with_ymd_and_hms(2026, 11, 23, 9, 5, 0).unwrap())
    );

    // Another tenant's member cannot revoke it (not found), nor can a viewer (forbidden).
    let viewer = &f.members[3].1;
    let err = f
        .services
        .api_keys()
        .revoke(
            &latchkey_core::testing::access(&f.services, viewer, f.tenant).await,
            created.info.id,
            RequestMeta::default(),
        )
        .await
        .expect_err("viewer");
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err =
        latchkey_core::testing::as_caller(&f.services, admin, Uuid::new_v4(), async |access| {
            f.services
                .api_keys()
                .revoke(access, created.info.id, RequestMeta::default())
                .await
        })
        .await
        .expect_err("wrong tenant");
    assert_eq!(err.code(), ErrorCode::NotFound);

    f.services
        .api_keys()
        .revoke(
            &latchkey_core::testing::access(&f.services, admin, f.tenant).await,
            created.info.id,
            RequestMeta::default(),
        )
        .await
        .unwrap();
    // The other instance refuses it on its very next request.
    let err = other
        .api_keys()
        .authenticate(&created.secret)
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    // Revoking again is harmless and not audited twice.
    f.services
        .api_keys()
        .revoke(
            &latchkey_core::testing::access(&f.services, admin, f.tenant).await,
            created.info.id,
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let events = f.services.audit().recent(Some(f.tenant), 50).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "api_key.revoked")
            .count(),
        1
    );
    assert!(
        f.services
            .api_keys()
            .list(&latchkey_core::testing::access(&f.services, admin, f.tenant).await)
            .await
            .unwrap()[0]
            .revoked_at
            .is_some()
    );
    for garbage in [
        "",
        "lk_sk_",
        "lk_sk_short",
        "Bearer x",
        &created.secret.replace("lk_sk_", "lk_enr_"),
    ] {
        let err = f
            .services
            .api_keys()
            .authenticate(garbage)
            .await
            .expect_err(garbage);
        assert_eq!(err.code(), ErrorCode::Unauthorized);
    }
}

async fn the_cli_creates_keys_for_existing_tenants(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let created = f
        .services
        .api_keys()
        .create(
            &latchkey_core::testing::host_access(&f.services, f.tenant).await,
            "Deploy",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(created.info.created_by, "cli");
    let events = f.services.audit().recent(Some(f.tenant), 5).await.unwrap();
    assert_eq!(events[0].action, "api_key.created");
    assert_eq!(events[0].actor_kind, "cli");
    let err = f
        .services
        .tenant_for_host(Uuid::new_v4())
        .await
        .expect_err("unknown tenant");
    assert_eq!(err.field(), Some("tenant"));
}
