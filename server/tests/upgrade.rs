//! A rolling upgrade on one PostgreSQL: an instance of the previous release (the commit before
//! the newest migration, built by `scripts/previous-release.sh`, whose path the test command
//! passes in `LATCHKEY_TEST_PREVIOUS_BIN`) keeps serving while an instance of this release
//! starts and migrates the database under it, and the two serve together:
//! - a passkey registered on the old instance signs in across both (options on one, verify on
//!   the other, validation back on the first), and one registered on the new instance too;
//! - the old instance keeps registering on the migrated schema;
//! - once migrated, the old release refuses to start again, with one line (the README's
//!   promise: an older release never comes back on a newer schema).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use common::{
    instance::{Instance, ORIGIN, RP_ID, issue},
    process::{ServerProcess, cli_json, latchkey, latchkey_bin},
};
use latchkey_core::testing::{TestBackend, TestDb, soft_passkey::SoftPasskeys};
use serde_json::{Value, json};

/// Registers `user` through `on` with a fresh soft passkey.
async fn register(on: &Instance, api_key: &str, user: &str) -> SoftPasskeys {
    let token = issue(on, api_key, user, &[]).await;
    let (status, options) = on
        .post(
            "/api/client/v1/registration/options",
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{options}");
    let mut passkeys = SoftPasskeys::new();
    let credential = passkeys.register(ORIGIN, &options["publicKey"]).unwrap();
    let (status, registered) = on
        .post(
            "/api/client/v1/registration/verify",
            Some(&token),
            &json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
        )
        .await;
    assert_eq!(status, 200, "{registered}");
    passkeys
}

/// Signs `user` in with options on `first`, verify on `second`, validation on `first`.
async fn sign_in_across(
    first: &Instance,
    second: &Instance,
    api_key: &str,
    tenant_id: &str,
    user: &str,
    passkeys: &mut SoftPasskeys,
) {
    let options = first.sign_in_options(tenant_id, user).await;
    let credential = passkeys
        .authenticate(ORIGIN, &options["publicKey"])
        .unwrap();
    let (status, verified) = second.sign_in_verify(tenant_id, &options, credential).await;
    assert_eq!(status, 200, "{verified}");
    let (status, validated): (u16, Value) = first
        .post(
            "/api/v1/tokens/validate",
            Some(api_key),
            &json!({ "token": verified["token"] }),
        )
        .await;
    assert_eq!(
        (status, &validated["user_id"]),
        (200, &json!(user)),
        "{validated}"
    );
}

#[tokio::test]
async fn the_previous_release_keeps_serving_while_this_one_migrates_under_it() {
    let Some(previous) = std::env::var_os("LATCHKEY_TEST_PREVIOUS_BIN") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "LATCHKEY_TEST_PREVIOUS_BIN is not set: run scripts/test.sh"
        );
        eprintln!("SKIPPED: set LATCHKEY_TEST_PREVIOUS_BIN=$(scripts/previous-release.sh)");
        return;
    };
    let previous = previous.to_string_lossy().into_owned();
    if previous.is_empty() {
        // scripts/previous-release.sh found no history to build from (a shallow clone).
        eprintln!("SKIPPED: no previous release could be built (see scripts/previous-release.sh)");
        return;
    }
    let Some(db) = TestDb::create(TestBackend::Postgres).await else {
        return;
    };
    let url = db.url().expose().to_owned();

    // The previous release sets the database up and serves it.
    let out = latchkey_bin(&previous, &url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old = Instance::of(ServerProcess::start_bin(
        &previous,
        &url,
        &[
            ("LATCHKEY_CLIENT_RATE_LIMIT", "0"),
            ("LATCHKEY_SOURCE_RATE_LIMIT", "0"),
        ],
    ));
    let run_old = |args: &[&str]| {
        let out = latchkey_bin(&previous, &url).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let tenant = run_old(&[
        "tenant",
        "create",
        "--name",
        "Upgrade",
        "--rp-id",
        RP_ID,
        "--origin",
        ORIGIN,
        "--enable-passkeys",
    ]);
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let key = run_old(&["api-key", "create", "--tenant", &tenant_id, "--name", "u"]);
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    let mut before = register(&old, &api_key, "before-upgrade").await;

    // This release starts on the same database: it migrates while the old one serves.
    let new = Instance::start(&url, None);
    let pending = latchkey(&url).arg("migrate").output().unwrap();
    assert!(pending.status.success(), "nothing left to migrate");

    sign_in_across(
        &old,
        &new,
        &api_key,
        &tenant_id,
        "before-upgrade",
        &mut before,
    )
    .await;
    sign_in_across(
        &new,
        &old,
        &api_key,
        &tenant_id,
        "before-upgrade",
        &mut before,
    )
    .await;
    let mut on_new = register(&new, &api_key, "on-new").await;
    sign_in_across(&old, &new, &api_key, &tenant_id, "on-new", &mut on_new).await;
    let mut on_old = register(&old, &api_key, "on-old-after").await;
    sign_in_across(
        &new,
        &old,
        &api_key,
        &tenant_id,
        "on-old-after",
        &mut on_old,
    )
    .await;
    let still = cli_json(
        &url,
        &["api-key", "create", "--tenant", &tenant_id, "--name", "n"],
    );
    assert!(still["api_key"].is_string());

    // Restarted, the previous release refuses the newer schema with one line.
    let out = latchkey_bin(&previous, &url)
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("migrated by a newer release"), "{stderr}");

    let (mut old, mut new) = (old, new);
    old.process.sigterm();
    new.process.sigterm();
}
