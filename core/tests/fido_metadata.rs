//! FIDO metadata (MDS3) on both databases: BLOBs signed under a root made here (the production
//! root is swapped only in this build), a tampered or replayed BLOB changing nothing, concurrent
//! imports, certified registration against a model's attestation root with the trust recorded,
//! revoked models refused, and a newer BLOB's revocation flagging existing passkeys.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    access::OperatorIdentity,
    audit::RequestMeta,
    both_backends,
    end_users::health::HealthReason,
    metadata::Importer,
    tenants::config::{Attestation, PasskeyConfigInput},
    tenants::policy::{ModelRule, PolicyInput},
    testing::{
        TestBackend, TestDb, insert_operator,
        metadata::{TestModel, TestPki},
        shop,
        soft_passkey::SoftPasskeys,
    },
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

both_backends!(
    a_signed_blob_imports_and_a_tampered_or_replayed_one_changes_nothing,
    concurrent_imports_of_the_same_serial_import_once,
    certified_registration_records_trust_and_refuses_what_metadata_refuses,
    a_newer_blob_that_revokes_a_model_flags_its_passkeys,
);

/// A model of the test attestation CA.
const KEY: &str = "00000000-0000-4000-8000-0000000000c1";
/// Another, which FIDO metadata will revoke.
const REVOKED_KEY: &str = "00000000-0000-4000-8000-0000000000c2";
const CERTIFIED: &[(&str, &str)] = &[("FIDO_CERTIFIED_L1", "2024-01-10")];
const REVOKED: &[(&str, &str)] = &[
    ("FIDO_CERTIFIED_L1", "2024-01-10"),
    ("REVOKED", "2026-11-30"),
];

struct Fixture {
    _db: TestDb,
    conn: DatabaseConnection,
    services: Services,
    pki: TestPki,
    tenant: Uuid,
    admin: OperatorIdentity,
    owner: OperatorIdentity,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap());
    let pki = TestPki::new().unwrap();
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock))
        .with_metadata_roots(pki.metadata_roots());
    let admin = insert_operator(&conn, "admin@latchkey.test", true).await;
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let tenant = shop::create(&services, &owner).await;
    Some(Fixture {
        _db: db,
        conn,
        services,
        pki,
        tenant,
        admin,
        owner,
    })
}

fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

impl Fixture {
    fn models(&self, key_statuses: &'static [(&'static str, &'static str)]) -> Vec<TestModel> {
        vec![
            self.pki.model(uuid(KEY), "Test Key", CERTIFIED),
            self.pki
                .model(uuid(REVOKED_KEY), "Test Key (old batch)", key_statuses),
        ]
    }

    async fn import(
        &self,
        blob: String,
    ) -> latchkey_core::Result<latchkey_core::metadata::Imported> {
        self.services
            .metadata()
            .import(
                Importer::Operator(&self.admin),
                blob,
                RequestMeta::default(),
            )
            .await
    }

    async fn count(&self, sql: &str) -> i64 {
        latchkey_core::testing::count(&self.conn, sql).await
    }

    async fn access(&self) -> latchkey_core::access::TenantAccess {
        latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await
    }

    async fn attestation_direct(&self) {
        let access = self.access().await;
        let tenants = self.services.tenants();
        let current = tenants.get(&access).await.unwrap().config;
        let mut config = PasskeyConfigInput::from(&current);
        config.attestation = Attestation::Direct;
        tenants
            .update_passkey_config(&access, &config, current.version, RequestMeta::default())
            .await
            .unwrap();
    }

    async fn save_policy(&self, require_certified: bool) -> latchkey_core::Result<()> {
        let access = self.access().await;
        let tenants = self.services.tenants();
        let version = tenants.get(&access).await?.config.version;
        let input = PolicyInput {
            models: ModelRule::Any,
            aaguids: vec![],
            allow_synced: true,
            require_certified,
            existing: Default::default(),
            unused_after_days: None,
        };
        tenants
            .update_authenticator_policy(&access, &input, version, RequestMeta::default())
            .await
            .map(|_| ())
    }

    /// Registers a new user's passkey; the refusal's code and message when refused.
    async fn register(
        &self,
        user: &str,
        passkeys: &mut SoftPasskeys,
    ) -> Result<Uuid, (ErrorCode, String)> {
        shop::register(&self.services, &self.access().await, user, passkeys)
            .await
            .map_err(|e| (e.code(), e.to_string()))
    }

    fn key(&self, model: &str, attested: bool) -> SoftPasskeys {
        let mut passkeys = SoftPasskeys::new();
        passkeys.aaguid = *uuid(model).as_bytes();
        if attested {
            passkeys.attestation = Some(self.pki.packed_attestation());
        }
        passkeys
    }

    async fn trust_of(&self, id: Uuid) -> (String, Option<String>, Option<String>) {
        let row = self
            .conn
            .query_one_raw(sea_orm::Statement::from_string(
                self.conn.get_database_backend(),
                format!(
                    "SELECT attestation_trust, certification, metadata_status FROM authenticators \
                     WHERE id = {}",
                    uuid_literal(&self.conn, id)
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        (
            row.try_get_by_index(0).unwrap(),
            row.try_get_by_index(1).unwrap(),
            row.try_get_by_index(2).unwrap(),
        )
    }
}

/// A UUID as the backend stores it, for literal SQL.
fn uuid_literal(conn: &DatabaseConnection, id: Uuid) -> String {
    match conn.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("'{id}'"),
        _ => format!("X'{}'", id.simple()),
    }
}

async fn a_signed_blob_imports_and_a_tampered_or_replayed_one_changes_nothing(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let metadata = f.services.metadata();
    assert_eq!(metadata.current().await.unwrap(), None);

    // Changed after signing: one character of the payload.
    let blob = f.pki.blob(7, "2027-01-01", &f.models(CERTIFIED));
    let mut parts: Vec<String> = blob.split('.').map(str::to_owned).collect();
    let payload = &mut parts[1];
    let flipped = if payload.ends_with('A') { 'B' } else { 'A' };
    payload.pop();
    payload.push(flipped);
    let err = f.import(parts.join(".")).await.unwrap_err();
    assert_eq!(err.field(), Some("blob"));
    assert!(err.to_string().contains("Nothing was imported"), "{err}");
    // Signed under another root (as a BLOB not from the FIDO Alliance is, for the shipped root).
    let stranger = TestPki::new()
        .unwrap()
        .blob(7, "2027-01-01", &f.models(CERTIFIED));
    let err = f.import(stranger.clone()).await.unwrap_err();
    assert!(err.to_string().contains("root certificate"), "{err}");
    let production =
        latchkey_core::testing::services(f.conn.clone(), Arc::new(latchkey_core::SystemClock));
    let err = production
        .metadata()
        .import(Importer::Cli, blob.clone(), RequestMeta::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("root certificate"), "{err}");
    // Not a BLOB at all, and not an instance admin.
    assert_eq!(
        f.import("{}".into()).await.unwrap_err().field(),
        Some("blob")
    );
    let err = f
        .services
        .metadata()
        .import(
            Importer::Operator(&f.owner),
            blob.clone(),
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(f.count("SELECT COUNT(*) FROM metadata_blobs").await, 0);
    assert_eq!(f.count("SELECT COUNT(*) FROM metadata_models").await, 0);

    let imported = f.import(blob.clone()).await.unwrap();
    assert_eq!((imported.serial, imported.models), (7, 2));
    let current = metadata.current().await.unwrap().unwrap();
    assert_eq!(current.serial, 7);
    assert_eq!(current.next_update.to_string(), "2027-01-01");
    assert!(!current.stale);
    assert_eq!(current.imported_by, "admin@latchkey.test");

    // The same BLOB again, or an older one: refused, nothing changes.
    for replay in [blob, f.pki.blob(6, "2027-01-01", &f.models(REVOKED))] {
        let err = f.import(replay).await.unwrap_err();
        assert!(err.to_string().contains("not newer"), "{err}");
    }
    assert_eq!(f.count("SELECT COUNT(*) FROM metadata_blobs").await, 1);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM metadata_models WHERE refused_status IS NOT NULL")
            .await,
        0
    );
    // A stale BLOB (past its nextUpdate) imports, and says so; a model listed twice is stored
    // once.
    let mut twice = f.models(CERTIFIED);
    twice.push(twice[0].clone());
    let imported = f.import(f.pki.blob(8, "2026-11-01", &twice)).await.unwrap();
    assert_eq!(imported.models, 2);
    assert!(metadata.current().await.unwrap().unwrap().stale);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM audit_events WHERE action = 'metadata.imported'")
            .await,
        2
    );
}

async fn concurrent_imports_of_the_same_serial_import_once(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    for round in 1..=3u32 {
        // Four admins import at once: two the next serial, two the one after. Whatever the
        // order, the serial only grows and the models are those of the newest BLOB imported.
        let blobs: Vec<String> = (0..4)
            .map(|n| {
                let serial = round * 10 + n % 2;
                f.pki.blob(
                    serial,
                    "2027-01-01",
                    &[f.pki.model(uuid(KEY), &format!("Key {serial}"), CERTIFIED)],
                )
            })
            .collect();
        let imports = blobs.into_iter().map(|blob| {
            let services = f.services.clone();
            let admin = f.admin.clone();
            tokio::spawn(async move {
                services
                    .metadata()
                    .import(Importer::Operator(&admin), blob, RequestMeta::default())
                    .await
                    .map(|i| i.serial)
            })
        });
        let results: Vec<_> = futures_util::future::join_all(imports)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let imported: Vec<u32> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        // Each serial at most once; the newer one always (nothing newer was there).
        let mut unique = imported.clone();
        unique.dedup();
        assert_eq!(unique.len(), imported.len(), "{results:?}");
        assert!(imported.contains(&(round * 10 + 1)), "{results:?}");
        for err in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(err.field(), Some("blob"), "{err}");
        }
        let current = f.services.metadata().current().await.unwrap().unwrap();
        assert_eq!(current.serial, i64::from(round * 10 + 1));
        assert_eq!(
            f.count(&format!(
                "SELECT COUNT(*) FROM metadata_models WHERE description = 'Key {}'",
                round * 10 + 1
            ))
            .await,
            1
        );
    }
}

async fn certified_registration_records_trust_and_refuses_what_metadata_refuses(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    f.attestation_direct().await;
    // Without metadata, certification cannot be required (it would refuse everyone).
    let err = f.save_policy(true).await.unwrap_err();
    assert_eq!(err.field(), Some("require_certified"));
    // Without metadata the AAGUID list still names models, and trust is what the format says.
    let id = f.register("before", &mut f.key(KEY, true)).await.unwrap();
    assert_eq!(f.trust_of(id).await.0, "none");

    f.import(f.pki.blob(1, "2027-01-01", &f.models(REVOKED)))
        .await
        .unwrap();
    // Not required: an attested key of a certified model is recorded as certified.
    let id = f
        .register("certified", &mut f.key(KEY, true))
        .await
        .unwrap();
    let (trust, certification, status) = f.trust_of(id).await;
    assert_eq!(trust, "certified");
    let certification: serde_json::Value = serde_json::from_str(&certification.unwrap()).unwrap();
    assert_eq!(certification["level"], "FIDO_CERTIFIED_L1");
    assert_eq!(certification["description"], "Test Key");
    assert_eq!(status, None);
    // What support and backends see of it.
    let listed = f
        .services
        .end_users()
        .authenticators(&f.access().await, "certified")
        .await
        .unwrap();
    assert_eq!(listed[0].attestation_trust, "certified");
    assert_eq!(
        listed[0].certification_level.as_deref(),
        Some("FIDO_CERTIFIED_L1")
    );
    assert_eq!(listed[0].certified_model.as_deref(), Some("Test Key"));
    // A revoked model is accepted (not required) but flagged from the start.
    let id = f
        .register("revoked-accepted", &mut f.key(REVOKED_KEY, true))
        .await
        .unwrap();
    assert_eq!(
        f.trust_of(id).await,
        ("none".into(), None, Some("REVOKED".into()))
    );

    f.save_policy(true).await.unwrap();
    let before = f.count("SELECT COUNT(*) FROM authenticators").await;
    // Required: unattested, attested by another CA, a revoked model, an unknown model.
    let cases = [
        (
            "no-attestation",
            f.key(KEY, false),
            "attestation could not be verified",
        ),
        (
            "other-ca",
            {
                let mut k = f.key(KEY, false);
                k.attestation = Some(TestPki::new().unwrap().packed_attestation());
                k
            },
            "attestation could not be verified",
        ),
        (
            "revoked",
            f.key(REVOKED_KEY, true),
            "revoked by the FIDO Alliance",
        ),
        (
            "unknown",
            f.key("00000000-0000-4000-8000-0000000000ff", true),
            "attestation could not be verified",
        ),
    ];
    for (user, mut key, message) in cases {
        let (code, text) = f.register(user, &mut key).await.unwrap_err();
        assert_eq!(code, ErrorCode::AuthenticatorNotAllowed, "{user}");
        assert!(text.contains(message), "{user}: {text}");
    }
    assert_eq!(f.count("SELECT COUNT(*) FROM authenticators").await, before);
    let id = f.register("required", &mut f.key(KEY, true)).await.unwrap();
    assert_eq!(f.trust_of(id).await.0, "certified");
}

async fn a_newer_blob_that_revokes_a_model_flags_its_passkeys(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    f.attestation_direct().await;
    f.import(f.pki.blob(1, "2027-01-01", &f.models(CERTIFIED)))
        .await
        .unwrap();
    let kept = f.register("kept", &mut f.key(KEY, true)).await.unwrap();
    let doomed = f
        .register("doomed", &mut f.key(REVOKED_KEY, true))
        .await
        .unwrap();
    assert_eq!(f.trust_of(doomed).await.0, "certified");
    let access = f.access().await;
    let queue = f
        .services
        .end_users()
        .credential_health(&access, Some(HealthReason::MetadataDowngraded), None, 50)
        .await
        .unwrap();
    assert!(queue.items.is_empty());

    let imported = f
        .import(f.pki.blob(2, "2027-02-01", &f.models(REVOKED)))
        .await
        .unwrap();
    assert_eq!(imported.flagged_passkeys, 1);
    assert_eq!(f.trust_of(doomed).await.2.as_deref(), Some("REVOKED"));
    assert_eq!(f.trust_of(kept).await.2, None);
    let queue = f
        .services
        .end_users()
        .credential_health(&access, Some(HealthReason::MetadataDowngraded), None, 50)
        .await
        .unwrap();
    assert_eq!(
        queue
            .items
            .iter()
            .map(|i| i.authenticator_id)
            .collect::<Vec<_>>(),
        vec![doomed]
    );
    // The flag is in the tenant's audit log, about the user, and a `passkey.flagged` webhook
    // reports it.
    let flags = || async {
        f.services
            .audit()
            .recent(Some(access.tenant_id()), 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "authenticator.flagged")
            .collect::<Vec<_>>()
    };
    let recorded = flags().await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].target_id.as_deref(), Some("doomed"));
    let events = latchkey_core::webhooks::events::from_audit(&recorded[0]);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_type,
        latchkey_core::webhooks::events::EventType::PasskeyFlagged
    );
    assert_eq!(events[0].user_id.as_deref(), Some("doomed"));
    assert_eq!(events[0].data["reason"], "metadata_downgraded");
    assert_eq!(events[0].data["status"], "REVOKED");
    assert_eq!(events[0].data["passkey"]["id"], doomed.to_string());
    // A later BLOB that still revokes it flags nothing again, and records no second flag.
    let again = f
        .import(f.pki.blob(3, "2027-03-01", &f.models(REVOKED)))
        .await
        .unwrap();
    assert_eq!(again.flagged_passkeys, 0);
    assert_eq!(flags().await.len(), 1);
}
