//! The portal's session store on both databases: round trips, expiry by the injected clock,
//! hashed ids at rest, collisions, and ending all of an operator's sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    ManualClock, Services, both_backends,
    entities::{operator, session},
    sessions::OPERATOR_ID_KEY,
    testing::{TestBackend, TestDb},
};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use time::OffsetDateTime;
use tower_sessions_core::{
    SessionStore,
    session::{Id, Record},
    session_store::ExpiredDeletion,
};
use uuid::Uuid;

both_backends!(
    records_round_trip_and_ids_are_hashed_at_rest,
    expired_sessions_are_invisible_and_deleted,
    create_never_overwrites_an_existing_session,
    all_sessions_of_an_operator_can_be_revoked,
    an_ended_session_never_comes_back
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
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()));
    Some(Fixture {
        _db: db,
        conn,
        services,
        clock,
    })
}

async fn operator(conn: &DatabaseConnection, email: &str) -> Uuid {
    let id = Uuid::now_v7();
    let now = Utc::now();
    operator::Entity::insert(operator::ActiveModel {
        id: Set(id),
        email: Set(email.into()),
        display_name: Set("Op".into()),
        is_instance_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
    })
    .exec(conn)
    .await
    .unwrap();
    id
}

fn record(clock: &ManualClock, operator: Option<Uuid>, ttl: TimeDelta) -> Record {
    use latchkey_core::Clock;
    let expiry = clock.now() + ttl;
    let mut data = std::collections::HashMap::new();
    data.insert("theme".to_owned(), serde_json::json!("dark"));
    if let Some(op) = operator {
        data.insert(
            OPERATOR_ID_KEY.to_owned(),
            serde_json::json!(op.to_string()),
        );
    }
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::from_unix_timestamp(expiry.timestamp()).unwrap(),
    }
}

async fn records_round_trip_and_ids_are_hashed_at_rest(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let store = f.services.sessions();
    let op = operator(&f.conn, "a@example.com").await;
    let mut rec = record(&f.clock, Some(op), TimeDelta::hours(8));
    store.create(&mut rec).await.unwrap();

    let loaded = store.load(&rec.id).await.unwrap().expect("stored");
    assert_eq!(loaded.data, rec.data);
    assert_eq!(loaded.expiry_date, rec.expiry_date);

    // Updated in place by save (the layer saves after every change).
    rec.data.insert("theme".into(), serde_json::json!("light"));
    store.save(&rec).await.unwrap();
    let loaded = store.load(&rec.id).await.unwrap().expect("stored");
    assert_eq!(loaded.data["theme"], "light");

    let rows = session::Entity::find().all(&f.conn).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].operator_id, Some(op));
    assert_eq!(rows[0].id_hash.len(), 64);
    assert_ne!(rows[0].id_hash, rec.id.to_string(), "raw id never stored");

    // An id nobody issued loads nothing.
    assert!(store.load(&Id::default()).await.unwrap().is_none());

    store.delete(&rec.id).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none());
    assert!(
        session::Entity::find()
            .all(&f.conn)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn expired_sessions_are_invisible_and_deleted(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let store = f.services.sessions();
    let mut short = record(&f.clock, None, TimeDelta::minutes(5));
    let mut long = record(&f.clock, None, TimeDelta::hours(1));
    store.create(&mut short).await.unwrap();
    store.create(&mut long).await.unwrap();

    f.clock.advance(TimeDelta::minutes(5));
    assert!(
        store.load(&short.id).await.unwrap().is_none(),
        "expired at its expiry instant"
    );
    assert!(store.load(&long.id).await.unwrap().is_some());

    store.delete_expired().await.unwrap();
    let rows = session::Entity::find().all(&f.conn).await.unwrap();
    assert_eq!(rows.len(), 1, "only the expired row is removed");
}

async fn create_never_overwrites_an_existing_session(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let store = f.services.sessions();
    let mut first = record(&f.clock, None, TimeDelta::hours(1));
    store.create(&mut first).await.unwrap();

    let mut second = record(&f.clock, None, TimeDelta::hours(1));
    second.id = first.id;
    second
        .data
        .insert("theme".into(), serde_json::json!("intruder"));
    store.create(&mut second).await.unwrap();

    assert_ne!(second.id, first.id, "a colliding id is redrawn");
    let kept = store.load(&first.id).await.unwrap().expect("first kept");
    assert_eq!(kept.data["theme"], "dark");
    assert_eq!(
        store.load(&second.id).await.unwrap().expect("second").data["theme"],
        "intruder"
    );
}

async fn all_sessions_of_an_operator_can_be_revoked(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let store = f.services.sessions();
    let alice = operator(&f.conn, "alice@example.com").await;
    let bob = operator(&f.conn, "bob@example.com").await;
    let mut ids = Vec::new();
    for who in [alice, alice, bob] {
        let mut rec = record(&f.clock, Some(who), TimeDelta::hours(1));
        store.create(&mut rec).await.unwrap();
        ids.push(rec.id);
    }
    assert_eq!(store.count_active(alice).await.unwrap(), 2);

    assert_eq!(store.revoke_operator(alice).await.unwrap(), 2);
    assert!(store.load(&ids[0]).await.unwrap().is_none());
    assert!(store.load(&ids[1]).await.unwrap().is_none());
    assert!(
        store.load(&ids[2]).await.unwrap().is_some(),
        "bob keeps his"
    );
    assert_eq!(store.count_active(alice).await.unwrap(), 0);

    // A session naming an operator that does not exist is refused by the foreign key.
    let mut orphan = record(&f.clock, Some(Uuid::now_v7()), TimeDelta::hours(1));
    assert!(store.create(&mut orphan).await.is_err());
}

/// Sign-out (or "Sign out everywhere") while requests of the same session are in flight: their
/// saves, which refresh the idle deadline, must not re-create the deleted row. Raced for real:
/// many saves at once with the deletion among them, then saves after it.
async fn an_ended_session_never_comes_back(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let store = f.services.sessions();
    let op = operator(&f.conn, "a@example.com").await;
    for round in 0..10 {
        let mut rec = record(&f.clock, Some(op), TimeDelta::hours(1));
        store.create(&mut rec).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let (store, mut rec) = (store.clone(), rec.clone());
            tasks.spawn(async move {
                if i == 8 {
                    if round % 2 == 0 {
                        store.delete(&rec.id).await.unwrap();
                    } else {
                        store.revoke_operator(op).await.unwrap();
                    }
                } else {
                    rec.data.insert("n".into(), serde_json::json!(i));
                    store.save(&rec).await.unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        // And a request that finishes after the sign-out.
        store.save(&rec).await.unwrap();
        assert!(
            store.load(&rec.id).await.unwrap().is_none(),
            "round {round}"
        );
    }
    assert!(
        session::Entity::find()
            .all(&f.conn)
            .await
            .unwrap()
            .is_empty()
    );

    // An expired session is not extended by a late save either.
    let mut rec = record(&f.clock, Some(op), TimeDelta::minutes(5));
    store.create(&mut rec).await.unwrap();
    f.clock.advance(TimeDelta::minutes(6));
    rec.expiry_date += time::Duration::hours(1);
    store.save(&rec).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none());
}
