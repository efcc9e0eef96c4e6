//! What a finished ceremony tells the browser (Signal API) and the backend (the validation's
//! report), and device binding, on both databases: the accepted-credentials list without revoked
//! passkeys, user details only after a change, "unknown credential" only for a credential the
//! tenant never had; a bound device known, new after revocation, failed signatures reported and
//! bad keys refused without using the ceremony up; concurrent first sightings binding one device.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, TimeZone, Utc};
use latchkey_core::{
    Error, ErrorCode, ManualClock, Services,
    access::{OperatorIdentity, TenantAccess},
    audit::RequestMeta,
    both_backends,
    end_users::{
        CeremonyReport, DeviceProof, DeviceStatus, EnrollmentRequest, RiskSignal, SignedIn,
        ValidationOutcome,
    },
    testing::{
        TestBackend, TestDb, device_key::DeviceKey, insert_operator, shop,
        soft_passkey::SoftPasskeys,
    },
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

both_backends!(
    signals_list_active_passkeys_and_changed_names,
    unknown_credential_is_signalled_only_for_a_credential_the_tenant_never_had,
    a_bound_device_is_known_and_new_again_after_revocation,
    bad_device_keys_are_refused_and_failed_signatures_reported,
    concurrent_first_sightings_bind_one_device,
    conditional_create_accepts_a_passkey_made_without_user_presence,
    bound_devices_move_with_an_exported_tenant,
    a_user_with_more_passkeys_than_a_list_holds_signs_in_without_a_list,
);

use latchkey_core::testing::shop::ORIGIN;

struct Fixture {
    _db: TestDb,
    conn: DatabaseConnection,
    clock: ManualClock,
    services: Services,
    tenant: Uuid,
    owner: OperatorIdentity,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()));
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let tenant = shop::create(&services, &owner).await;
    Some(Fixture {
        _db: db,
        conn,
        clock,
        services,
        tenant,
        owner,
    })
}

impl Fixture {
    async fn access(&self) -> TenantAccess {
        latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await
    }

    async fn token(&self, user: &str, username: Option<&str>) -> String {
        self.services
            .end_users()
            .issue_enrollment_token(
                &self.access().await,
                user,
                EnrollmentRequest {
                    username: username.map(str::to_owned),
                    scopes: vec![latchkey_core::end_users::Scope::AddAuthenticators],
                    ..EnrollmentRequest::default()
                },
                RequestMeta::default(),
            )
            .await
            .unwrap()
            .token
    }

    /// Registers through the real ceremony, binding `device` when given.
    async fn register(
        &self,
        user: &str,
        passkeys: &mut SoftPasskeys,
        device: Option<&DeviceKey>,
    ) -> latchkey_core::end_users::Registered {
        let token = self.token(user, None).await;
        let users = self.services.end_users();
        let options = users
            .begin_registration(&token, RequestMeta::default())
            .await
            .unwrap();
        let credential = passkeys.register(ORIGIN, &options.public_key).unwrap();
        let proof = device.map(|d| d.proof(&credential, false).unwrap());
        users
            .finish_registration(
                &token,
                &options.ceremony_id,
                &credential.to_string(),
                None,
                proof.as_ref(),
                RequestMeta::default(),
            )
            .await
            .unwrap()
    }

    /// A discoverable sign-in; `prove` makes the device proof from the assertion.
    async fn sign_in_with(
        &self,
        passkeys: &mut SoftPasskeys,
        prove: impl FnOnce(&serde_json::Value) -> Option<DeviceProof>,
    ) -> latchkey_core::Result<SignedIn> {
        let users = self.services.end_users();
        let options = users.begin_authentication(self.tenant, None).await?;
        let assertion = passkeys.authenticate(ORIGIN, &options.public_key).unwrap();
        let proof = prove(&assertion);
        users
            .finish_authentication(
                self.tenant,
                &options.ceremony_id,
                &assertion.to_string(),
                proof.as_ref(),
                RequestMeta::default(),
            )
            .await
    }

    async fn sign_in(
        &self,
        passkeys: &mut SoftPasskeys,
        device: Option<&DeviceKey>,
    ) -> latchkey_core::Result<SignedIn> {
        self.sign_in_with(passkeys, |a| device.map(|d| d.proof(a, false).unwrap()))
            .await
    }

    /// Validates a token as the tenant's backend does: its report.
    async fn report(&self, token: &str) -> CeremonyReport {
        let key = self
            .services
            .api_keys()
            .create(&self.access().await, "backend", RequestMeta::default())
            .await
            .unwrap();
        let backend = self
            .services
            .api_keys()
            .authenticate(&key.secret)
            .await
            .unwrap();
        match self
            .services
            .end_users()
            .validate_token(&backend.access(), token, RequestMeta::default())
            .await
            .unwrap()
        {
            ValidationOutcome::Valid(v) => *v.report.expect("a report"),
            other => panic!("not valid: {other:?}"),
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        latchkey_core::testing::count(&self.conn, sql).await
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn signals_list_active_passkeys_and_changed_names(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut laptop = SoftPasskeys::new();
    let mut phone = SoftPasskeys::new();
    let first = f.register("ada", &mut laptop, None).await;
    let handle = b64(&laptop.credentials()[0].user_handle);
    let laptop_id = b64(&laptop.credentials()[0].id);
    assert_eq!(first.signals.rp_id, "shop.example.com");
    assert_eq!(first.signals.user_id, handle);
    assert_eq!(
        first.signals.all_accepted_credential_ids,
        Some(vec![laptop_id.clone()])
    );
    assert_eq!(first.signals.current_user_details, None);

    let second = f.register("ada", &mut phone, None).await;
    let phone_id = b64(&phone.credentials()[0].id);
    let mut accepted = second.signals.all_accepted_credential_ids.clone().unwrap();
    accepted.sort();
    let mut both = vec![laptop_id.clone(), phone_id.clone()];
    both.sort();
    assert_eq!(accepted, both);

    // Support revokes the phone: the laptop's next sign-in lists the laptop alone.
    f.services
        .end_users()
        .revoke_authenticator(
            &f.access().await,
            "ada",
            second.authenticator.id,
            "Lost",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    f.clock.advance(Duration::minutes(1));
    let signed_in = f.sign_in(&mut laptop, None).await.unwrap();
    assert_eq!(
        signed_in.signals.all_accepted_credential_ids,
        Some(vec![laptop_id.clone()])
    );
    assert_eq!(signed_in.signals.user_id, handle);
    assert_eq!(signed_in.signals.current_user_details, None);

    // The backend renames the user: the next sign-in carries the new names, once.
    f.clock.advance(Duration::minutes(1));
    f.token("ada", Some("ada@new.example")).await;
    f.clock.advance(Duration::minutes(1));
    let renamed = f.sign_in(&mut laptop, None).await.unwrap();
    let details = renamed.signals.current_user_details.unwrap();
    assert_eq!(details.name, "ada@new.example");
    assert_eq!(details.display_name, "ada@new.example");
    f.clock.advance(Duration::minutes(1));
    let again = f.sign_in(&mut laptop, None).await.unwrap();
    assert_eq!(again.signals.current_user_details, None);
}

async fn unknown_credential_is_signalled_only_for_a_credential_the_tenant_never_had(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let users = f.services.end_users();
    // A passkey the tenant never stored (made for another relying party's registration).
    let mut stranger = SoftPasskeys::new();
    let other = f.token("someone", None).await;
    let options = users
        .begin_registration(&other, RequestMeta::default())
        .await
        .unwrap();
    stranger.register(ORIGIN, &options.public_key).unwrap();
    let err = f.sign_in(&mut stranger, None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CredentialUnknown);
    assert!(err.signals_unknown_credential());

    // A revoked passkey of a known user: `credential_revoked`, never "unknown".
    let mut revoked = SoftPasskeys::new();
    let registered = f.register("bob", &mut revoked, None).await;
    users
        .revoke_authenticator(
            &f.access().await,
            "bob",
            registered.authenticator.id,
            "Stolen",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let err = f.sign_in(&mut revoked, None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CredentialRevoked);
    assert!(!err.signals_unknown_credential());

    // Another user's passkey, presented for a named user: unknown to this sign-in, but the
    // tenant has it, so the browser is not told to forget it.
    let mut carol = SoftPasskeys::new();
    f.register("carol", &mut carol, None).await;
    f.register("dave", &mut SoftPasskeys::new(), None).await;
    let options = users
        .begin_authentication(f.tenant, Some("dave"))
        .await
        .unwrap();
    let mut public_key = options.public_key.clone();
    public_key["allowCredentials"] = serde_json::json!([]);
    let assertion = carol.authenticate(ORIGIN, &public_key).unwrap();
    let err = users
        .finish_authentication(
            f.tenant,
            &options.ceremony_id,
            &assertion.to_string(),
            None,
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CredentialUnknown);
    assert!(!err.signals_unknown_credential());
    assert!(matches!(err, Error::UnknownCredential { to_tenant: false }));
}

async fn a_bound_device_is_known_and_new_again_after_revocation(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let device = DeviceKey::new().unwrap();
    let mut passkeys = SoftPasskeys::new();
    let registered = f.register("ada", &mut passkeys, Some(&device)).await;
    let sign_up = f.report(&registered.token).await;
    assert_eq!(sign_up.device.status, DeviceStatus::New);
    let device_id = sign_up.device.id.unwrap();
    assert_eq!(sign_up.first_sign_in, None);
    assert_eq!(sign_up.authenticator.id, registered.authenticator.id);
    assert!(
        sign_up.risk_signals.is_empty(),
        "{:?}",
        sign_up.risk_signals
    );

    f.clock.advance(Duration::minutes(5));
    let first = f.sign_in(&mut passkeys, Some(&device)).await.unwrap();
    let first = f.report(&first.token).await;
    assert_eq!(first.device.status, DeviceStatus::Known);
    assert_eq!(first.device.id, Some(device_id));
    assert_eq!(
        first.device.first_seen_at,
        Some(sign_up.device.first_seen_at.unwrap())
    );
    assert_eq!(first.first_sign_in, Some(true));
    assert_eq!(first.sign_in_count, Some(1));
    assert_eq!(first.last_used_at, None);
    assert!(first.risk_signals.is_empty(), "{:?}", first.risk_signals);
    let first_at = latchkey_core::Clock::now(&f.clock);

    f.clock.advance(Duration::minutes(5));
    let second = f.sign_in(&mut passkeys, Some(&device)).await.unwrap();
    let second = f.report(&second.token).await;
    assert_eq!(second.first_sign_in, Some(false));
    assert_eq!(second.sign_in_count, Some(2));
    assert_eq!(second.last_used_at, Some(first_at));

    // No device key: `none`, and nothing to hold against the user.
    let bare = f.sign_in(&mut passkeys, None).await.unwrap();
    let bare = f.report(&bare.token).await;
    assert_eq!(bare.device.status, DeviceStatus::None);
    assert!(bare.risk_signals.is_empty());

    let users = f.services.end_users();
    let access = f.access().await;
    let devices = users.devices(&access, "ada").await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].id, device_id);
    assert_eq!(devices[0].sign_in_count, 2);

    // Revoked: forgotten, so its next sign-in is a new device again.
    users
        .revoke_device(&access, "ada", device_id, RequestMeta::default())
        .await
        .unwrap();
    assert!(users.devices(&access, "ada").await.unwrap().is_empty());
    let again = users
        .revoke_device(&access, "ada", device_id, RequestMeta::default())
        .await;
    assert_eq!(again.unwrap_err().code(), ErrorCode::NotFound);
    let after = f.sign_in(&mut passkeys, Some(&device)).await.unwrap();
    let after = f.report(&after.token).await;
    assert_eq!(after.device.status, DeviceStatus::New);
    assert_eq!(after.risk_signals, vec![RiskSignal::NewDevice]);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM audit_events WHERE action = 'device.bound'")
            .await,
        2
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM audit_events WHERE action = 'device.revoked'")
            .await,
        1
    );

    // Another user on the same browser: the key is new to them, and their devices are theirs.
    let mut bobs = SoftPasskeys::new();
    f.register("bob", &mut bobs, None).await;
    let bob = f.sign_in(&mut bobs, Some(&device)).await.unwrap();
    let bob = f.report(&bob.token).await;
    assert_eq!(bob.device.status, DeviceStatus::New);
    assert_ne!(bob.device.id, Some(device_id));
    assert_eq!(users.devices(&access, "ada").await.unwrap().len(), 1);
    // Bob's device is not Ada's to revoke.
    let foreign = users
        .revoke_device(
            &access,
            "ada",
            bob.device.id.unwrap(),
            RequestMeta::default(),
        )
        .await;
    assert_eq!(foreign.unwrap_err().code(), ErrorCode::NotFound);
}

async fn bad_device_keys_are_refused_and_failed_signatures_reported(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let device = DeviceKey::new().unwrap();
    let mut passkeys = SoftPasskeys::new();
    f.register("ada", &mut passkeys, Some(&device)).await;
    let users = f.services.end_users();

    // Malformed keys and signatures: `invalid_request` naming the member, the ceremony not
    // used up (the same response then signs in).
    let options = users.begin_authentication(f.tenant, None).await.unwrap();
    let assertion = passkeys.authenticate(ORIGIN, &options.public_key).unwrap();
    let good = device.proof(&assertion, true).unwrap();
    let long = "A".repeat(100_000);
    for (proof, field) in [
        (
            DeviceProof {
                public_key: "not base64!".into(),
                signature: good.signature.clone(),
            },
            "device.public_key",
        ),
        (
            DeviceProof {
                public_key: b64(b"not a key"),
                signature: good.signature.clone(),
            },
            "device.public_key",
        ),
        (
            DeviceProof {
                public_key: long.clone(),
                signature: good.signature.clone(),
            },
            "device.public_key",
        ),
        (
            DeviceProof {
                public_key: good.public_key.clone(),
                signature: long.clone(),
            },
            "device.signature",
        ),
        (
            DeviceProof {
                public_key: good.public_key.clone(),
                signature: String::new(),
            },
            "device.signature",
        ),
    ] {
        let before = f.count("SELECT COUNT(*) FROM audit_events").await;
        let err = users
            .finish_authentication(
                f.tenant,
                &options.ceremony_id,
                &assertion.to_string(),
                Some(&proof),
                RequestMeta::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert_eq!(err.field(), Some(field));
        assert_eq!(f.count("SELECT COUNT(*) FROM audit_events").await, before);
    }
    // The DER form (Android, iOS) verifies like the raw one.
    let signed_in = users
        .finish_authentication(
            f.tenant,
            &options.ceremony_id,
            &assertion.to_string(),
            Some(&good),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        f.report(&signed_in.token).await.device.status,
        DeviceStatus::Known
    );

    // A signature over anything else: the sign-in succeeds, the device is not recognised and
    // the failure is a risk signal; nothing is bound.
    for wrong in [
        |d: &DeviceKey, _: &serde_json::Value| d.proof_over(b"another ceremony", false).unwrap(),
        |_: &DeviceKey, a: &serde_json::Value| {
            DeviceKey::new()
                .unwrap()
                .proof(a, false)
                .map(|mut p| {
                    // Another key's signature under this device's public key.
                    p.public_key = String::new();
                    p
                })
                .unwrap()
        },
    ] {
        let signed_in = f
            .sign_in_with(&mut passkeys, |a| {
                let mut proof = wrong(&device, a);
                if proof.public_key.is_empty() {
                    proof.public_key = device.public_key().unwrap();
                }
                Some(proof)
            })
            .await
            .unwrap();
        let report = f.report(&signed_in.token).await;
        assert_eq!(report.device.status, DeviceStatus::None);
        assert_eq!(report.device.id, None);
        assert_eq!(report.risk_signals, vec![RiskSignal::DeviceKeyFailed]);
    }
    assert_eq!(f.count("SELECT COUNT(*) FROM devices").await, 1);
    let devices = users.devices(&f.access().await, "ada").await.unwrap();
    assert_eq!(devices[0].sign_in_count, 1);
}

async fn concurrent_first_sightings_bind_one_device(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // A synced passkey (no counter): every one of the concurrent sign-ins may succeed.
    let mut passkeys = SoftPasskeys::new();
    passkeys.counter_step = 0;
    passkeys.backed_up = true;
    f.register("ada", &mut passkeys, None).await;
    let device = DeviceKey::new().unwrap();
    let users = f.services.end_users();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let options = users.begin_authentication(f.tenant, None).await.unwrap();
        let assertion = passkeys.authenticate(ORIGIN, &options.public_key).unwrap();
        let proof = device.proof(&assertion, false).unwrap();
        let services = f.services.clone();
        let tenant = f.tenant;
        tasks.spawn(async move {
            services
                .end_users()
                .finish_authentication(
                    tenant,
                    &options.ceremony_id,
                    &assertion.to_string(),
                    Some(&proof),
                    RequestMeta::default(),
                )
                .await
                .map(|s| s.token)
                .map_err(|e| e.code())
        });
    }
    let mut tokens = Vec::new();
    while let Some(done) = tasks.join_next().await {
        tokens.push(done.unwrap().unwrap());
    }
    let mut ids = Vec::new();
    for token in &tokens {
        let report = f.report(token).await;
        assert_ne!(report.device.status, DeviceStatus::None);
        ids.push(report.device.id.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one device id for every report: {ids:?}");
    assert_eq!(f.count("SELECT COUNT(*) FROM devices").await, 1);
    let devices = users.devices(&f.access().await, "ada").await.unwrap();
    assert_eq!(devices[0].sign_in_count, tokens.len() as i64);
}

async fn conditional_create_accepts_a_passkey_made_without_user_presence(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let users = f.services.end_users();
    // A password manager's automatic upgrade: no user presence, no user verification.
    let mut upgrade = SoftPasskeys::new();
    upgrade.user_present = false;
    upgrade.user_verified = false;
    let token = f.token("ada", None).await;
    let finish = |options: latchkey_core::end_users::ClientCeremony,
                  credential: serde_json::Value| {
        let services = f.services.clone();
        let token = token.clone();
        async move {
            services
                .end_users()
                .finish_registration(
                    &token,
                    &options.ceremony_id,
                    &credential.to_string(),
                    None,
                    None,
                    RequestMeta::default(),
                )
                .await
        }
    };
    // An ordinary ceremony requires presence: refused, nothing stored.
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let credential = upgrade
        .clone()
        .register(ORIGIN, &options.public_key)
        .unwrap();
    assert!(finish(options, credential).await.is_err());
    assert_eq!(f.count("SELECT COUNT(*) FROM authenticators").await, 0);

    // Started as conditional: accepted, and the audit event says how it was made.
    let options = users
        .begin_registration_as(&token, true, RequestMeta::default())
        .await
        .unwrap();
    let credential = upgrade.register(ORIGIN, &options.public_key).unwrap();
    let registered = finish(options, credential).await.unwrap();
    assert!(!registered.authenticator.user_verified);
    assert_eq!(
        f.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'authenticator.registered' \
             AND REPLACE(CAST(details AS TEXT), ' ', '') LIKE '%\"conditional\":true%' \
             AND REPLACE(CAST(details AS TEXT), ' ', '') LIKE '%\"user_present\":false%'"
        )
        .await,
        1
    );
    // And it signs in (with presence, as every sign-in needs).
    upgrade.user_present = true;
    let signed_in = f.sign_in(&mut upgrade, None).await.unwrap();
    let report = f.report(&signed_in.token).await;
    assert_eq!(report.first_sign_in, Some(true));
    assert_eq!(report.risk_signals, vec![RiskSignal::UserNotVerified]);
}

async fn bound_devices_move_with_an_exported_tenant(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let device = DeviceKey::new().unwrap();
    let mut passkeys = SoftPasskeys::new();
    f.register("ada", &mut passkeys, Some(&device)).await;
    let mut out = Vec::new();
    let counts = f.services.export_tenant(f.tenant, &mut out).await.unwrap();
    assert_eq!((counts.users, counts.passkeys, counts.devices), (1, 1, 1));
    let text = String::from_utf8(out).unwrap();
    assert!(text.lines().next().unwrap().contains("\"version\":2"));

    // Onto another instance: the device is known there at once.
    let Some(other) = fixture(backend).await else {
        return;
    };
    // The other instance's own shop is in the way of nothing: the import keeps the tenant id.
    let (tenant, imported) = other
        .services
        .import_tenant(text.as_bytes(), Some("owner@shop.test"))
        .await
        .unwrap();
    assert_eq!(tenant, f.tenant);
    assert_eq!(imported.devices, 1);
    let moved = Fixture { tenant, ..other };
    let signed_in = moved.sign_in(&mut passkeys, Some(&device)).await.unwrap();
    assert_eq!(
        moved.report(&signed_in.token).await.device.status,
        DeviceStatus::Known
    );

    // A device whose user is not in the file: the whole file is refused.
    let user_line = text.lines().nth(1).unwrap().to_owned();
    let orphaned: Vec<&str> = text.lines().filter(|l| *l != user_line).collect();
    let Some(third) = fixture(backend).await else {
        return;
    };
    let err = third
        .services
        .import_tenant(orphaned.join("\n").as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(third.count("SELECT COUNT(*) FROM devices").await, 0);
}

async fn a_user_with_more_passkeys_than_a_list_holds_signs_in_without_a_list(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // 101 passkeys, then the one that signs in: more than a sign-in reads with its passkey.
    let mut oldest = SoftPasskeys::new();
    f.register("collector", &mut oldest, None).await;
    for _ in 0..100 {
        f.register("collector", &mut SoftPasskeys::new(), None)
            .await;
    }
    let mut newest = SoftPasskeys::new();
    f.register("collector", &mut newest, None).await;
    for passkeys in [&mut newest, &mut oldest] {
        let signed_in = f.sign_in(passkeys, None).await.unwrap();
        assert_eq!(signed_in.signals.all_accepted_credential_ids, None);
        assert_eq!(f.report(&signed_in.token).await.sign_in_count, Some(1));
    }
}
