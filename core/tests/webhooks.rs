//! Webhooks end to end on both databases, against a receiver that verifies every signature with
//! the `standardwebhooks` package from PyPI (`webhook_receiver.py`): every event of a scripted
//! run arrives exactly once, in order per user, even when the receiver answers 500 twice first;
//! events committed before a crash are delivered by the instance that starts next; a delivery
//! claimed by an instance that died is sent again only once its lease has run out; two
//! instances sharing the outbox never send one delivery twice; a rotated secret signs beside the
//! old one for its overlap; and bad endpoints are refused with nothing written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{Duration, Utc};
use latchkey_core::{
    ManualClock, Services,
    access::{OperatorIdentity, TenantAccess},
    audit::RequestMeta,
    both_backends,
    testing::{
        TestBackend, TestDb, insert_operator, shop, soft_passkey::SoftPasskeys,
        webhook_receiver::Receiver,
    },
    webhooks::{DeliveryPage, NewEndpoint, deliver::LEASE},
};
use uuid::Uuid;

both_backends!(
    a_scripted_run_arrives_once_in_order_despite_failures,
    a_dead_instances_claims_wait_for_their_lease_and_a_restart_delivers,
    two_instances_never_send_one_delivery_twice,
    bad_endpoints_are_refused_and_change_nothing,
    the_delivery_log_pages_through_one_batch_without_gaps,
    a_failing_endpoint_is_disabled_with_its_reason_and_checkpoints_anchor_the_chain,
);

struct Fixture {
    db: TestDb,
    clock: ManualClock,
    services: Services,
    owner: OperatorIdentity,
    tenant: Uuid,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    // Near the wall clock: receivers refuse a webhook-timestamp more than 5 minutes off.
    let clock = ManualClock::new(Utc::now() - Duration::seconds(60));
    let services = instance(&conn, &clock);
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let tenant = shop::create(&services, &owner).await;
    Some(Fixture {
        db,
        clock,
        services,
        owner,
        tenant,
    })
}

fn instance(conn: &sea_orm::DatabaseConnection, clock: &ManualClock) -> Services {
    latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()))
        .with_private_outbound(true)
        .unwrap()
}

impl Fixture {
    async fn access(&self) -> TenantAccess {
        latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await
    }

    async fn endpoint(&self, url: &str, events: &[&str]) -> (Uuid, String) {
        let created = self
            .services
            .webhooks()
            .create(
                &self.access().await,
                NewEndpoint {
                    url: url.into(),
                    description: "test receiver".into(),
                    events: events.iter().map(|e| (*e).to_owned()).collect(),
                },
                RequestMeta::default(),
            )
            .await
            .unwrap();
        (created.endpoint.id, created.secret)
    }

    /// Runs the pipeline until `want` events were accepted, moving the clock so that retries
    /// come due; at most `rounds` times.
    async fn deliver_until(&self, receiver: &Receiver, want: usize, rounds: usize) {
        for _ in 0..rounds {
            self.services.run_webhooks().await.unwrap();
            if receiver.accepted().len() >= want {
                return;
            }
            self.clock.advance(Duration::seconds(13));
        }
        panic!(
            "only {} of {want} events arrived: {:?}",
            receiver.accepted().len(),
            receiver.requests()
        );
    }
}

const ALL: [&str; 7] = [
    "user.created",
    "passkey.registered",
    "passkey.revoked",
    "passkey.renamed",
    "passkey.flagged",
    "enrollment_token.issued",
    "user.signed_in",
];

async fn a_scripted_run_arrives_once_in_order_despite_failures(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let receiver = Receiver::start(2, 0.0);
    let (endpoint, secret) = f.endpoint(&receiver.url(), &ALL).await;
    receiver.use_secret(&secret);
    let access = f.access().await;
    let mut passkeys = SoftPasskeys::default();
    let mut ids = HashMap::new();
    for user in ["ann", "bob", "cat"] {
        let id = shop::register(&f.services, &access, user, &mut passkeys)
            .await
            .unwrap();
        ids.insert(user, id);
    }
    let users = f.services.end_users();
    users
        .rename_authenticator(
            &access,
            "ann",
            ids["ann"],
            "Work laptop",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    users
        .revoke_authenticator(
            &access,
            "bob",
            ids["bob"],
            "lost device",
            RequestMeta::default(),
        )
        .await
        .unwrap();

    f.deliver_until(&receiver, 11, 40).await;
    let requests = receiver.requests();
    assert!(
        requests.iter().all(|r| r["verified"] == true),
        "every request verifies with the independent library: {requests:?}"
    );
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 11, "{accepted:?}");
    let mut per_id: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &requests {
        per_id
            .entry(r["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["status"].as_i64().unwrap());
    }
    assert!(
        per_id.values().all(|s| s == &[500, 500, 200]),
        "each event: refused twice, then accepted once: {per_id:?}"
    );
    let order = |user: &str| -> Vec<String> {
        accepted
            .iter()
            .filter(|r| r["event"]["data"]["user_id"] == user)
            .map(|r| r["event"]["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        order("ann"),
        [
            "user.created",
            "enrollment_token.issued",
            "passkey.registered",
            "passkey.renamed"
        ]
    );
    assert_eq!(
        order("bob"),
        [
            "user.created",
            "enrollment_token.issued",
            "passkey.registered",
            "passkey.revoked"
        ]
    );
    assert_eq!(
        order("cat"),
        [
            "user.created",
            "enrollment_token.issued",
            "passkey.registered"
        ]
    );
    let revoked = accepted
        .iter()
        .find(|r| r["event"]["type"] == "passkey.revoked")
        .unwrap();
    assert_eq!(revoked["event"]["data"]["reason"], "lost device");
    assert_eq!(
        revoked["event"]["data"]["actor"]["label"],
        "owner@shop.test"
    );
    assert_eq!(
        revoked["event"]["data"]["passkey"]["id"],
        ids["bob"].to_string()
    );
    assert_eq!(revoked["event"]["tenant_id"], f.tenant.to_string());
    assert_eq!(
        revoked["id"], revoked["event"]["id"],
        "webhook-id is the event's id"
    );

    // The delivery log: three attempts, the answers kept.
    let log = f
        .services
        .webhooks()
        .deliveries(&access, endpoint, Default::default())
        .await
        .unwrap();
    assert_eq!(log.len(), 11);
    assert!(
        log.iter()
            .all(|d| d.status == "delivered" && d.attempts == 3)
    );
    let statuses: Vec<Option<i32>> = log[0].attempt_log.iter().map(|a| a.status_code).collect();
    assert_eq!(statuses, [Some(200), Some(500), Some(500)]);
    assert_eq!(
        log[0].attempt_log[0].response_excerpt.as_deref(),
        Some("ok")
    );

    // Redeliver: the same id and body again; a test event; then a rotation signs with both.
    let again = f
        .services
        .webhooks()
        .redeliver(&access, endpoint, log[0].id, RequestMeta::default())
        .await
        .unwrap();
    assert_eq!(again.event_id, log[0].event_id);
    f.services
        .webhooks()
        .send_test(&access, endpoint, RequestMeta::default())
        .await
        .unwrap();
    f.deliver_until(&receiver, 13, 10).await;
    let accepted = receiver.accepted();
    assert_eq!(
        accepted
            .iter()
            .filter(|r| r["id"] == log[0].event_id.as_str())
            .count(),
        2
    );
    assert!(
        accepted
            .iter()
            .any(|r| r["event"]["type"] == "webhook.test")
    );

    let new_secret = f
        .services
        .webhooks()
        .rotate_secret(
            &access,
            endpoint,
            Duration::hours(1),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_ne!(new_secret, secret);
    // The receiver still holds the old secret: the overlap's second signature verifies.
    f.services
        .webhooks()
        .send_test(&access, endpoint, RequestMeta::default())
        .await
        .unwrap();
    f.deliver_until(&receiver, 14, 10).await;
    let last = receiver.accepted().pop().unwrap();
    assert_eq!(
        (last["verified"].clone(), last["signatures"].clone()),
        (true.into(), 2.into())
    );
    drop(f.db);
}

async fn a_dead_instances_claims_wait_for_their_lease_and_a_restart_delivers(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // Slow to answer: the first instance dies (its future dropped) mid-send.
    let receiver = Receiver::start(0, 1.5);
    let (_, secret) = f.endpoint(&receiver.url(), &["user.created"]).await;
    receiver.use_secret(&secret);
    let access = f.access().await;
    for n in 0..5 {
        shop::token(&f.services, &access, &format!("user-{n}")).await;
    }
    // Committed, and the instance that recorded them is gone before sealing: the next one
    // seals, fans out and claims.
    let conn = f.db.connect().await;
    let doomed = instance(&conn, &f.clock);
    doomed.seal_audit().await.unwrap();
    assert_eq!(doomed.dispatch_webhooks().await.unwrap(), 5);
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        doomed.webhooks().deliver_due(),
    )
    .await;
    assert!(cut.is_err(), "cut off mid-send");
    drop(doomed);
    // The survivor leaves the leased deliveries alone until the lease runs out.
    let survivor = instance(&f.db.connect().await, &f.clock);
    let run = survivor.webhooks().deliver_due().await.unwrap();
    assert_eq!(run.delivered + run.failed_attempts, 0, "leased elsewhere");
    f.clock.advance(LEASE + Duration::seconds(1));
    let run = survivor.webhooks().deliver_due().await.unwrap();
    assert_eq!(run.delivered, 5);
    // At least once: each event accepted, the cut-off sends seen once more at most.
    let accepted = receiver.accepted();
    let mut ids: Vec<&str> = accepted.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    assert!(accepted.len() <= 10);
}

async fn two_instances_never_send_one_delivery_twice(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let receiver = Receiver::start(0, 0.05);
    let (_, secret) = f
        .endpoint(&receiver.url(), &["enrollment_token.issued"])
        .await;
    receiver.use_secret(&secret);
    let access = f.access().await;
    for n in 0..40 {
        shop::token(&f.services, &access, &format!("user-{n}")).await;
    }
    f.services.seal_audit().await.unwrap();
    let other = instance(&f.db.connect().await, &f.clock);
    // Both fan the seals out at once: each event becomes one delivery.
    let (mine, theirs) = tokio::join!(f.services.dispatch_webhooks(), other.dispatch_webhooks());
    assert_eq!(mine.unwrap() + theirs.unwrap(), 40);
    let drain = |services: Services| async move {
        for _ in 0..20 {
            services.webhooks().deliver_due().await.unwrap();
        }
    };
    tokio::join!(drain(f.services.clone()), drain(other));
    let accepted = receiver.accepted();
    let mut ids: Vec<&str> = accepted.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let all = ids.len();
    ids.dedup();
    assert_eq!((all, ids.len()), (40, 40), "each sent once, none twice");
}

/// One dispatch writes all its deliveries at one `created_at`, so a page that ends inside a
/// batch must continue after its last delivery, not after its time: every delivery is listed
/// exactly once across the pages, and an unknown cursor is refused, naming the field.
async fn the_delivery_log_pages_through_one_batch_without_gaps(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let receiver = Receiver::start(0, 0.0);
    let (endpoint, secret) = f
        .endpoint(
            &receiver.url(),
            &["user.created", "enrollment_token.issued"],
        )
        .await;
    receiver.use_secret(&secret);
    let access = f.access().await;
    // 35 users: 70 events, more than a page, sealed and dispatched in one run.
    for n in 0..35 {
        shop::token(&f.services, &access, &format!("user-{n}")).await;
    }
    f.deliver_until(&receiver, 70, 5).await;

    let webhooks = f.services.webhooks();
    let mut seen = Vec::new();
    let mut page = DeliveryPage::default();
    loop {
        let rows = webhooks.deliveries(&access, endpoint, page).await.unwrap();
        let Some(last) = rows.last() else { break };
        page.starting_after = Some(last.id);
        seen.extend(rows.iter().map(|d| d.id));
    }
    assert_eq!(seen.len(), 70, "every delivery listed");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 70, "none twice");

    // `before` is a time bound, not a cursor: strictly earlier deliveries only.
    let first = webhooks
        .deliveries(&access, endpoint, DeliveryPage::default())
        .await
        .unwrap();
    let cut = first.last().unwrap().created_at;
    let earlier = webhooks
        .deliveries(
            &access,
            endpoint,
            DeliveryPage {
                before: Some(cut),
                starting_after: None,
            },
        )
        .await
        .unwrap();
    assert!(earlier.iter().all(|d| d.created_at < cut));
    // The premise: the first page ends inside a batch, so the time alone skips the rest of it.
    assert!(
        earlier.len() < 70 - first.len(),
        "{} earlier",
        earlier.len()
    );

    let unknown = webhooks
        .deliveries(
            &access,
            endpoint,
            DeliveryPage {
                before: None,
                starting_after: Some(Uuid::new_v4()),
            },
        )
        .await;
    assert!(
        matches!(&unknown, Err(latchkey_core::Error::InvalidRequest { field: Some(field), .. }) if field == "starting_after"),
        "{unknown:?}"
    );
}

async fn bad_endpoints_are_refused_and_change_nothing(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let access = f.access().await;
    let long = format!("https://example.com/{}", "a".repeat(5000));
    // Short as typed, over the limit once percent-encoded (the column holds 2048 on PostgreSQL).
    let encoded_long = format!("https://example.com/{}", "é".repeat(1000));
    for (url, events, field) in [
        ("http://example.com/hook", vec!["user.created"], "url"),
        ("ftp://example.com/", vec!["user.created"], "url"),
        ("https://user:pw@example.com/", vec!["user.created"], "url"),
        ("not a url", vec!["user.created"], "url"),
        (long.as_str(), vec!["user.created"], "url"),
        (encoded_long.as_str(), vec!["user.created"], "url"),
        ("https://example.com/", vec![], "events"),
        ("https://example.com/", vec!["passkey.eaten"], "events"),
        ("https://example.com/", vec!["user.created\u{0}"], "events"),
    ] {
        let refused = f
            .services
            .webhooks()
            .create(
                &access,
                NewEndpoint {
                    url: url.into(),
                    description: String::new(),
                    events: events.into_iter().map(str::to_owned).collect(),
                },
                RequestMeta::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.field(), Some(field), "{url}: {refused}");
    }
    // Plain http to this machine only where private addresses are allowed.
    let strict = latchkey_core::testing::services(f.db.connect().await, Arc::new(f.clock.clone()));
    let strict_access = latchkey_core::testing::access(&strict, &f.owner, f.tenant).await;
    let refused = strict
        .webhooks()
        .create(
            &strict_access,
            NewEndpoint {
                url: "http://127.0.0.1:9/hook".into(),
                description: String::new(),
                events: vec!["user.created".into()],
            },
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.field(), Some("url"));
    assert!(
        f.services
            .webhooks()
            .list(&access)
            .await
            .unwrap()
            .is_empty()
    );
    // At most 20 per tenant, also when created at once.
    let creations = (0..25).map(|n| {
        let services = f.services.clone();
        let access = access.clone();
        async move {
            services
                .webhooks()
                .create(
                    &access,
                    NewEndpoint {
                        url: format!("https://example.com/{n}"),
                        description: String::new(),
                        events: vec!["user.created".into()],
                    },
                    RequestMeta::default(),
                )
                .await
        }
    });
    let results = futures_util::future::join_all(creations).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 20);
    assert_eq!(f.services.webhooks().list(&access).await.unwrap().len(), 20);
}

async fn a_failing_endpoint_is_disabled_with_its_reason_and_checkpoints_anchor_the_chain(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // Always 500.
    let receiver = Receiver::start(1_000, 0.0);
    let (endpoint, secret) = f
        .endpoint(&receiver.url(), &["user.created", "audit.checkpoint"])
        .await;
    receiver.use_secret(&secret);
    let access = f.access().await;
    shop::token(&f.services, &access, "ann").await;
    f.services.run_webhooks().await.unwrap();
    let first = receiver.requests();
    let checkpoint = first
        .iter()
        .find(|r| r["event"]["type"] == "audit.checkpoint")
        .expect("a checkpoint goes out with the tenant's first sealed events");
    let chain = f.services.verify_audit(Some(f.tenant), None).await.unwrap();
    assert!(chain.is_intact());
    let head = &chain.chains[0].head;
    assert_eq!(checkpoint["event"]["data"]["head"]["seq"], head.seq);
    assert_eq!(
        checkpoint["event"]["data"]["head"]["hash"],
        head.hash.as_str()
    );
    let view = f.services.webhooks().get(&access, endpoint).await.unwrap();
    assert!(view.enabled && view.failing_since.is_some());

    // Five days of failures later, the next failure disables it, with the reason.
    f.clock.advance(Duration::days(5) + Duration::minutes(1));
    shop::token(&f.services, &access, "bob").await;
    f.services.run_webhooks().await.unwrap();
    let view = f.services.webhooks().get(&access, endpoint).await.unwrap();
    assert!(!view.enabled);
    let reason = view.disabled_reason.unwrap();
    assert!(reason.contains("5 days"), "{reason}");
    let audited = f.services.audit().recent(Some(f.tenant), 20).await.unwrap();
    assert!(
        audited
            .iter()
            .any(|e| e.action == "webhook.endpoint_disabled")
    );
    // Disabled: nothing more is sent until an owner enables it again.
    let sent = receiver.requests().len();
    shop::token(&f.services, &access, "cat").await;
    f.clock.advance(Duration::hours(2));
    f.services.run_webhooks().await.unwrap();
    assert_eq!(receiver.requests().len(), sent);
}
