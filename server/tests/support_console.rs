//! The support console over HTTP on both databases: the pages render on the server with the
//! data (users list, search, a user's page), the server functions follow the roles (`viewer`
//! cannot revoke; another tenant's owner finds nothing), the audit export streams CSV and JSON
//! Lines for signed-in members only, and provider icons are served.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::TestServer;
use latchkey_core::{
    access::{OperatorIdentity, Role},
    audit::RequestMeta,
    both_backends,
    end_users::{EnrollmentRequest, Scope},
    entities::operator,
    tenants::{MemberAdded, NewTenant},
    testing::{TestBackend, soft_passkey::SoftPasskeys},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

both_backends!(
    pages_render_users_and_their_passkeys_on_the_server,
    revocation_follows_roles_and_tenants,
    the_audit_log_exports_for_members_only,
    provider_icons_are_served_from_the_aaguid_list,
    a_malformed_tenant_id_is_not_found_on_every_edge
);

const SITE: &str = "https://shop.example.com";
const GOOGLE: Uuid = Uuid::from_u128(0xea9b8d66_4d01_1d21_3ce4_b6b48cb575d4);

struct Console {
    t: TestServer,
    tenant: Uuid,
    owner: common::Browser,
}

/// A server with an owner signed in (the first operator) and a tenant with one user who has a
/// passkey (registered through the service, like the Client API does).
async fn console(backend: TestBackend) -> Option<Console> {
    let t = TestServer::start(backend).await?;
    let owner = t.set_up_first_operator("owner@example.com").await;
    let tenant = t
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![SITE.into()],
            enable_passkeys: true,
            owner_email: Some("owner@example.com".into()),
        })
        .await
        .unwrap();
    let operator = identity(&t, "owner@example.com").await;
    let users = t.services.end_users();
    for (id, name) in [("Ada-1", "ada@example.com"), ("bob", "Ada.Bob@example.com")] {
        let issued = users
            .issue_enrollment_token(
                &latchkey_core::testing::access(&t.services, &operator, tenant).await,
                id,
                EnrollmentRequest {
                    username: Some(name.into()),
                    scopes: vec![Scope::AddAuthenticators],
                    ..EnrollmentRequest::default()
                },
                RequestMeta::default(),
            )
            .await
            .unwrap();
        let options = users
            .begin_registration(&issued.token, RequestMeta::default())
            .await
            .unwrap();
        // Ada's passkey comes from Google Password Manager (synced), Bob's from nobody known.
        let mut passkeys = SoftPasskeys::new();
        if id == "Ada-1" {
            passkeys.aaguid = *GOOGLE.as_bytes();
            passkeys.backed_up = true;
        }
        let credential = passkeys.register(SITE, &options.public_key).unwrap();
        users
            .finish_registration(
                &issued.token,
                &options.ceremony_id,
                &credential.to_string(),
                Some("Ada's <laptop>"),
                None,
                RequestMeta::default(),
            )
            .await
            .unwrap();
    }
    Some(Console { t, tenant, owner })
}

async fn identity(t: &TestServer, email: &str) -> OperatorIdentity {
    let row = operator::Entity::find()
        .filter(operator::Column::Email.eq(email))
        .one(&t.conn)
        .await
        .unwrap()
        .unwrap();
    t.services
        .operators()
        .identity(row.id)
        .await
        .unwrap()
        .unwrap()
}

async fn html(t: &TestServer, path: &str, cookie: Option<&str>) -> (u16, String) {
    let res = t.get_as(path, cookie).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn pages_render_users_and_their_passkeys_on_the_server(backend: TestBackend) {
    let Some(c) = console(backend).await else {
        return;
    };
    let cookie = c.owner.cookie.as_deref();
    let (status, page) = html(&c.t, &format!("/tenants/{}/users", c.tenant), cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("2 users"), "{page}");
    assert!(page.contains(">Ada-1</a>") && page.contains(">bob</a>"));
    // Search is part of the URL and rendered on the server: both keys, any case.
    let (_, page) = html(&c.t, &format!("/tenants/{}/users?q=ADA", c.tenant), cookie).await;
    assert!(page.contains("2 of 2 users match"), "{page}");
    let (_, page) = html(&c.t, &format!("/tenants/{}/users?q=bo", c.tenant), cookie).await;
    assert!(page.contains(">bob</a>") && !page.contains(">Ada-1</a>"));
    let (_, page) = html(&c.t, &format!("/tenants/{}/users?q=zz", c.tenant), cookie).await;
    assert!(page.contains("No user ID or username begins with that"));

    let path = format!(
        "/tenants/{}/users/{}",
        c.tenant,
        URL_SAFE_NO_PAD.encode("Ada-1")
    );
    let (status, page) = html(&c.t, &path, cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("ada@example.com"));
    // The name is escaped, the facts are there, the owner may act.
    assert!(page.contains("Ada&#x27;s &lt;laptop&gt;") || page.contains("Ada's &lt;laptop&gt;"));
    assert!(page.contains("Google Password Manager"));
    for variant in ["light", "dark"] {
        let icon = format!("/provider-icons/{GOOGLE}/{variant}");
        assert!(page.contains(&icon), "{icon}");
    }
    assert!(page.contains("prefers-color-scheme: dark"));
    assert!(
        page.contains("Synced") && page.contains("Revoke") && page.contains("Issue recovery token")
    );
    // Unknown user: an error in place.
    let path = format!(
        "/tenants/{}/users/{}",
        c.tenant,
        URL_SAFE_NO_PAD.encode("nobody")
    );
    let (_, page) = html(&c.t, &path, cookie).await;
    assert!(page.contains("role=\"alert\""), "{page}");
    // The dashboard and the audit log render too.
    let (status, page) = html(&c.t, &format!("/tenants/{}/dashboard", c.tenant), cookie).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<svg") && page.contains("2 active passkeys")
            || page.contains("active passkeys")
    );
    let (status, page) = html(
        &c.t,
        &format!(
            "/tenants/{}/audit?action=authenticator.registered",
            c.tenant
        ),
        cookie,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        page.matches("data-action=\"authenticator.registered\"")
            .count(),
        2
    );
}

async fn call(
    c: &Console,
    cookie: Option<&str>,
    endpoint: &str,
    args: &[(&str, &str)],
) -> (u16, Value) {
    let res = c.t.call(endpoint, cookie, args).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn revocation_follows_roles_and_tenants(backend: TestBackend) {
    let Some(c) = console(backend).await else {
        return;
    };
    let owner = identity(&c.t, "owner@example.com").await;
    // A viewer, signed in through an invitation.
    let invited =
        c.t.services
            .tenants()
            .add_member(
                &latchkey_core::testing::access(&c.t.services, &owner, c.tenant).await,
                "vic@example.com",
                Role::Viewer,
                RequestMeta::default(),
            )
            .await
            .unwrap();
    let MemberAdded::Invited(link) = invited else {
        panic!("an invitation for someone new");
    };
    let viewer = c.t.enroll(&link.token, "vic@example.com").await;

    let tenant = c.tenant.to_string();
    let (_, details) = call(
        &c,
        c.owner.cookie.as_deref(),
        "user_details",
        &[("id", &tenant), ("user_id", "Ada-1")],
    )
    .await;
    let authenticator = details["authenticators"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(details["can_revoke"], true);

    // The viewer reads, may not revoke; the page offers no Revoke either.
    let (status, details) = call(
        &c,
        viewer.cookie.as_deref(),
        "user_details",
        &[("id", &tenant), ("user_id", "Ada-1")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(details["can_revoke"], false);
    let args = [
        ("id", tenant.as_str()),
        ("user_id", "Ada-1"),
        ("authenticator_id", authenticator.as_str()),
        ("reason", "lost"),
    ];
    let (status, body) = call(&c, viewer.cookie.as_deref(), "revoke_authenticator", &args).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = call(
        &c,
        viewer.cookie.as_deref(),
        "revoke_all_authenticators",
        &[("id", &tenant), ("user_id", "Ada-1"), ("reason", "x")],
    )
    .await;
    assert_eq!(status, 403);

    // Another tenant's id: not found, for the owner too.
    let other = Uuid::new_v4().to_string();
    let (status, body) = call(
        &c,
        c.owner.cookie.as_deref(),
        "search_users",
        &[("id", &other), ("query", "")],
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // Without a reason: a field error, nothing revoked.
    let mut no_reason = args;
    no_reason[3] = ("reason", " ");
    let (status, body) = call(
        &c,
        c.owner.cookie.as_deref(),
        "revoke_authenticator",
        &no_reason,
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("reason")));
    let (status, body) = call(&c, c.owner.cookie.as_deref(), "revoke_authenticator", &args).await;
    assert_eq!(status, 200);
    assert_eq!(body["revoked_by"], "owner@example.com");
    assert_eq!(body["revoked_reason"], "lost");
    let listed =
        c.t.services
            .end_users()
            .authenticators(
                &latchkey_core::testing::access(&c.t.services, &owner, c.tenant).await,
                "Ada-1",
            )
            .await
            .unwrap();
    assert!(listed[0].revoked_at.is_some());
}

async fn the_audit_log_exports_for_members_only(backend: TestBackend) {
    let Some(c) = console(backend).await else {
        return;
    };
    let path = format!(
        "/portal/export/audit.csv?tenant={}&action=authenticator.registered",
        c.tenant
    );
    let res = c.t.get_as(&path, c.owner.cookie.as_deref()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,occurred_at,tenant_id,actor_kind"));
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains("authenticator.registered"))
    );

    let path = format!("/portal/export/audit.jsonl?tenant={}", c.tenant);
    let res = c.t.get_as(&path, c.owner.cookie.as_deref()).await;
    assert_eq!(res.status(), 200);
    let events: Vec<Value> = res
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 4, "{events:?}");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64())
    );
    // Compressed, as browsers ask for it: still one complete stream.
    let res =
        c.t.http
            .get(c.t.url(&path))
            .header("cookie", c.owner.cookie.as_deref().unwrap())
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.bytes().await.unwrap().is_empty());
    // The instance log without a tenant: instance admins (the first operator is one).
    let res =
        c.t.get_as("/portal/export/audit.jsonl", c.owner.cookie.as_deref())
            .await;
    assert_eq!(res.status(), 200);
    // Anonymous, unknown tenant, bad date, unknown format.
    let res =
        c.t.get_as(
            &format!("/portal/export/audit.csv?tenant={}", c.tenant),
            None,
        )
        .await;
    assert_eq!(res.status(), 401);
    let res =
        c.t.get_as(
            &format!("/portal/export/audit.csv?tenant={}", Uuid::new_v4()),
            c.owner.cookie.as_deref(),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res =
        c.t.get_as(
            &format!(
                "/portal/export/audit.csv?tenant={}&from=yesterday",
                c.tenant
            ),
            c.owner.cookie.as_deref(),
        )
        .await;
    assert_eq!(res.status(), 400);
    let res =
        c.t.get_as("/portal/export/audit.xml", c.owner.cookie.as_deref())
            .await;
    assert_eq!(res.status(), 404);
    exports_verify_outside_latchkey(&c).await;
}

/// Sealed exports verify with the repository's stand-alone verifier (Python, no database), and
/// an edited line is named.
async fn exports_verify_outside_latchkey(c: &Console) {
    c.t.services.seal_audit().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let verifier = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/verify-audit-export.py"
    );
    let verify = |file: &std::path::Path| {
        std::process::Command::new("python3")
            .arg(verifier)
            .arg(file)
            .output()
            .unwrap()
    };
    for name in ["audit.jsonl", "audit.csv"] {
        let res =
            c.t.get_as(
                &format!("/portal/export/{name}?tenant={}", c.tenant),
                c.owner.cookie.as_deref(),
            )
            .await;
        assert_eq!(res.status(), 200);
        let file = dir.path().join(name);
        std::fs::write(&file, res.text().await.unwrap()).unwrap();
        let out = verify(&file);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{name}: {report}");
        let chain = &report["chains"][c.tenant.to_string()];
        assert!(chain["events"].as_u64().unwrap() >= 4, "{report}");
        assert_eq!(chain["first"], 1, "the whole chain: {report}");
        assert_eq!(report["unsealed"], 0);
    }
    // One field of one line changed: named by its event id.
    let file = dir.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[1]["outcome"] = "failure".into();
    let edited = lines[1]["id"].as_i64().unwrap();
    let tampered: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&file, tampered.join("\n")).unwrap();
    let out = verify(&file);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains(&format!("event {edited} ")),
        "{report}"
    );
}

async fn provider_icons_are_served_from_the_aaguid_list(backend: TestBackend) {
    let Some(c) = console(backend).await else {
        return;
    };
    // Google Password Manager has icons for both backgrounds.
    for variant in ["light", "dark"] {
        let res =
            c.t.get(&format!(
                "/provider-icons/ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4/{variant}"
            ))
            .await;
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("image/")
        );
        assert!(
            res.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        assert!(!res.bytes().await.unwrap().is_empty());
    }
    for path in [
        "/provider-icons/00000000-0000-0000-0000-000000000000/light",
        "/provider-icons/not-a-uuid/light",
        "/provider-icons/ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4/sepia",
    ] {
        assert_eq!(c.t.get(path).await.status(), 404, "{path}");
    }
}

/// A tenant ID that does not parse names no tenant: every edge answers it as it answers an
/// unknown one, `not_found` (the access check, `services.tenant`, is the one place that decides).
async fn a_malformed_tenant_id_is_not_found_on_every_edge(backend: TestBackend) {
    let Some(c) = console(backend).await else {
        return;
    };
    let cookie = c.owner.cookie.as_deref();
    let unknown = Uuid::new_v4().to_string();
    for id in ["not-a-tenant", "", " ", &unknown] {
        for endpoint in [
            "tenant_details",
            "tenant_members",
            "list_api_keys",
            "list_enrollment_tokens",
            "tenant_dashboard",
            "search_users",
        ] {
            let (status, body) = call(&c, cookie, endpoint, &[("id", id), ("query", "")]).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (404, Some("not_found")),
                "{endpoint}({id:?}): {body}"
            );
        }
        if !id.trim().is_empty() {
            let res =
                c.t.get_as(&format!("/portal/export/audit.csv?tenant={id}"), cookie)
                    .await;
            assert_eq!(res.status(), 404, "export for {id:?}");
        }
    }
    // The Client API, its tenant in the path.
    for id in ["not-a-tenant", unknown.as_str()] {
        let res = reqwest::Client::new()
            .post(c.t.url(&format!(
                "/api/client/v1/tenants/{id}/authentication/options"
            )))
            .header("origin", SITE)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert_eq!(
            status,
            404,
            "client API for {id:?}: {}",
            res.text().await.unwrap_or_default()
        );
    }
}
