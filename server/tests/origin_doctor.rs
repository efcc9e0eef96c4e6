//! The origin doctor over the Server API against local sites started here, serving right and
//! wrong well-known files: what matches, what does not (fingerprint, content type, missing
//! entries), the outbound guards (private addresses refused unless allowed, no redirect to
//! another host, the size limit), the throttle, and the `/.well-known/webauthn` document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::TimeDelta;
use common::TestServer;
use latchkey_core::{
    audit::RequestMeta,
    tenants::{NewTenant, config::PasskeyConfigInput},
    testing::TestBackend,
};
use serde_json::{Value, json};

/// What the fake site answers, per path: status, content type, body.
type Answers = Arc<Mutex<HashMap<String, (u16, &'static str, String)>>>;

async fn answer(State(answers): State<Answers>, request: Request) -> Response {
    let found = answers.lock().unwrap().get(request.uri().path()).cloned();
    match found {
        Some((status, content_type, body)) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if status == 302 {
                response.headers_mut().insert(
                    header::LOCATION,
                    HeaderValue::from_str(&content_type.replace("location:", "")).unwrap(),
                );
            }
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A site on 127.0.0.1 (reached as `http://localhost:<port>`).
async fn site() -> (u16, Answers) {
    let answers: Answers = Arc::default();
    let app = Router::new().fallback(answer).with_state(answers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, answers)
}

const FINGERPRINT: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

fn asset_links(fingerprint: &str, relation: &str) -> String {
    json!([{
        "relation": [relation],
        "target": {"namespace": "android_app", "package_name": "com.example.app",
            "sha256_cert_fingerprints": [fingerprint]}
    }])
    .to_string()
}

/// A tenant on RP ID localhost whose origin is the fake site, with an Android app, a related
/// origin and an iOS app; its API key.
async fn tenant(t: &TestServer, port: u16) -> String {
    let owner = latchkey_core::testing::insert_operator(&t.conn, "owner@shop.test", false).await;
    let origin = format!("http://localhost:{port}");
    let id = t
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("localhost".into()),
            origins: vec![origin.clone()],
            enable_passkeys: true,
            owner_email: Some("owner@shop.test".into()),
        })
        .await
        .unwrap();
    let access = latchkey_core::testing::access(&t.services, &owner, id).await;
    let tenants = t.services.tenants();
    let config = tenants.get(&access).await.unwrap().config;
    let mut input = PasskeyConfigInput::from(&config);
    let hash = latchkey_core::tenants::config::fingerprint("f", FINGERPRINT).unwrap();
    input.origins = format!(
        "{origin}\n{}",
        latchkey_core::tenants::config::Origin::Android(hash).as_client_origin()
    );
    input.related_origins = "https://shop.example.de".into();
    input.ios_app_ids = "ABCDE12345.com.example.app".into();
    tenants
        .update_passkey_config(&access, &input, config.version, RequestMeta::default())
        .await
        .unwrap();
    t.services
        .api_keys()
        .create(&access, "backend", RequestMeta::default())
        .await
        .unwrap()
        .secret
}

async fn check(t: &TestServer, key: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(t.site.url("/api/v1/origin-check"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The findings of `file`'s report, as "ok: message" / "problem: message".
fn findings(report: &Value, file: &str) -> Vec<String> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == file)
        .unwrap_or_else(|| panic!("no {file} in {report}"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                if f["ok"] == true { "ok" } else { "problem" },
                f["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_reports_right_and_wrong_files() {
    let Some(t) =
        TestServer::start_with(TestBackend::Sqlite, &["--outbound-allow-private", "true"]).await
    else {
        return;
    };
    let (port, answers) = site().await;
    let key = tenant(&t, port).await;
    let set = |path: &str, status: u16, content_type: &'static str, body: String| {
        answers
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, content_type, body));
    };

    // Right files: everything matches.
    set(
        "/.well-known/assetlinks.json",
        200,
        "application/json",
        asset_links(FINGERPRINT, "delegate_permission/common.get_login_creds"),
    );
    set(
        "/.well-known/apple-app-site-association",
        200,
        "application/json",
        json!({"webcredentials": {"apps": ["ABCDE12345.com.example.app"]}}).to_string(),
    );
    set(
        "/.well-known/webauthn",
        200,
        "application/json; charset=utf-8",
        json!({"origins": ["https://shop.example.de"]}).to_string(),
    );
    let (status, report) = check(&t, &key).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["files"].as_array().unwrap().len(), 3);
    assert!(
        findings(&report, "asset_links").iter().any(|f| f
            == &format!("ok: com.example.app signed with {FINGERPRINT} may use the passkeys.")),
        "{report:#}"
    );

    // Checked again at once: throttled, with Retry-After.
    let (status, problem) = check(&t, &key).await;
    assert_eq!(status, 429);
    assert_eq!(problem["code"], "rate_limited");
    t.clock.advance(TimeDelta::seconds(11));

    // Wrong files: another fingerprint, the wrong content type, a missing app, an unlisted
    // related origin.
    let other = FINGERPRINT.replace("AB:CD", "11:22");
    set(
        "/.well-known/assetlinks.json",
        200,
        "application/json",
        asset_links(&other, "delegate_permission/common.get_login_creds"),
    );
    set(
        "/.well-known/apple-app-site-association",
        200,
        "text/plain",
        json!({"webcredentials": {"apps": ["ZZZZZ99999.com.other.app"]}}).to_string(),
    );
    set(
        "/.well-known/webauthn",
        200,
        "application/json",
        json!({"origins": []}).to_string(),
    );
    let (status, report) = check(&t, &key).await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], false);
    let android = findings(&report, "asset_links");
    assert!(
        android.iter().any(|f| f.starts_with(&format!(
            "problem: No statement lists the fingerprint {FINGERPRINT}"
        )) && f.contains(&format!("com.example.app ({other})"))),
        "{android:?}"
    );
    let ios = findings(&report, "apple_app_site_association");
    assert!(
        ios.contains(
            &"problem: Wrong content type text/plain: it must be served as application/json."
                .to_owned()
        ),
        "{ios:?}"
    );
    assert!(
        ios.contains(
            &"problem: ABCDE12345.com.example.app is missing from webcredentials.apps.".to_owned()
        ),
        "{ios:?}"
    );
    let related = findings(&report, "webauthn");
    assert!(
        related
            .iter()
            .any(|f| f.starts_with("problem: https://shop.example.de is not listed")),
        "{related:?}"
    );

    // The relation is missing; a redirect to another host; a file over the size limit.
    t.clock.advance(TimeDelta::seconds(11));
    set(
        "/.well-known/assetlinks.json",
        200,
        "application/json",
        asset_links(FINGERPRINT, "delegate_permission/common.handle_all_urls"),
    );
    set(
        "/.well-known/apple-app-site-association",
        302,
        "location:http://127.0.0.1:9/elsewhere",
        String::new(),
    );
    set(
        "/.well-known/webauthn",
        200,
        "application/json",
        "x".repeat(70 * 1024),
    );
    let (_, report) = check(&t, &key).await;
    assert!(
        findings(&report, "asset_links")
            .iter()
            .any(|f| f.contains("without the relation delegate_permission/common.get_login_creds"))
    );
    assert!(
        findings(&report, "apple_app_site_association")
            .iter()
            .any(|f| f.contains("redirects to http://127.0.0.1:9/elsewhere, another host")),
        "{report:#}"
    );
    assert!(
        findings(&report, "webauthn")
            .iter()
            .any(|f| f.contains("larger than 64 KiB")),
        "{report:#}"
    );

    // The document the RP ID's site must serve, from the Server API.
    let document: Value = reqwest::Client::new()
        .get(t.site.url("/api/v1/well-known/webauthn"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document, json!({"origins": ["https://shop.example.de"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_unless_allowed() {
    let Some(t) = TestServer::start(TestBackend::Sqlite).await else {
        return;
    };
    let (port, answers) = site().await;
    answers.lock().unwrap().insert(
        "/.well-known/assetlinks.json".into(),
        (
            200,
            "application/json",
            asset_links(FINGERPRINT, "delegate_permission/common.get_login_creds"),
        ),
    );
    let key = tenant(&t, port).await;
    let (status, report) = check(&t, &key).await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], false);
    for file in ["asset_links", "webauthn", "apple_app_site_association"] {
        let found = findings(&report, file);
        assert!(
            found
                .iter()
                .any(|f| f.contains("localhost resolves only to private or reserved addresses")),
            "{file}: {found:?}"
        );
    }
}
