//! The HTTP edge of a real server: probes, portal pages, errors and shutdown, on both databases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::time::Duration;

use common::TestServer;
use latchkey_core::{both_backends, testing::TestBackend};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

both_backends!(
    probes_report_liveness_and_readiness,
    home_page_renders_on_the_server_with_hydration_scripts,
    unknown_pages_get_the_portal_404,
    unknown_api_paths_get_problem_json,
    instance_status_server_function_answers_json,
    shutdown_finishes_in_flight_requests_then_closes_the_pool,
    during_the_shutdown_delay_new_requests_are_served_but_not_ready,
    responses_carry_security_headers_and_pages_a_nonce_policy,
    portal_endpoints_refuse_cross_origin_requests
);

async fn probes_report_liveness_and_readiness(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let res = t.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["status"], "ok");

    let res = t.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    let expected = match backend {
        TestBackend::Sqlite => "SQLite",
        TestBackend::Postgres => "PostgreSQL",
    };
    assert_eq!(body["database"], expected);

    // With the database gone, readiness fails (503, problem+json) while liveness still answers.
    t.services.close().await.expect("close pool");
    let res = t.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers()["content-type"].to_str().expect("header"),
        "application/problem+json"
    );
    assert_eq!(res.json::<Value>().await.expect("json")["code"], "internal");
    assert_eq!(t.get("/healthz").await.status(), 200);
}

async fn home_page_renders_on_the_server_with_hydration_scripts(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let browser = t.set_up_first_operator("ada@example.com").await;
    let res = t.get_as("/", browser.cookie.as_deref()).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("header")
            .starts_with("text/html")
    );
    let html = res.text().await.expect("body");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html:.200}");
    assert!(html.contains("<title>Latchkey</title>"));
    assert!(html.contains("Instance status"));
    // The status is rendered on the server, from the real database, before any JavaScript runs.
    assert!(
        html.contains(r#"data-testid="status-operators">1<"#),
        "{html}"
    );
    assert!(
        html.contains("/pkg/latchkey.js"),
        "hydration script is referenced"
    );
    assert!(html.contains("/pkg/latchkey.css"));
    assert!(
        html.contains(r#"data-hydrated="false""#),
        "not hydrated until the wasm runs"
    );
}

async fn unknown_pages_get_the_portal_404(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let browser = t.set_up_first_operator("ada@example.com").await;
    let res = t.get_as("/no/such/page", browser.cookie.as_deref()).await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.expect("body");
    assert!(html.contains("Page not found"));
    assert!(html.contains(r#"href="/""#), "links back home");
}

async fn unknown_api_paths_get_problem_json(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    for path in ["/api/v1/nothing", "/api/client/v1/nothing"] {
        let res = t.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            res.headers()["content-type"].to_str().expect("header"),
            "application/problem+json"
        );
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["code"], "not_found");
        assert_eq!(body["status"], 404);
        assert!(body["title"].is_string() && body["detail"].is_string());
    }
}

async fn instance_status_server_function_answers_json(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut browser = t.set_up_first_operator("ada@example.com").await;
    let body = t.call_ok(&mut browser, "instance_status", &[]).await;
    assert_eq!(body["tenants"], 0);
    assert_eq!(body["operators"], 1);
    assert_eq!(body["needs_setup"], false);
    // The injected clock, not the wall clock, stamps the answer.
    use latchkey_core::Clock;
    let expected = t.clock.now().format("%H:%M:%S%.3f UTC").to_string();
    assert_eq!(body["checked_at"], expected.as_str());
}

/// Sends the rest of a request on a raw connection and reads the whole response.
async fn finish(mut conn: TcpStream, rest: &[u8]) -> String {
    conn.write_all(rest).await.expect("write");
    let mut response = String::new();
    conn.read_to_string(&mut response).await.expect("read");
    response
}

async fn shutdown_finishes_in_flight_requests_then_closes_the_pool(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let addr = t.server.addr;
    // Requests whose heads have started to arrive when shutdown begins: a readiness probe, and
    // one that reads the database (sign-in options for a tenant that does not exist).
    let mut probe = TcpStream::connect(addr).await.expect("connect");
    probe
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: test\r\n")
        .await
        .expect("write");
    let mut reader = TcpStream::connect(addr).await.expect("connect");
    let path = format!(
        "/api/client/v1/tenants/{}/authentication/options",
        uuid::Uuid::new_v4()
    );
    reader
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                 Content-Length: 2\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let services = t.services.clone();
    let shutdown = tokio::spawn(t.server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the open requests"
    );

    // Both are answered: the probe says the instance is going away…
    let response = finish(probe, b"Connection: close\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("shutting down"), "{response}");
    // …and the other is answered from a working database (a closed pool would be a 500).
    let response = finish(reader, b"Connection: close\r\n\r\n{}").await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert!(response.contains("not_found"), "{response}");

    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown completes")
        .expect("join")
        .expect("clean shutdown");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
    assert!(
        services.instance().readiness().await.is_err(),
        "pool closed"
    );
}

/// With a shutdown delay the instance keeps accepting requests after the signal, reporting
/// itself not ready, so a load balancer can take it out of rotation before it closes.
async fn during_the_shutdown_delay_new_requests_are_served_but_not_ready(backend: TestBackend) {
    let Some(t) = TestServer::start_with(backend, &["--shutdown-delay-seconds", "2"]).await else {
        return;
    };
    assert_eq!(t.get("/readyz").await.status(), 200);
    let base = t.server.base_url();
    let started = std::time::Instant::now();
    let shutdown = tokio::spawn(t.server.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections, after the signal.
    let fresh = |path: &str| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
            .get(format!("{base}{path}"))
            .send()
    };
    let ready = fresh("/readyz").await.expect("served");
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.expect("body");
    assert!(body.contains("shutting down"), "{body}");
    let live = fresh("/healthz").await.expect("served");
    assert_eq!(live.status(), 200);

    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown completes")
        .expect("join")
        .expect("clean shutdown");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the listener stayed open for the delay"
    );
}

async fn responses_carry_security_headers_and_pages_a_nonce_policy(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    for path in [
        "/",
        "/login",
        "/healthz",
        "/no/such/page",
        "/api/v1/nothing",
    ] {
        let res = t.get(path).await;
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "plain http: no HSTS"
        );
    }

    // A page allows exactly the scripts carrying this response's nonce.
    let res = t.get("/login").await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let html = res.text().await.expect("body");
    let nonce = csp
        .split_whitespace()
        .find_map(|w| w.strip_prefix("'nonce-")?.strip_suffix('\''))
        .expect("nonce in policy");
    assert!(nonce.len() >= 16, "{nonce}");
    assert!(
        html.contains(&format!(r#"nonce="{nonce}""#)),
        "script carries the nonce"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
        "{csp}"
    );
    let again = t.get("/login").await.headers()["content-security-policy"].clone();
    assert_ne!(
        again.to_str().expect("ascii"),
        csp,
        "a fresh nonce per response"
    );

    // Not a page: nothing may run.
    let res = t.get("/healthz").await;
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .starts_with("default-src 'none'")
    );
}

async fn portal_endpoints_refuse_cross_origin_requests(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    // Even with a valid session cookie (which SameSite=Lax would already withhold from most
    // cross-site requests), another site cannot make the portal act.
    let browser = t.set_up_first_operator("ada@example.com").await;
    let cookie = browser.cookie.clone().expect("signed in");
    let call = |headers: &'static [(&'static str, &'static str)]| {
        let mut req = t
            .http
            .post(t.url("/portal/api/instance_status"))
            .header("cookie", cookie.clone())
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "https://evil.example")][..],
    ] {
        let res = call(headers).await.expect("request");
        assert_eq!(res.status(), 403, "{headers:?}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["code"], "forbidden");
    }
    let res = call(&[("sec-fetch-site", "same-origin")])
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
}
