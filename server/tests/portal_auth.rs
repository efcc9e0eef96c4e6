//! Operators signing in to the portal over HTTP, on both databases: first-run setup through the
//! server functions with a real (software) passkey, session cookies and their lifetime, sign-out,
//! the page guard, and refusal of every anonymous or unprivileged call.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use chrono::TimeDelta;
use common::{Browser, TestServer, session_cookie};
use latchkey_core::{audit::RequestMeta, both_backends, operators::Inviter, testing::TestBackend};
use serde_json::Value;

both_backends!(
    anonymous_page_views_redirect_to_login,
    setup_then_sign_out_and_sign_in_again,
    anonymous_calls_to_operator_functions_are_refused,
    admin_functions_refuse_other_operators,
    sessions_end_after_idle_time_and_absolute_lifetime,
    sign_out_everywhere_ends_every_session,
    a_session_steps_up_with_its_passkey_before_planting_a_foothold,
    used_expired_and_bogus_links_explain_themselves
);

/// Every server function that acts for an operator, with plausible arguments.
const OPERATOR_FUNCTIONS: &[(&str, &[(&str, &str)])] = &[
    ("instance_status", &[]),
    ("my_passkeys", &[]),
    ("begin_add_passkey", &[]),
    ("begin_step_up", &[]),
    (
        "finish_step_up",
        &[
            ("ceremony_id", "00000000-0000-0000-0000-000000000000"),
            ("credential", "{}"),
        ],
    ),
    (
        "finish_add_passkey",
        &[
            ("ceremony_id", "00000000-0000-0000-0000-000000000000"),
            ("credential", "{}"),
            ("name", "x"),
        ],
    ),
    (
        "remove_passkey",
        &[("id", "00000000-0000-0000-0000-000000000000")],
    ),
    ("sign_out_everywhere", &[]),
    ("list_operators", &[]),
    (
        "invite_operator",
        &[("email", "x@example.com"), ("instance_admin", "true")],
    ),
    (
        "audit_log",
        &[
            ("id", ""),
            ("actor", ""),
            ("action", ""),
            ("user", ""),
            ("from", ""),
            ("to", ""),
            ("passkey", ""),
            ("code", ""),
            ("event", ""),
            ("before", ""),
        ],
    ),
    ("my_tenants", &[]),
    (
        "list_api_keys",
        &[("id", "00000000-0000-0000-0000-000000000000")],
    ),
    (
        "create_api_key",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("name", "x"),
        ],
    ),
    (
        "revoke_api_key",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("key", "00000000-0000-0000-0000-000000000000"),
        ],
    ),
    (
        "search_users",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("query", "a"),
        ],
    ),
    (
        "user_details",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("user_id", "user-1"),
        ],
    ),
    (
        "revoke_authenticator",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("user_id", "user-1"),
            ("authenticator_id", "00000000-0000-0000-0000-000000000000"),
            ("reason", "x"),
        ],
    ),
    (
        "revoke_all_authenticators",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("user_id", "user-1"),
            ("reason", "x"),
        ],
    ),
    (
        "rename_authenticator",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("user_id", "user-1"),
            ("authenticator_id", "00000000-0000-0000-0000-000000000000"),
            ("name", "x"),
        ],
    ),
    (
        "tenant_dashboard",
        &[("id", "00000000-0000-0000-0000-000000000000")],
    ),
    (
        "list_enrollment_tokens",
        &[("id", "00000000-0000-0000-0000-000000000000")],
    ),
    (
        "issue_enrollment_token",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("user_id", "user-1"),
            ("add_authenticators", "true"),
        ],
    ),
    (
        "revoke_enrollment_token",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("token", "00000000-0000-0000-0000-000000000000"),
        ],
    ),
    ("create_tenant", &[("name", "Acme")]),
    (
        "tenant_details",
        &[("id", "00000000-0000-0000-0000-000000000000")],
    ),
    ("android_origin_for", &[("fingerprint", "AA")]),
    (
        "tenant_members",
        &[("id", "00000000-0000-0000-0000-000000000000")],
    ),
    (
        "add_member",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("email", "x@example.com"),
            ("role", "owner"),
        ],
    ),
    (
        "change_member_role",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("member", "00000000-0000-0000-0000-000000000000"),
            ("role", "owner"),
        ],
    ),
    (
        "remove_member",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("member", "00000000-0000-0000-0000-000000000000"),
        ],
    ),
    (
        "rename_tenant",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("name", "x"),
        ],
    ),
    (
        "delete_tenant",
        &[
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("confirmation", "x"),
        ],
    ),
];

async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn anonymous_page_views_redirect_to_login(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    for (path, expected) in [
        ("/", "/login"),
        ("/security", "/login?next=%2Fsecurity"),
        ("/audit?x=1", "/login?next=%2Faudit%3Fx%3D1"),
        ("/no/such/page", "/login?next=%2Fno%2Fsuch%2Fpage"),
    ] {
        let res = t.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(location(&res), expected, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store");
    }
    // The sign-in page itself, and setup links, are public.
    for path in ["/login", "/setup?token=x", "/invite?token=x"] {
        assert_eq!(t.get(path).await.status(), 200, "{path}");
    }
    let html = t.get("/login").await.text().await.unwrap();
    assert!(html.contains("Sign in with a passkey"));
    assert!(html.contains(r#"autocomplete="username webauthn""#));
    assert!(!html.contains("Sign out"), "no signed-in controls");
}

async fn setup_then_sign_out_and_sign_in_again(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let issued = t
        .services
        .operators()
        .issue_setup_token()
        .await
        .unwrap()
        .unwrap();
    // The setup page checks the link before showing the form.
    let html = t
        .get(&format!("/setup?token={}", issued.token))
        .await
        .text()
        .await
        .unwrap();
    for label in ["Email", "Display name", "Create passkey"] {
        assert!(html.contains(label), "{label}");
    }

    let mut browser = Browser {
        cookie: None,
        passkeys: latchkey_core::testing::soft_passkey::SoftPasskeys::new(),
    };
    let options = t
        .call_ok(
            &mut browser,
            "begin_enrollment",
            &[
                ("token", &issued.token),
                ("email", "ada@example.com"),
                ("display_name", "Ada"),
            ],
        )
        .await;
    assert!(
        browser.cookie.is_none(),
        "no session before the passkey exists"
    );
    let public_key: Value = serde_json::from_str(options["public_key"].as_str().unwrap()).unwrap();
    let credential = browser
        .passkeys
        .register(common::ORIGIN, &public_key)
        .unwrap()
        .to_string();
    let res = t
        .call(
            "finish_enrollment",
            None,
            &[
                ("ceremony_id", options["ceremony_id"].as_str().unwrap()),
                ("credential", &credential),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let (first_cookie, header) = session_cookie(&res).expect("signed in after setup");
    let attributes = header.to_ascii_lowercase();
    for attribute in ["httponly", "samesite=lax", "path=/"] {
        assert!(attributes.contains(attribute), "{attribute} in {header}");
    }
    assert!(!attributes.contains("secure"), "plain http: no Secure");
    browser.cookie = Some(first_cookie.clone());

    // Signed in: pages render, with the operator's controls.
    let html = t
        .get_as("/", Some(&first_cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign out"));
    assert!(
        html.contains("Audit log"),
        "instance admins see the audit log link"
    );
    // …and the sign-in page sends them home.
    let res = t.get_as("/login", Some(&first_cookie)).await;
    assert_eq!(location(&res), "/");

    // Sign out ends the session on the server, not just in the browser.
    let res = t.call("sign_out", Some(&first_cookie), &[]).await;
    assert_eq!(res.status(), 200);
    let res = t.get_as("/", Some(&first_cookie)).await;
    assert_eq!(res.status(), 303, "the old cookie is worthless");
    let (status, code) = code(t.call("my_passkeys", Some(&first_cookie), &[]).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));

    // Sign in again with the same passkey: a new session id.
    let res = t.sign_in(&mut browser).await;
    assert_eq!(res.status(), 200);
    let second_cookie = browser.cookie.clone().unwrap();
    assert_ne!(second_cookie, first_cookie);
    assert_eq!(
        t.get_as("/security", Some(&second_cookie)).await.status(),
        200
    );

    // Signing in again from a signed-in browser rotates the id too; the old one stops working.
    let res = t.sign_in(&mut browser).await;
    assert_eq!(res.status(), 200);
    let third_cookie = browser.cookie.clone().unwrap();
    assert_ne!(third_cookie, second_cookie);
    assert_eq!(t.get_as("/", Some(&second_cookie)).await.status(), 303);
    assert_eq!(t.get_as("/", Some(&third_cookie)).await.status(), 200);

    // The audit log tells the story, with the request's source.
    let events = t.services.audit().recent(None, 50).await.unwrap();
    let mut actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            "setup.token_issued",
            "setup.completed",
            "passkey.added",
            "operator.signed_out",
            "operator.signed_in",
            "operator.signed_in"
        ]
    );
    let signed_in = events
        .iter()
        .find(|e| e.action == "operator.signed_in")
        .unwrap();
    assert_eq!(signed_in.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(signed_in.user_agent.as_deref(), Some("Latchkey tests"));
    assert_eq!(signed_in.actor_label.as_deref(), Some("ada@example.com"));
}

async fn anonymous_calls_to_operator_functions_are_refused(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.set_up_first_operator("ada@example.com").await;
    let before = t.services.audit().recent(None, 100).await.unwrap().len();
    for (endpoint, args) in OPERATOR_FUNCTIONS {
        for cookie in [None, Some("latchkey_session=forged-or-stale")] {
            let (status, code) = code(t.call(endpoint, cookie, args).await).await;
            assert_eq!(
                (status, code.as_str()),
                (401, "unauthorized"),
                "{endpoint} with {cookie:?}"
            );
        }
    }
    // Nothing happened: no invitation, no passkey change, nothing audited.
    assert_eq!(
        t.services.audit().recent(None, 100).await.unwrap().len(),
        before
    );
    // The JSON-encoded one too.
    let res = t
        .http
        .post(t.url("/portal/api/save_passkey_config"))
        .header("sec-fetch-site", "same-origin")
        .json(
            &serde_json::json!({ "id": "00000000-0000-0000-0000-000000000000", "form": {
            "enabled": true, "rp_id": "x", "rp_name": "", "origins": "", "attestation": "none",
            "user_verification": "preferred", "resident_key": "preferred", "attachment": "any",
            "algorithms": ["ES256"], "timeout_seconds": "300", "version": 1 } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(code(res).await, (401, "unauthorized".to_owned()));
    // The same calls with a session work (or fail for their own reasons).
    let (status, _) = code(t.call("my_passkeys", admin.cookie.as_deref(), &[]).await).await;
    assert_eq!(status, 200);
}

async fn admin_functions_refuse_other_operators(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut admin = t.set_up_first_operator("ada@example.com").await;
    let invitation = t
        .call_ok(
            &mut admin,
            "invite_operator",
            &[("email", "grace@example.com"), ("instance_admin", "false")],
        )
        .await;
    let url = invitation["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://localhost:3000/invite?token=lk_inv_"),
        "{url}"
    );
    let token = url.split("token=").nth(1).unwrap();
    let grace = t.enroll(token, "grace@example.com").await;

    let instance_log: &[(&str, &str)] = &[
        ("id", ""),
        ("actor", ""),
        ("action", ""),
        ("user", ""),
        ("from", ""),
        ("to", ""),
        ("passkey", ""),
        ("code", ""),
        ("event", ""),
        ("before", ""),
    ];
    for (endpoint, args) in [("list_operators", &[][..]), ("audit_log", instance_log)] {
        let (status, code) = code(t.call(endpoint, grace.cookie.as_deref(), args).await).await;
        assert_eq!((status, code.as_str()), (403, "forbidden"), "{endpoint}");
    }
    let (status, code) = code(
        t.call(
            "invite_operator",
            grace.cookie.as_deref(),
            &[("email", "eve@example.com"), ("instance_admin", "true")],
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    // The pages do not offer what would be refused.
    let html = t
        .get_as("/", grace.cookie.as_deref())
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign out") && !html.contains("Audit log"));

    // Bad input is a field error with 400, and changes nothing.
    let res = t
        .call(
            "invite_operator",
            admin.cookie.as_deref(),
            &[("email", "not-an-address"), ("instance_admin", "false")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["field"], "email");
    let listed = t.call_ok(&mut admin, "list_operators", &[]).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

async fn sessions_end_after_idle_time_and_absolute_lifetime(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut browser = t.set_up_first_operator("ada@example.com").await;
    let cookie = browser.cookie.clone().unwrap();
    // Activity keeps a session alive past the idle timeout…
    for _ in 0..3 {
        t.clock.advance(TimeDelta::minutes(50));
        assert_eq!(t.get_as("/", Some(&cookie)).await.status(), 200);
    }
    // …but an hour without a request ends it.
    t.clock.advance(TimeDelta::minutes(61));
    assert_eq!(t.get_as("/", Some(&cookie)).await.status(), 303);

    // However active, a session ends 12 hours after sign-in.
    let res = t.sign_in(&mut browser).await;
    assert_eq!(res.status(), 200);
    let cookie = browser.cookie.clone().unwrap();
    for _ in 0..23 {
        t.clock.advance(TimeDelta::minutes(30));
        assert_eq!(t.get_as("/security", Some(&cookie)).await.status(), 200);
    }
    t.clock.advance(TimeDelta::minutes(30));
    assert_eq!(t.get_as("/security", Some(&cookie)).await.status(), 303);
}

/// A session older than the step-up window (a stolen cookie, say) cannot invite or add a
/// passkey until its operator confirms with their passkey; the confirmation is the session's own.
async fn a_session_steps_up_with_its_passkey_before_planting_a_foothold(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut laptop = t.set_up_first_operator("ada@example.com").await;
    let invite = |email: &'static str| [("email", email), ("instance_admin", "false")];
    t.call_ok(&mut laptop, "invite_operator", &invite("one@example.com"))
        .await;

    // Five minutes on, the same session is refused the actions that plant a foothold; the
    // others still work.
    t.clock.advance(TimeDelta::minutes(5));
    let cookie = laptop.cookie.clone();
    for (endpoint, args) in [
        ("invite_operator", &invite("two@example.com")[..]),
        ("begin_add_passkey", &[][..]),
    ] {
        let (status, code) = code(t.call(endpoint, cookie.as_deref(), args).await).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "step_up_required"),
            "{endpoint}"
        );
    }
    t.call_ok(&mut laptop, "my_passkeys", &[]).await;

    // Another browser's fresh sign-in does not step this session up.
    let mut phone = Browser {
        cookie: None,
        passkeys: laptop.passkeys.clone(),
    };
    assert_eq!(t.sign_in(&mut phone).await.status(), 200);
    // One authenticator, one signature counter (a copy that lags behind looks cloned).
    laptop.passkeys = phone.passkeys.clone();
    let (status, _) = code(t.call("begin_add_passkey", cookie.as_deref(), &[]).await).await;
    assert_eq!(status, 403);

    // Confirming with the passkey steps this session up, for the window.
    let options = t.call_ok(&mut laptop, "begin_step_up", &[]).await;
    let public_key: Value = serde_json::from_str(options["public_key"].as_str().unwrap()).unwrap();
    let credential = laptop
        .passkeys
        .authenticate(common::ORIGIN, &public_key)
        .unwrap()
        .to_string();
    t.call_ok(
        &mut laptop,
        "finish_step_up",
        &[
            ("ceremony_id", options["ceremony_id"].as_str().unwrap()),
            ("credential", &credential),
        ],
    )
    .await;
    assert_eq!(laptop.cookie, cookie, "the session id stays");
    t.call_ok(&mut laptop, "invite_operator", &invite("two@example.com"))
        .await;
    t.call_ok(&mut laptop, "begin_add_passkey", &[]).await;
    t.clock.advance(TimeDelta::minutes(5));
    let (status, code) = code(
        t.call(
            "invite_operator",
            cookie.as_deref(),
            &invite("three@example.com"),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "step_up_required"));
}

async fn sign_out_everywhere_ends_every_session(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut laptop = t.set_up_first_operator("ada@example.com").await;
    let mut phone = Browser {
        cookie: None,
        passkeys: laptop.passkeys.clone(),
    };
    assert_eq!(t.sign_in(&mut phone).await.status(), 200);
    let phone_cookie = phone.cookie.clone().unwrap();
    assert_eq!(t.get_as("/", Some(&phone_cookie)).await.status(), 200);

    let ended = t.call_ok(&mut laptop, "sign_out_everywhere", &[]).await;
    assert_eq!(ended, 2);
    for cookie in [laptop.cookie.as_deref(), Some(phone_cookie.as_str())] {
        assert_eq!(t.get_as("/", cookie).await.status(), 303);
    }
    let events = t.services.audit().recent(None, 5).await.unwrap();
    assert_eq!(events[0].action, "operator.sessions_revoked");
}

async fn used_expired_and_bogus_links_explain_themselves(backend: TestBackend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let setup = t
        .services
        .operators()
        .issue_setup_token()
        .await
        .unwrap()
        .unwrap();
    let invitation = t
        .services
        .operators()
        .invite(
            Inviter::Cli,
            "grace@example.com",
            false,
            RequestMeta::default(),
        )
        .await
        .unwrap();
    t.enroll(&setup.token, "ada@example.com").await;
    let t = &t;
    let page = |path: String| async move {
        let html = t.get(&path).await.text().await.unwrap();
        assert!(!html.contains("Create passkey"), "{path}: no form");
        html
    };
    assert!(
        page(format!("/setup?token={}", setup.token))
            .await
            .contains("This setup link has already been used")
    );
    assert!(
        page("/setup?token=lk_setup_garbage".into())
            .await
            .contains("This link is not valid")
    );
    t.clock.advance(TimeDelta::hours(25));
    assert!(
        page(format!("/invite?token={}", invitation.token))
            .await
            .contains("This invitation has expired")
    );
    // Server functions refuse the same links with the spec's codes.
    let (status, code) = code(
        t.call(
            "begin_enrollment",
            None,
            &[
                ("token", &setup.token),
                ("email", "eve@example.com"),
                ("display_name", "Eve"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "token_used"));
}
