//! Property tests of the Client API's verify steps over HTTP, on both databases: whatever a
//! browser (or anyone) posts — a real passkey response with changes (members replaced, removed
//! or added; bytes of the client data, authenticator data, attestation object or signature
//! flipped, cut or extended), JSON shaped like a credential, any JSON, any body — the answer is
//! a 4xx problem+json with its documented code, never a 5xx, and nothing but the ceremony and
//! the audit log changes. A change the verifier rightly ignores (an unsigned member) may be
//! accepted: then the ceremony's writes are the success's, and the next case starts from them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::sync::Mutex;

use common::TestServer;
use latchkey_core::{
    ErrorCode,
    audit::RequestMeta,
    both_backends,
    end_users::{EnrollmentRequest, Scope},
    entities::ceremony,
    tenants::NewTenant,
    testing::{
        TestBackend, all_rows_as_text,
        fuzz::{CredentialInput, check_async, credential_input, json_value, secret_input},
        soft_passkey::SoftPasskeys,
    },
};
use proptest::prelude::*;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;

both_backends!(
    sign_in_verify_refuses_any_changed_credential_with_a_4xx_and_writes_nothing,
    registration_verify_refuses_any_changed_credential_with_a_4xx_and_writes_nothing,
    verify_bodies_and_bearers_of_any_shape_are_refused_with_a_4xx
);

const ORIGIN: &str = "https://shop.example.com";

/// Distinct refusal codes the cases must reach (they are random: fewer on PostgreSQL).
fn codes_reached(backend: TestBackend) -> usize {
    match backend {
        TestBackend::Sqlite => 3,
        TestBackend::Postgres => 2,
    }
}

/// Cases per property: a few hundred on SQLite, fewer on PostgreSQL (slower round trips).
fn cases(backend: TestBackend, sqlite: u32, postgres: u32) -> u32 {
    match backend {
        TestBackend::Sqlite => sqlite,
        TestBackend::Postgres => postgres,
    }
}

struct Fixture {
    t: TestServer,
    tenant: Uuid,
    api_key: String,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    // Hundreds of requests from one address in a few seconds: the per-address limits (each
    // has its own test) would answer most of them `rate_limited`.
    let t = TestServer::start_with(
        backend,
        &[
            "--client-rate-limit",
            "0",
            "--source-rate-limit",
            "0",
            "--open-ceremonies-per-address",
            "0",
        ],
    )
    .await?;
    let tenant = t
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![ORIGIN.into()],
            enable_passkeys: true,
            owner_email: None,
        })
        .await
        .unwrap();
    let api_key = t
        .services
        .api_keys()
        .create(
            &latchkey_core::testing::host_access(&t.services, tenant).await,
            "backend",
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .secret;
    Some(Fixture { t, tenant, api_key })
}

impl Fixture {
    /// An enrollment token for `user` that may add passkeys.
    async fn enrollment_token(&self, user: &str) -> String {
        let key = self
            .t
            .services
            .api_keys()
            .authenticate(&self.api_key)
            .await
            .unwrap();
        self.t
            .services
            .end_users()
            .issue_enrollment_token(
                &key.access(),
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

    async fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self
            .t
            .http
            .post(self.t.url(path))
            .header("origin", ORIGIN)
            .json(body);
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        req.send().await.unwrap()
    }

    /// Options for a ceremony: `(ceremony_id, publicKey)`.
    async fn options(&self, path: &str, bearer: Option<&str>) -> (String, Value) {
        let res = self.post(path, bearer, &json!({})).await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let id = body["ceremony_id"].as_str().unwrap().to_owned();
        (id, body["publicKey"].clone())
    }

    /// Whether the stored ceremony (a registration's) was used up (by a refusal that read it,
    /// or a success).
    async fn used(&self, id: &str) -> bool {
        ceremony::Entity::find_by_id(id.parse::<Uuid>().unwrap())
            .one(&self.t.conn)
            .await
            .unwrap()
            .is_none_or(|c| c.used_at.is_some())
    }

    /// How many sealed ceremonies (sign-ins) have been used up.
    async fn sealed_uses(&self) -> usize {
        all_rows_as_text(&self.t.conn)
            .await
            .iter()
            .filter(|(table, _)| table == "ceremony_uses")
            .count()
    }

    /// Registers a passkey for `user` over the Client API (the sign-in tests' passkey).
    async fn register(&self, user: &str) -> SoftPasskeys {
        let token = self.enrollment_token(user).await;
        let (id, public_key) = self
            .options("/api/client/v1/registration/options", Some(&token))
            .await;
        let mut passkeys = SoftPasskeys::new();
        let credential = passkeys.register(ORIGIN, &public_key).unwrap();
        let res = self
            .post(
                "/api/client/v1/registration/verify",
                Some(&token),
                &json!({ "ceremony_id": id, "credential": credential }),
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        passkeys
    }
}

/// Every row but the audit log's and the ceremonies' (which a refusal may write: the event,
/// the used-up ceremony).
async fn state(conn: &sea_orm::DatabaseConnection) -> Vec<(String, String)> {
    all_rows_as_text(conn)
        .await
        .into_iter()
        // A refusal uses up its ceremony (a stored one's row, a sealed one's recorded use) and
        // is audited.
        .filter(|(table, _)| {
            !matches!(
                table.as_str(),
                "audit_events" | "ceremonies" | "ceremony_uses"
            )
        })
        .collect()
}

/// A refusal as the spec wants it: a 4xx, problem+json, a documented client code. Answers
/// the code.
async fn refusal(res: reqwest::Response) -> Result<ErrorCode, TestCaseError> {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap_or_default();
    prop_assert!((400..500).contains(&status), "{}: {}", status, text);
    prop_assert_eq!(
        content_type.as_str(),
        "application/problem+json",
        "{}",
        text
    );
    let problem: Value = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {text}")))?;
    let code: ErrorCode = serde_json::from_value(problem["code"].clone())
        .map_err(|e| TestCaseError::fail(format!("unknown code ({e}): {text}")))?;
    prop_assert!(code != ErrorCode::Internal, "{}", text);
    prop_assert_eq!(
        problem["status"].as_u64(),
        Some(u64::from(status)),
        "{}",
        text
    );
    Ok(code)
}

/// Tallies what the cases did, to show (with `--nocapture`) that they reached the verifier.
#[derive(Default, Debug)]
struct Tally {
    accepted: u32,
    by_code: std::collections::BTreeMap<&'static str, u32>,
}

impl Tally {
    fn count(&mut self, code: ErrorCode) {
        *self.by_code.entry(code.as_str()).or_default() += 1;
    }
}

/// A sign-in (discoverable: no user named) answered by the user's real passkey, then changed.
async fn sign_in_verify_refuses_any_changed_credential_with_a_4xx_and_writes_nothing(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let passkeys = Mutex::new(f.register("user-1").await);
    let options = format!("/api/client/v1/tenants/{}/authentication/options", f.tenant);
    let verify = format!("/api/client/v1/tenants/{}/authentication/verify", f.tenant);
    // A ceremony a refusal did not use up (its credential never parsed) serves the next case.
    let pending: Mutex<Option<(String, Value)>> = Mutex::new(None);
    let tally = Mutex::new(Tally::default());
    check_async(
        cases(backend, 300, 60),
        credential_input(),
        |input: CredentialInput| {
            let (f, passkeys, pending, tally) = (&f, &passkeys, &pending, &tally);
            let (options, verify) = (options.as_str(), verify.as_str());
            async move {
                let reuse = pending.lock().unwrap().take();
                let (ceremony_id, public_key) = match reuse {
                    Some(ceremony) => ceremony,
                    None => f.options(options, None).await,
                };
                let real = passkeys
                    .lock()
                    .unwrap()
                    .authenticate(ORIGIN, &public_key)
                    .unwrap();
                let credential = input.render(&real);
                let before = state(&f.t.conn).await;
                let uses = f.sealed_uses().await;
                let res = f
                    .post(
                        verify,
                        None,
                        &json!({ "ceremony_id": ceremony_id, "credential": credential }),
                    )
                    .await;
                if res.status() == 200 {
                    let body: Value = res.json().await.unwrap();
                    prop_assert!(
                        body["token"]
                            .as_str()
                            .is_some_and(|t| t.starts_with("lk_val_"))
                    );
                    tally.lock().unwrap().accepted += 1;
                    return Ok(());
                }
                let code = refusal(res).await?;
                tally.lock().unwrap().count(code);
                prop_assert!(
                    state(&f.t.conn).await == before,
                    "a refusal ({}) wrote",
                    code
                );
                if f.sealed_uses().await == uses {
                    *pending.lock().unwrap() = Some((ceremony_id, public_key));
                }
                Ok(())
            }
        },
    )
    .await;
    let tally = tally.into_inner().unwrap();
    eprintln!("sign-in verify ({backend:?}): {tally:?}");
    assert!(
        tally.by_code.len() >= codes_reached(backend),
        "the cases reached only {:?}",
        tally.by_code
    );
}

/// A registration with an enrollment token, answered by a new passkey, then changed; a name for
/// the passkey too, of any kind.
async fn registration_verify_refuses_any_changed_credential_with_a_4xx_and_writes_nothing(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = Mutex::new(f.enrollment_token("user-2").await);
    let pending: Mutex<Option<(String, Value)>> = Mutex::new(None);
    let tally = Mutex::new(Tally::default());
    let name = prop_oneof![
        3 => Just(None),
        1 => any::<String>().prop_map(Some),
        1 => "[a-z ]{95,105}".prop_map(Some),
    ];
    let strategy = (credential_input(), name);
    check_async(cases(backend, 150, 30), strategy, |(input, name)| {
        let (f, token, pending, tally) = (&f, &token, &pending, &tally);
        async move {
            let bearer = token.lock().unwrap().clone();
            let reuse = pending.lock().unwrap().take();
            let (ceremony_id, public_key) = match reuse {
                Some(ceremony) => ceremony,
                None => {
                    f.options("/api/client/v1/registration/options", Some(&bearer))
                        .await
                }
            };
            let real = SoftPasskeys::new().register(ORIGIN, &public_key).unwrap();
            let credential = input.render(&real);
            let mut body = json!({ "ceremony_id": ceremony_id, "credential": credential });
            if let Some(name) = name {
                body["name"] = name.into();
            }
            let before = state(&f.t.conn).await;
            let res = f
                .post("/api/client/v1/registration/verify", Some(&bearer), &body)
                .await;
            if res.status() == 200 {
                let body: Value = res.json().await.unwrap();
                prop_assert!(
                    body["token"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("lk_val_"))
                );
                tally.lock().unwrap().accepted += 1;
                // The token is used up: the next case needs another.
                let fresh = f.enrollment_token("user-2").await;
                *token.lock().unwrap() = fresh;
                return Ok(());
            }
            let code = refusal(res).await?;
            tally.lock().unwrap().count(code);
            prop_assert!(
                state(&f.t.conn).await == before,
                "a refusal ({}) wrote",
                code
            );
            if !f.used(&ceremony_id).await {
                *pending.lock().unwrap() = Some((ceremony_id, public_key));
            }
            Ok(())
        }
    })
    .await;
    let tally = tally.into_inner().unwrap();
    eprintln!("registration verify ({backend:?}): {tally:?}");
    assert!(
        tally.by_code.len() >= codes_reached(backend),
        "the cases reached only {:?}",
        tally.by_code
    );
}

/// What the verify endpoints and the token validation may be sent.
#[derive(Debug, Clone)]
enum Body {
    /// Any text, sent as JSON.
    Text(String),
    /// Any JSON value as the whole body.
    Json(Value),
    /// The right members with values of any kind.
    Members(Value, Value),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => any::<String>().prop_map(Body::Text),
        2 => json_value().prop_map(Body::Json),
        2 => (
            prop_oneof![
                json_value(),
                any::<u128>().prop_map(|id| Value::from(Uuid::from_u128(id).to_string())),
            ],
            json_value(),
        )
            .prop_map(|(id, credential)| Body::Members(id, credential)),
    ]
}

/// Whole bodies of any shape to both verify endpoints (which read nothing real from them), and
/// presented secrets of any shape: as the enrollment bearer of a registration, as the API key
/// of the Server API, and as the validation token it is asked to validate. Each is refused with
/// a 4xx problem+json, and writes nothing but the audit log.
async fn verify_bodies_and_bearers_of_any_shape_are_refused_with_a_4xx(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f.enrollment_token("user-3").await;
    let verify = format!("/api/client/v1/tenants/{}/authentication/verify", f.tenant);
    let bearer = secret_input().prop_filter("a header value", |s| {
        reqwest::header::HeaderValue::from_str(&format!("Bearer {s}")).is_ok()
    });
    let strategy = (body(), bearer);
    check_async(cases(backend, 96, 24), strategy, |(body, presented)| {
        let (f, token, verify) = (&f, &token, verify.as_str());
        async move {
            let send = |path: &str, bearer: Option<&str>| {
                let mut req =
                    f.t.http
                        .post(f.t.url(path))
                        .header("origin", ORIGIN)
                        .header("content-type", "application/json");
                req = match &body {
                    Body::Text(text) => req.body(text.clone()),
                    Body::Json(value) => req.body(value.to_string()),
                    Body::Members(id, credential) => {
                        req.body(json!({ "ceremony_id": id, "credential": credential }).to_string())
                    }
                };
                if let Some(bearer) = bearer {
                    req = req.bearer_auth(bearer);
                }
                req.send()
            };
            let before = state(&f.t.conn).await;
            refusal(send(verify, None).await.unwrap()).await?;
            refusal(
                send("/api/client/v1/registration/verify", Some(token))
                    .await
                    .unwrap(),
            )
            .await?;
            // The presented secret as the enrollment token, then as the API key.
            let code = refusal(
                send("/api/client/v1/registration/verify", Some(&presented))
                    .await
                    .unwrap(),
            )
            .await?;
            prop_assert!(
                matches!(code, ErrorCode::TokenInvalid | ErrorCode::InvalidRequest),
                "{}",
                code
            );
            let res =
                f.t.http
                    .post(f.t.url("/api/v1/tokens/validate"))
                    .bearer_auth(&presented)
                    .json(&json!({ "token": presented }))
                    .send()
                    .await
                    .unwrap();
            // Failed authentications from one address are throttled after a few.
            let code = refusal(res).await?;
            prop_assert!(
                matches!(code, ErrorCode::Unauthorized | ErrorCode::RateLimited),
                "{}",
                code
            );
            // …and as the validation token, with the real key: not valid, nothing else.
            let res =
                f.t.http
                    .post(f.t.url("/api/v1/tokens/validate"))
                    .bearer_auth(&f.api_key)
                    .json(&json!({ "token": presented }))
                    .send()
                    .await
                    .unwrap();
            prop_assert_eq!(res.status().as_u16(), 200);
            let answer: Value = res.json().await.unwrap();
            prop_assert_eq!(&answer, &json!({ "valid": false, "reason": "unknown" }));
            // The API key's last use is the one write a Server API call may make.
            let after: Vec<_> = state(&f.t.conn)
                .await
                .into_iter()
                .filter(|(table, _)| table != "api_keys")
                .collect();
            let before: Vec<_> = before
                .into_iter()
                .filter(|(table, _)| table != "api_keys")
                .collect();
            prop_assert!(after == before, "a refusal wrote");
            Ok(())
        }
    })
    .await;
}
