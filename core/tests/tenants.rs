//! Tenants and their passkey configuration through the services, on both databases: who may
//! change what, nothing saved on a refusal, before/after audit, the automation path, and the
//! per-instance configuration cache across two instances.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    access::{OperatorIdentity, Role},
    audit::RequestMeta,
    both_backends,
    tenants::NewTenant,
    tenants::config::{Algorithm, Origin, PasskeyConfig, PasskeyConfigInput, Requirement},
    testing::{TestBackend, TestDb},
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

both_backends!(
    owners_and_admins_configure_passkeys_support_and_viewers_cannot,
    invalid_configurations_are_refused_by_field_and_change_nothing,
    only_owners_rename_delete_and_manage_members,
    operators_see_only_their_tenants,
    automation_creates_tenants_with_the_same_rules,
    configuration_cache_is_invalidated_here_and_ages_out_elsewhere,
    preflight_origins_come_from_a_cache_that_sees_new_tenants_promptly
);

struct Fixture {
    _db: TestDb,
    conn: DatabaseConnection,
    services: Services,
    clock: ManualClock,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()));
    Some(Fixture {
        _db: db,
        conn,
        services,
        clock,
    })
}

async fn operator(conn: &DatabaseConnection, email: &str, admin: bool) -> OperatorIdentity {
    latchkey_core::testing::insert_operator(conn, email, admin).await
}

fn meta() -> RequestMeta {
    RequestMeta::default()
}

/// A tenant with one member per role; answers it and the members, owner first.
async fn tenant(f: &Fixture, name: &str) -> (Uuid, Vec<(Role, OperatorIdentity)>) {
    let owner = operator(&f.conn, &format!("owner@{name}.test"), true).await;
    let id = f
        .services
        .tenants()
        .create(&owner, name, meta())
        .await
        .unwrap();
    let mut members = vec![(Role::Owner, owner.clone())];
    for role in [Role::Admin, Role::Support, Role::Viewer] {
        let email = format!("{}@{name}.test", role.as_str());
        let op = operator(&f.conn, &email, false).await;
        f.services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&f.services, &owner, id).await,
                &email,
                role,
                meta(),
            )
            .await
            .unwrap();
        members.push((role, op));
    }
    (id, members)
}

fn example_config() -> PasskeyConfigInput {
    PasskeyConfigInput {
        enabled: true,
        rp_id: "example.com".into(),
        rp_name: "Example".into(),
        origins: format!(
            "https://example.com\nhttps://auth.example.com\nandroid:apk-key-hash:{}",
            "A".repeat(43)
        ),
        user_verification: Requirement::Required,
        algorithms: vec![Algorithm::Es256],
        timeout_seconds: 120,
        ..PasskeyConfigInput::from(&PasskeyConfig::default())
    }
}

async fn owners_and_admins_configure_passkeys_support_and_viewers_cannot(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (id, members) = tenant(&f, "acme").await;
    let tenants = f.services.tenants();
    // Every member reads it; the defaults are the spec's.
    for (_, op) in &members {
        let details = tenants
            .get(&latchkey_core::testing::access(&f.services, op, id).await)
            .await
            .unwrap();
        assert_eq!(details.config, PasskeyConfig::default());
    }
    for (role, op) in &members[2..] {
        let err = tenants
            .update_passkey_config(
                &latchkey_core::testing::access(&f.services, op, id).await,
                &example_config(),
                1,
                meta(),
            )
            .await
            .expect_err("read-only role");
        assert_eq!(err.code(), ErrorCode::Forbidden, "{role:?}");
    }
    let (_, admin) = &members[1];
    let saved = tenants
        .update_passkey_config(
            &latchkey_core::testing::access(&f.services, admin, id).await,
            &example_config(),
            1,
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(saved.version, 2);
    assert_eq!(saved.origins.len(), 3);
    assert!(matches!(saved.origins[2], Origin::Android(_)));
    let read = tenants
        .get(&latchkey_core::testing::access(&f.services, &members[3].1, id).await)
        .await
        .unwrap()
        .config;
    assert_eq!(read, saved, "stored and read back exactly");

    // A form loaded before that change cannot overwrite it.
    let err = tenants
        .update_passkey_config(
            &latchkey_core::testing::access(&f.services, &members[0].1, id).await,
            &PasskeyConfigInput::from(&PasskeyConfig::default()),
            1,
            meta(),
        )
        .await
        .expect_err("stale form");
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(
        tenants
            .get(&latchkey_core::testing::access(&f.services, admin, id).await)
            .await
            .unwrap()
            .config
            .version,
        2
    );

    let events = f.services.audit().recent(Some(id), 50).await.unwrap();
    let change = events
        .iter()
        .find(|e| e.action == "tenant.passkey_config_changed")
        .expect("audited");
    let details = change.details.as_ref().unwrap();
    assert_eq!(details["before"]["enabled"], false);
    assert_eq!(details["after"]["enabled"], true);
    assert_eq!(details["after"]["rp_id"], "example.com");
    assert_eq!(details["after"]["origins"][1], "https://auth.example.com");
    assert_eq!(
        change.actor_id.as_deref(),
        Some(admin.id.to_string().as_str())
    );

    // A stranger cannot tell the tenant exists.
    let stranger = operator(&f.conn, "stranger@else.test", true).await;
    for result in [
        latchkey_core::testing::as_caller(&f.services, &stranger, id, async |access| {
            tenants.get(access).await
        })
        .await
        .map(|_| ()),
        latchkey_core::testing::as_caller(&f.services, &stranger, id, async |access| {
            tenants
                .update_passkey_config(access, &example_config(), 2, meta())
                .await
        })
        .await
        .map(|_| ()),
    ] {
        assert_eq!(result.expect_err("stranger").code(), ErrorCode::NotFound);
    }
}

async fn invalid_configurations_are_refused_by_field_and_change_nothing(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (id, members) = tenant(&f, "acme").await;
    let owner = &members[0].1;
    let cases: Vec<(&str, PasskeyConfigInput)> = vec![
        (
            "rp_id",
            PasskeyConfigInput {
                rp_id: "co.uk".into(),
                ..example_config()
            },
        ),
        (
            "rp_id",
            PasskeyConfigInput {
                rp_id: "Example.com".into(),
                ..example_config()
            },
        ),
        (
            "origins",
            PasskeyConfigInput {
                origins: "https://evil-example.com".into(),
                ..example_config()
            },
        ),
        (
            "origins",
            PasskeyConfigInput {
                origins: "http://example.com".into(),
                ..example_config()
            },
        ),
        (
            "origins",
            PasskeyConfigInput {
                origins: String::new(),
                ..example_config()
            },
        ),
        (
            "algorithms",
            PasskeyConfigInput {
                algorithms: vec![],
                ..example_config()
            },
        ),
        (
            "timeout_seconds",
            PasskeyConfigInput {
                timeout_seconds: 10,
                ..example_config()
            },
        ),
    ];
    for (field, input) in cases {
        let err = f
            .services
            .tenants()
            .update_passkey_config(
                &latchkey_core::testing::access(&f.services, owner, id).await,
                &input,
                1,
                meta(),
            )
            .await
            .expect_err(field);
        assert_eq!(err.field(), Some(field), "{err}");
    }
    let details = f
        .services
        .tenants()
        .get(&latchkey_core::testing::access(&f.services, owner, id).await)
        .await
        .unwrap();
    assert_eq!(details.config, PasskeyConfig::default(), "nothing saved");
    let events = f.services.audit().recent(Some(id), 50).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.action != "tenant.passkey_config_changed")
    );

    // Replacing a saved RP ID orphans its passkeys: refused unless confirmed, by any caller.
    f.services
        .tenants()
        .update_passkey_config(
            &latchkey_core::testing::access(&f.services, owner, id).await,
            &example_config(),
            1,
            meta(),
        )
        .await
        .unwrap();
    let moved = PasskeyConfigInput {
        rp_id: "example.org".into(),
        origins: "https://example.org".into(),
        ..example_config()
    };
    let err = f
        .services
        .tenants()
        .update_passkey_config(
            &latchkey_core::testing::access(&f.services, owner, id).await,
            &moved,
            2,
            meta(),
        )
        .await
        .expect_err("unconfirmed RP ID change");
    assert_eq!(err.field(), Some("rp_id"), "{err:?}");
    assert!(err.to_string().contains("orphans every passkey"), "{err}");
    let details = f
        .services
        .tenants()
        .get(&latchkey_core::testing::access(&f.services, owner, id).await)
        .await
        .unwrap();
    assert_eq!(
        details.config.rp_id.as_deref(),
        Some("example.com"),
        "nothing saved"
    );
    let confirmed = PasskeyConfigInput {
        confirm_rp_id_change: true,
        ..moved
    };
    let saved = f
        .services
        .tenants()
        .update_passkey_config(
            &latchkey_core::testing::access(&f.services, owner, id).await,
            &confirmed,
            2,
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(saved.rp_id.as_deref(), Some("example.org"));
}

async fn only_owners_rename_delete_and_manage_members(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (id, members) = tenant(&f, "acme").await;
    let tenants = f.services.tenants();
    for (role, op) in &members[1..] {
        assert_eq!(
            tenants
                .rename(
                    &latchkey_core::testing::access(&f.services, op, id).await,
                    "Renamed",
                    meta()
                )
                .await
                .expect_err("rename")
                .code(),
            ErrorCode::Forbidden,
            "{role:?}"
        );
        assert_eq!(
            tenants
                .delete(
                    &latchkey_core::testing::access(&f.services, op, id).await,
                    "acme",
                    meta()
                )
                .await
                .expect_err("delete")
                .code(),
            ErrorCode::Forbidden,
            "{role:?}"
        );
        assert_eq!(
            tenants
                .remove_member(
                    &latchkey_core::testing::access(&f.services, op, id).await,
                    members[3].1.id,
                    meta()
                )
                .await
                .expect_err("remove")
                .code(),
            ErrorCode::Forbidden,
            "{role:?}"
        );
    }
    let owner = &members[0].1;
    tenants
        .rename(
            &latchkey_core::testing::access(&f.services, owner, id).await,
            "Acme Corp",
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        tenants
            .get(&latchkey_core::testing::access(&f.services, owner, id).await)
            .await
            .unwrap()
            .name,
        "Acme Corp"
    );
    // The last owner stays.
    assert_eq!(
        tenants
            .remove_member(
                &latchkey_core::testing::access(&f.services, owner, id).await,
                owner.id,
                meta()
            )
            .await
            .expect_err("last owner")
            .code(),
        ErrorCode::InvalidRequest
    );
    tenants
        .remove_member(
            &latchkey_core::testing::access(&f.services, owner, id).await,
            members[3].1.id,
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        latchkey_core::testing::as_caller(&f.services, &members[3].1, id, async |access| {
            tenants.get(access).await
        })
        .await
        .expect_err("removed")
        .code(),
        ErrorCode::NotFound
    );
    let listed = tenants
        .members(&latchkey_core::testing::access(&f.services, owner, id).await)
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);

    // Deleting needs the exact name.
    let err = tenants
        .delete(
            &latchkey_core::testing::access(&f.services, owner, id).await,
            "acme corp",
            meta(),
        )
        .await
        .expect_err("wrong name");
    assert_eq!(err.field(), Some("confirmation"));
    assert!(
        tenants
            .get(&latchkey_core::testing::access(&f.services, owner, id).await)
            .await
            .is_ok()
    );
    tenants
        .delete(
            &latchkey_core::testing::access(&f.services, owner, id).await,
            " Acme Corp ",
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        latchkey_core::testing::as_caller(&f.services, owner, id, async |access| {
            tenants.get(access).await
        })
        .await
        .expect_err("gone")
        .code(),
        ErrorCode::NotFound
    );
    // The audit trail outlives the tenant.
    let events = f.services.audit().recent(Some(id), 50).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "tenant.deleted",
        "member.removed",
        "tenant.renamed",
        "tenant.created",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let renamed = events
        .iter()
        .find(|e| e.action == "tenant.renamed")
        .unwrap();
    assert_eq!(renamed.details.as_ref().unwrap()["before"], "acme");
    assert_eq!(renamed.details.as_ref().unwrap()["after"], "Acme Corp");
}

async fn operators_see_only_their_tenants(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (a, a_members) = tenant(&f, "alpha").await;
    let (b, b_members) = tenant(&f, "beta").await;
    let seen: Vec<Uuid> = f
        .services
        .tenants()
        .list_for(&a_members[2].1)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(seen, [a]);
    let listed = f
        .services
        .tenants()
        .list_for(&b_members[0].1)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].role), (b, Role::Owner));
    let nobody = operator(&f.conn, "nobody@else.test", true).await;
    assert!(
        f.services
            .tenants()
            .list_for(&nobody)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn automation_creates_tenants_with_the_same_rules(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let owner = operator(&f.conn, "ops@example.com", false).await;
    let id = f
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("example.com".into()),
            origins: vec!["https://example.com".into(), "https://example.com/".into()],
            enable_passkeys: true,
            owner_email: Some("OPS@example.com".into()),
        })
        .await
        .unwrap();
    let details = f
        .services
        .tenants()
        .get(&latchkey_core::testing::access(&f.services, &owner, id).await)
        .await
        .unwrap();
    assert_eq!(details.role, Role::Owner);
    assert!(details.config.enabled);
    assert_eq!(
        details.config.origins,
        [Origin::Web("https://example.com".into())]
    );
    let created = f.services.audit().recent(Some(id), 5).await.unwrap();
    assert_eq!(created[0].actor_kind, "cli");

    for (field, new) in [
        (
            "origins",
            NewTenant {
                name: "x".into(),
                rp_id: Some("example.com".into()),
                origins: vec!["https://evil.com".into()],
                ..Default::default()
            },
        ),
        (
            "rp_id",
            NewTenant {
                name: "x".into(),
                enable_passkeys: true,
                ..Default::default()
            },
        ),
        ("name", NewTenant::default()),
        (
            "owner",
            NewTenant {
                name: "x".into(),
                owner_email: Some("ghost@example.com".into()),
                ..Default::default()
            },
        ),
    ] {
        let err = f
            .services
            .tenants()
            .create_for_automation(new)
            .await
            .expect_err(field);
        assert_eq!(err.field(), Some(field), "{err}");
    }
}

async fn configuration_cache_is_invalidated_here_and_ages_out_elsewhere(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (id, members) = tenant(&f, "acme").await;
    // A second instance on the same database and clock.
    let other = latchkey_core::testing::services(f.conn.clone(), Arc::new(f.clock.clone()));
    let here = f.services.tenants();
    let there = other.tenants();
    assert_eq!(here.passkey_config(id).await.unwrap().unwrap().version, 1);
    assert_eq!(there.passkey_config(id).await.unwrap().unwrap().version, 1);
    assert!(here.passkey_config(Uuid::new_v4()).await.unwrap().is_none());

    here.update_passkey_config(
        &latchkey_core::testing::access(&f.services, &members[0].1, id).await,
        &example_config(),
        1,
        meta(),
    )
    .await
    .unwrap();
    // This instance sees the change at once…
    assert_eq!(here.passkey_config(id).await.unwrap().unwrap().version, 2);
    // …the other within the cache's lifetime, by the clock.
    assert_eq!(there.passkey_config(id).await.unwrap().unwrap().version, 1);
    f.clock.advance(TimeDelta::seconds(2));
    let fresh = there.passkey_config(id).await.unwrap().unwrap();
    assert_eq!(fresh.version, 2);
    assert!(fresh.enabled);
}

/// A registration preflight names no tenant, so its origin is checked against every tenant's:
/// a cached set, not a read of every tenant per preflight (a flood costs nothing more). A
/// listed origin is believed for the configuration cache's lifetime; an unlisted one is looked
/// up again after 250 ms, so a tenant created elsewhere (the CLI, another instance) is usable
/// promptly.
async fn preflight_origins_come_from_a_cache_that_sees_new_tenants_promptly(backend: TestBackend) {
    use latchkey_core::end_users::{ClientScope, OriginVerdict};
    let Some(f) = fixture(backend).await else {
        return;
    };
    let other = latchkey_core::testing::services(f.conn.clone(), Arc::new(f.clock.clone()));
    let create = |name: &str, origin: &str| NewTenant {
        name: name.into(),
        rp_id: Some("example.com".into()),
        origins: vec![origin.into()],
        enable_passkeys: true,
        owner_email: None,
    };
    other
        .tenants()
        .create_for_automation(create("A", "https://a.example.com"))
        .await
        .unwrap();
    let asks = |origin: &'static str| {
        let services = f.services.clone();
        async move {
            services
                .end_users()
                .client_origin(ClientScope::AnyTenant, Some(origin))
                .await
                .unwrap()
        }
    };
    assert_eq!(asks("https://a.example.com").await, OriginVerdict::Allowed);
    // Behind the cache's back: still allowed from the cache, until it ages out.
    sea_orm::ConnectionTrait::execute_unprepared(
        &f.conn,
        "UPDATE tenants SET passkeys_enabled = false",
    )
    .await
    .unwrap();
    assert_eq!(asks("https://a.example.com").await, OriginVerdict::Allowed);
    f.clock.advance(TimeDelta::seconds(2));
    assert_eq!(asks("https://a.example.com").await, OriginVerdict::Refused);
    // A tenant created by another instance: refused from the cache for 250 ms, then allowed.
    assert_eq!(asks("https://b.example.com").await, OriginVerdict::Refused);
    other
        .tenants()
        .create_for_automation(create("B", "https://b.example.com"))
        .await
        .unwrap();
    assert_eq!(asks("https://b.example.com").await, OriginVerdict::Refused);
    f.clock.advance(TimeDelta::milliseconds(250));
    assert_eq!(asks("https://b.example.com").await, OriginVerdict::Allowed);
}
