//! The Server API over HTTP against a real server, on both databases: every endpoint and the
//! errors it answers, the scope rule, expiry by the clock, single use under concurrency, tenant
//! isolation, key revocation, throttling, and no secret stored in the clear.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use chrono::TimeDelta;
use common::TestServer;
use latchkey_core::{
    audit::RequestMeta,
    both_backends,
    tenants::NewTenant,
    testing::{TestBackend, all_rows_as_text, soft_passkey::SoftPasskeys},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

both_backends!(
    the_scope_rule_is_enforced_at_redemption,
    bad_enrollment_requests_name_the_field_and_change_nothing,
    the_longest_input_is_stored_or_refused_never_a_server_error,
    tokens_expire_by_the_clock,
    an_enrollment_token_registers_exactly_once_under_concurrency,
    unscoped_tokens_racing_for_one_user_register_one_passkey,
    a_validation_token_validates_exactly_once_under_concurrency,
    tenants_see_nothing_of_each_other,
    revoked_unknown_and_missing_keys_are_refused,
    failed_authentications_are_throttled_per_source,
    users_authenticators_and_revocation,
    sign_in_tokens_validate_as_sign_in,
    a_token_of_a_revoked_passkey_does_not_validate,
    no_secret_is_stored_in_the_clear,
    the_policy_dry_run_and_health_queue_over_http
);

const ORIGIN: &str = "https://shop.example.com";
const GOOGLE: &str = "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4";

/// A tenant with passkeys on for shop.example.com, and a Server API key for it.
struct Tenant {
    id: Uuid,
    key: String,
    owner: latchkey_core::access::OperatorIdentity,
}

async fn tenant(t: &TestServer, name: &str) -> Tenant {
    let email = format!("owner@{}.test", name.to_lowercase());
    let owner = latchkey_core::testing::insert_operator(&t.conn, &email, false).await;
    let id = t
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: name.into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![ORIGIN.into()],
            enable_passkeys: true,
            owner_email: Some(email),
        })
        .await
        .unwrap();
    let key = t
        .services
        .api_keys()
        .create(
            &latchkey_core::testing::host_access(&t.services, id).await,
            "backend",
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .secret;
    Tenant { id, key, owner }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

async fn send(
    t: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = t.http.request(method, t.url(path));
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    if !status.is_success() {
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path}: {status} {text}"
        );
    }
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn issue(t: &TestServer, key: &str, user: &str, body: Value) -> Answer {
    send(
        t,
        Method::POST,
        &format!("/api/v1/users/{user}/enrollment-tokens"),
        Some(key),
        Some(body),
    )
    .await
}

async fn issue_ok(t: &TestServer, key: &str, user: &str, scoped: bool) -> String {
    let scopes: Vec<&str> = if scoped {
        vec!["add:authenticators"]
    } else {
        vec![]
    };
    let answer = issue(
        t,
        key,
        user,
        json!({ "username": format!("{user}@example.com"), "scopes": scopes }),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

async fn registration_options(t: &TestServer, token: &str) -> Answer {
    send(
        t,
        Method::POST,
        "/api/client/v1/registration/options",
        Some(token),
        Some(json!({})),
    )
    .await
}

async fn registration_verify(
    t: &TestServer,
    token: &str,
    options: &Value,
    passkeys: &mut SoftPasskeys,
) -> Answer {
    let credential = passkeys.register(ORIGIN, &options["publicKey"]).unwrap();
    send(
        t,
        Method::POST,
        "/api/client/v1/registration/verify",
        Some(token),
        Some(json!({ "ceremony_id": options["ceremony_id"], "credential": credential })),
    )
    .await
}

/// Registers a passkey with `token`: options, the soft authenticator, verify.
async fn register(t: &TestServer, token: &str, passkeys: &mut SoftPasskeys) -> Answer {
    let options = registration_options(t, token).await;
    if options.status != 200 {
        return options;
    }
    registration_verify(t, token, &options.body, passkeys).await
}

async fn authentication_options(t: &TestServer, tenant: Uuid, body: Value) -> Answer {
    let options = send(
        t,
        Method::POST,
        &format!("/api/client/v1/tenants/{tenant}/authentication/options"),
        None,
        Some(body),
    )
    .await;
    assert_eq!(options.status, 200, "{}", options.body);
    options
}

async fn authentication_verify(
    t: &TestServer,
    tenant: Uuid,
    options: &Answer,
    credential: Value,
) -> Answer {
    send(
        t,
        Method::POST,
        &format!("/api/client/v1/tenants/{tenant}/authentication/verify"),
        None,
        Some(json!({ "ceremony_id": options.body["ceremony_id"], "credential": credential })),
    )
    .await
}

async fn sign_in(
    t: &TestServer,
    tenant: Uuid,
    user: Option<&str>,
    passkeys: &mut SoftPasskeys,
) -> Answer {
    let body = user.map_or_else(|| json!({}), |u| json!({ "user_id": u }));
    let options = authentication_options(t, tenant, body).await;
    let credential = passkeys
        .authenticate(ORIGIN, &options.body["publicKey"])
        .unwrap();
    authentication_verify(t, tenant, &options, credential).await
}

/// A sign-in for `user` in which the client presents its passkey whatever the options list, as
/// a tampered client would (the options offer it nothing: another user's passkeys, or decoys).
async fn sign_in_presenting(
    t: &TestServer,
    tenant: Uuid,
    user: &str,
    passkeys: &mut SoftPasskeys,
) -> Answer {
    let options = authentication_options(t, tenant, json!({ "user_id": user })).await;
    assert!(
        passkeys
            .authenticate(ORIGIN, &options.body["publicKey"])
            .is_err(),
        "the options offer none of these passkeys"
    );
    let mut forged = options.body["publicKey"].clone();
    forged["allowCredentials"] = json!([]);
    let credential = passkeys.authenticate(ORIGIN, &forged).unwrap();
    authentication_verify(t, tenant, &options, credential).await
}

async fn validate(t: &TestServer, key: &str, token: &str) -> Answer {
    send(
        t,
        Method::POST,
        "/api/v1/tokens/validate",
        Some(key),
        Some(json!({ "token": token })),
    )
    .await
}

async fn count(t: &TestServer, table: &str) -> usize {
    all_rows_as_text(&t.conn)
        .await
        .into_iter()
        .filter(|(name, _)| name == table)
        .count()
}

async fn the_scope_rule_is_enforced_at_redemption(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let mut phone = SoftPasskeys::new();

    // First passkey: no scope needed.
    let first = issue(&t, &acme.key, "user-1", json!({})).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body["has_authenticators"], false);
    assert_eq!(first.body["scopes"], json!([]));
    assert_eq!(first.body["user_id"], "user-1");
    let first = first.body["token"].as_str().unwrap().to_owned();
    // A second unscoped token issued while the user has none yet, redeemed after the first.
    let late = issue_ok(&t, &acme.key, "user-1", false).await;
    let late_options = registration_options(&t, &late).await;
    assert_eq!(late_options.status, 200);

    let done = register(&t, &first, &mut phone).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let valid = validate(&t, &acme.key, done.body["token"].as_str().unwrap()).await;
    assert_eq!(valid.body["valid"], true);
    assert_eq!(valid.body["kind"], "sign_up");
    assert_eq!(valid.body["user_id"], "user-1");
    assert_eq!(
        valid.body["authenticator_id"],
        done.body["authenticator"]["id"]
    );

    // The late token's ceremony was fine when it started; the rule is checked again at verify.
    let mut laptop = SoftPasskeys::new();
    let refused = registration_verify(&t, &late, &late_options.body, &mut laptop).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "scope_required");

    // Another passkey without the scope: refused at options, and the issue answer says so.
    let unscoped = issue(&t, &acme.key, "user-1", json!({})).await;
    assert_eq!(unscoped.body["has_authenticators"], true);
    let refused = register(&t, unscoped.body["token"].as_str().unwrap(), &mut laptop).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "scope_required");

    // With the scope: registered; excludeCredentials lists the first passkey.
    let scoped = issue_ok(&t, &acme.key, "user-1", true).await;
    let options = registration_options(&t, &scoped).await;
    let excluded = options.body["publicKey"]["excludeCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(excluded.len(), 1);
    let added = registration_verify(&t, &scoped, &options.body, &mut laptop).await;
    assert_eq!(added.status, 200, "{}", added.body);

    let user = send(
        &t,
        Method::GET,
        "/api/v1/users/user-1",
        Some(&acme.key),
        None,
    )
    .await;
    assert_eq!(user.status, 200);
    assert_eq!(user.body["authenticator_count"], 2);
    assert_eq!(user.body["username"], "user-1@example.com");

    // The audit log tells the story: issued, registered, refused for the scope (a refused
    // start used up no ceremony: it is counted, then written in the minute's aggregate).
    t.services.flush_refusals().await.unwrap();
    let actions: Vec<String> = t
        .services
        .audit()
        .recent(Some(acme.id), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.action, e.error_code.unwrap_or_default()))
        .collect();
    assert!(actions.contains(&"enrollment_token.issued:".to_owned()));
    assert!(actions.contains(&"authenticator.registered:".to_owned()));
    assert!(actions.contains(&"registration.finished:scope_required".to_owned()));
    assert!(actions.contains(&"registration.started:scope_required".to_owned()));
}

async fn bad_enrollment_requests_name_the_field_and_change_nothing(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let long_id = "u".repeat(129);
    let cases: Vec<(String, Value, &str)> = vec![
        ("user-1".into(), json!({ "ttl_seconds": 59 }), "ttl_seconds"),
        (
            "user-1".into(),
            json!({ "ttl_seconds": 3601 }),
            "ttl_seconds",
        ),
        (
            "user-1".into(),
            json!({ "ttl_seconds": "600" }),
            "ttl_seconds",
        ),
        (
            "user-1".into(),
            json!({ "scope": ["add:authenticators"] }),
            "scope",
        ),
        ("user-1".into(), json!({ "scopes": ["admin"] }), "scopes[0]"),
        (
            "user-1".into(),
            json!({ "scopes": "add:authenticators" }),
            "scopes",
        ),
        ("user-1".into(), json!({ "username": 7 }), "username"),
        (
            "user-1".into(),
            json!({ "display_name": "" }),
            "display_name",
        ),
        (long_id, json!({}), "user_id"),
        ("bad%0Aid".into(), json!({}), "user_id"),
        // Format characters: a right-to-left override, a zero-width space, a BOM.
        ("admin%E2%80%AEnimda".into(), json!({}), "user_id"),
        ("user%E2%80%8B1".into(), json!({}), "user_id"),
        ("%EF%BB%BFuser-1".into(), json!({}), "user_id"),
    ];
    for (user, body, field) in cases {
        let answer = issue(&t, &acme.key, &user, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.code(), "invalid_request", "{body}");
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
        assert!(!answer.body["detail"].as_str().unwrap().is_empty());
    }

    // Not JSON at all.
    let res = t
        .http
        .post(t.url("/api/v1/users/user-1/enrollment-tokens"))
        .bearer_auth(&acme.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_request");

    // Over the body limit.
    let huge = json!({ "username": "x".repeat(70 * 1024) });
    let answer = issue(&t, &acme.key, "user-1", huge).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.code(), "payload_too_large");

    assert_eq!(count(&t, "end_users").await, 0);
    assert_eq!(count(&t, "enrollment_tokens").await, 0);
}

/// Values at their limits, in the forms that grow on the way to the database: `İ` lower-cases
/// to two characters (the search keys), a client's User-Agent is whatever it sends. Each is
/// stored (clipped where only a record) or refused, never a 500 (PostgreSQL enforces lengths).
async fn the_longest_input_is_stored_or_refused_never_a_server_error(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let dotted = "İ".repeat(128);
    let answer = issue(
        &t,
        &acme.key,
        &dotted,
        json!({ "username": "İ".repeat(256), "display_name": "İ".repeat(256) }),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let token = answer.body["token"].as_str().unwrap().to_owned();

    // Registered from a browser with an absurd User-Agent.
    let options = send(
        &t,
        Method::POST,
        "/api/client/v1/registration/options",
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let credential = SoftPasskeys::new()
        .register(ORIGIN, &options.body["publicKey"])
        .unwrap();
    let res = t
        .http
        .post(t.url("/api/client/v1/registration/verify"))
        .bearer_auth(&token)
        .header("user-agent", "Mozilla/5.0 ".repeat(400))
        .json(&json!({ "ceremony_id": options.body["ceremony_id"], "credential": credential }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let user = send(
        &t,
        Method::GET,
        &format!("/api/v1/users/{dotted}"),
        Some(&acme.key),
        None,
    )
    .await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.body["authenticator_count"], 1);
}

async fn tokens_expire_by_the_clock(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let answer = issue(&t, &acme.key, "user-1", json!({ "ttl_seconds": 60 })).await;
    let expires_at: chrono::DateTime<chrono::Utc> =
        answer.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        expires_at,
        latchkey_core::Clock::now(&t.clock) + TimeDelta::seconds(60)
    );
    let short = answer.body["token"].as_str().unwrap().to_owned();
    let fresh = issue_ok(&t, &acme.key, "user-2", false).await;

    t.clock.advance(TimeDelta::seconds(61));
    let expired = registration_options(&t, &short).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.code(), "token_expired");

    let mut phone = SoftPasskeys::new();
    let done = register(&t, &fresh, &mut phone).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let used = register(&t, &fresh, &mut SoftPasskeys::new()).await;
    assert_eq!(used.status, 401);
    assert_eq!(used.code(), "token_used");

    // Validation tokens live five minutes.
    t.clock.advance(TimeDelta::seconds(301));
    let late = validate(&t, &acme.key, done.body["token"].as_str().unwrap()).await;
    assert_eq!(late.status, 200);
    assert_eq!(late.body, json!({ "valid": false, "reason": "expired" }));

    // A day later housekeeping forgets the expired token and records that it expired unused.
    t.clock.advance(TimeDelta::hours(25));
    assert!(t.services.purge_expired_tokens().await.unwrap() >= 2);
    let expired_events = t
        .services
        .audit()
        .recent(Some(acme.id), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "enrollment_token.expired")
        .count();
    assert_eq!(expired_events, 1);
    let gone = registration_options(&t, &short).await;
    assert_eq!(gone.code(), "token_invalid");
}

async fn an_enrollment_token_registers_exactly_once_under_concurrency(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let token = issue_ok(&t, &acme.key, "user-1", false).await;
    // 50 browsers each start a ceremony with the same token, then all finish at once.
    let mut attempts = Vec::new();
    for _ in 0..50 {
        let options = registration_options(&t, &token).await;
        assert_eq!(options.status, 200, "{}", options.body);
        let mut passkeys = SoftPasskeys::new();
        let credential = passkeys
            .register(ORIGIN, &options.body["publicKey"])
            .unwrap();
        attempts
            .push(json!({ "ceremony_id": options.body["ceremony_id"], "credential": credential }));
    }
    let url = t.url("/api/client/v1/registration/verify");
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|body| {
            let (http, url, token) = (t.http.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                (status, res.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        if status == 200 {
            won += 1;
        } else {
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["code"], "token_used", "{body}");
        }
    }
    assert_eq!(won, 1);
    assert_eq!(count(&t, "authenticators").await, 1);
    assert_eq!(count(&t, "validation_tokens").await, 1);
}

/// The `add:authenticators` rule under a race: several unscoped tokens for one user without a
/// passkey, every registration verified at once. Under READ COMMITTED each transaction used to
/// count zero passkeys and insert; the user row is now locked before counting, so exactly one
/// registers and the others are refused with `scope_required` (SQLite: its single writer).
async fn unscoped_tokens_racing_for_one_user_register_one_passkey(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    for round in 0..10 {
        let user = format!("racer-{round}");
        let mut attempts = Vec::new();
        for _ in 0..6 {
            let token = issue_ok(&t, &acme.key, &user, false).await;
            let options = registration_options(&t, &token).await;
            assert_eq!(options.status, 200, "{}", options.body);
            let credential = SoftPasskeys::new()
                .register(ORIGIN, &options.body["publicKey"])
                .unwrap();
            let body =
                json!({ "ceremony_id": options.body["ceremony_id"], "credential": credential });
            attempts.push((token, body));
        }
        let url = t.url("/api/client/v1/registration/verify");
        let tasks: Vec<_> = attempts
            .into_iter()
            .map(|(token, body)| {
                let (http, url) = (t.http.clone(), url.clone());
                tokio::spawn(async move {
                    let res = http
                        .post(url)
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    (res.status(), res.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            let (status, body) = task.await.unwrap();
            if status == 200 {
                won += 1;
            } else {
                assert_eq!(
                    body["code"], "scope_required",
                    "round {round}: {status} {body}"
                );
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    assert_eq!(
        count(&t, "authenticators").await,
        10,
        "one passkey per user"
    );
}

async fn a_validation_token_validates_exactly_once_under_concurrency(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let token = issue_ok(&t, &acme.key, "user-1", false).await;
    let done = register(&t, &token, &mut SoftPasskeys::new()).await;
    let validation = done.body["token"].as_str().unwrap().to_owned();
    let url = t.url("/api/v1/tokens/validate");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (http, url, key) = (t.http.clone(), url.clone(), acme.key.clone());
            let body = json!({ "token": validation });
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                res.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut valid = 0;
    for task in tasks {
        let body = task.await.unwrap();
        if body["valid"] == true {
            valid += 1;
        } else {
            assert_eq!(body, json!({ "valid": false, "reason": "already_used" }));
        }
    }
    assert_eq!(valid, 1);
}

async fn tenants_see_nothing_of_each_other(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let globex = tenant(&t, "Globex").await;
    let token = issue_ok(&t, &globex.key, "shared-id", false).await;
    let done = register(&t, &token, &mut SoftPasskeys::new()).await;
    let authenticator = done.body["authenticator"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let validation = done.body["token"].as_str().unwrap().to_owned();

    for (method, path) in [
        (Method::GET, "/api/v1/users/shared-id".to_owned()),
        (
            Method::GET,
            "/api/v1/users/shared-id/authenticators".to_owned(),
        ),
        (
            Method::DELETE,
            format!("/api/v1/users/shared-id/authenticators/{authenticator}"),
        ),
    ] {
        let answer = send(&t, method.clone(), &path, Some(&acme.key), None).await;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert_eq!(answer.code(), "not_found");
    }
    // Another tenant's token is unknown, and stays valid for its own tenant.
    let foreign = validate(&t, &acme.key, &validation).await;
    assert_eq!(foreign.body, json!({ "valid": false, "reason": "unknown" }));
    let own = validate(&t, &globex.key, &validation).await;
    assert_eq!(own.body["valid"], true);

    // The same user id in Acme is a different, new user.
    let acme_token = issue(&t, &acme.key, "shared-id", json!({})).await;
    assert_eq!(acme_token.body["has_authenticators"], false);
    let list = send(
        &t,
        Method::GET,
        "/api/v1/users/shared-id/authenticators",
        Some(&acme.key),
        None,
    )
    .await;
    assert_eq!(list.body["authenticators"], json!([]));
    let theirs = send(
        &t,
        Method::GET,
        "/api/v1/users/shared-id/authenticators",
        Some(&globex.key),
        None,
    )
    .await;
    assert_eq!(theirs.body["authenticators"][0]["revoked_at"], Value::Null);
}

async fn revoked_unknown_and_missing_keys_are_refused(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    assert_eq!(issue(&t, &acme.key, "u", json!({})).await.status, 201);
    let keys = t
        .services
        .api_keys()
        .list(&latchkey_core::testing::access(&t.services, &acme.owner, acme.id).await)
        .await
        .unwrap();
    t.services
        .api_keys()
        .revoke(
            &latchkey_core::testing::access(&t.services, &acme.owner, acme.id).await,
            keys[0].id,
            RequestMeta::default(),
        )
        .await
        .unwrap();

    let garbage = format!("lk_sk_{}", "A".repeat(43));
    for bearer in [
        Some(acme.key.as_str()),
        Some(garbage.as_str()),
        Some("lk_sk_x"),
        None,
    ] {
        let answer = issue(&t, bearer.unwrap_or_default(), "u", json!({})).await;
        let answer = if bearer.is_none() {
            send(&t, Method::GET, "/api/v1/users/u", None, None).await
        } else {
            answer
        };
        assert_eq!(answer.status, 401, "{bearer:?}");
        assert_eq!(answer.code(), "unauthorized");
        assert!(answer.headers.contains_key("www-authenticate"));
    }
}

async fn failed_authentications_are_throttled_per_source(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let wrong = format!("lk_sk_{}", "B".repeat(43));
    for _ in 0..latchkey_server::http::api::rate_limit::MAX_FAILURES {
        let answer = send(&t, Method::GET, "/api/v1/users/u", Some(&wrong), None).await;
        assert_eq!(answer.status, 401);
    }
    let limited = send(&t, Method::GET, "/api/v1/users/u", Some(&wrong), None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "rate_limited");
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    // A valid key is always served: behind a proxy every backend shares the address, and
    // someone else's bad keys must not lock them out. A thousand more failures change nothing.
    for _ in 0..1000 {
        let refused = send(&t, Method::GET, "/api/v1/users/u", Some(&wrong), None).await;
        assert_eq!(refused.status, 429);
    }
    for _ in 0..20 {
        let valid = send(&t, Method::GET, "/api/v1/users/u", Some(&acme.key), None).await;
        assert_eq!(valid.status, 404, "served (no such user): {}", valid.body);
        assert_eq!(valid.code(), "not_found");
    }
    // Malformed keys count as failures too, and stay refused.
    let malformed = send(&t, Method::GET, "/api/v1/users/u", Some("nonsense"), None).await;
    assert_eq!(malformed.status, 429);
}

async fn users_authenticators_and_revocation(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let unknown = send(
        &t,
        Method::GET,
        "/api/v1/users/nobody",
        Some(&acme.key),
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "not_found");

    let answer = issue(
        &t,
        &acme.key,
        "user-1",
        json!({ "username": "ada", "display_name": "Ada Lovelace" }),
    )
    .await;
    let token = answer.body["token"].as_str().unwrap().to_owned();
    let mut phone = SoftPasskeys::new();
    phone.aaguid = *Uuid::parse_str(GOOGLE).unwrap().as_bytes();
    phone.backed_up = true;
    phone.user_verified = true;
    let done = register(&t, &token, &mut phone).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        done.body["authenticator"]["name"],
        "Google Password Manager"
    );

    let user = send(
        &t,
        Method::GET,
        "/api/v1/users/user-1",
        Some(&acme.key),
        None,
    )
    .await;
    assert_eq!(user.body["user_id"], "user-1");
    assert_eq!(user.body["username"], "ada");
    assert_eq!(user.body["display_name"], "Ada Lovelace");
    assert_eq!(user.body["authenticator_count"], 1);
    assert!(user.body["created_at"].as_str().is_some());

    let list = send(
        &t,
        Method::GET,
        "/api/v1/users/user-1/authenticators",
        Some(&acme.key),
        None,
    )
    .await;
    assert_eq!(list.status, 200);
    let item = &list.body["authenticators"][0];
    assert_eq!(item["aaguid"], GOOGLE);
    assert_eq!(item["provider_name"], "Google Password Manager");
    assert_eq!(item["backup_eligible"], true);
    assert_eq!(item["backup_state"], true);
    assert_eq!(item["transports"], json!(["hybrid", "internal"]));
    assert!(item.get("revoked_at").is_none());
    let id = item["id"].as_str().unwrap().to_owned();

    // Signing in works, then the revocation takes it away for good.
    let signed_in = sign_in(&t, acme.id, Some("user-1"), &mut phone).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let path = format!("/api/v1/users/user-1/authenticators/{id}");
    let revoked = send(&t, Method::DELETE, &path, Some(&acme.key), None).await;
    assert_eq!(revoked.status, 204);
    let again = send(&t, Method::DELETE, &path, Some(&acme.key), None).await;
    assert_eq!(again.status, 204);
    // Options for the user no longer list the revoked passkey (decoys stand in for it);
    // presented anyway, it is refused.
    let refused = sign_in_presenting(&t, acme.id, "user-1", &mut phone).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.code(), "credential_revoked");
    let refused = sign_in(&t, acme.id, None, &mut phone).await;
    assert_eq!(refused.code(), "credential_revoked");

    let list = send(
        &t,
        Method::GET,
        "/api/v1/users/user-1/authenticators",
        Some(&acme.key),
        None,
    )
    .await;
    assert!(
        list.body["authenticators"][0]["revoked_at"]
            .as_str()
            .is_some()
    );
    let user = send(
        &t,
        Method::GET,
        "/api/v1/users/user-1",
        Some(&acme.key),
        None,
    )
    .await;
    assert_eq!(user.body["authenticator_count"], 0);
    // With no active passkey left, an unscoped token may enroll again (recovery).
    let recovery = issue(&t, &acme.key, "user-1", json!({})).await;
    assert_eq!(recovery.body["has_authenticators"], false);

    for path in [
        format!("/api/v1/users/user-1/authenticators/{}", Uuid::new_v4()),
        "/api/v1/users/user-1/authenticators/not-a-uuid".to_owned(),
        format!("/api/v1/users/nobody/authenticators/{id}"),
    ] {
        let answer = send(&t, Method::DELETE, &path, Some(&acme.key), None).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.code(), "not_found");
    }
    let revocations: Vec<_> = t
        .services
        .audit()
        .recent(Some(acme.id), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "authenticator.revoked")
        .collect();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].actor_kind, "api_key");
    assert_eq!(revocations[0].target_id.as_deref(), Some("user-1"));
}

async fn sign_in_tokens_validate_as_sign_in(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let token = issue_ok(&t, &acme.key, "user-1", false).await;
    let mut phone = SoftPasskeys::new();
    let done = register(&t, &token, &mut phone).await;
    let authenticator = done.body["authenticator"]["id"].clone();

    for user in [Some("user-1"), None] {
        let signed_in = sign_in(&t, acme.id, user, &mut phone).await;
        assert_eq!(signed_in.status, 200, "{}", signed_in.body);
        let valid = validate(&t, &acme.key, signed_in.body["token"].as_str().unwrap()).await;
        assert_eq!(valid.body["valid"], true);
        assert_eq!(valid.body["kind"], "sign_in");
        assert_eq!(valid.body["user_id"], "user-1");
        assert_eq!(valid.body["username"], "user-1@example.com");
        assert_eq!(valid.body["authenticator_id"], authenticator);
        assert!(valid.body["verified_at"].as_str().is_some());
    }
    // A sign-in for another user does not accept this user's passkey.
    let other = issue_ok(&t, &acme.key, "user-2", false).await;
    register(&t, &other, &mut SoftPasskeys::new()).await;
    let refused = sign_in_presenting(&t, acme.id, "user-2", &mut phone).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.code(), "credential_unknown");
}

/// A passkey revoked between the sign-in (or registration) and the backend's validation: the
/// token proves a sign-in with a passkey that is no longer trusted, so it does not validate.
async fn a_token_of_a_revoked_passkey_does_not_validate(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let token = issue_ok(&t, &acme.key, "user-1", false).await;
    let mut phone = SoftPasskeys::new();
    let registered = register(&t, &token, &mut phone).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let authenticator = registered.body["authenticator"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sign_up = registered.body["token"].as_str().unwrap().to_owned();
    let signed_in = sign_in(&t, acme.id, Some("user-1"), &mut phone).await;
    let sign_in_token = signed_in.body["token"].as_str().unwrap().to_owned();

    let path = format!("/api/v1/users/user-1/authenticators/{authenticator}");
    let revoked = send(&t, Method::DELETE, &path, Some(&acme.key), None).await;
    assert_eq!(revoked.status, 204);
    for presented in [&sign_up, &sign_in_token] {
        // Refused every time: the token is not used up by the refusal, but it stays refused.
        for _ in 0..2 {
            let answer = validate(&t, &acme.key, presented).await;
            assert_eq!(answer.status, 200);
            assert_eq!(
                answer.body,
                json!({ "valid": false, "reason": "authenticator_revoked" })
            );
        }
    }
}

async fn no_secret_is_stored_in_the_clear(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let acme = tenant(&t, "Acme").await;
    let enrollment = issue_ok(&t, &acme.key, "user-1", false).await;
    let pending = issue_ok(&t, &acme.key, "user-2", false).await;
    let mut phone = SoftPasskeys::new();
    let done = register(&t, &enrollment, &mut phone).await;
    let sign_up = done.body["token"].as_str().unwrap().to_owned();
    let signed_in = sign_in(&t, acme.id, Some("user-1"), &mut phone).await;
    let sign_in_token = signed_in.body["token"].as_str().unwrap().to_owned();
    validate(&t, &acme.key, &sign_up).await;

    let secrets = [&acme.key, &enrollment, &pending, &sign_up, &sign_in_token];
    let rows = all_rows_as_text(&t.conn).await;
    assert!(rows.iter().any(|(table, _)| table == "validation_tokens"));
    for (table, row) in rows {
        for secret in secrets {
            // The random part (after the readable prefix) must appear nowhere.
            let random = secret.splitn(3, '_').nth(2).unwrap();
            assert!(!row.contains(random), "{table} holds a secret: {row}");
        }
    }
}

async fn the_policy_dry_run_and_health_queue_over_http(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let a = tenant(&t, "Shop").await;
    let b = tenant(&t, "Other").await;
    let mut google = SoftPasskeys::new();
    google.aaguid = *Uuid::parse_str(GOOGLE).unwrap().as_bytes();
    google.backed_up = true;
    let token = issue_ok(&t, &a.key, "ada", false).await;
    assert_eq!(register(&t, &token, &mut google).await.status, 200);

    let policy = send(
        &t,
        Method::GET,
        "/api/v1/authenticator-policy",
        Some(&a.key),
        None,
    )
    .await;
    assert_eq!(policy.status, 200);
    assert_eq!(policy.body["models"], "any");
    assert_eq!(policy.body["allow_synced"], true);

    let dry_run = |key: String, body: Value| {
        let t = &t;
        async move {
            send(
                t,
                Method::POST,
                "/api/v1/authenticator-policy/dry-run",
                Some(&key),
                Some(body),
            )
            .await
        }
    };
    let block_google = json!({ "models": "block", "aaguids": [GOOGLE], "existing": "block" });
    let run = dry_run(a.key.clone(), block_google.clone()).await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.body["refused_passkeys"], 1);
    assert_eq!(run.body["users_left_without_passkey"], 1);
    assert_eq!(
        run.body["by_model"][0]["provider_name"],
        "Google Password Manager"
    );
    // Another tenant's key sees its own passkeys only.
    let other = dry_run(b.key.clone(), block_google.clone()).await;
    assert_eq!(other.body["active_passkeys"], 0);

    // Bad and strange input: refused with the field, nothing written, never a 5xx.
    let before = all_rows_as_text(&t.conn).await;
    for (body, field) in [
        (json!({ "models": "allow" }), Some("aaguids")),
        (
            json!({ "models": "block", "aaguids": ["x".repeat(20_000)] }),
            Some("aaguids"),
        ),
        (
            json!({ "models": "block", "aaguids": (0..501).map(|n| Uuid::from_u128(n).to_string()).collect::<Vec<_>>() }),
            Some("aaguids"),
        ),
        (
            json!({ "models": "any", "require_certified": true }),
            Some("require_certified"),
        ),
        (
            json!({ "models": "any", "unused_after_days": 1 }),
            Some("unused_after_days"),
        ),
        (
            json!({ "models": "any", "unused_after_days": 4_294_967_296u64 }),
            None,
        ),
        (json!({ "models": "everything" }), None),
        (json!({ "models": "any", "extra": 1 }), None),
    ] {
        let answer = dry_run(a.key.clone(), body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.code(), "invalid_request");
        if let Some(field) = field {
            assert_eq!(answer.body["field"], field, "{body}");
        }
    }
    let unauthenticated = send(
        &t,
        Method::POST,
        "/api/v1/authenticator-policy/dry-run",
        None,
        Some(block_google.clone()),
    )
    .await;
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(
        all_rows_as_text(&t.conn).await,
        before,
        "a dry run writes nothing"
    );

    // The health queue: the passkey breaks the saved policy; cursors and reasons are checked.
    let owner = latchkey_core::testing::access(&t.services, &a.owner, a.id).await;
    let tenants = t.services.tenants();
    let version = tenants.get(&owner).await.unwrap().config.version;
    let input = latchkey_core::tenants::policy::PolicyInput {
        models: latchkey_core::tenants::policy::ModelRule::Block,
        aaguids: vec![GOOGLE.into()],
        allow_synced: true,
        require_certified: false,
        existing: latchkey_core::tenants::policy::ExistingPasskeys::Block,
        unused_after_days: None,
    };
    tenants
        .update_authenticator_policy(&owner, &input, version, RequestMeta::default())
        .await
        .unwrap();
    let queue = send(
        &t,
        Method::GET,
        "/api/v1/credential-health?reason=breaks_policy&limit=10",
        Some(&a.key),
        None,
    )
    .await;
    assert_eq!(queue.status, 200, "{}", queue.body);
    assert_eq!(queue.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(queue.body["items"][0]["user_id"], "ada");
    assert!(queue.body.get("next").is_none());
    let elsewhere = send(
        &t,
        Method::GET,
        "/api/v1/credential-health",
        Some(&b.key),
        None,
    )
    .await;
    assert_eq!(elsewhere.body["items"].as_array().map(Vec::len), Some(0));
    let long_cursor = format!("/api/v1/credential-health?after={}", "A".repeat(5000));
    for path in [
        "/api/v1/credential-health?reason=garbage",
        long_cursor.as_str(),
        "/api/v1/credential-health?after=%00%01",
        "/api/v1/credential-health?limit=99999999999999999999999",
        "/api/v1/credential-health?unknown=1",
    ] {
        let answer = send(&t, Method::GET, path, Some(&a.key), None).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert_eq!(answer.code(), "invalid_request");
    }

    // Enforced over HTTP: sign-in and registration refused with the code, nothing written.
    let refused = sign_in(&t, a.id, None, &mut google).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "authenticator_not_allowed");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Google Password Manager")
    );
    let passkeys_before = count(&t, "authenticators").await;
    let token = issue_ok(&t, &a.key, "bob", false).await;
    let mut another = SoftPasskeys::new();
    another.aaguid = *Uuid::parse_str(GOOGLE).unwrap().as_bytes();
    let refused = register(&t, &token, &mut another).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "authenticator_not_allowed");
    assert_eq!(count(&t, "authenticators").await, passkeys_before);
}
