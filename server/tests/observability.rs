//! What an operator watches: the Prometheus metrics on their own listener, and the request ID
//! that ties a problem+json answer to its log line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use common::TestServer;
use latchkey_core::{both_backends, testing::TestBackend};
use serde_json::{Value, json};

both_backends!(
    metrics_are_served_on_their_own_address_only,
    problems_carry_the_request_id_of_the_log_line
);

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, value)| value.parse().ok())
}

async fn metrics_are_served_on_their_own_address_only(backend: TestBackend) {
    let Some(t) = TestServer::start_with(
        backend,
        &[
            "--metrics-bind",
            "127.0.0.1:0",
            "--client-rate-limit",
            "0",
            "--source-rate-limit",
            "0",
        ],
    )
    .await
    else {
        return;
    };
    let metrics_addr = t.server.metrics_addr.expect("metrics are on");
    // Not on the public listener (a portal path like any other: sign in first).
    let res = t.get("/metrics").await;
    assert_eq!(res.status(), 303);

    // Some traffic: a probe, a sign-in for a tenant that does not exist, a bad API key.
    assert_eq!(t.get("/healthz").await.status(), 200);
    let unknown = uuid::Uuid::new_v4();
    let res = t
        .http
        .post(t.url(&format!(
            "/api/client/v1/tenants/{unknown}/authentication/options"
        )))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = t
        .http
        .post(t.url("/api/v1/tokens/validate"))
        .bearer_auth("lk_sk_not-a-key")
        .header("x-request-id", "chosen-by-the-client")
        .json(&json!({ "token": "lk_val_x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // No trusted proxy here: a client cannot choose what goes into the logs.
    assert_ne!(res.headers()["x-request-id"], "chosen-by-the-client");

    let res = t
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    let has = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
    assert_eq!(
        has(
            "latchkey_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        has(
            "latchkey_http_requests_total",
            &[("route", "/healthz"), ("method", "GET"), ("status", "200")]
        ) >= Some(1.0),
        "{text}"
    );
    // Routes are templates, never paths: no tenant id in any label.
    assert!(!text.contains(&unknown.to_string()), "{text}");
    assert!(
        has(
            "latchkey_ceremonies_total",
            &[
                ("kind", "authentication"),
                ("step", "options"),
                ("outcome", "not_found")
            ]
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        has(
            "latchkey_http_requests_total",
            &[("route", "/api/v1/tokens/validate"), ("status", "401")]
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        has(
            "latchkey_http_request_duration_seconds_bucket",
            &[("route", "/healthz"), ("le", "+Inf")]
        ) >= Some(1.0),
        "{text}"
    );
    assert_eq!(
        has(
            "latchkey_db_pool_connections",
            &[("pool", "main"), ("state", "max")]
        ),
        Some(f64::from(
            <latchkey_server::config::Cli as clap::Parser>::try_parse_from(["latchkey"])
                .unwrap()
                .config
                .database_max_connections
        )),
        "{text}"
    );
    // (The recorder is the process's: both backends' tests of this file share it.)
    if backend == TestBackend::Sqlite {
        assert!(
            has("latchkey_sqlite_step_queue_depth", &[]).is_some(),
            "{text}"
        );
    }
    assert!(has("latchkey_refusals_pending", &[]).is_some(), "{text}");
}

async fn problems_carry_the_request_id_of_the_log_line(backend: TestBackend) {
    // The test client is 127.0.0.1: trusted as a proxy here.
    let Some(t) = TestServer::start_with(backend, &["--trusted-proxies", "127.0.0.1"]).await else {
        return;
    };
    let refused = |id: Option<&'static str>| {
        let mut req = t
            .http
            .post(t.url("/api/v1/tokens/validate"))
            .bearer_auth("lk_sk_not-a-key")
            .json(&json!({ "token": "lk_val_x" }));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        async move {
            let res = req.send().await.unwrap();
            let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            let body: Value = res.json().await.unwrap();
            (header, body)
        }
    };
    let (header, body) = refused(None).await;
    assert_eq!(body["request_id"], json!(header), "{body}");
    let (other, _) = refused(None).await;
    assert_ne!(header, other, "one ID per request");
    // A trusted proxy's ID is kept; an implausible one is replaced.
    let (header, body) = refused(Some("edge-4f2a.17")).await;
    assert_eq!(
        (header.as_str(), &body["request_id"]),
        ("edge-4f2a.17", &json!("edge-4f2a.17"))
    );
    let (header, _) = refused(Some("two words")).await;
    assert_ne!(header, "two words");
    // Successful answers carry it in the header too.
    let res = t.get("/healthz").await;
    assert!(res.headers().contains_key("x-request-id"));
}
