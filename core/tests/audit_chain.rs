//! The verifiable audit log on both databases: sealing links every event into its scope's chain
//! once, a moment after it commits, also with several sealers racing writers; `verify`
//! recomputes everything and names each event that was altered, deleted or inserted into the
//! sealed past (with the append-only triggers dropped, as an attacker with database access
//! would), and a rewritten seal fails an outside checkpoint; a retention purge leaves the chain
//! verifiable.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    ManualClock,
    audit::{
        Actor, AuditEntry,
        verify::{Problem, Verification},
    },
    both_backends,
    testing::{TestBackend, TestDb},
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

both_backends!(
    tampering_is_named_event_by_event,
    concurrent_sealers_link_each_event_once,
    a_retention_purge_leaves_the_chain_verifiable
);

const TENANT_A: Uuid = Uuid::from_u128(0xa);
const TENANT_B: Uuid = Uuid::from_u128(0xb);

fn problems(v: &Verification) -> Vec<(Option<i64>, Problem)> {
    v.findings
        .iter()
        .map(|f| (f.event_id, f.problem.clone()))
        .collect()
}

async fn tampering_is_named_event_by_event(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let services = latchkey_core::testing::services(db.clone(), Arc::new(clock.clone()));
    // Strange but valid content: every detail must hash the same once read back (PostgreSQL's
    // jsonb reorders keys; a user agent holds anything).
    for n in 0..12 {
        let tenant = [None, Some(TENANT_A), Some(TENANT_B)][n % 3];
        let mut entry = AuditEntry::new(Actor::System, "passkey.revoked")
            .target("user", format!("user-{n}"))
            .details(serde_json::json!({
                "zeta": n, "alpha": "é ✓ \u{1f511} \"quoted\" \\ \n", "nested": { "b": [1, null, true], "a": {} },
            }));
        if let Some(t) = tenant {
            entry = entry.tenant(t);
        }
        services.audit().record(entry).await.unwrap();
        clock.advance(TimeDelta::seconds(1));
    }
    let before = services.verify_audit(None, None).await.unwrap();
    assert_eq!(before.pending, 12, "nothing sealed yet");
    assert!(before.is_intact());

    clock.advance(TimeDelta::minutes(5));
    let sealed = services.seal_audit().await.unwrap().unwrap();
    assert_eq!(sealed.events, 12);
    assert!(
        services.seal_audit().await.unwrap().is_none(),
        "nothing left"
    );
    let intact = services.verify_audit(None, None).await.unwrap();
    assert!(intact.is_intact(), "{:?}", intact.findings);
    assert_eq!(intact.pending, 0);
    assert_eq!(intact.chains.len(), 3);
    assert!(
        intact
            .chains
            .iter()
            .all(|c| c.verified == 4 && c.head.seq == 4)
    );
    let checkpoint = intact.latest_seal.clone().unwrap();
    let anchored = services
        .verify_audit(None, Some((checkpoint.id, checkpoint.hash.clone())))
        .await
        .unwrap();
    assert!(anchored.is_intact());
    let tenant_only = services.verify_audit(Some(TENANT_A), None).await.unwrap();
    assert!(tenant_only.is_intact());
    assert_eq!(tenant_only.chains.len(), 1);

    // An attacker with database access: the append-only triggers dropped.
    let ids: Vec<i64> = services
        .audit()
        .recent(None, 100)
        .await
        .unwrap()
        .iter()
        .rev()
        .map(|e| e.id)
        .collect();
    let (edited, deleted) = (ids[3], ids[7]);
    let drop_triggers = match backend {
        TestBackend::Sqlite => {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete; \
             DROP TRIGGER audit_seals_no_update"
        }
        TestBackend::Postgres => {
            "DROP TRIGGER audit_events_append_only ON audit_events; \
             DROP TRIGGER audit_seals_append_only ON audit_seals"
        }
    };
    db.execute_unprepared(drop_triggers).await.unwrap();
    let run = |sql: String| {
        let db = db.clone();
        async move { db.execute_unprepared(&sql).await.unwrap() }
    };
    run(format!(
        "UPDATE audit_events SET target_id = 'someone-else' WHERE id = {edited}"
    ))
    .await;
    run(format!("DELETE FROM audit_events WHERE id = {deleted}")).await;
    // Slipped into the past: a copy of an old event under a new id.
    let inserted = ids[11] + 1000;
    run(format!(
        "INSERT INTO audit_events (id, occurred_at, tenant_id, actor_kind, action, outcome) \
         SELECT {inserted}, occurred_at, tenant_id, actor_kind, action, outcome \
         FROM audit_events WHERE id = {}",
        ids[0]
    ))
    .await;
    // Sealing never takes an event older than its floor.
    assert!(services.seal_audit().await.unwrap().is_none());

    let tampered = services.verify_audit(None, None).await.unwrap();
    let mut found = problems(&tampered);
    found.sort_by_key(|(id, _)| *id);
    assert_eq!(
        found,
        vec![
            (Some(edited), Problem::Altered),
            (Some(deleted), Problem::Deleted),
            (Some(inserted), Problem::Inserted),
        ],
        "{:?}",
        tampered.findings
    );
    let message = tampered
        .findings
        .iter()
        .find(|f| f.problem == Problem::Altered)
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(&format!("event {edited} ")),
        "{message}"
    );
    // A tenant's verification sees its own chain only.
    let a_chain = TENANT_A.to_string();
    let in_a = services.verify_audit(Some(TENANT_A), None).await.unwrap();
    assert!(in_a.findings.iter().all(|f| f.chain == a_chain));

    // Rewriting a seal breaks the seal chain and the outside checkpoint.
    let forged = "f".repeat(64);
    run(format!(
        "UPDATE audit_seals SET hash = '{forged}' WHERE id = {}",
        checkpoint.id
    ))
    .await;
    let rewritten = services
        .verify_audit(None, Some((checkpoint.id, checkpoint.hash.clone())))
        .await
        .unwrap();
    let found = problems(&rewritten);
    assert!(found.contains(&(
        None,
        Problem::SealBroken {
            seal_id: checkpoint.id
        }
    )));
    assert!(found.contains(&(
        None,
        Problem::CheckpointMismatch {
            seal_id: checkpoint.id
        }
    )));
}

async fn concurrent_sealers_link_each_event_once(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let services = latchkey_core::testing::services(db.clone(), Arc::new(clock.clone()));
    const WRITERS: usize = 6;
    const EACH: usize = 150;
    // Writers and sealers at once: on PostgreSQL events commit out of id order.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let services = services.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    let tenant = if n % 2 == 0 { TENANT_A } else { TENANT_B };
                    services
                        .audit()
                        .record(
                            AuditEntry::new(Actor::System, "signin.succeeded")
                                .tenant(tenant)
                                .details(serde_json::json!({ "writer": w, "n": n })),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let sealers: Vec<_> = (0..3)
        .map(|_| {
            let services = services.clone();
            tokio::spawn(async move {
                let mut sealed = 0;
                for _ in 0..20 {
                    if let Some(s) = services.seal_audit().await.unwrap() {
                        sealed += s.events;
                    }
                    tokio::task::yield_now().await;
                }
                sealed
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut sealed = 0;
    for s in sealers {
        sealed += s.await.unwrap();
    }
    sealed += services.seal_audit().await.unwrap().map_or(0, |s| s.events);
    assert_eq!(sealed as usize, WRITERS * EACH, "each event sealed once");
    let verified = services.verify_audit(None, None).await.unwrap();
    assert!(verified.is_intact(), "{:?}", verified.findings);
    assert_eq!(verified.pending, 0);
    let total: u64 = verified.chains.iter().map(|c| c.verified).sum();
    assert_eq!(total as usize, WRITERS * EACH);
    assert!(
        verified
            .chains
            .iter()
            .all(|c| c.head.seq as u64 == c.verified),
        "positions are contiguous"
    );
}

async fn a_retention_purge_leaves_the_chain_verifiable(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let services = latchkey_core::testing::services(db.clone(), Arc::new(clock.clone()));
    for n in 0..6 {
        services
            .audit()
            .record(
                AuditEntry::new(Actor::Cli, "tenant.created")
                    .details(serde_json::json!({ "n": n })),
            )
            .await
            .unwrap();
        clock.advance(TimeDelta::days(10));
        // Sealed as a running server would, between events.
        services.seal_audit().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let purged = services
        .purge_audit(TimeDelta::days(25), &dir.path().join("old.jsonl"))
        .await
        .unwrap();
    assert_eq!(purged.deleted, 4);
    services.seal_audit().await.unwrap();
    let verified = services.verify_audit(None, None).await.unwrap();
    assert!(verified.is_intact(), "{:?}", verified.findings);
    let instance = &verified.chains[0];
    assert_eq!((instance.purged, instance.verified), (4, 3));
}
