//! End users' WebAuthn ceremonies against a tenant's relying party, on both databases, with a
//! software authenticator producing real responses: the options honour the tenant's
//! configuration, Android origins verify, and every verification step we own refuses with its
//! precise code while changing nothing but the consumed ceremony and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    abuse::AbuseLimits,
    access::OperatorIdentity,
    audit::RequestMeta,
    both_backends,
    end_users::{ClientCeremony, EnrollmentRequest, Scope},
    tenants::NewTenant,
    tenants::config::{Algorithm, Attachment, Attestation, PasskeyConfigInput, Requirement},
    testing::{
        TestBackend, TestDb, all_rows_as_text, insert_operator,
        soft_passkey::{self, SoftPasskeys, flags},
    },
};
use serde_json::Value;
use uuid::Uuid;

both_backends!(
    every_algorithm_the_soft_authenticator_has_registers_and_signs_in,
    the_options_follow_the_tenants_configuration,
    android_apps_register_and_sign_in,
    each_sign_in_check_refuses_with_its_code_and_changes_nothing,
    a_sign_count_that_goes_backwards_is_refused_and_flagged,
    concurrent_sign_ins_never_move_the_counter_back,
    one_response_verified_fifty_times_on_two_instances_signs_in_once,
    sign_in_options_do_not_tell_which_users_exist,
    replayed_and_expired_ceremonies_are_refused,
    each_registration_check_refuses_and_keeps_the_token,
    a_credential_id_registered_twice_is_refused,
    one_source_holds_a_bounded_number_of_unfinished_ceremonies,
    refusals_presenting_nothing_real_are_counted_not_written
);

const ORIGIN: &str = "https://shop.example.com";
const APK_HASH: [u8; 32] = [0x5a; 32];

struct Fixture {
    _db: TestDb,
    services: Services,
    clock: ManualClock,
    conn: sea_orm::DatabaseConnection,
    owner: OperatorIdentity,
    tenant: Uuid,
}

fn android_origin() -> String {
    format!("android:apk-key-hash:{}", URL_SAFE_NO_PAD.encode(APK_HASH))
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()));
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let tenant = services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![ORIGIN.into(), android_origin()],
            enable_passkeys: true,
            owner_email: Some(owner.email.clone()),
        })
        .await
        .unwrap();
    Some(Fixture {
        _db: db,
        services,
        clock,
        conn,
        owner,
        tenant,
    })
}

impl Fixture {
    async fn configure(&self, change: impl FnOnce(&mut PasskeyConfigInput)) {
        let details = self
            .services
            .tenants()
            .get(&latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await)
            .await
            .unwrap();
        let config = details.config;
        let mut input = PasskeyConfigInput {
            enabled: config.enabled,
            rp_id: config.rp_id.clone().unwrap_or_default(),
            rp_name: config.rp_name.clone().unwrap_or_default(),
            origins: config
                .origins
                .iter()
                .map(|o| o.as_client_origin())
                .collect::<Vec<_>>()
                .join("\n"),
            related_origins: String::new(),
            ios_app_ids: String::new(),
            attestation: config.attestation,
            user_verification: config.user_verification,
            resident_key: config.resident_key,
            attachment: config.attachment,
            algorithms: config.algorithms.clone(),
            timeout_seconds: config.timeout_seconds,
            confirm_rp_id_change: false,
        };
        change(&mut input);
        self.services
            .tenants()
            .update_passkey_config(
                &latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await,
                &input,
                config.version,
                RequestMeta::default(),
            )
            .await
            .unwrap();
    }

    async fn token(&self, user: &str) -> String {
        self.services
            .end_users()
            .issue_enrollment_token(
                &latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await,
                user,
                EnrollmentRequest {
                    scopes: vec![Scope::AddAuthenticators],
                    ..EnrollmentRequest::default()
                },
                RequestMeta::default(),
            )
            .await
            .unwrap()
            .token
    }

    async fn register_at(
        &self,
        token: &str,
        origin: &str,
        passkeys: &mut SoftPasskeys,
    ) -> latchkey_core::Result<Uuid> {
        let users = self.services.end_users();
        let options = users
            .begin_registration(token, RequestMeta::default())
            .await?;
        let credential = passkeys.register(origin, &options.public_key).unwrap();
        Ok(users
            .finish_registration(
                token,
                &options.ceremony_id,
                &credential.to_string(),
                None,
                None,
                RequestMeta::default(),
            )
            .await?
            .authenticator
            .id)
    }

    async fn register(&self, user: &str, passkeys: &mut SoftPasskeys) -> Uuid {
        let token = self.token(user).await;
        self.register_at(&token, ORIGIN, passkeys).await.unwrap()
    }

    async fn options(&self, user: Option<&str>) -> ClientCeremony {
        self.services
            .end_users()
            .begin_authentication(self.tenant, user)
            .await
            .unwrap()
    }

    async fn finish(
        &self,
        options: &ClientCeremony,
        credential: &Value,
    ) -> latchkey_core::Result<String> {
        self.services
            .end_users()
            .finish_authentication(
                self.tenant,
                &options.ceremony_id,
                &credential.to_string(),
                None,
                RequestMeta::default(),
            )
            .await
            .map(|signed_in| signed_in.token)
    }

    async fn finish_registration(
        &self,
        token: &str,
        options: &ClientCeremony,
        credential: Value,
    ) -> latchkey_core::Result<latchkey_core::end_users::Registered> {
        self.services
            .end_users()
            .finish_registration(
                token,
                &options.ceremony_id,
                &credential.to_string(),
                None,
                None,
                RequestMeta::default(),
            )
            .await
    }

    /// Every row of the database but the spec's two exceptions to "a refusal changes
    /// nothing": ceremonies (the presented one is consumed) and the audit log.
    async fn state(&self) -> Vec<String> {
        all_rows_as_text(&self.conn)
            .await
            .into_iter()
            // A refusal uses up its ceremony (a stored one's row, a sealed one's recorded use)
            // and is audited; the instances' shared keys are made on first use.
            .filter(|(table, _)| {
                !matches!(
                    table.as_str(),
                    "ceremonies" | "ceremony_uses" | "audit_events" | "instance_keys"
                )
            })
            .map(|(table, row)| format!("{table}: {row}"))
            .collect()
    }

    /// The user's passkeys, as the owner sees them.
    async fn passkeys(&self, user: &str) -> Vec<latchkey_core::end_users::AuthenticatorView> {
        self.services
            .end_users()
            .authenticators(
                &latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await,
                user,
            )
            .await
            .unwrap()
    }

    async fn failures(&self) -> Vec<String> {
        // Refusals that presented nothing real are counted first, then written in aggregate.
        self.services.flush_refusals().await.unwrap();
        self.services
            .audit()
            .recent(Some(self.tenant), 500)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| e.error_code)
            .collect()
    }
}

fn challenge(options: &ClientCeremony) -> String {
    options.public_key["challenge"].as_str().unwrap().to_owned()
}

/// ES256 and ES384 (RS256, the tenant's third choice, has no software authenticator here).
async fn every_algorithm_the_soft_authenticator_has_registers_and_signs_in(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    for (algorithm, cose) in [
        (Algorithm::Es256, soft_passkey::ES256),
        (Algorithm::Es384, soft_passkey::ES384),
    ] {
        f.configure(|c| c.algorithms = vec![algorithm]).await;
        let user = format!("user-{cose}");
        let mut device = SoftPasskeys::new();
        device.algorithm = cose;
        f.register(&user, &mut device).await;
        for named in [Some(user.as_str()), None] {
            let options = f.options(named).await;
            let response = device.authenticate(ORIGIN, &options.public_key).unwrap();
            let token = f.finish(&options, &response).await.unwrap();
            assert!(token.starts_with("lk_val_"), "{algorithm:?}");
        }
        // A device with only the other algorithm cannot register here.
        let mut other = SoftPasskeys::new();
        other.algorithm = if cose == soft_passkey::ES256 {
            soft_passkey::ES384
        } else {
            soft_passkey::ES256
        };
        let token = f.token("someone-else").await;
        let options = f
            .services
            .end_users()
            .begin_registration(&token, RequestMeta::default())
            .await
            .unwrap();
        assert!(other.register(ORIGIN, &options.public_key).is_err());
    }
}

async fn the_options_follow_the_tenants_configuration(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    f.configure(|c| {
        c.user_verification = Requirement::Required;
        c.resident_key = Requirement::Required;
        c.attachment = Attachment::Platform;
        c.attestation = Attestation::Direct;
        c.algorithms = vec![Algorithm::Es256, Algorithm::Es384];
        c.timeout_seconds = 120;
        c.rp_name = "Example Shop".into();
    })
    .await;
    let token = f.token("user-1").await;
    let options = f
        .services
        .end_users()
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let pk = &options.public_key;
    assert_eq!(pk["rp"]["id"], "shop.example.com");
    assert_eq!(pk["rp"]["name"], "Example Shop");
    assert_eq!(pk["attestation"], "direct");
    assert_eq!(pk["timeout"], 120_000);
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        pk["authenticatorSelection"]["authenticatorAttachment"],
        "platform"
    );
    let algs: Vec<i64> = pk["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect();
    assert_eq!(algs, vec![-7, -35]);
    // No nulls anywhere: parseCreationOptionsFromJSON takes it as it is.
    assert!(!pk.to_string().contains("null"));

    // Enforced at verification too: a cross-platform authenticator is refused...
    let mut key = SoftPasskeys::new();
    key.attachment = "cross-platform";
    let err = f.register_at(&token, ORIGIN, &mut key).await.unwrap_err();
    assert_eq!(
        (err.code(), err.field()),
        (ErrorCode::InvalidRequest, Some("credential"))
    );
    // ...and with RS256 only, an ES256 passkey is refused by the server (not just the client).
    f.configure(|c| c.algorithms = vec![Algorithm::Rs256]).await;
    let users = f.services.end_users();
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let mut forged = options.public_key.clone();
    forged["pubKeyCredParams"] = serde_json::json!([{ "type": "public-key", "alg": -7 }]);
    let credential = SoftPasskeys::new().register(ORIGIN, &forged).unwrap();
    let err = users
        .finish_registration(
            &token,
            &options.ceremony_id,
            &credential.to_string(),
            None,
            None,
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    f.configure(|c| {
        c.algorithms = vec![Algorithm::Es256];
        c.attachment = Attachment::Any;
    })
    .await;
    // The sign-in options carry the tenant's user verification and timeout.
    f.register("user-1", &mut SoftPasskeys::new()).await;
    let options = f.options(Some("user-1")).await;
    assert_eq!(options.public_key["userVerification"], "required");
    assert_eq!(options.public_key["rpId"], "shop.example.com");
    assert_eq!(options.public_key["timeout"], 120_000);
    assert_eq!(
        options.public_key["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let discoverable = f.options(None).await;
    assert_eq!(
        discoverable.public_key["allowCredentials"],
        serde_json::json!([])
    );
}

async fn android_apps_register_and_sign_in(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    let token = f.token("user-1").await;
    f.register_at(&token, &android_origin(), &mut phone)
        .await
        .unwrap();
    let options = f.options(Some("user-1")).await;
    let credential = phone
        .authenticate(&android_origin(), &options.public_key)
        .unwrap();
    let validation = f.finish(&options, &credential).await.unwrap();
    assert!(validation.starts_with("lk_val_"));
    // Another app (another signing certificate) is not this tenant's.
    let other = format!(
        "android:apk-key-hash:{}",
        URL_SAFE_NO_PAD.encode([0x11u8; 32])
    );
    let options = f.options(None).await;
    let credential = phone.authenticate(&other, &options.public_key).unwrap();
    assert_eq!(
        f.finish(&options, &credential).await.unwrap_err().code(),
        ErrorCode::OriginMismatch
    );
}

async fn each_sign_in_check_refuses_with_its_code_and_changes_nothing(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    f.register("user-1", &mut phone).await;
    let mut other_user = SoftPasskeys::new();
    f.register("user-2", &mut other_user).await;
    let revoked = f.register("user-3", &mut SoftPasskeys::new()).await;
    let mut revoked_key = SoftPasskeys::new();
    let revoked_id = f.register("user-3", &mut revoked_key).await;
    let _ = revoked;
    f.services
        .end_users()
        .revoke_authenticator(
            &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
            "user-3",
            revoked_id,
            "lost",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    // The same relying party in another tenant: its passkeys are not this tenant's.
    let elsewhere = f
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop (staging)".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![ORIGIN.into()],
            enable_passkeys: true,
            owner_email: Some(f.owner.email.clone()),
        })
        .await
        .unwrap();
    let mut staging = SoftPasskeys::new();
    let staging_token = f
        .services
        .end_users()
        .issue_enrollment_token(
            &latchkey_core::testing::access(&f.services, &f.owner, elsewhere).await,
            "user-1",
            EnrollmentRequest::default(),
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .token;
    let users = f.services.end_users();
    let o = users
        .begin_registration(&staging_token, RequestMeta::default())
        .await
        .unwrap();
    let c = staging.register(ORIGIN, &o.public_key).unwrap();
    users
        .finish_registration(
            &staging_token,
            &o.ceremony_id,
            &c.to_string(),
            None,
            None,
            RequestMeta::default(),
        )
        .await
        .unwrap();

    let before = f.state().await;
    let cred = phone.credentials()[0].clone();
    let uv = flags::UP | flags::UV;
    type Case = (
        &'static str,
        Option<&'static str>,
        ErrorCode,
        Box<dyn Fn(&ClientCeremony) -> Value>,
    );
    let cases: Vec<Case> = vec![
        (
            "wrong type",
            None,
            ErrorCode::CeremonyInvalid,
            Box::new({
                let cred = cred.clone();
                move |o| {
                    soft_passkey::assertion_of_type(
                        &cred,
                        uv,
                        "webauthn.create",
                        &challenge(o),
                        ORIGIN,
                    )
                }
            }),
        ),
        (
            "wrong challenge",
            None,
            ErrorCode::ChallengeMismatch,
            Box::new({
                let cred = cred.clone();
                move |_| {
                    soft_passkey::assertion(&cred, uv, &URL_SAFE_NO_PAD.encode([9u8; 32]), ORIGIN)
                }
            }),
        ),
        (
            "wrong origin",
            None,
            ErrorCode::OriginMismatch,
            Box::new({
                let cred = cred.clone();
                move |o| {
                    soft_passkey::assertion(
                        &cred,
                        uv,
                        &challenge(o),
                        "https://shop.example.com.evil.test",
                    )
                }
            }),
        ),
        (
            "wrong RP ID hash",
            None,
            ErrorCode::RpIdMismatch,
            Box::new({
                let mut cred = cred.clone();
                cred.rp_id = "evil.test".into();
                move |o| soft_passkey::assertion(&cred, uv, &challenge(o), ORIGIN)
            }),
        ),
        (
            "user not present",
            None,
            ErrorCode::InvalidRequest,
            Box::new({
                let cred = cred.clone();
                move |o| soft_passkey::assertion(&cred, flags::UV, &challenge(o), ORIGIN)
            }),
        ),
        (
            "unknown credential",
            None,
            ErrorCode::CredentialUnknown,
            Box::new(|o| {
                let mut stranger = SoftPasskeys::new();
                let mut options = o.public_key.clone();
                options["rp"] = serde_json::json!({ "id": "shop.example.com", "name": "x" });
                options["user"] =
                    serde_json::json!({ "id": "AAAA", "name": "x", "displayName": "x" });
                options["pubKeyCredParams"] =
                    serde_json::json!([{ "type": "public-key", "alg": -7 }]);
                stranger.register(ORIGIN, &options).unwrap();
                stranger.authenticate(ORIGIN, &o.public_key).unwrap()
            }),
        ),
        (
            "another user's credential",
            Some("user-2"),
            ErrorCode::CredentialUnknown,
            Box::new({
                let cred = cred.clone();
                move |o| soft_passkey::assertion(&cred, uv, &challenge(o), ORIGIN)
            }),
        ),
        (
            "another tenant's credential",
            None,
            ErrorCode::CredentialUnknown,
            Box::new({
                let cred = staging.credentials()[0].clone();
                move |o| soft_passkey::assertion(&cred, uv, &challenge(o), ORIGIN)
            }),
        ),
        (
            "user handle of another user",
            None,
            ErrorCode::CredentialUnknown,
            Box::new({
                let mut cred = cred.clone();
                cred.user_handle = other_user.credentials()[0].user_handle.clone();
                move |o| soft_passkey::assertion(&cred, uv, &challenge(o), ORIGIN)
            }),
        ),
        (
            "revoked credential",
            None,
            ErrorCode::CredentialRevoked,
            Box::new({
                let cred = revoked_key.credentials()[0].clone();
                move |o| soft_passkey::assertion(&cred, uv, &challenge(o), ORIGIN)
            }),
        ),
    ];
    for (name, user, code, respond) in &cases {
        let options = f.options(*user).await;
        let err = f.finish(&options, &respond(&options)).await.unwrap_err();
        assert_eq!(err.code(), *code, "{name}: {err}");
        assert_eq!(f.state().await, before, "{name} changed something");
    }
    // UV missing when the tenant requires it.
    f.configure(|c| c.user_verification = Requirement::Required)
        .await;
    let options = f.options(Some("user-1")).await;
    let without_uv = soft_passkey::assertion(&cred, flags::UP, &challenge(&options), ORIGIN);
    let err = f.finish(&options, &without_uv).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UserVerificationRequired);
    assert_eq!(f.state().await, before);
    // Each refusal is in the audit log, with its code.
    let failures = f.failures().await;
    for (name, _, code, _) in &cases {
        assert!(
            failures.contains(&code.as_str().to_owned()),
            "{name} not audited"
        );
    }
    // And the genuine response still works.
    let options = f.options(Some("user-1")).await;
    let ok = phone.authenticate(ORIGIN, &options.public_key).unwrap();
    assert!(f.finish(&options, &ok).await.is_ok());
}

async fn a_sign_count_that_goes_backwards_is_refused_and_flagged(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    f.register("user-1", &mut phone).await;
    for _ in 0..3 {
        let options = f.options(Some("user-1")).await;
        let ok = phone.authenticate(ORIGIN, &options.public_key).unwrap();
        f.finish(&options, &ok).await.unwrap();
    }
    let list = f.passkeys("user-1").await;
    assert_eq!(list[0].sign_count, 3);
    // A clone still at counter 1.
    let mut clone = phone.credentials()[0].clone();
    clone.counter = 1;
    let options = f.options(Some("user-1")).await;
    let replayed =
        soft_passkey::assertion(&clone, flags::UP | flags::UV, &challenge(&options), ORIGIN);
    let err = f.finish(&options, &replayed).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CounterRegressed);
    let list = f.passkeys("user-1").await;
    assert_eq!(list[0].sign_count, 3, "the counter is not moved back");
    assert!(
        list[0].counter_regressed_at.is_some(),
        "flagged for support"
    );
}

/// Assertions of one passkey verified at once: each was checked against the counter read before
/// verifying, but they commit in any order. The stored counter must end at the highest accepted
/// one, never lower (a later commit of an older assertion used to move it back).
async fn concurrent_sign_ins_never_move_the_counter_back(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    f.register("user-1", &mut phone).await;
    let mut credential = phone.credentials()[0].clone();
    for round in 0..6 {
        let mut signed = Vec::new();
        for _ in 0..8 {
            credential.counter += 1;
            let options = f.options(Some("user-1")).await;
            let assertion = soft_passkey::assertion(
                &credential,
                flags::UP | flags::UV,
                &challenge(&options),
                ORIGIN,
            );
            signed.push((options, assertion, credential.counter));
        }
        // Highest counter first: older assertions tend to commit last, as a slow request would.
        let mut tasks = tokio::task::JoinSet::new();
        for (options, assertion, counter) in signed.into_iter().rev() {
            let (services, tenant) = (f.services.clone(), f.tenant);
            tasks.spawn(async move {
                let outcome = services
                    .end_users()
                    .finish_authentication(
                        tenant,
                        &options.ceremony_id,
                        &assertion.to_string(),
                        None,
                        RequestMeta::default(),
                    )
                    .await;
                (counter, outcome.map_err(|e| e.code()))
            });
        }
        let mut accepted = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                (counter, Ok(_)) => accepted.push(counter),
                (_, Err(code)) => assert_eq!(code, ErrorCode::CounterRegressed, "round {round}"),
            }
        }
        assert!(
            !accepted.is_empty(),
            "round {round}: one assertion at least goes through"
        );
        let list = f.passkeys("user-1").await;
        assert_eq!(
            list[0].sign_count,
            i64::from(*accepted.iter().max().unwrap()),
            "round {round}: accepted {accepted:?}"
        );
    }
}

/// A sealed ceremony is single-use by the database alone: one response presented 50 times at
/// once, through two instances (each with its own writer — on SQLite two connections, on
/// PostgreSQL READ COMMITTED sessions), signs in exactly once; the others are refused (as used,
/// or as a counter no longer above the winner's), and exactly one use and one validation token
/// are written.
async fn one_response_verified_fifty_times_on_two_instances_signs_in_once(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    f.register("user-1", &mut phone).await;
    let other = latchkey_core::testing::services(f.conn.clone(), Arc::new(f.clock.clone()));
    let options = f.options(Some("user-1")).await;
    let assertion = phone.authenticate(ORIGIN, &options.public_key).unwrap();
    let count = |table: &'static str| {
        let conn = f.conn.clone();
        async move {
            all_rows_as_text(&conn)
                .await
                .iter()
                .filter(|(t, _)| t == table)
                .count()
        }
    };
    let (uses, tokens) = (
        count("ceremony_uses").await,
        count("validation_tokens").await,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let services = if i % 2 == 0 {
            f.services.clone()
        } else {
            other.clone()
        };
        let (tenant, id, response) = (f.tenant, options.ceremony_id.clone(), assertion.to_string());
        tasks.spawn(async move {
            services
                .end_users()
                .finish_authentication(tenant, &id, &response, None, RequestMeta::default())
                .await
                .map_err(|e| e.code())
        });
    }
    let (mut won, mut refused) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(token) => {
                assert!(token.token.starts_with("lk_val_"));
                won += 1;
            }
            // Used, or — read after the winner's counter committed — no longer above it.
            Err(code) => {
                assert!(
                    matches!(
                        code,
                        ErrorCode::CeremonyInvalid | ErrorCode::CounterRegressed
                    ),
                    "{code:?}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((won, refused), (1, 49));
    assert_eq!(count("ceremony_uses").await, uses + 1);
    assert_eq!(count("validation_tokens").await, tokens + 1);
}

/// Options naming a user ID: a known user's passkeys, and for an unknown user decoys of the same
/// shape, the same on every call and every instance (the key is in the database). No passkey
/// signs in against decoys.
async fn sign_in_options_do_not_tell_which_users_exist(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    f.register("user-1", &mut phone).await;
    let allowed = |o: &ClientCeremony| o.public_key["allowCredentials"].as_array().unwrap().clone();
    let keys = |d: &Value| d.as_object().unwrap().keys().cloned().collect::<Vec<_>>();

    let real = allowed(&f.options(Some("user-1")).await);
    assert_eq!(real.len(), 1);
    let decoys = allowed(&f.options(Some("nobody")).await);
    assert!(!decoys.is_empty() && decoys.len() <= 2, "{decoys:?}");
    for decoy in &decoys {
        assert_eq!(
            keys(decoy),
            keys(&real[0]),
            "same fields: {decoy} vs {}",
            real[0]
        );
        assert_eq!(decoy["type"], "public-key");
        assert_ne!(decoy["id"], real[0]["id"]);
    }
    assert_eq!(
        allowed(&f.options(Some("nobody")).await),
        decoys,
        "stable across calls"
    );
    assert_ne!(allowed(&f.options(Some("nobody-else")).await), decoys);
    // Another instance (its own process memory, the same database) answers the same.
    let other = latchkey_core::testing::services(f.conn.clone(), Arc::new(f.clock.clone()));
    let elsewhere = other
        .end_users()
        .begin_authentication(f.tenant, Some("nobody"))
        .await
        .unwrap();
    assert_eq!(allowed(&elsewhere), decoys, "stable across instances");

    // The user's own passkey does not sign in as somebody else.
    let options = f.options(Some("nobody")).await;
    let mut forged = options.public_key.clone();
    forged["allowCredentials"] = serde_json::json!([]);
    let assertion = phone.authenticate(ORIGIN, &forged).unwrap();
    let err = f.finish(&options, &assertion).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CredentialUnknown);
}

async fn replayed_and_expired_ceremonies_are_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    f.register("user-1", &mut phone).await;
    let options = f.options(Some("user-1")).await;
    let response = phone.authenticate(ORIGIN, &options.public_key).unwrap();
    f.finish(&options, &response).await.unwrap();
    let again = phone.authenticate(ORIGIN, &options.public_key).unwrap();
    assert_eq!(
        f.finish(&options, &again).await.unwrap_err().code(),
        ErrorCode::CeremonyInvalid
    );

    let options = f.options(Some("user-1")).await;
    f.clock.advance(TimeDelta::seconds(301));
    let late = phone.authenticate(ORIGIN, &options.public_key).unwrap();
    assert_eq!(
        f.finish(&options, &late).await.unwrap_err().code(),
        ErrorCode::CeremonyExpired
    );
    // A ceremony of another tenant, or of registration, is unknown here.
    let token = f.token("user-2").await;
    let registration = f
        .services
        .end_users()
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let response = phone
        .authenticate(ORIGIN, &f.options(None).await.public_key)
        .unwrap();
    assert_eq!(
        f.finish(&registration, &response).await.unwrap_err().code(),
        ErrorCode::CeremonyInvalid
    );
}

async fn each_registration_check_refuses_and_keeps_the_token(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f.token("user-1").await;
    let users = f.services.end_users();
    let before = f.state().await;
    // Wrong origin.
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let credential = SoftPasskeys::new()
        .register("https://evil.test", &options.public_key)
        .unwrap();
    assert_eq!(
        f.finish_registration(&token, &options, credential)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::OriginMismatch
    );
    // Wrong challenge.
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let mut forged = options.public_key.clone();
    forged["challenge"] = URL_SAFE_NO_PAD.encode([1u8; 32]).into();
    let credential = SoftPasskeys::new().register(ORIGIN, &forged).unwrap();
    assert_eq!(
        f.finish_registration(&token, &options, credential)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::ChallengeMismatch
    );
    // Wrong RP ID.
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let mut forged = options.public_key.clone();
    forged["rp"]["id"] = "evil.test".into();
    let credential = SoftPasskeys::new().register(ORIGIN, &forged).unwrap();
    assert_eq!(
        f.finish_registration(&token, &options, credential)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::RpIdMismatch
    );
    // No user verification while the tenant requires it.
    f.configure(|c| c.user_verification = Requirement::Required)
        .await;
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let mut lazy = SoftPasskeys::new();
    lazy.user_verified = false;
    let credential = lazy.register(ORIGIN, &options.public_key).unwrap();
    assert_eq!(
        f.finish_registration(&token, &options, credential)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::UserVerificationRequired
    );
    // Not JSON of a credential at all.
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let err = f
        .finish_registration(&token, &options, serde_json::json!({ "id": 1 }))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.field()),
        (ErrorCode::InvalidRequest, Some("credential"))
    );

    // None of it used the token or stored anything (the configuration change aside).
    let unchanged = |rows: Vec<String>| -> Vec<String> {
        rows.into_iter()
            .filter(|r| !r.starts_with("tenants:"))
            .collect()
    };
    assert_eq!(unchanged(f.state().await), unchanged(before));
    let mut phone = SoftPasskeys::new();
    f.register_at(&token, ORIGIN, &mut phone).await.unwrap();
    let used = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap_err();
    assert_eq!(used.code(), ErrorCode::TokenUsed);
    let garbage = users
        .begin_registration("lk_enr_nope", RequestMeta::default())
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), ErrorCode::TokenInvalid);
}

async fn a_credential_id_registered_twice_is_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    phone.next_id = Some(vec![7; 16]);
    f.register("user-1", &mut phone).await;
    let mut copy = SoftPasskeys::new();
    copy.next_id = Some(vec![7; 16]);
    let token = f.token("user-2").await;
    let err = f.register_at(&token, ORIGIN, &mut copy).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CredentialExists);
    // The token survives the refusal.
    f.register_at(&token, ORIGIN, &mut SoftPasskeys::new())
        .await
        .unwrap();
}

/// The `xmin` of a row: the PostgreSQL transaction that wrote its current version.
/// (Sealed ceremonies: the latest recorded use is the tenant's, `$1`.)
async fn xmin(conn: &sea_orm::DatabaseConnection, sql: &str, id: Uuid) -> String {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [id.into()],
        ))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no row for {sql}"));
    row.try_get::<String>("", "x").unwrap()
}

/// Each Client API step writes at most one transaction, the cost model the benchmarks count on
/// (options none — the ceremony is sealed into its ID —, verify one, validate one). PostgreSQL stamps every row version
/// with the transaction that wrote it (`xmin`), so the rows a step wrote tell whether they were
/// written together — whatever else runs on the server meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sign_in_step_is_one_write_transaction_on_postgres() {
    let Some(f) = fixture(TestBackend::Postgres).await else {
        return;
    };
    let ceremony = "SELECT xmin::text AS x FROM ceremony_uses WHERE tenant_id = $1 ORDER BY xmin::text::bigint DESC LIMIT 1";
    let passkey = "SELECT xmin::text AS x FROM authenticators WHERE id = $1";
    let token_row = "SELECT xmin::text AS x FROM validation_tokens WHERE authenticator_id = $1 AND kind = 'sign_in'";
    let event = |action: &str| {
        format!(
            "SELECT xmin::text AS x FROM audit_events WHERE tenant_id = $1 AND action = '{action}' ORDER BY id DESC LIMIT 1"
        )
    };
    let mut device = SoftPasskeys::new();
    let authenticator = f.register("ada", &mut device).await;
    let key = f
        .services
        .api_keys()
        .create(
            &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
            "backend",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let backend = f
        .services
        .api_keys()
        .authenticate(&key.secret)
        .await
        .unwrap();

    // The first options make the instances' sealing key; later ones write nothing.
    f.options(Some("ada")).await;
    let before = all_rows_as_text(&f.conn).await;
    let options = f.options(Some("ada")).await;
    assert_eq!(
        all_rows_as_text(&f.conn).await,
        before,
        "options write nothing"
    );
    let response = device.authenticate(ORIGIN, &options.public_key).unwrap();
    let token = f.finish(&options, &response).await.unwrap();
    let verified = xmin(&f.conn, ceremony, f.tenant).await;
    assert_eq!(xmin(&f.conn, passkey, authenticator).await, verified);
    assert_eq!(xmin(&f.conn, token_row, authenticator).await, verified);
    assert_eq!(
        xmin(&f.conn, &event("user.signed_in"), f.tenant).await,
        verified
    );

    let outcome = f
        .services
        .end_users()
        .validate_token(&backend.access(), &token, RequestMeta::default())
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        latchkey_core::end_users::ValidationOutcome::Valid(_)
    ));
    let validated = xmin(&f.conn, token_row, authenticator).await;
    assert_ne!(validated, verified);
    assert_eq!(
        xmin(&f.conn, &event("validation_token.validated"), f.tenant).await,
        validated
    );

    // A refused verify uses up its ceremony and audits the refusal in one transaction, and
    // writes nothing else.
    let options = f.options(Some("ada")).await;
    let wrong = device
        .authenticate("https://elsewhere.example.com", &options.public_key)
        .unwrap();
    let err = f.finish(&options, &wrong).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::OriginMismatch);
    let refused = xmin(&f.conn, ceremony, f.tenant).await;
    assert_ne!(refused, verified);
    assert_eq!(
        xmin(&f.conn, &event("user.signed_in"), f.tenant).await,
        refused
    );
    assert_eq!(xmin(&f.conn, passkey, authenticator).await, verified);
    let again = f.finish(&options, &response).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::CeremonyInvalid, "used up");
}

fn from_address(ip: &str) -> RequestMeta {
    RequestMeta::new(Some(ip.into()), Some("Flood/1.0".into()))
}

async fn audit_rows(conn: &sea_orm::DatabaseConnection) -> usize {
    all_rows_as_text(conn)
        .await
        .into_iter()
        .filter(|(table, _)| table == "audit_events")
        .count()
}

/// A source (an IPv6 /64 here) holds a bounded number of unfinished stored ceremonies —
/// registrations and the portal's —, even when all are started at once (PostgreSQL: READ
/// COMMITTED would let each count the same rows). Finishing one or waiting for one to expire
/// makes room. Sign-ins store nothing (sealed), so they are never refused for it and a flood of
/// them writes no row.
async fn one_source_holds_a_bounded_number_of_unfinished_ceremonies(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f.token("user-2").await;
    let cap = 5;
    let services = f.services.clone().with_limits(AbuseLimits {
        open_ceremonies_per_source: Some(cap),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..3 * cap {
        let (services, token) = (services.clone(), token.clone());
        tasks.spawn(async move {
            let meta = from_address(&format!("2001:db8:1:2::{i:x}"));
            services
                .end_users()
                .begin_registration(&token, meta)
                .await
                .map_err(|e| (e.code(), e.retry_after()))
        });
    }
    let (mut started, mut refused) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(options) => started.push(options),
            Err((code, retry_after)) => {
                assert_eq!(code, ErrorCode::RateLimited);
                let wait = retry_after.expect("a refusal says when to retry");
                assert!((1..=301).contains(&wait), "retry after {wait} s");
                refused += 1;
            }
        }
    }
    assert_eq!((started.len(), refused), (cap as usize, 2 * cap));
    // The same source is refused by the portal too; another source is not.
    let flood = from_address("2001:db8:1:2::ffff");
    let portal = services.operators().begin_sign_in(&flood).await;
    assert_eq!(portal.err().map(|e| e.code()), Some(ErrorCode::RateLimited));
    let other = from_address("2001:db8:1:3::1");
    services.operators().begin_sign_in(&other).await.unwrap();
    // Sign-in options store nothing: never refused for it, and a flood writes no row (the
    // first makes the instances' sealing and decoy keys: user-1 has no passkey).
    f.options(Some("user-1")).await;
    let before = all_rows_as_text(&f.conn).await;
    for _ in 0..50 {
        services
            .end_users()
            .begin_authentication(f.tenant, Some("user-1"))
            .await
            .unwrap();
    }
    assert_eq!(all_rows_as_text(&f.conn).await, before);
    // Finishing one makes room for one.
    let mut phone = SoftPasskeys::new();
    let credential = phone.register(ORIGIN, &started[0].public_key).unwrap();
    services
        .end_users()
        .finish_registration(
            &token,
            &started[0].ceremony_id,
            &credential.to_string(),
            None,
            None,
            flood.clone(),
        )
        .await
        .unwrap();
    services.operators().begin_sign_in(&flood).await.unwrap();
    let full = services.operators().begin_sign_in(&flood).await;
    assert_eq!(full.err().map(|e| e.code()), Some(ErrorCode::RateLimited));
    // So does waiting until they expire (the tenant's timeout, 300 s by default).
    f.clock.advance(TimeDelta::seconds(301));
    services.operators().begin_sign_in(&flood).await.unwrap();
}

/// Refusals that present nothing real (an unparseable credential; an unknown or already used
/// ceremony) write nothing when they happen: they are counted, and a flush writes one event
/// per tenant, action and code with the count and the busiest sources. A refusal that uses up
/// a live ceremony keeps its own event.
async fn refusals_presenting_nothing_real_are_counted_not_written(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut phone = SoftPasskeys::new();
    f.register("user-1", &mut phone).await;
    let options = f.options(None).await;
    let assertion = phone.authenticate(ORIGIN, &options.public_key).unwrap();
    let before = audit_rows(&f.conn).await;
    let users = f.services.end_users();
    for i in 0..1000 {
        let (ceremony, credential) = if i % 2 == 0 {
            (Uuid::new_v4().to_string(), "{not json".to_owned())
        } else {
            (Uuid::new_v4().to_string(), assertion.to_string())
        };
        let ip = if i % 20 < 2 { "192.0.2.2" } else { "192.0.2.1" };
        let refused = users
            .finish_authentication(f.tenant, &ceremony, &credential, None, from_address(ip))
            .await;
        assert!(refused.is_err_and(|e| !e.is_internal()));
    }
    assert_eq!(audit_rows(&f.conn).await, before, "nothing written yet");
    assert_eq!(f.services.refusals_pending(), 1000);
    assert_eq!(f.services.flush_refusals().await.unwrap(), 1000);
    assert_eq!(audit_rows(&f.conn).await, before + 2);
    let events = f.services.audit().recent(Some(f.tenant), 2).await.unwrap();
    for event in &events {
        let details = event.details.clone().unwrap();
        assert_eq!(event.action, "user.signed_in");
        assert_eq!(details["aggregated"], true);
        assert_eq!(details["count"], 500);
        assert_eq!(details["sources"][0]["source"], "192.0.2.1");
        assert_eq!(details["sources"][0]["count"], 450);
    }
    let mut codes: Vec<_> = events.iter().filter_map(|e| e.error_code.clone()).collect();
    codes.sort();
    assert_eq!(codes, ["ceremony_invalid", "invalid_request"]);
    // A refusal that uses up a live ceremony is an event of its own, at once…
    let mut foreign = assertion.clone();
    let unknown_id = URL_SAFE_NO_PAD.encode([7u8; 16]);
    foreign["id"] = unknown_id.clone().into();
    foreign["rawId"] = unknown_id.into();
    let refused = f.finish(&options, &foreign).await;
    assert_eq!(
        refused.err().map(|e| e.code()),
        Some(ErrorCode::CredentialUnknown)
    );
    assert_eq!(audit_rows(&f.conn).await, before + 3);
    // … and presenting that ceremony again is only counted.
    let replayed = f.finish(&options, &assertion).await;
    assert_eq!(
        replayed.err().map(|e| e.code()),
        Some(ErrorCode::CeremonyInvalid)
    );
    assert_eq!(audit_rows(&f.conn).await, before + 3);
    assert_eq!(f.services.refusals_pending(), 1);
}
