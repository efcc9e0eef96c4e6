//! Audit retention on both databases: a purge exports the old events, then deletes exactly
//! them, and audits itself; the log stays append-only for everything else (a plain DELETE or
//! UPDATE is still refused, also right after a purge); a purge that cannot write its export
//! deletes nothing; events written while a purge runs are kept.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    ManualClock,
    audit::{Actor, AuditEntry},
    both_backends,
    testing::{TestBackend, TestDb},
};
use sea_orm::ConnectionTrait;

both_backends!(
    a_purge_exports_then_deletes_only_old_events_and_is_audited,
    a_purge_runs_while_events_are_written
);

async fn a_purge_exports_then_deletes_only_old_events_and_is_audited(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let services = latchkey_core::testing::services(db.clone(), Arc::new(clock.clone()));
    for n in 0..5 {
        services
            .audit()
            .record(
                AuditEntry::new(Actor::Cli, "tenant.created")
                    .details(serde_json::json!({ "n": n })),
            )
            .await
            .unwrap();
        clock.advance(TimeDelta::days(10));
    }
    // Events at days 0, 10, 20, 30, 40; now is day 50. Older than 25 days: days 0, 10, 20.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("audit-2026.jsonl");

    // An export that cannot be written (it exists): nothing is deleted, the file is untouched.
    std::fs::write(&export, b"earlier").unwrap();
    let refused = services
        .purge_audit(TimeDelta::days(25), &export)
        .await
        .unwrap_err();
    assert_eq!(refused.field(), Some("export_to"));
    assert_eq!(std::fs::read(&export).unwrap(), b"earlier");
    assert_eq!(services.audit().recent(None, 100).await.unwrap().len(), 5);
    std::fs::remove_file(&export).unwrap();

    let purged = services
        .purge_audit(TimeDelta::days(25), &export)
        .await
        .unwrap();
    assert_eq!(purged.deleted, 3);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let exported: Vec<i64> = lines
        .iter()
        .map(|l| l["details"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        exported,
        vec![0, 1, 2],
        "oldest first, exactly the purged ones"
    );

    let left = services.audit().recent(None, 100).await.unwrap();
    let actions: Vec<&str> = left.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["audit.retention_purged", "tenant.created", "tenant.created"]
    );
    let details = left[0].details.clone().unwrap();
    assert_eq!(details["deleted"], 3);
    assert_eq!(details["export"], "audit-2026.jsonl");
    assert_eq!(
        details["export_sha256"],
        serde_json::json!(purged.export_sha256)
    );

    // Still append-only: no ad-hoc DELETE or UPDATE, of old or new events.
    for sql in [
        "DELETE FROM audit_events",
        "UPDATE audit_events SET action = 'x'",
    ] {
        let err = db.execute_unprepared(sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // Nothing old enough: a purge that deletes nothing is still recorded.
    let again = services
        .purge_audit(TimeDelta::days(25), &dir.path().join("again.jsonl"))
        .await
        .unwrap();
    assert_eq!(again.deleted, 0);
    assert_eq!(services.audit().recent(None, 100).await.unwrap().len(), 4);
    // Less than a day is refused.
    let short = services
        .purge_audit(TimeDelta::hours(1), &dir.path().join("short.jsonl"))
        .await
        .unwrap_err();
    assert_eq!(short.field(), Some("older_than_days"));
    assert!(!dir.path().join("short.jsonl").exists());
}

async fn a_purge_runs_while_events_are_written(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let services = latchkey_core::testing::services(db.clone(), Arc::new(clock.clone()));
    for _ in 0..200 {
        services
            .audit()
            .record(AuditEntry::new(Actor::System, "signin.failed"))
            .await
            .unwrap();
    }
    clock.advance(TimeDelta::days(30));
    // Writers keep recording new events while the purge runs.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let services = services.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    services
                        .audit()
                        .record(AuditEntry::new(Actor::System, "signin.succeeded"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let purged = services
        .purge_audit(TimeDelta::days(7), &dir.path().join("old.jsonl"))
        .await
        .unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(purged.deleted, 200);
    let left = services.audit().recent(None, 1000).await.unwrap();
    assert_eq!(left.len(), 201, "every new event kept, and the purge's own");
    assert!(left.iter().all(|e| e.action != "signin.failed"));
}
