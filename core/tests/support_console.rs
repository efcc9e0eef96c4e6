//! The support console's services on both databases: user search and its keyset pagination,
//! revoke-all and rename per role, the filtered audit log and the dashboard figures (with the
//! per-user passkey count the database keeps, under racing writers), and that none of it reaches
//! into another tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::{collections::HashSet, sync::Arc};

use chrono::{Duration, TimeZone, Utc};
use latchkey_core::{
    Error, ErrorCode, ManualClock, Services,
    access::{OperatorIdentity, Role, TenantAccess},
    audit::{AuditFilter, AuditScope, FilterText, RequestMeta},
    both_backends,
    end_users::{
        AuthenticatorView, EnrollmentRequest, MatchCount, MatchedOn, Scope, UserPage, UserSearch,
    },
    tenants::NewTenant,
    testing::{TestBackend, TestDb, all_rows_as_text, insert_operator, soft_passkey::SoftPasskeys},
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

both_backends!(
    search_matches_user_id_or_username_prefixes_case_insensitively,
    pages_neither_repeat_nor_skip_while_users_are_added,
    only_members_search_and_never_across_tenants,
    revoke_all_and_rename_follow_the_roles_and_stop_sign_in,
    the_audit_log_filters_and_pages_within_its_tenant,
    the_dashboard_counts_activity_and_credentials,
    the_active_passkey_count_survives_racing_registrations_and_revocations,
    revoke_all_and_single_revocations_of_one_user_never_deadlock,
    a_seeded_tenant_is_searchable_and_counted
);

const ORIGIN: &str = "https://shop.example.com";

struct Fixture {
    _db: TestDb,
    conn: sea_orm::DatabaseConnection,
    services: Services,
    clock: Arc<ManualClock>,
    tenant: Uuid,
    other_tenant: Uuid,
    owner: OperatorIdentity,
    support: OperatorIdentity,
    viewer: OperatorIdentity,
    other_owner: OperatorIdentity,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    ));
    let services = latchkey_core::testing::services(conn.clone(), clock.clone());
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let other_owner = insert_operator(&conn, "owner@other.test", false).await;
    let mut tenants = Vec::new();
    for (name, rp, owner) in [
        ("Shop", "shop.example.com", &owner),
        ("Other", "other.example.com", &other_owner),
    ] {
        tenants.push(
            services
                .tenants()
                .create_for_automation(NewTenant {
                    name: name.into(),
                    rp_id: Some(rp.into()),
                    origins: vec![format!("https://{rp}")],
                    enable_passkeys: true,
                    owner_email: Some(owner.email.clone()),
                })
                .await
                .unwrap(),
        );
    }
    let mut staff = Vec::new();
    for role in [Role::Support, Role::Viewer] {
        let email = format!("{}@shop.test", role.as_str());
        let op = insert_operator(&conn, &email, false).await;
        services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&services, &owner, tenants[0]).await,
                &email,
                role,
                RequestMeta::default(),
            )
            .await
            .unwrap();
        staff.push(op);
    }
    let viewer = staff.pop().unwrap();
    let support = staff.pop().unwrap();
    Some(Fixture {
        _db: db,
        conn,
        services,
        clock,
        tenant: tenants[0],
        other_tenant: tenants[1],
        owner,
        support,
        viewer,
        other_owner,
    })
}

/// Creates (or updates) a user the way a backend does: by issuing an enrollment token.
async fn user(f: &Fixture, tenant: Uuid, user_id: &str, username: Option<&str>) -> String {
    let owner = if tenant == f.tenant {
        &f.owner
    } else {
        &f.other_owner
    };
    f.services
        .end_users()
        .issue_enrollment_token(
            &latchkey_core::testing::access(&f.services, owner, tenant).await,
            user_id,
            EnrollmentRequest {
                username: username.map(str::to_owned),
                scopes: vec![Scope::AddAuthenticators],
                ..EnrollmentRequest::default()
            },
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .token
}

async fn register(f: &Fixture, user_id: &str, passkeys: &mut SoftPasskeys) -> Uuid {
    let token = user(f, f.tenant, user_id, None).await;
    let users = f.services.end_users();
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let credential = passkeys.register(ORIGIN, &options.public_key).unwrap();
    users
        .finish_registration(
            &token,
            &options.ceremony_id,
            &credential.to_string(),
            None,
            None,
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .authenticator
        .id
}

async fn sign_in(f: &Fixture, user_id: &str, passkeys: &mut SoftPasskeys) -> Result<String, Error> {
    let users = f.services.end_users();
    let options = users.begin_authentication(f.tenant, Some(user_id)).await?;
    // A user without an active passkey is offered decoys, which nothing matches: present the
    // passkey anyway, as a tampered client would, to reach the server's refusal.
    let assertion = passkeys
        .authenticate(ORIGIN, &options.public_key)
        .or_else(|_| {
            let mut any = options.public_key.clone();
            any["allowCredentials"] = serde_json::json!([]);
            passkeys.authenticate(ORIGIN, &any)
        })
        .unwrap();
    users
        .finish_authentication(
            f.tenant,
            &options.ceremony_id,
            &assertion.to_string(),
            None,
            RequestMeta::default(),
        )
        .await
        .map(|signed_in| signed_in.token)
}

async fn search(f: &Fixture, who: &OperatorIdentity, query: &str) -> Result<UserPage, Error> {
    let search = UserSearch {
        query: query.into(),
        ..UserSearch::default()
    };
    latchkey_core::testing::as_caller(&f.services, who, f.tenant, async |access| {
        f.services.end_users().search_users(access, &search).await
    })
    .await
}

fn ids(page: &UserPage) -> Vec<&str> {
    page.users.iter().map(|u| u.user_id.as_str()).collect()
}

async fn search_matches_user_id_or_username_prefixes_case_insensitively(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    user(&f, f.tenant, "alice-1", Some("alice@shop.test")).await;
    user(&f, f.tenant, "Alicia", None).await;
    user(&f, f.tenant, "u-9", Some("ALIbaba@shop.test")).await;
    user(&f, f.tenant, "bob", Some("bob@shop.test")).await;
    user(&f, f.tenant, "Ünal", Some("unal@shop.test")).await;
    user(&f, f.other_tenant, "alien", Some("alien@other.test")).await;
    register(&f, "bob", &mut SoftPasskeys::new()).await;
    register(&f, "bob", &mut SoftPasskeys::new()).await;

    // Both keys, any case; a user matched by ID and username is listed once, by its ID.
    let page = search(&f, &f.support, "  ALI").await.unwrap();
    // Sorted by the key matched: u-9's username "alibaba@…" before "alice-1".
    assert_eq!(ids(&page), ["u-9", "alice-1", "Alicia"]);
    assert_eq!(
        page.users.iter().map(|u| u.matched_on).collect::<Vec<_>>(),
        [MatchedOn::Username, MatchedOn::UserId, MatchedOn::UserId]
    );
    assert_eq!(page.matches, MatchCount::Exactly(3));
    assert_eq!(page.total_users, 5);
    assert_eq!(page.next, None);
    // Beyond ASCII, and the counts of active authenticators.
    assert_eq!(ids(&search(&f, &f.viewer, "ün").await.unwrap()), ["Ünal"]);
    let bob = search(&f, &f.viewer, "BOB@").await.unwrap();
    assert_eq!(ids(&bob), ["bob"]);
    assert_eq!(bob.users[0].active_authenticators, 2);
    assert_eq!(bob.users[0].username.as_deref(), Some("bob@shop.test"));
    // Nothing matches: an empty page, not an error. Empty text lists everyone.
    let none = search(&f, &f.viewer, "zed").await.unwrap();
    assert!(none.users.is_empty());
    assert_eq!(none.matches, MatchCount::Exactly(0));
    let all = search(&f, &f.viewer, "").await.unwrap();
    assert_eq!(all.users.len(), 5);
    assert_eq!(all.matches, MatchCount::Exactly(5));
    // Bad input names its field.
    let long = search(&f, &f.viewer, &"x".repeat(300)).await.unwrap_err();
    assert_eq!(long.field(), Some("query"));
    let garbage = f
        .services
        .end_users()
        .search_users(
            &latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await,
            &UserSearch {
                after: Some("not-a-cursor".into()),
                ..UserSearch::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(garbage.field(), Some("after"));
}

async fn pages_neither_repeat_nor_skip_while_users_are_added(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // Matches by ID and by username interleave in the merged order.
    let mut expected = HashSet::new();
    for i in 0..40 {
        let id = format!("Cust-{i:03}");
        user(&f, f.tenant, &id, None).await;
        expected.insert(id);
        let id = format!("x-{i:03}");
        user(&f, f.tenant, &id, Some(&format!("cust-{i:03}b@shop.test"))).await;
        expected.insert(id);
    }
    user(&f, f.tenant, "other", None).await;
    let mut seen = Vec::new();
    let mut after = None;
    let mut added = 0;
    loop {
        let page = f
            .services
            .end_users()
            .search_users(
                &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
                &UserSearch {
                    query: "cust".into(),
                    after: after.clone(),
                    limit: Some(7),
                },
            )
            .await
            .unwrap();
        assert!(page.users.len() <= 7);
        seen.extend(page.users.iter().map(|u| u.user_id.clone()));
        // Between pages, users arrive before and after the cursor.
        for id in [format!("cust-000a{added}"), format!("cust-999z{added}")] {
            user(&f, f.tenant, &id, None).await;
        }
        added += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a user was listed twice: {seen:?}"
    );
    for id in &expected {
        assert!(unique.contains(id), "{id} was skipped");
    }
    // Sorted by the key each was matched on.
    let keys: Vec<String> = seen.iter().take(4).cloned().collect();
    assert_eq!(keys, ["Cust-000", "x-000", "Cust-001", "x-001"]);
}

async fn only_members_search_and_never_across_tenants(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    user(&f, f.tenant, "alice", None).await;
    user(&f, f.other_tenant, "alice-other", None).await;
    // The other tenant's owner is no member here: not_found, not forbidden.
    let stranger = search(&f, &f.other_owner, "alice").await;
    assert!(matches!(stranger, Err(Error::NotFound)));
    // And their own tenant shows only their own users.
    let theirs = f
        .services
        .end_users()
        .search_users(
            &latchkey_core::testing::access(&f.services, &f.other_owner, f.other_tenant).await,
            &UserSearch::default(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&theirs), ["alice-other"]);
    // The other tenant's users are not found through this tenant.
    let cross = f
        .services
        .end_users()
        .user(
            &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
            "alice-other",
        )
        .await;
    assert!(matches!(cross, Err(Error::NotFound)));
    for who in [&f.owner, &f.support, &f.viewer] {
        assert_eq!(ids(&search(&f, who, "").await.unwrap()), ["alice"]);
    }
}

async fn revoke_all_and_rename_follow_the_roles_and_stop_sign_in(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    let mut laptop = SoftPasskeys::new();
    let first = register(&f, "carol", &mut phone).await;
    register(&f, "carol", &mut laptop).await;
    sign_in(&f, "carol", &mut phone).await.unwrap();
    let users = f.services.end_users();
    let before = all_rows_as_text(&f.conn).await;

    // Viewers may look, not act.
    let refused = users
        .revoke_all_authenticators(
            &latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await,
            "carol",
            "lost everything",
            RequestMeta::default(),
        )
        .await;
    assert!(matches!(refused, Err(Error::Forbidden)));
    let refused = users
        .rename_authenticator(
            &latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await,
            "carol",
            first,
            "Carol's phone",
            RequestMeta::default(),
        )
        .await;
    assert!(matches!(refused, Err(Error::Forbidden)));
    // Another tenant's owner finds nothing to act on.
    let refused =
        latchkey_core::testing::as_caller(&f.services, &f.other_owner, f.tenant, async |access| {
            users
                .revoke_all_authenticators(access, "carol", "x", RequestMeta::default())
                .await
        })
        .await;
    assert!(matches!(refused, Err(Error::NotFound)));
    // Refusals write nothing, not even an audit event.
    assert_eq!(all_rows_as_text(&f.conn).await, before);

    let renamed = users
        .rename_authenticator(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            "carol",
            first,
            "  Carol's phone ",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Carol's phone");
    let before = all_rows_as_text(&f.conn).await;
    let empty = users
        .rename_authenticator(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            "carol",
            first,
            "",
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(empty.field(), Some("name"));
    let no_reason = users
        .revoke_all_authenticators(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            "carol",
            " ",
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(no_reason.field(), Some("reason"));
    assert_eq!(no_reason.code(), ErrorCode::InvalidRequest);
    assert_eq!(
        all_rows_as_text(&f.conn).await,
        before,
        "bad input changed the database"
    );

    let revoked = users
        .revoke_all_authenticators(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            "carol",
            "Lost bag with phone and laptop",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    // Again: nothing left to revoke, nothing recorded.
    let again = users
        .revoke_all_authenticators(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            "carol",
            "again",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(again, 0);
    let listed = users
        .authenticators(
            &latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await,
            "carol",
        )
        .await
        .unwrap();
    assert!(listed.iter().all(|a| {
        a.revoked_at.is_some()
            && a.revoked_by.as_deref() == Some("support@shop.test")
            && a.revoked_reason.as_deref() == Some("Lost bag with phone and laptop")
    }));
    // Both passkeys are refused at the next sign-in (discoverable, so the revoked credential
    // is presented rather than left out of allowCredentials).
    for passkeys in [&mut phone, &mut laptop] {
        let options = users.begin_authentication(f.tenant, None).await.unwrap();
        let assertion = passkeys.authenticate(ORIGIN, &options.public_key).unwrap();
        let refused = users
            .finish_authentication(
                f.tenant,
                &options.ceremony_id,
                &assertion.to_string(),
                None,
                RequestMeta::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code(), ErrorCode::CredentialRevoked);
    }
    let events = f
        .services
        .audit()
        .tenant_page(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            &AuditFilter {
                action: Some("authenticator.revoked".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.events.len(), 2);
    let renames = f
        .services
        .audit()
        .tenant_page(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            &AuditFilter {
                action: Some("authenticator.renamed".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renames.events.len(), 1);
}

async fn the_audit_log_filters_and_pages_within_its_tenant(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let start = f.services.clock().now();
    for i in 0..5 {
        user(&f, f.tenant, &format!("dave-{i}"), None).await;
        f.clock.advance(Duration::hours(1));
    }
    user(&f, f.other_tenant, "dave-0", None).await;
    let audit = f.services.audit();
    let page = |filter: AuditFilter| {
        let audit = &audit;
        let support = &f.support;
        let tenant = f.tenant;
        let services = &f.services;
        async move {
            audit
                .tenant_page(
                    &latchkey_core::testing::access(services, support, tenant).await,
                    &filter,
                )
                .await
        }
    };
    let issued = page(AuditFilter {
        action: Some("enrollment_token.issued".into()),
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(issued.events.len(), 5);
    assert!(issued.events.iter().all(|e| e.tenant_id == Some(f.tenant)));
    assert!(issued.events.windows(2).all(|w| w[0].id > w[1].id));
    // Target user, actor (label or kind), time range.
    let dave2 = page(AuditFilter {
        target_user: Some("dave-2".into()),
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(dave2.events.len(), 1);
    assert_eq!(dave2.events[0].target_id.as_deref(), Some("dave-2"));
    let by_owner = page(AuditFilter {
        actor: Some("owner@shop.test".into()),
        action: Some("enrollment_token.issued".into()),
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert_eq!(by_owner.events.len(), 5);
    let by_kind = page(AuditFilter {
        actor: Some("api_key".into()),
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    assert!(by_kind.events.is_empty());
    let window = page(AuditFilter {
        action: Some("enrollment_token.issued".into()),
        from: Some(start + Duration::minutes(30)),
        to: Some(start + Duration::minutes(150)),
        ..AuditFilter::default()
    })
    .await
    .unwrap();
    let targets: Vec<_> = window
        .events
        .iter()
        .filter_map(|e| e.target_id.as_deref())
        .collect();
    assert_eq!(targets, ["dave-2", "dave-1"]);
    let backwards = page(AuditFilter {
        from: Some(start + Duration::hours(2)),
        to: Some(start),
        ..AuditFilter::default()
    })
    .await
    .unwrap_err();
    assert_eq!(backwards.field(), Some("to"));

    // Keyset pages: no repeats or gaps while events keep arriving.
    let before_paging: Vec<i64> = page(AuditFilter {
        limit: Some(1000),
        ..AuditFilter::default()
    })
    .await
    .unwrap()
    .events
    .iter()
    .map(|e| e.id)
    .collect();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = page(AuditFilter {
            before,
            limit: Some(2),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
        seen.extend(p.events.iter().map(|e| e.id));
        user(&f, f.tenant, "arriving", Some(&format!("n{}", seen.len()))).await;
        match p.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, before_paging);

    // Support reads the log, viewers may not; another tenant's owner finds nothing.
    let viewer = audit
        .tenant_page(
            &latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await,
            &AuditFilter::default(),
        )
        .await;
    assert!(matches!(viewer, Err(Error::Forbidden)));
    let stranger =
        latchkey_core::testing::as_caller(&f.services, &f.other_owner, f.tenant, async |access| {
            audit.tenant_page(access, &AuditFilter::default()).await
        })
        .await;
    assert!(matches!(stranger, Err(Error::NotFound)));
    let instance = audit.instance_page(&f.owner, &AuditFilter::default()).await;
    assert!(matches!(instance, Err(Error::Forbidden)));
}

async fn the_dashboard_counts_activity_and_credentials(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut erin = SoftPasskeys::new();
    register(&f, "erin", &mut erin).await;
    f.clock.advance(Duration::days(1));
    let mut synced = SoftPasskeys::new();
    synced.backed_up = true;
    register(&f, "frank", &mut synced).await;
    sign_in(&f, "erin", &mut erin).await.unwrap();
    sign_in(&f, "frank", &mut synced).await.unwrap();
    // A refused sign-in: a revoked passkey.
    let mut stray = SoftPasskeys::new();
    let stray_id = register(&f, "gina", &mut stray).await;
    f.services
        .end_users()
        .revoke_authenticator(
            &latchkey_core::testing::access(&f.services, &f.support, f.tenant).await,
            "gina",
            stray_id,
            "stolen",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let refused = sign_in(&f, "gina", &mut stray).await;
    assert!(refused.is_err());
    // Another tenant's activity is not counted here.
    let board = f
        .services
        .dashboards()
        .tenant(&latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await)
        .await
        .unwrap();
    assert_eq!(board.days.len(), 30);
    let today = board.days.last().unwrap();
    assert_eq!(today.date, f.services.clock().now().date_naive());
    assert_eq!(
        (today.registrations, today.sign_ins, today.failures),
        (2, 2, 1)
    );
    let yesterday = &board.days[28];
    assert_eq!((yesterday.registrations, yesterday.sign_ins), (1, 0));
    assert!(
        board
            .outcomes
            .iter()
            .any(|o| o.ceremony == "sign_in" && o.error_code.is_none() && o.count == 2)
    );
    assert!(
        board
            .outcomes
            .iter()
            .any(|o| o.ceremony == "sign_in" && o.error_code.is_some() && o.count == 1)
    );
    assert_eq!((board.synced, board.device_bound), (1, 1));
    assert_eq!(board.active_credentials(), 2);
    // Adoption: gina's only passkey is revoked.
    assert_eq!((board.users, board.users_with_passkey), (3, 2));
    assert_eq!(board.passkeys_per_user(), Some(1.0));
    assert_eq!(board.sign_in_success_rate(), Some(2.0 / 3.0));

    // The audit log reads as sentences, and filters by passkey, error code and event.
    let support = latchkey_core::testing::access(&f.services, &f.support, f.tenant).await;
    let scope = AuditScope::Tenant(support.clone());
    let readable = |filter: AuditFilter| {
        let services = &f.services;
        let scope = &scope;
        async move {
            services
                .audit()
                .readable_page(scope, &filter)
                .await
                .unwrap()
        }
    };
    let refusals = readable(AuditFilter {
        action: Some("user.signed_in".into()),
        error_code: Some(latchkey_core::ErrorCode::CredentialRevoked),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(refusals.events.len(), 1);
    assert_eq!(
        refusals.events[0].sentence.text(),
        "Sign-in refused for gina: this passkey has been revoked"
    );
    let about_stray = readable(AuditFilter {
        target_user: Some("gina".into()),
        passkey: Some(stray_id),
        ..AuditFilter::default()
    })
    .await;
    let actions: Vec<&str> = about_stray
        .events
        .iter()
        .map(|e| e.record.action.as_str())
        .collect();
    assert_eq!(
        actions,
        ["authenticator.revoked", "authenticator.registered"]
    );
    let revocation = &about_stray.events[0];
    assert!(
        revocation
            .sentence
            .text()
            .starts_with("support@shop.test revoked gina’s passkey “"),
        "{}",
        revocation.sentence.text()
    );
    assert!(revocation.sentence.text().ends_with("” — reason: stolen"));
    let one = readable(AuditFilter {
        event: Some(revocation.record.id),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(one.events.len(), 1);
    assert_eq!(one.events[0].record.id, revocation.record.id);
    // Typed filters name their field and read nothing.
    for (text, field) in [
        (
            FilterText {
                passkey: "not-a-uuid".into(),
                ..FilterText::default()
            },
            "passkey",
        ),
        (
            FilterText {
                code: "credential_eaten".into(),
                ..FilterText::default()
            },
            "code",
        ),
        (
            FilterText {
                event: "1e9".into(),
                ..FilterText::default()
            },
            "event",
        ),
    ] {
        assert_eq!(text.parse().unwrap_err().field(), Some(field));
    }

    // Events older than the window fall out of it.
    f.clock.advance(Duration::days(31));
    let later = f
        .services
        .dashboards()
        .tenant(&latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await)
        .await
        .unwrap();
    assert!(
        later
            .days
            .iter()
            .all(|d| d.registrations + d.sign_ins + d.failures == 0)
    );
    assert_eq!(later.active_credentials(), 2);
    let stranger =
        latchkey_core::testing::as_caller(&f.services, &f.other_owner, f.tenant, async |access| {
            f.services.dashboards().tenant(access).await
        })
        .await;
    assert!(matches!(stranger, Err(Error::NotFound)));
}

/// One row of numbers from the database.
async fn numbers(conn: &sea_orm::DatabaseConnection, sql: String) -> Vec<i64> {
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    (0..row.column_names().len())
        .map(|i| row.try_get_by_index::<i64>(i).unwrap())
        .collect()
}

/// Support revokes one of `user`'s passkeys.
async fn revoke(
    f: &Fixture,
    support: &TenantAccess,
    user: &str,
    id: Uuid,
) -> Result<AuthenticatorView, Error> {
    f.services
        .end_users()
        .revoke_authenticator(support, user, id, "lost", RequestMeta::default())
        .await
}

/// Each user's `active_passkeys` (kept by triggers, read by the dashboard's adoption figure)
/// against the passkeys themselves: after registrations, double revocations and "revoke all" race
/// each other, and after the tenant is deleted from under it.
async fn the_active_passkey_count_survives_racing_registrations_and_revocations(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // A user's kept count, and their active passkeys counted.
    let stored = |user: &str| {
        numbers(
            &f.conn,
            format!(
                "SELECT CAST(u.active_passkeys AS BIGINT), (SELECT COUNT(*) \
             FROM authenticators a WHERE a.user_id = u.id AND a.revoked_at IS NULL) \
             FROM end_users u WHERE u.external_id = '{user}'"
            ),
        )
    };
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(register(&f, "erin", &mut SoftPasskeys::new()).await);
    }
    register(&f, "fred", &mut SoftPasskeys::new()).await;
    assert_eq!(stored("erin").await, [4, 4]);

    let support = latchkey_core::testing::access(&f.services, &f.support, f.tenant).await;
    let users = &f.services.end_users();
    // Three registrations, the same passkey revoked twice, and another revoked alone, at once.
    let registrations = futures_util::future::join_all((0..3).map(|_| async {
        register(&f, "erin", &mut SoftPasskeys::new()).await;
    }));
    let (_, a, b, c) = tokio::join!(
        registrations,
        revoke(&f, &support, "erin", first[0]),
        revoke(&f, &support, "erin", first[0]),
        revoke(&f, &support, "erin", first[1])
    );
    // Revoking a revoked passkey answers it as it is (idempotent), and is recorded once.
    for revoked in [a, b, c] {
        assert!(revoked.unwrap().revoked_at.is_some());
    }
    let recorded = numbers(
        &f.conn,
        "SELECT COUNT(*) FROM audit_events WHERE action = 'authenticator.revoked'".into(),
    );
    assert_eq!(recorded.await, [2]);
    assert_eq!(stored("erin").await, [5, 5]);

    // "Revoke all" against a registration and a single revocation.
    let mut late = SoftPasskeys::new();
    let (_, all, _) = tokio::join!(
        register(&f, "erin", &mut late),
        users.revoke_all_authenticators(&support, "erin", "stolen", RequestMeta::default()),
        revoke(&f, &support, "erin", first[2]),
    );
    all.unwrap();
    let [count, truth] = stored("erin").await[..] else {
        panic!("two numbers")
    };
    assert_eq!(count, truth, "kept count against the passkeys");
    assert!(truth <= 1, "only a registration after revoke-all remains");
    let board = f
        .services
        .dashboards()
        .tenant(&latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await)
        .await
        .unwrap();
    assert_eq!(
        (board.users, board.users_with_passkey),
        (2, 1 + u64::try_from(truth).unwrap())
    );

    // Deleting the tenant deletes users and passkeys in one statement: the triggers on the
    // cascaded passkeys must not stop it.
    f.services
        .tenants()
        .delete(
            &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
            "Shop",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        numbers(&f.conn, "SELECT COUNT(*) FROM end_users".into()).await,
        [0]
    );
}

/// "Revoke all" and single revocations of the same passkeys, all at once, round after round.
/// Each revocation also moves the user's kept count (a trigger writes the user's row), so under
/// PostgreSQL's row locks a "revoke all" that took the passkeys one at a time held the user's row
/// while waiting for a passkey that a single revocation held, waiting for the user's row: one of
/// them failed with a deadlock (40P01). Every call must succeed, and each passkey is revoked once.
async fn revoke_all_and_single_revocations_of_one_user_never_deadlock(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let support = latchkey_core::testing::access(&f.services, &f.support, f.tenant).await;
    let users = &f.services.end_users();
    let revoke_all =
        || users.revoke_all_authenticators(&support, "gail", "stolen", RequestMeta::default());
    let mut revoked = 0;
    for _ in 0..8 {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(register(&f, "gail", &mut SoftPasskeys::new()).await);
        }
        // The singles run in reverse id order against "revoke all"'s forward one.
        ids.sort();
        let singles = futures_util::future::join_all(
            ids.iter().rev().map(|id| revoke(&f, &support, "gail", *id)),
        );
        let (singles, all, again) = tokio::join!(singles, revoke_all(), revoke_all());
        for single in singles {
            assert!(single.unwrap().revoked_at.is_some());
        }
        all.unwrap();
        again.unwrap();
        revoked += ids.len();
        let events = numbers(
            &f.conn,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'authenticator.revoked'".into(),
        )
        .await;
        assert_eq!(
            events,
            [i64::try_from(revoked).unwrap()],
            "one event per passkey"
        );
    }
}

async fn a_seeded_tenant_is_searchable_and_counted(backend: TestBackend) {
    use latchkey_core::testing::seed::{SeedPlan, large_tenant};
    let Some(f) = fixture(backend).await else {
        return;
    };
    let plan = SeedPlan {
        users: 300,
        credentials_per_user: 3,
        sign_ins_per_day: 10,
    };
    let created = large_tenant(&f.conn, f.tenant, plan, f.services.clock().now())
        .await
        .unwrap();
    assert_eq!(created, (300, 900));
    let page = search(&f, &f.support, "USER-00029").await.unwrap();
    assert_eq!(page.users.len(), 10);
    assert_eq!(page.total_users, 300);
    assert_eq!(page.users[0].user_id, "user-000290");
    // Every user ID or every username matches "user-" / nothing else: capped, paged by 50.
    let all = search(&f, &f.support, "user-").await.unwrap();
    assert_eq!(all.matches, MatchCount::Exactly(300));
    assert_eq!(all.users.len(), 50);
    assert!(all.next.is_some());
    let board = f
        .services
        .dashboards()
        .tenant(&latchkey_core::testing::access(&f.services, &f.viewer, f.tenant).await)
        .await
        .unwrap();
    // Every 17th credential is seeded revoked.
    let revoked = (0..300u64)
        .flat_map(|n| (0..3u64).map(move |c| n + c))
        .filter(|k| k % 17 == 0)
        .count() as u64;
    assert_eq!(board.active_credentials(), 900 - revoked);
    assert!(board.days.iter().all(|d| d.sign_ins > 0));
    assert!(
        board
            .providers
            .iter()
            .any(|p| p.provider.as_deref() == Some("Google Password Manager"))
    );
}
