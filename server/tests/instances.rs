//! Several instances on one PostgreSQL database: two real `latchkey serve` processes, each with
//! its own pool, caches and writer, behave as one service.
//!
//! - A ceremony started on one instance finishes on the other, and its validation token is
//!   validated on the first; a portal session made on one is served by the other, and signing
//!   out on one ends it on both.
//! - A revocation made on one (a passkey through the Server API, an enrollment token and an API
//!   key in the portal) is refused by the other on the very next request: neither caches them.
//! - A configuration change saved on one reaches the other's next ceremony through PostgreSQL's
//!   `LISTEN/NOTIFY` (`latchkey_core::tenants::config_events`): the other caches a configuration
//!   for a minute while it listens, so only the notification can explain seeing the change
//!   within seconds. When its listening connection is killed it reconnects and sees the next
//!   change as promptly.
//! - The same enrollment token redeemed on both at once registers exactly one passkey.
//! - The request limits hold per deployment: with `LATCHKEY_INSTANCES=2` each instance allows
//!   half, so a source spreading its requests over both gets the configured burst, not twice it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    Browser,
    instance::{Instance, ORIGIN, RP_ID, issue},
    process::cli_json,
    set_up_first_operator,
};
use latchkey_core::{
    SystemClock,
    testing::{TestBackend, TestDb, soft_passkey::SoftPasskeys},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

#[tokio::test]
async fn two_instances_on_one_postgres_behave_as_one_service() {
    let Some(db) = TestDb::create(TestBackend::Postgres).await else {
        return; // no PostgreSQL outside CI: announced loudly by TestDb
    };
    let url = db.url().expose().to_owned();
    let a = Instance::start(&url, None);
    let b = Instance::start(&url, None);
    let conn = db.connect().await;
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(SystemClock));

    // The portal: signed in on A, served by B; signing out on B ends the session on A too.
    let mut ada = set_up_first_operator(&services, &a.site, "ada@example.com").await;
    let cookie = ada.cookie.clone().expect("signed in on A");
    let res = b.site.call("my_passkeys", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 200, "B serves A's session");
    let res = b.site.call("sign_out", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 200);
    let res = a.site.call("my_passkeys", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 401, "signed out on B: refused on A at once");
    assert_eq!(a.site.sign_in(&mut ada).await.status(), 200);

    let tenant = cli_json(
        &url,
        &[
            "tenant",
            "create",
            "--name",
            "Two Shops",
            "--rp-id",
            RP_ID,
            "--origin",
            ORIGIN,
            "--enable-passkeys",
            "--owner",
            "ada@example.com",
        ],
    );
    let tenant_id = tenant["tenant_id"].as_str().expect("tenant_id").to_owned();
    let key = cli_json(
        &url,
        &["api-key", "create", "--tenant", &tenant_id, "--name", "two"],
    );
    let api_key = key["api_key"].as_str().expect("api_key").to_owned();

    // A ceremony started on one instance finishes on the other.
    let token = issue(&a, &api_key, "user-1", &[]).await;
    let (status, options) = a
        .post(
            "/api/client/v1/registration/options",
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "registration options on A: {options}");
    let mut passkeys = SoftPasskeys::new();
    let credential = passkeys.register(ORIGIN, &options["publicKey"]).unwrap();
    let (status, registered) = b
        .post(
            "/api/client/v1/registration/verify",
            Some(&token),
            &json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
        )
        .await;
    assert_eq!(status, 200, "registration verify on B: {registered}");
    let authenticator = registered["authenticator"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let options = a.sign_in_options(&tenant_id, "user-1").await;
    let credential = passkeys
        .authenticate(ORIGIN, &options["publicKey"])
        .unwrap();
    let (status, verified) = b.sign_in_verify(&tenant_id, &options, credential).await;
    assert_eq!(status, 200, "sign-in verify on B: {verified}");
    let (status, validated) = a
        .post(
            "/api/v1/tokens/validate",
            Some(&api_key),
            &json!({ "token": verified["token"] }),
        )
        .await;
    assert_eq!(status, 200, "validate on A: {validated}");
    assert_eq!(validated["valid"], json!(true), "{validated}");
    assert_eq!(validated["user_id"], json!("user-1"), "{validated}");

    // The same enrollment token, redeemed on both at once: exactly one passkey.
    for round in 0..5 {
        let user = format!("race-{round}");
        let token = issue(&a, &api_key, &user, &[]).await;
        let (mut on_a, mut on_b) = (SoftPasskeys::new(), SoftPasskeys::new());
        let (sa, oa) = a
            .post(
                "/api/client/v1/registration/options",
                Some(&token),
                &json!({}),
            )
            .await;
        let (sb, ob) = b
            .post(
                "/api/client/v1/registration/options",
                Some(&token),
                &json!({}),
            )
            .await;
        assert_eq!((sa, sb), (200, 200), "{oa} {ob}");
        let ca = on_a.register(ORIGIN, &oa["publicKey"]).unwrap();
        let cb = on_b.register(ORIGIN, &ob["publicKey"]).unwrap();
        let verify = |site: &'static str, options: &Value, credential: Value| {
            let instance = if site == "A" { &a } else { &b };
            let body = json!({ "ceremony_id": options["ceremony_id"], "credential": credential });
            let token = token.clone();
            async move {
                instance
                    .post("/api/client/v1/registration/verify", Some(&token), &body)
                    .await
            }
        };
        let ((sa, ra), (sb, rb)) = tokio::join!(verify("A", &oa, ca), verify("B", &ob, cb));
        let mut statuses = [sa, sb];
        statuses.sort_unstable();
        assert_eq!(statuses[0], 200, "one succeeds: {ra} {rb}");
        assert!(
            (400..500).contains(&statuses[1]),
            "the other is refused: {ra} {rb}"
        );
        let stored = active_passkeys(&conn, &tenant_id, &user).await;
        assert_eq!(stored, 1, "round {round}: one passkey stored");
    }

    // A configuration change saved on A reaches B's next ceremony.
    wait_until("both instances listen for changes", || async {
        listening(&conn, &a).await && listening(&conn, &b).await
    })
    .await;
    let primed = b.sign_in_options(&tenant_id, "user-1").await;
    assert_eq!(primed["publicKey"]["timeout"], json!(300_000), "{primed}");
    save_timeout(&conn, &a, &ada, &tenant_id, 120).await;
    wait_until("B's ceremonies use A's change", || async {
        b.sign_in_options(&tenant_id, "user-1").await["publicKey"]["timeout"] == json!(120_000)
    })
    .await;

    // B's listening connection is killed: it reconnects, and the next change reaches it too.
    let killed = scalar(
        &conn,
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE application_name = $1",
        vec![b.listener_name().into()],
    )
    .await;
    assert_eq!(killed, 1, "B had one listening connection");
    wait_until("B listens again", || async { listening(&conn, &b).await }).await;
    save_timeout(&conn, &a, &ada, &tenant_id, 150).await;
    wait_until("B's ceremonies use the next change", || async {
        b.sign_in_options(&tenant_id, "user-1").await["publicKey"]["timeout"] == json!(150_000)
    })
    .await;

    // A passkey revoked on B is refused on A at once (a ceremony A started before).
    let options = a.sign_in_options(&tenant_id, "user-1").await;
    let credential = passkeys
        .authenticate(ORIGIN, &options["publicKey"])
        .unwrap();
    let res = b
        .site
        .http
        .delete(b.site.url(&format!(
            "/api/v1/users/user-1/authenticators/{authenticator}"
        )))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (status, refused) = a.sign_in_verify(&tenant_id, &options, credential).await;
    assert!(status >= 400, "revoked on B, accepted on A: {refused}");

    // An enrollment token revoked in B's portal is refused by A at once.
    let token = issue(&a, &api_key, "user-2", &[]).await;
    let tokens = b
        .site
        .call_ok(&mut ada, "list_enrollment_tokens", &[("id", &tenant_id)])
        .await;
    let token_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user_id"] == "user-2")
        .and_then(|t| t["id"].as_str())
        .expect("user-2's token is listed")
        .to_owned();
    b.site
        .call_ok(
            &mut ada,
            "revoke_enrollment_token",
            &[("id", &tenant_id), ("token", &token_id)],
        )
        .await;
    let (status, refused) = a
        .post(
            "/api/client/v1/registration/options",
            Some(&token),
            &json!({}),
        )
        .await;
    assert!(
        (400..500).contains(&status),
        "revoked on B, accepted on A: {refused}"
    );

    // An API key revoked in B's portal is refused by A's Server API at once.
    let keys = b
        .site
        .call_ok(&mut ada, "list_api_keys", &[("id", &tenant_id)])
        .await;
    let key_id = keys[0]["id"].as_str().expect("the key's id").to_owned();
    b.site
        .call_ok(
            &mut ada,
            "revoke_api_key",
            &[("id", &tenant_id), ("key", &key_id)],
        )
        .await;
    let (status, refused) = a
        .post(
            "/api/v1/tokens/validate",
            Some(&api_key),
            &json!({ "token": "lk_val_x" }),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("unauthorized")),
        "{refused}"
    );

    let (mut a, mut b) = (a, b);
    a.process.sigterm();
    b.process.sigterm();
}

#[tokio::test]
async fn the_request_limits_hold_per_deployment_across_two_instances() {
    let Some(db) = TestDb::create(TestBackend::Postgres).await else {
        return;
    };
    let url = db.url().expose().to_owned();
    // One request per second per source in all: a burst of two for the deployment, one each.
    let env = [
        ("LATCHKEY_INSTANCES", "2"),
        ("LATCHKEY_SOURCE_RATE_LIMIT", "1"),
        ("LATCHKEY_CLIENT_RATE_LIMIT", "0"),
    ];
    let a = Instance::start(&url, Some(&env));
    let b = Instance::start(&url, Some(&env));
    let path = format!(
        "/api/client/v1/tenants/{}/authentication/options",
        uuid::Uuid::new_v4()
    );
    let started = Instant::now();
    let mut served = 0;
    for n in 0..20 {
        let instance = if n % 2 == 0 { &a } else { &b };
        let (status, body) = instance.post(&path, None, &json!({})).await;
        match status {
            429 => assert_eq!(body["code"], json!("rate_limited")),
            _ => served += 1,
        }
    }
    // The burst of two, plus what one request a second refilled meanwhile. Each instance
    // counting the whole rate would have served four at once.
    let refilled = started.elapsed().as_secs_f64().ceil() as usize;
    assert!(
        (2..=2 + refilled).contains(&served),
        "{served} requests served in {:?}",
        started.elapsed()
    );
}

/// Saves the tenant's passkey configuration with another ceremony timeout, through
/// `instance`'s portal as `operator`.
async fn save_timeout(
    conn: &DatabaseConnection,
    instance: &Instance,
    operator: &Browser,
    tenant_id: &str,
    seconds: u32,
) {
    let version = scalar(
        conn,
        "SELECT config_version AS n FROM tenants WHERE id = $1::uuid",
        vec![tenant_id.into()],
    )
    .await;
    let res = instance
        .site
        .http
        .post(instance.site.url("/portal/api/save_passkey_config"))
        .header("sec-fetch-site", "same-origin")
        .header("cookie", operator.cookie.as_deref().unwrap_or_default())
        .json(&json!({ "id": tenant_id, "form": {
            "enabled": true, "rp_id": RP_ID, "rp_name": "", "origins": ORIGIN,
            "attestation": "none", "user_verification": "preferred",
            "resident_key": "preferred", "attachment": "any", "algorithms": ["ES256"],
            "timeout_seconds": seconds.to_string(), "version": version } }))
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert_eq!(status, 200, "{}", res.text().await.unwrap());
}

/// The one `i64` column `n` of a query's one row.
async fn scalar(conn: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
    conn.query_one_raw(Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        sql,
        values,
    ))
    .await
    .unwrap()
    .expect("one row")
    .try_get::<i64>("", "n")
    .unwrap()
}

/// Whether `instance`'s configuration listener is connected and idle (listening).
async fn listening(conn: &DatabaseConnection, instance: &Instance) -> bool {
    let sql = "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 \
               AND state = 'idle' AND query ILIKE 'LISTEN%'";
    scalar(conn, sql, vec![instance.listener_name().into()]).await == 1
}

async fn active_passkeys(conn: &DatabaseConnection, tenant_id: &str, user_id: &str) -> i64 {
    let sql = "SELECT count(*) AS n FROM authenticators a JOIN end_users u ON u.id = a.user_id \
               WHERE a.tenant_id = $1::uuid AND u.external_id = $2 AND a.revoked_at IS NULL";
    scalar(conn, sql, vec![tenant_id.into(), user_id.into()]).await
}

/// Polls `check` for up to 5 s — far below the minute a listening instance caches a
/// configuration, far above a notification's delivery.
async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
