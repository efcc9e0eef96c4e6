//! The Client API's edge over HTTP, on both databases: CORS for exactly the tenant's web
//! origins (preflights and actual requests; apps without `Origin` pass), the rate limits (per
//! tenant and address; per address across tenants and the portal), and the bound on what
//! anonymous requests write.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use common::TestServer;
use latchkey_core::{
    audit::RequestMeta, both_backends, end_users::EnrollmentRequest, tenants::NewTenant,
    testing::TestBackend,
};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

both_backends!(
    browsers_may_call_from_exactly_the_tenants_web_origins,
    client_calls_are_rate_limited_per_tenant_and_address,
    a_made_up_tenant_is_not_found_and_writes_nothing,
    one_address_is_limited_across_tenants_and_the_portal,
    a_thousand_anonymous_requests_write_a_bounded_number_of_rows,
    strange_ceremony_ids_are_unknown_ceremonies_and_write_nothing
);

const ORIGIN: &str = "https://shop.example.com";

async fn tenant(t: &TestServer, name: &str, origin: &str) -> Uuid {
    let id = t
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: name.into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![origin.into()],
            enable_passkeys: true,
            owner_email: None,
        })
        .await
        .unwrap();
    t.services
        .api_keys()
        .create(
            &latchkey_core::testing::host_access(&t.services, id).await,
            "backend",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    id
}

async fn call(
    t: &TestServer,
    method: Method,
    path: &str,
    origin: Option<&str>,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut req = t.http.request(method.clone(), t.url(path));
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    if method == Method::OPTIONS {
        req = req.header("access-control-request-method", "POST").header(
            "access-control-request-headers",
            "authorization, content-type",
        );
    } else {
        req = req.json(&serde_json::json!({}));
    }
    req.send().await.unwrap()
}

fn allow_origin(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn browsers_may_call_from_exactly_the_tenants_web_origins(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let shop = tenant(&t, "Shop", ORIGIN).await;
    let other = tenant(&t, "Other", "https://other.shop.example.com").await;
    let path = format!("/api/client/v1/tenants/{shop}/authentication/options");

    let res = call(&t, Method::OPTIONS, &path, Some(ORIGIN), None).await;
    assert_eq!(res.status(), 204);
    assert_eq!(allow_origin(&res).as_deref(), Some(ORIGIN));
    assert!(
        res.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    for stranger in [
        "https://evil.test",
        "https://other.shop.example.com",
        "http://shop.example.com",
    ] {
        let res = call(&t, Method::OPTIONS, &path, Some(stranger), None).await;
        assert_eq!(res.status(), 403, "{stranger}");
        assert_eq!(allow_origin(&res), None);
        let res = call(&t, Method::POST, &path, Some(stranger), None).await;
        assert_eq!(res.status(), 400, "{stranger}");
        assert_eq!(allow_origin(&res), None);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "origin_mismatch");
    }
    let res = call(&t, Method::POST, &path, Some(ORIGIN), None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(allow_origin(&res).as_deref(), Some(ORIGIN));
    assert!(res.headers()["vary"].to_str().unwrap().contains("origin"));
    // Apps send no Origin: their origin is checked in the signed client data instead.
    let res = call(&t, Method::POST, &path, None, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(allow_origin(&res), None);

    // A tenant with passkeys off: its own page may read why.
    let off = t
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Off".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec!["https://off.shop.example.com".into()],
            enable_passkeys: false,
            owner_email: None,
        })
        .await
        .unwrap();
    let off_path = format!("/api/client/v1/tenants/{off}/authentication/options");
    let res = call(
        &t,
        Method::POST,
        &off_path,
        Some("https://off.shop.example.com"),
        None,
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        allow_origin(&res).as_deref(),
        Some("https://off.shop.example.com")
    );
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "passkeys_disabled"
    );

    // Registration: the preflight accepts any tenant's origin, the request only its token's.
    let secret = t
        .services
        .api_keys()
        .create(
            &latchkey_core::testing::host_access(&t.services, other).await,
            "k",
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .secret;
    let key = t.services.api_keys().authenticate(&secret).await.unwrap();
    let token = t
        .services
        .end_users()
        .issue_enrollment_token(
            &key.access(),
            "user-1",
            EnrollmentRequest::default(),
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .token;
    let registration = "/api/client/v1/registration/options";
    let res = call(&t, Method::OPTIONS, registration, Some(ORIGIN), None).await;
    assert_eq!(res.status(), 204);
    let res = call(&t, Method::POST, registration, Some(ORIGIN), Some(&token)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "origin_mismatch"
    );
    let theirs = "https://other.shop.example.com";
    let res = call(&t, Method::POST, registration, Some(theirs), Some(&token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(allow_origin(&res).as_deref(), Some(theirs));
    // An unknown token: the answer is readable from any tenant's origin.
    let res = call(
        &t,
        Method::POST,
        registration,
        Some(ORIGIN),
        Some("lk_enr_x"),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(allow_origin(&res).as_deref(), Some(ORIGIN));
}

async fn client_calls_are_rate_limited_per_tenant_and_address(backend: TestBackend) {
    let Some(t) = TestServer::start_with(backend, &["--client-rate-limit", "2"]).await else {
        return;
    };
    let shop = tenant(&t, "Shop", ORIGIN).await;
    let other = tenant(&t, "Other", ORIGIN).await;
    let path = |id: Uuid| format!("/api/client/v1/tenants/{id}/authentication/options");
    // A burst of twice the rate, then 429 with Retry-After (and CORS headers, for the SDK).
    for _ in 0..4 {
        let res = call(&t, Method::POST, &path(shop), Some(ORIGIN), None).await;
        assert_eq!(res.status(), 200);
    }
    let res = call(&t, Method::POST, &path(shop), Some(ORIGIN), None).await;
    assert_eq!(res.status(), 429);
    assert_eq!(allow_origin(&res).as_deref(), Some(ORIGIN));
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "rate_limited");
    // Another tenant from the same address has its own allowance.
    let res = call(&t, Method::POST, &path(other), Some(ORIGIN), None).await;
    assert_eq!(res.status(), 200);
}

/// Tenant IDs nobody issued, from a browser or not: `not_found` for every Client API path and
/// preflight, and not a row written however many there are.
async fn a_made_up_tenant_is_not_found_and_writes_nothing(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    tenant(&t, "Shop", ORIGIN).await;
    let before = latchkey_core::testing::all_rows_as_text(&t.conn).await;
    for _ in 0..25 {
        let made_up = Uuid::new_v4();
        for step in ["authentication/options", "authentication/verify"] {
            let path = format!("/api/client/v1/tenants/{made_up}/{step}");
            for (method, origin) in [
                (Method::POST, Some(ORIGIN)),
                (Method::OPTIONS, Some(ORIGIN)),
                (Method::POST, Some("https://elsewhere.example")),
                (Method::POST, None),
            ] {
                let res = call(&t, method.clone(), &path, origin, None).await;
                assert_eq!(res.status(), 404, "{method} {path} from {origin:?}");
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["code"], "not_found", "{method} {path}");
            }
        }
    }
    assert_eq!(
        latchkey_core::testing::all_rows_as_text(&t.conn).await,
        before,
        "nothing written"
    );
}

/// Many tenants do not multiply what one address may send: one budget covers every tenant's
/// Client API and the portal's anonymous functions, which answer as a server function fails.
async fn one_address_is_limited_across_tenants_and_the_portal(backend: TestBackend) {
    let Some(t) = TestServer::start_with(
        backend,
        &["--client-rate-limit", "0", "--source-rate-limit", "2"],
    )
    .await
    else {
        return;
    };
    let shop = tenant(&t, "Shop", ORIGIN).await;
    let other = tenant(&t, "Other", ORIGIN).await;
    let path = |id: Uuid| format!("/api/client/v1/tenants/{id}/authentication/options");
    for id in [shop, other, shop, other] {
        let res = call(&t, Method::POST, &path(id), Some(ORIGIN), None).await;
        assert_eq!(res.status(), 200);
    }
    let res = call(&t, Method::POST, &path(other), Some(ORIGIN), None).await;
    assert_eq!(res.status(), 429);
    assert_eq!(allow_origin(&res).as_deref(), Some(ORIGIN));
    // Preflights and made-up tenants count too: the budget comes before any database work,
    // and its refusal is readable by the page whatever its origin (it says only "slow down").
    let preflight = call(
        &t,
        Method::OPTIONS,
        "/api/client/v1/registration/options",
        Some("https://elsewhere.example"),
        None,
    )
    .await;
    assert_eq!(preflight.status(), 429);
    assert_eq!(
        allow_origin(&preflight).as_deref(),
        Some("https://elsewhere.example")
    );
    let made_up = call(&t, Method::POST, &path(Uuid::new_v4()), Some(ORIGIN), None).await;
    assert_eq!(made_up.status(), 429);
    let portal = t
        .http
        .post(t.url("/portal/api/begin_sign_in"))
        .send()
        .await
        .unwrap();
    assert_eq!(portal.status(), 429);
    assert!(portal.headers().contains_key("retry-after"));
    let body: Value = portal.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn row_counts(t: &TestServer) -> (usize, usize) {
    let rows = latchkey_core::testing::all_rows_as_text(&t.conn).await;
    let count = |name: &str| rows.iter().filter(|(table, _)| table == name).count();
    (
        count("ceremonies") + count("ceremony_uses"),
        count("audit_events"),
    )
}

/// The bound the abuse rules promise (`latchkey_core::abuse`), measured over HTTP with the
/// request limits off: a thousand anonymous requests from one address — sign-in options that are
/// never finished and verifies presenting nothing real — write no ceremony (sign-ins are sealed
/// into their IDs) and no audit row until the minute's aggregate, which is one row per code.
async fn a_thousand_anonymous_requests_write_a_bounded_number_of_rows(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let shop = tenant(&t, "Shop", ORIGIN).await;
    let (ceremonies_before, audit_before) = row_counts(&t).await;
    let (mut served, mut limited) = (0, 0);
    for i in 0..1000 {
        let res = if i % 2 == 0 {
            call(
                &t,
                Method::POST,
                &format!("/api/client/v1/tenants/{shop}/authentication/options"),
                Some(ORIGIN),
                None,
            )
            .await
        } else {
            t.http
                .post(t.url(&format!(
                    "/api/client/v1/tenants/{shop}/authentication/verify"
                )))
                .json(&serde_json::json!({
                    "ceremony_id": Uuid::new_v4(),
                    "credential": {"id": "x", "rawId": "x", "type": "public-key"},
                }))
                .send()
                .await
                .unwrap()
        };
        match res.status().as_u16() {
            200 => served += 1,
            429 => limited += 1,
            400 => {}
            other => panic!("request {i}: unexpected {other}"),
        }
    }
    let (ceremonies, audit) = row_counts(&t).await;
    assert_eq!(
        (served, limited),
        (500, 0),
        "options served: they hold nothing"
    );
    assert_eq!(ceremonies - ceremonies_before, 0, "ceremony rows written");
    assert_eq!(
        audit - audit_before,
        0,
        "audit rows written before the aggregate"
    );
    t.services.flush_refusals().await.unwrap();
    let (_, audit) = row_counts(&t).await;
    assert_eq!(audit - audit_before, 1, "one aggregated refusal event");
}

/// What an outsider can put in `ceremony_id`: the longest the body allows, a UUID (a stored
/// ceremony's shape), control characters, base64 that is no sealed ceremony, a sealed ceremony of
/// another tenant. Each is `400 ceremony_invalid` and writes nothing (refusals presenting nothing
/// real are only counted).
async fn strange_ceremony_ids_are_unknown_ceremonies_and_write_nothing(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let shop = tenant(&t, "Shop", ORIGIN).await;
    let other = tenant(&t, "Other", "https://other.shop.example.com").await;
    let sealed_elsewhere: Value = call(
        &t,
        Method::POST,
        &format!("/api/client/v1/tenants/{other}/authentication/options"),
        Some("https://other.shop.example.com"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let before = latchkey_core::testing::all_rows_as_text(&t.conn).await;
    let ids = [
        "A".repeat(60_000),
        Uuid::new_v4().to_string(),
        "\u{0}\u{202e}💥".to_owned(),
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo".to_owned(),
        sealed_elsewhere["ceremony_id"].as_str().unwrap().to_owned(),
    ];
    for id in ids {
        let res = t
            .http
            .post(t.url(&format!(
                "/api/client/v1/tenants/{shop}/authentication/verify"
            )))
            .header("origin", ORIGIN)
            .json(&serde_json::json!({
                "ceremony_id": id,
                // Well-formed, so that the ceremony is what is judged.
                "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
                    "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA",
                        "signature": "AAAA"},
                    "clientExtensionResults": {}},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{}", &id[..id.len().min(40)]);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "ceremony_invalid", "{body}");
    }
    assert_eq!(
        latchkey_core::testing::all_rows_as_text(&t.conn).await,
        before
    );
}
