//! The OpenAPI document: OpenAPI 3.1, internally consistent (every `$ref` resolves, every path
//! parameter is declared), and in step with the router — every documented operation is served
//! and every spec route is documented. The offline reference page shows each of them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use latchkey_core::testing::TestBackend;
use serde_json::Value;

/// The spec's routes (Server API, Client API).
const SPEC_ROUTES: [(&str, &str); 25] = [
    ("post", "/api/v1/users/{user_id}/enrollment-tokens"),
    // Issue 21: the authenticator policy and the credential health queue.
    ("get", "/api/v1/authenticator-policy"),
    ("post", "/api/v1/authenticator-policy/dry-run"),
    ("get", "/api/v1/credential-health"),
    ("post", "/api/v1/tokens/validate"),
    ("get", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/users/{user_id}/authenticators"),
    (
        "delete",
        "/api/v1/users/{user_id}/authenticators/{authenticator_id}",
    ),
    // Issue 22: a user's bound devices.
    ("get", "/api/v1/users/{user_id}/devices"),
    ("delete", "/api/v1/users/{user_id}/devices/{device_id}"),
    // Issue 22: related origins and the origin doctor.
    ("get", "/api/v1/well-known/webauthn"),
    ("post", "/api/v1/origin-check"),
    // Issue 23: webhook endpoints, their delivery log, redelivery and test events.
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{endpoint_id}"),
    ("patch", "/api/v1/webhooks/{endpoint_id}"),
    ("delete", "/api/v1/webhooks/{endpoint_id}"),
    ("post", "/api/v1/webhooks/{endpoint_id}/rotate-secret"),
    ("post", "/api/v1/webhooks/{endpoint_id}/test"),
    ("get", "/api/v1/webhooks/{endpoint_id}/deliveries"),
    (
        "post",
        "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    ),
    ("post", "/api/client/v1/registration/options"),
    ("post", "/api/client/v1/registration/verify"),
    (
        "post",
        "/api/client/v1/tenants/{tenant_id}/authentication/options",
    ),
    (
        "post",
        "/api/client/v1/tenants/{tenant_id}/authentication/verify",
    ),
];

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_and_matches_the_router() {
    let t = TestServer::start(TestBackend::Sqlite).await.unwrap();
    let res = t.get("/api/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    // It parses as an OpenAPI document, and it is the one the code generates.
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        serde_json::to_value(latchkey_server::http::api::document()).unwrap()
    );
    assert_eq!(doc["openapi"], "3.1.0");
    // The webhooks section names every event type Latchkey sends, and only those.
    let mut sent: Vec<&str> = latchkey_core::webhooks::EventType::SUBSCRIBABLE
        .iter()
        .map(|e| e.as_str())
        .chain([latchkey_core::webhooks::EventType::WebhookTest.as_str()])
        .collect();
    sent.sort_unstable();
    let mut documented_events: Vec<&str> = doc["webhooks"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    documented_events.sort_unstable();
    assert_eq!(documented_events, sent);
    assert!(doc["info"]["title"].as_str().is_some());

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            assert!(op["summary"].as_str().is_some(), "{method} {path}: summary");
            // Every `{param}` of the path is declared as a path parameter.
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
        }
    }
    let spec: BTreeSet<(String, String)> = SPEC_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, spec);

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for r in all_refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "{r}");
    }
    for scheme in ["api_key", "enrollment_token"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }

    // Every documented operation is served: without credentials it is refused by the handler,
    // never by the unknown-endpoint fallback.
    for (method, path) in &documented {
        let concrete = path
            .replace("{user_id}", "someone")
            .replace("{authenticator_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{tenant_id}", &uuid::Uuid::new_v4().to_string());
        let res = t
            .http
            .request(method.to_uppercase().parse().unwrap(), t.url(&concrete))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_ne!(body["detail"], "No such API endpoint.", "{method} {path}");
        assert!(status.is_client_error(), "{method} {path}: {status}");
    }
    let res = t.get("/api/v1/nothing-here").await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // A served path with another method: 405, still problem+json.
    let res = t.get("/api/v1/tokens/validate").await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_request");

    // The reference page: HTML, self-contained, every operation on it.
    let res = t.get("/api/reference").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = res.text().await.unwrap();
    assert!(!page.contains("<script"));
    assert!(!page.contains("https://cdn"));
    for (_, path) in SPEC_ROUTES {
        assert!(
            page.contains(path),
            "{path} missing from the reference page"
        );
    }
    assert!(page.contains("scope_required"));
}
