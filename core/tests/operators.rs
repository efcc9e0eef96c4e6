//! Operators and the portal's own passkeys, end to end through the services with real WebAuthn
//! responses (a software passkey signs them): first-run setup, invitations, discoverable sign-in,
//! passkey management, and every refusal (wrong origin, replayed or expired ceremony, used or
//! expired token, missing user verification) — on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use latchkey_core::testing::stepped_up;
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    Clock, ErrorCode, ManualClock, Services,
    access::OperatorIdentity,
    audit::{AuditRecord, RequestMeta},
    both_backends,
    entities::{operator, operator_passkey, operator_token},
    operators::{CeremonyOptions, Inviter},
    testing::{TestBackend, TestDb, soft_passkey::SoftPasskeys},
};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};

both_backends!(
    setup_creates_the_first_instance_admin,
    setup_token_is_single_use_even_under_concurrency,
    setup_and_invitation_tokens_expire,
    sign_in_with_a_discoverable_passkey,
    replayed_ceremonies_are_refused,
    expired_ceremonies_are_refused,
    responses_from_another_origin_are_refused,
    user_verification_is_required,
    invitations_create_operators_for_the_invited_address,
    only_instance_admins_invite_from_the_portal,
    operators_add_and_remove_passkeys_but_never_the_last,
    a_tenant_invitation_makes_the_new_operator_a_member,
    expired_ceremonies_are_purged,
    foothold_actions_need_a_recent_passkey_verification,
    a_step_up_takes_one_of_the_operators_own_passkeys
);

const ORIGIN: &str = "http://localhost:3000";

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

fn meta() -> RequestMeta {
    RequestMeta::new(Some("203.0.113.7".into()), Some("Test Browser/1.0".into()))
}

fn code_of<T: std::fmt::Debug>(result: latchkey_core::Result<T>) -> ErrorCode {
    result.expect_err("expected a refusal").code()
}

/// Registers a passkey for `options` with `passkeys` at `origin` and returns the response JSON.
fn register(passkeys: &mut SoftPasskeys, origin: &str, options: &CeremonyOptions) -> String {
    passkeys
        .register(origin, &options.public_key)
        .expect("the soft passkey registers")
        .to_string()
}

fn authenticate(passkeys: &mut SoftPasskeys, origin: &str, options: &CeremonyOptions) -> String {
    passkeys
        .authenticate(origin, &options.public_key)
        .expect("the soft passkey signs")
        .to_string()
}

/// First-run setup through the services: answers the new instance admin and their passkeys.
async fn set_up(f: &Fixture) -> (OperatorIdentity, SoftPasskeys) {
    let issued = f
        .services
        .operators()
        .issue_setup_token()
        .await
        .unwrap()
        .expect("a fresh instance issues a setup token");
    let options = f
        .services
        .operators()
        .begin_enrollment(&issued.token, "Ada@Example.com", "Ada Lovelace")
        .await
        .unwrap();
    let mut passkeys = SoftPasskeys::new();
    let response = register(&mut passkeys, ORIGIN, &options);
    let admin = f
        .services
        .operators()
        .finish_enrollment(options.ceremony_id, &response, meta())
        .await
        .unwrap();
    (admin, passkeys)
}

async fn invite(
    f: &Fixture,
    email: &str,
    instance_admin: bool,
) -> (OperatorIdentity, SoftPasskeys) {
    let issued = f
        .services
        .operators()
        .invite(Inviter::Cli, email, instance_admin, meta())
        .await
        .unwrap();
    let options = f
        .services
        .operators()
        .begin_enrollment(&issued.token, email, "Invited")
        .await
        .unwrap();
    let mut passkeys = SoftPasskeys::new();
    let response = register(&mut passkeys, ORIGIN, &options);
    let identity = f
        .services
        .operators()
        .finish_enrollment(options.ceremony_id, &response, meta())
        .await
        .unwrap();
    (identity, passkeys)
}

async fn audit(f: &Fixture) -> Vec<AuditRecord> {
    let mut events = f.services.audit().recent(None, 500).await.unwrap();
    events.reverse();
    events
}

fn actions(events: &[AuditRecord]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.action.clone(), e.outcome.clone()))
        .collect()
}

async fn setup_creates_the_first_instance_admin(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    assert!(!f.services.operators().any_exist().await.unwrap());
    let issued = f.setup_token().await;
    let url = issued.url(f.services.public_url());
    assert!(
        url.starts_with("http://localhost:3000/setup?token=lk_setup_"),
        "{url}"
    );
    // Only the hash is stored.
    let stored = operator_token::Entity::find().all(&f.conn).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_hash, issued.token);
    assert!(!stored[0].token_hash.contains(&issued.token[9..]));

    let info = f
        .services
        .operators()
        .token_info(&issued.token)
        .await
        .unwrap();
    assert!(info.grants_instance_admin);
    assert_eq!(info.email, None);

    let options = f
        .services
        .operators()
        .begin_enrollment(&issued.token, "  Ada@Example.com ", "Ada Lovelace")
        .await
        .unwrap();
    let pk = &options.public_key;
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["user"]["name"], "ada@example.com");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert!(
        pk.as_object().unwrap().values().all(|v| !v.is_null()),
        "no nulls for the browser's JSON parser: {pk}"
    );

    let mut passkeys = SoftPasskeys::new();
    let response = register(&mut passkeys, ORIGIN, &options);
    let admin = f
        .services
        .operators()
        .finish_enrollment(options.ceremony_id, &response, meta())
        .await
        .unwrap();
    assert_eq!(admin.email, "ada@example.com");
    assert_eq!(admin.display_name, "Ada Lovelace");
    assert!(admin.is_instance_admin);
    assert!(f.services.operators().any_exist().await.unwrap());
    assert_eq!(
        f.services.operators().passkeys(&admin).await.unwrap().len(),
        1
    );

    // Once an operator exists there is no more setup, and the link is spent.
    assert!(
        f.services
            .operators()
            .issue_setup_token()
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        code_of(f.services.operators().token_info(&issued.token).await),
        ErrorCode::TokenUsed
    );

    let events = audit(&f).await;
    let acts = actions(&events);
    for expected in ["setup.token_issued", "setup.completed", "passkey.added"] {
        assert!(
            acts.contains(&(expected.into(), "success".into())),
            "{expected} in {acts:?}"
        );
    }
    let completed = events
        .iter()
        .find(|e| e.action == "setup.completed")
        .unwrap();
    assert_eq!(completed.actor_kind, "operator");
    assert_eq!(
        completed.actor_id.as_deref(),
        Some(admin.id.to_string().as_str())
    );
    assert_eq!(completed.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(completed.user_agent.as_deref(), Some("Test Browser/1.0"));
    // No secret in the log.
    let dump = format!("{events:?}");
    assert!(!dump.contains(&issued.token));
}

async fn setup_token_is_single_use_even_under_concurrency(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let issued = f.setup_token().await;
    // Eight browsers open the same link and each registers a passkey at once.
    let mut attempts = Vec::new();
    for i in 0..8 {
        let options = f
            .services
            .operators()
            .begin_enrollment(&issued.token, &format!("op{i}@example.com"), "Op")
            .await
            .unwrap();
        let mut passkeys = SoftPasskeys::new();
        attempts.push((
            options.ceremony_id,
            register(&mut passkeys, ORIGIN, &options),
        ));
    }
    let mut tasks = Vec::new();
    for (ceremony_id, response) in attempts {
        let services = f.services.clone();
        tasks.push(tokio::spawn(async move {
            services
                .operators()
                .finish_enrollment(ceremony_id, &response, meta())
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(err) => assert_eq!(err.code(), ErrorCode::TokenUsed, "{err}"),
        }
    }
    assert_eq!(won, 1, "exactly one enrollment wins the setup token");
    assert_eq!(operator::Entity::find().count(&f.conn).await.unwrap(), 1);
    assert_eq!(
        operator_passkey::Entity::find()
            .count(&f.conn)
            .await
            .unwrap(),
        1
    );
    // The refusals are in the log.
    let failed = audit(&f)
        .await
        .into_iter()
        .filter(|e| e.action == "operator.enrollment" && e.outcome == "failure")
        .count();
    assert_eq!(failed, 7);
}

async fn setup_and_invitation_tokens_expire(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let setup = f.setup_token().await;
    let invitation = f
        .services
        .operators()
        .invite(Inviter::Cli, "grace@example.com", false, meta())
        .await
        .unwrap();
    assert_eq!(invitation.expires_at, f.clock_now() + TimeDelta::hours(24));

    // A ceremony started just before the deadline cannot finish after it.
    f.clock
        .advance(TimeDelta::hours(24) - TimeDelta::seconds(10));
    let options = f
        .services
        .operators()
        .begin_enrollment(&setup.token, "ada@example.com", "Ada")
        .await
        .unwrap();
    let response = register(&mut SoftPasskeys::new(), ORIGIN, &options);
    f.clock.advance(TimeDelta::seconds(11));
    assert_eq!(
        code_of(f.finish_enrollment(options.ceremony_id, &response).await),
        ErrorCode::TokenExpired
    );
    for token in [&setup.token, &invitation.token] {
        assert_eq!(
            code_of(f.services.operators().token_info(token).await),
            ErrorCode::TokenExpired
        );
        assert_eq!(
            code_of(
                f.services
                    .operators()
                    .begin_enrollment(token, "grace@example.com", "Grace")
                    .await
            ),
            ErrorCode::TokenExpired
        );
    }
    assert_eq!(operator::Entity::find().count(&f.conn).await.unwrap(), 0);

    // A restart logs a fresh link, which works; garbage is simply invalid.
    let fresh = f.setup_token().await;
    assert!(
        f.services
            .operators()
            .token_info(&fresh.token)
            .await
            .is_ok()
    );
    for garbage in [
        "",
        "lk_setup_short",
        "not-a-token",
        &invitation.token.replace("lk_inv_", "lk_setup_"),
    ] {
        assert_eq!(
            code_of(f.services.operators().token_info(garbage).await),
            ErrorCode::TokenInvalid,
            "{garbage:?}"
        );
    }
}

impl Fixture {
    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use latchkey_core::Clock;
        self.clock.now()
    }

    async fn setup_token(&self) -> latchkey_core::operators::IssuedToken {
        self.services
            .operators()
            .issue_setup_token()
            .await
            .unwrap()
            .expect("no operator yet")
    }

    async fn finish_sign_in(
        &self,
        ceremony_id: uuid::Uuid,
        response: &str,
    ) -> latchkey_core::Result<OperatorIdentity> {
        self.services
            .operators()
            .finish_sign_in(ceremony_id, response, meta())
            .await
    }

    async fn finish_enrollment(
        &self,
        ceremony_id: uuid::Uuid,
        response: &str,
    ) -> latchkey_core::Result<OperatorIdentity> {
        self.services
            .operators()
            .finish_enrollment(ceremony_id, response, meta())
            .await
    }
}

async fn sign_in_with_a_discoverable_passkey(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, mut passkeys) = set_up(&f).await;
    let (grace, mut grace_passkeys) = invite(&f, "grace@example.com", false).await;

    let options = sign_in_options(&f).await;
    assert_eq!(options.public_key["rpId"], "localhost");
    assert!(
        options.public_key.get("allowCredentials").is_none()
            || options.public_key["allowCredentials"]
                .as_array()
                .unwrap()
                .is_empty(),
        "username-less: no allowCredentials"
    );
    f.clock
        .advance(TimeDelta::minutes(5) - TimeDelta::seconds(1));
    let response = authenticate(&mut passkeys, ORIGIN, &options);
    let signed_in = f
        .services
        .operators()
        .finish_sign_in(options.ceremony_id, &response, meta())
        .await
        .unwrap();
    assert_eq!(signed_in, admin);
    let listed = f.services.operators().passkeys(&admin).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(f.clock_now()));

    // The passkey decides who signs in.
    let options = sign_in_options(&f).await;
    let response = authenticate(&mut grace_passkeys, ORIGIN, &options);
    let signed_in = f
        .services
        .operators()
        .finish_sign_in(options.ceremony_id, &response, meta())
        .await
        .unwrap();
    assert_eq!(signed_in, grace);
    assert!(!signed_in.is_instance_admin);

    // A passkey of another site is unknown here.
    let mut stranger = SoftPasskeys::new();
    stranger
        .register(
            ORIGIN,
            &serde_json::json!({
                "challenge": "AAAA", "rp": {"id": "localhost", "name": "x"},
                "user": {"id": "AAAAAAAAAAAAAAAAAAAAAA", "name": "x", "displayName": "x"},
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}]
            }),
        )
        .unwrap();
    let options = sign_in_options(&f).await;
    let response = authenticate(&mut stranger, ORIGIN, &options);
    assert_eq!(
        code_of(f.finish_sign_in(options.ceremony_id, &response).await),
        ErrorCode::CredentialUnknown
    );

    let events = audit(&f).await;
    let sign_ins: Vec<_> = events
        .iter()
        .filter(|e| e.action == "operator.signed_in")
        .map(|e| (e.outcome.as_str(), e.error_code.as_deref()))
        .collect();
    assert_eq!(
        sign_ins,
        [
            ("success", None),
            ("success", None),
            ("failure", Some("credential_unknown"))
        ]
    );
}

async fn replayed_ceremonies_are_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (_, mut passkeys) = set_up(&f).await;
    let options = sign_in_options(&f).await;
    let response = authenticate(&mut passkeys, ORIGIN, &options);
    f.finish_sign_in(options.ceremony_id, &response)
        .await
        .unwrap();
    // The same response again (a captured request replayed): the ceremony is spent.
    assert_eq!(
        code_of(f.finish_sign_in(options.ceremony_id, &response).await),
        ErrorCode::CeremonyInvalid
    );
    // The response to one challenge does not answer another.
    let other = sign_in_options(&f).await;
    assert_eq!(
        code_of(f.finish_sign_in(other.ceremony_id, &response).await),
        ErrorCode::ChallengeMismatch
    );
    // And the failed attempt consumed that ceremony too (one attempt per challenge).
    let fresh = authenticate(&mut passkeys, ORIGIN, &other);
    assert_eq!(
        code_of(f.finish_sign_in(other.ceremony_id, &fresh).await),
        ErrorCode::CeremonyInvalid
    );
    // A sign-in ceremony cannot finish a registration, nor an unknown id anything.
    assert_eq!(
        code_of(f.finish_enrollment(options.ceremony_id, &response).await),
        ErrorCode::InvalidRequest,
        "an assertion is not a registration response"
    );
    assert_eq!(
        code_of(f.finish_sign_in(uuid::Uuid::new_v4(), &fresh).await),
        ErrorCode::CeremonyInvalid
    );
}

async fn expired_ceremonies_are_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, mut passkeys) = set_up(&f).await;
    let options = sign_in_options(&f).await;
    let response = authenticate(&mut passkeys, ORIGIN, &options);
    f.clock.advance(TimeDelta::minutes(5));
    assert_eq!(
        code_of(f.finish_sign_in(options.ceremony_id, &response).await),
        ErrorCode::CeremonyExpired
    );
    let listed = f.services.operators().passkeys(&admin).await.unwrap();
    assert_eq!(
        listed[0].last_used_at, None,
        "a refused sign-in changes nothing"
    );
}

async fn responses_from_another_origin_are_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let issued = f.setup_token().await;
    // A phishing page relaying our options cannot register a passkey…
    let options = f
        .services
        .operators()
        .begin_enrollment(&issued.token, "ada@example.com", "Ada")
        .await
        .unwrap();
    let mut passkeys = SoftPasskeys::new();
    let response = register(&mut passkeys, "https://latchkey.evil.example", &options);
    assert_eq!(
        code_of(f.finish_enrollment(options.ceremony_id, &response).await),
        ErrorCode::OriginMismatch
    );
    assert_eq!(operator::Entity::find().count(&f.conn).await.unwrap(), 0);
    assert!(
        f.services
            .operators()
            .token_info(&issued.token)
            .await
            .is_ok(),
        "a refused registration leaves the token usable"
    );

    // …nor sign in with one.
    let (admin, mut passkeys) = set_up(&f).await;
    for origin in [
        "https://latchkey.evil.example",
        "http://localhost:3001",
        "https://localhost:3000",
    ] {
        let options = f
            .services
            .operators()
            .begin_sign_in(&RequestMeta::default())
            .await
            .unwrap();
        let response = authenticate(&mut passkeys, origin, &options);
        assert_eq!(
            code_of(f.finish_sign_in(options.ceremony_id, &response).await),
            ErrorCode::OriginMismatch,
            "{origin}"
        );
    }
    let listed = f.services.operators().passkeys(&admin).await.unwrap();
    assert_eq!(listed[0].last_used_at, None);
    let failures = audit(&f)
        .await
        .into_iter()
        .filter(|e| e.error_code.as_deref() == Some("origin_mismatch"))
        .count();
    assert_eq!(failures, 4);
}

async fn user_verification_is_required(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let issued = f.setup_token().await;
    let options = f
        .services
        .operators()
        .begin_enrollment(&issued.token, "ada@example.com", "Ada")
        .await
        .unwrap();
    let mut unverified = SoftPasskeys::new();
    unverified.user_verified = false;
    let response = register(&mut unverified, ORIGIN, &options);
    assert_eq!(
        code_of(f.finish_enrollment(options.ceremony_id, &response).await),
        ErrorCode::UserVerificationRequired
    );

    let (_, mut passkeys) = set_up(&f).await;
    passkeys.user_verified = false;
    let options = sign_in_options(&f).await;
    let response = authenticate(&mut passkeys, ORIGIN, &options);
    assert_eq!(
        code_of(f.finish_sign_in(options.ceremony_id, &response).await),
        ErrorCode::UserVerificationRequired
    );
}

async fn invitations_create_operators_for_the_invited_address(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, _) = set_up(&f).await;
    let issued = f
        .services
        .operators()
        .invite(Inviter::Cli, "Grace@Example.com", true, meta())
        .await
        .unwrap();
    let url = issued.url(f.services.public_url());
    assert!(
        url.starts_with("http://localhost:3000/invite?token=lk_inv_"),
        "{url}"
    );
    let info = f
        .services
        .operators()
        .token_info(&issued.token)
        .await
        .unwrap();
    assert_eq!(info.email.as_deref(), Some("grace@example.com"));
    assert!(info.grants_instance_admin);

    // The invitation is for one address.
    let refused = f
        .services
        .operators()
        .begin_enrollment(&issued.token, "mallory@example.com", "Mallory")
        .await
        .expect_err("another address");
    assert_eq!(refused.field(), Some("email"));

    let options = f
        .services
        .operators()
        .begin_enrollment(&issued.token, "grace@example.com", "Grace Hopper")
        .await
        .unwrap();
    let response = register(&mut SoftPasskeys::new(), ORIGIN, &options);
    let grace = f
        .services
        .operators()
        .finish_enrollment(options.ceremony_id, &response, meta())
        .await
        .unwrap();
    assert!(grace.is_instance_admin);
    assert_ne!(grace.id, admin.id);

    // Inviting an existing operator, or a malformed address, is a field error.
    for email in ["grace@example.com", "ADA@example.com", "not an email"] {
        let err = f
            .services
            .operators()
            .invite(Inviter::Operator(stepped_up(&admin)), email, false, meta())
            .await
            .expect_err(email);
        assert_eq!(err.field(), Some("email"), "{email}");
    }

    let events = audit(&f).await;
    let invited = events
        .iter()
        .find(|e| e.action == "operator.invited")
        .unwrap();
    assert_eq!(invited.actor_kind, "cli");
    assert_eq!(
        invited.details.as_ref().unwrap()["email"],
        "grace@example.com"
    );
    assert!(events.iter().any(|e| e.action == "invitation.accepted"
        && e.actor_id.as_deref() == Some(grace.id.to_string().as_str())));
}

async fn only_instance_admins_invite_from_the_portal(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, _) = set_up(&f).await;
    let (plain, _) = invite(&f, "plain@example.com", false).await;
    assert_eq!(
        code_of(
            f.services
                .operators()
                .invite(
                    Inviter::Operator(stepped_up(&plain)),
                    "x@example.com",
                    false,
                    meta()
                )
                .await
        ),
        ErrorCode::Forbidden
    );
    let issued = f
        .services
        .operators()
        .invite(
            Inviter::Operator(stepped_up(&admin)),
            "x@example.com",
            false,
            meta(),
        )
        .await
        .unwrap();
    assert!(issued.token.starts_with("lk_inv_"));
    let events = audit(&f).await;
    let by_admin = events
        .iter()
        .rfind(|e| e.action == "operator.invited")
        .unwrap();
    assert_eq!(by_admin.actor_kind, "operator");
    assert_eq!(by_admin.actor_label.as_deref(), Some("ada@example.com"));
}

async fn operators_add_and_remove_passkeys_but_never_the_last(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, mut phone) = set_up(&f).await;
    let first = f.services.operators().passkeys(&admin).await.unwrap()[0].clone();
    let ops = f.services.operators();
    assert_eq!(
        code_of(ops.remove_passkey(&admin, first.id, meta()).await),
        ErrorCode::InvalidRequest
    );

    // A second passkey, on a security key.
    let options = ops.begin_add_passkey(stepped_up(&admin)).await.unwrap();
    let excluded = options.public_key["excludeCredentials"].as_array().unwrap();
    assert_eq!(excluded.len(), 1, "the existing passkey is excluded");
    // The same provider cannot register twice (the browser refuses excluded credentials).
    assert!(phone.register(ORIGIN, &options.public_key).is_err());
    let mut key = SoftPasskeys::new();
    let response = register(&mut key, ORIGIN, &options);
    // A bad name is a field error that does not spend the ceremony.
    let err = ops
        .finish_add_passkey(&admin, options.ceremony_id, &response, "  ", meta())
        .await
        .expect_err("empty name");
    assert_eq!(err.field(), Some("name"));
    let added = ops
        .finish_add_passkey(&admin, options.ceremony_id, &response, "YubiKey", meta())
        .await
        .unwrap();
    assert_eq!(added.name, "YubiKey");
    assert_eq!(ops.passkeys(&admin).await.unwrap().len(), 2);

    // Someone else's passkey is not found, and another operator's ceremony cannot be finished.
    let (grace, _) = invite(&f, "grace@example.com", false).await;
    assert_eq!(
        code_of(ops.remove_passkey(&grace, first.id, meta()).await),
        ErrorCode::NotFound
    );
    let options = ops.begin_add_passkey(stepped_up(&admin)).await.unwrap();
    let response = register(&mut SoftPasskeys::new(), ORIGIN, &options);
    assert_eq!(
        code_of(
            ops.finish_add_passkey(&grace, options.ceremony_id, &response, "Mine", meta())
                .await
        ),
        ErrorCode::CeremonyInvalid
    );

    ops.remove_passkey(&admin, first.id, meta()).await.unwrap();
    assert_eq!(
        code_of(ops.remove_passkey(&admin, added.id, meta()).await),
        ErrorCode::InvalidRequest,
        "the last passkey stays"
    );
    // The removed passkey no longer signs in; the new one does.
    let options = ops.begin_sign_in(&RequestMeta::default()).await.unwrap();
    let response = authenticate(&mut phone, ORIGIN, &options);
    assert_eq!(
        code_of(
            ops.finish_sign_in(options.ceremony_id, &response, meta())
                .await
        ),
        ErrorCode::CredentialUnknown
    );
    let options = ops.begin_sign_in(&RequestMeta::default()).await.unwrap();
    let response = authenticate(&mut key, ORIGIN, &options);
    assert_eq!(
        ops.finish_sign_in(options.ceremony_id, &response, meta())
            .await
            .unwrap(),
        admin
    );
    let acts = actions(&audit(&f).await);
    assert!(acts.contains(&("passkey.removed".into(), "success".into())));
}

async fn expired_ceremonies_are_purged(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (_, _) = set_up(&f).await;
    for _ in 0..3 {
        f.services
            .operators()
            .begin_sign_in(&RequestMeta::default())
            .await
            .unwrap();
    }
    assert_eq!(f.services.purge_expired_ceremonies().await.unwrap(), 0);
    f.clock.advance(TimeDelta::minutes(66));
    // The setup's ceremony and the three sign-ins.
    assert_eq!(f.services.purge_expired_ceremonies().await.unwrap(), 4);
}

async fn a_tenant_invitation_makes_the_new_operator_a_member(backend: TestBackend) {
    use latchkey_core::{
        access::{Permission, Role},
        tenants::MemberAdded,
    };
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, _) = set_up(&f).await;
    let tenant = f
        .services
        .tenants()
        .create(&admin, "Acme", meta())
        .await
        .unwrap();
    let MemberAdded::Invited(invitation) = f
        .services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&f.services, &admin, tenant).await,
            "grace@example.com",
            Role::Support,
            meta(),
        )
        .await
        .unwrap()
    else {
        panic!("an invitation for a new address");
    };
    assert!(
        invitation
            .url(f.services.public_url())
            .contains("/invite?token=lk_inv_")
    );
    let options = f
        .services
        .operators()
        .begin_enrollment(&invitation.token, "grace@example.com", "Grace")
        .await
        .unwrap();
    let response = register(&mut SoftPasskeys::new(), ORIGIN, &options);
    let grace = f
        .finish_enrollment(options.ceremony_id, &response)
        .await
        .unwrap();
    assert!(!grace.is_instance_admin);
    assert_eq!(
        latchkey_core::testing::authorize(
            &f.services,
            &grace,
            tenant,
            Permission::RevokeCredentials
        )
        .await
        .unwrap(),
        Role::Support
    );
    let events = f.services.audit().recent(Some(tenant), 10).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"member.invited") && actions.contains(&"member.added"),
        "{actions:?}"
    );
}

async fn sign_in_options(f: &Fixture) -> latchkey_core::operators::CeremonyOptions {
    f.services
        .operators()
        .begin_sign_in(&RequestMeta::default())
        .await
        .unwrap()
}

/// Step-up: adding a passkey, inviting, adding a member, creating an API key and moving a tenant's
/// RP ID need a passkey verification from the last few minutes; authorization and input errors
/// come first; a refused action writes nothing.
async fn foothold_actions_need_a_recent_passkey_verification(backend: TestBackend) {
    use latchkey_core::{access::Role, tenants::config::PasskeyConfigInput};
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, _) = set_up(&f).await;
    let (grace, _) = invite(&f, "grace@example.com", false).await;
    let tenants = f.services.tenants();
    let tenant = tenants.create(&admin, "Acme", meta()).await.unwrap();
    let config = |rp_id: &str| PasskeyConfigInput {
        enabled: true,
        rp_id: rp_id.into(),
        rp_name: "Acme".into(),
        origins: format!("https://{rp_id}"),
        confirm_rp_id_change: true,
        ..PasskeyConfigInput::from(&latchkey_core::tenants::config::PasskeyConfig::default())
    };
    // The first RP ID is set freely (tenant set-up), and a signed-in session is enough for it.
    let verified_at = f.clock.now();
    let fresh = f.services.step_up(&admin, Some(verified_at));
    // The admin's access to the tenant, carrying what their session's step-up was judged.
    let member = f.services.tenant(&admin, tenant).await.unwrap();
    let within =
        |judged: &latchkey_core::access::step_up::StepUp<'_>| member.clone().stepped_up(judged);
    tenants
        .update_passkey_config(&within(&fresh), &config("acme.example"), 1, meta())
        .await
        .unwrap();

    f.clock.advance(TimeDelta::minutes(5));
    let stale = f.services.step_up(&admin, Some(verified_at));
    let never = f.services.step_up(&admin, None);
    let rows_before = latchkey_core::testing::all_rows_as_text(&f.conn).await;
    for judged in [stale, never] {
        assert_eq!(
            code_of(f.services.operators().begin_add_passkey(judged).await),
            ErrorCode::StepUpRequired
        );
        assert_eq!(
            code_of(
                f.services
                    .operators()
                    .invite(Inviter::Operator(judged), "new@example.com", false, meta())
                    .await
            ),
            ErrorCode::StepUpRequired
        );
        assert_eq!(
            code_of(
                tenants
                    .add_member(&within(&judged), "grace@example.com", Role::Viewer, meta())
                    .await
            ),
            ErrorCode::StepUpRequired
        );
        assert_eq!(
            code_of(
                f.services
                    .api_keys()
                    .create(&within(&judged), "ci", meta())
                    .await
            ),
            ErrorCode::StepUpRequired
        );
        assert_eq!(
            code_of(
                tenants
                    .update_passkey_config(&within(&judged), &config("acme.test"), 2, meta())
                    .await
            ),
            ErrorCode::StepUpRequired
        );
    }
    // Who may not act at all is told so, and a bad input is reported, before any prompt.
    let outsider = f.services.step_up(&grace, None);
    assert_eq!(
        code_of(f.services.tenant(&grace, tenant).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(
            f.services
                .operators()
                .invite(
                    Inviter::Operator(outsider),
                    "new@example.com",
                    false,
                    meta()
                )
                .await
        ),
        ErrorCode::Forbidden
    );
    let err = tenants
        .add_member(&within(&stale), "not an address", Role::Viewer, meta())
        .await
        .expect_err("bad address");
    assert_eq!(err.field(), Some("email"));
    assert_eq!(
        latchkey_core::testing::all_rows_as_text(&f.conn).await,
        rows_before,
        "refused actions write nothing"
    );

    // The rest of the configuration needs no step-up.
    let mut renamed = config("acme.example");
    renamed.rp_name = "Acme Inc".into();
    tenants
        .update_passkey_config(&within(&stale), &renamed, 2, meta())
        .await
        .unwrap();
    // Within the window every one of them goes through.
    let fresh = f.services.step_up(&admin, Some(f.clock.now()));
    f.clock.advance(TimeDelta::minutes(4));
    f.services
        .operators()
        .begin_add_passkey(fresh)
        .await
        .unwrap();
    tenants
        .update_passkey_config(&within(&fresh), &config("acme.test"), 3, meta())
        .await
        .unwrap();
    f.services
        .api_keys()
        .create(&within(&fresh), "ci", meta())
        .await
        .unwrap();
    tenants
        .add_member(&within(&fresh), "grace@example.com", Role::Viewer, meta())
        .await
        .unwrap();
    f.services
        .operators()
        .invite(Inviter::Operator(fresh), "new@example.com", false, meta())
        .await
        .unwrap();
}

/// The step-up ceremony: an assertion with the operator's own passkey, user verification
/// required, single use; it answers the time the session records.
async fn a_step_up_takes_one_of_the_operators_own_passkeys(backend: TestBackend) {
    use latchkey_core::testing::soft_passkey::assertion;
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (admin, mut passkeys) = set_up(&f).await;
    let (grace, mut graces) = invite(&f, "grace@example.com", false).await;
    let ops = f.services.operators();

    // The browser is offered the operator's passkeys only.
    let options = ops.begin_step_up(&admin).await.unwrap();
    let allowed = options.public_key["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(options.public_key["userVerification"], "required");

    // Another operator's passkey, signing this challenge, is refused; so is finishing someone
    // else's ceremony.
    let challenge = options.public_key["challenge"].as_str().unwrap();
    let foreign = assertion(&graces.credentials()[0], 0x05, challenge, ORIGIN).to_string();
    assert_eq!(
        code_of(
            ops.finish_step_up(&admin, options.ceremony_id, &foreign, meta())
                .await
        ),
        ErrorCode::CredentialUnknown
    );
    let theirs = ops.begin_step_up(&grace).await.unwrap();
    let response = authenticate(&mut graces, ORIGIN, &theirs);
    assert_eq!(
        code_of(
            ops.finish_step_up(&admin, theirs.ceremony_id, &response, meta())
                .await
        ),
        ErrorCode::CeremonyInvalid
    );

    // Without user verification: refused.
    passkeys.user_verified = false;
    let options = ops.begin_step_up(&admin).await.unwrap();
    let response = authenticate(&mut passkeys, ORIGIN, &options);
    assert_eq!(
        code_of(
            ops.finish_step_up(&admin, options.ceremony_id, &response, meta())
                .await
        ),
        ErrorCode::UserVerificationRequired
    );
    passkeys.user_verified = true;

    f.clock.advance(TimeDelta::hours(1));
    let options = ops.begin_step_up(&admin).await.unwrap();
    let response = authenticate(&mut passkeys, ORIGIN, &options);
    let at = ops
        .finish_step_up(&admin, options.ceremony_id, &response, meta())
        .await
        .unwrap();
    assert_eq!(at, f.clock.now());
    assert!(f.services.step_up(&admin, Some(at)).require().is_ok());
    // One attempt per challenge.
    assert_eq!(
        code_of(
            ops.finish_step_up(&admin, options.ceremony_id, &response, meta())
                .await
        ),
        ErrorCode::CeremonyInvalid
    );
    let events = actions(&audit(&f).await);
    assert!(events.contains(&("operator.stepped_up".into(), "success".into())));
    assert!(
        events.contains(&("operator.stepped_up".into(), "failure".into())),
        "{events:?}"
    );
}
