//! The instance's FIDO metadata page over HTTP: the upload form's post (multipart, same origin,
//! an instance admin's session), its redirect with the outcome, and the status server function.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use common::{Browser, TestServer};
use latchkey_core::{
    both_backends,
    testing::{TestBackend, metadata::TestPki},
};
use uuid::Uuid;

both_backends!(an_instance_admin_uploads_a_blob_and_the_page_reports_it);

async fn upload(
    server: &TestServer,
    cookie: Option<&str>,
    site: &str,
    blob: String,
) -> (u16, Option<String>) {
    let form = reqwest::multipart::Form::new().part(
        "blob",
        reqwest::multipart::Part::text(blob).file_name("blob.jwt"),
    );
    let mut req = server
        .http
        .post(server.url("/portal/metadata"))
        .header("sec-fetch-site", site)
        .multipart(form);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (res.status().as_u16(), location)
}

async fn an_instance_admin_uploads_a_blob_and_the_page_reports_it(backend: TestBackend) {
    let pki = TestPki::new().unwrap();
    let Some(server) = TestServer::start_trusting(backend, pki.metadata_roots()).await else {
        return;
    };
    let mut admin: Browser = server.set_up_first_operator("admin@example.com").await;
    let cookie = admin.cookie.clone();
    let model = pki.model(
        Uuid::new_v4(),
        "Test Key",
        &[("FIDO_CERTIFIED_L2", "2024-01-10")],
    );
    let blob = pki.blob(3, "2099-01-01", std::slice::from_ref(&model));

    // No session, or posted from another site: refused before the service.
    assert_eq!(
        upload(&server, None, "same-origin", blob.clone()).await.0,
        401
    );
    let (status, _) = upload(&server, cookie.as_deref(), "cross-site", blob.clone()).await;
    assert_eq!(status, 403);

    // Altered after signing: back to the page with the reason; nothing imported.
    let tampered = blob.replacen('.', ".e", 1);
    let (status, location) = upload(&server, cookie.as_deref(), "same-origin", tampered).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(location.starts_with("/metadata?error="), "{location}");
    assert!(location.contains("Nothing+was+imported"), "{location}");
    let view = server.call_ok(&mut admin, "metadata_status", &[]).await;
    assert_eq!(view["current"], serde_json::Value::Null);
    assert_eq!(view["can_import"], true);

    let (status, location) = upload(&server, cookie.as_deref(), "same-origin", blob.clone()).await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/metadata?imported=3"))
    );
    let view = server.call_ok(&mut admin, "metadata_status", &[]).await;
    assert_eq!(view["current"]["serial"], 3);
    assert_eq!(view["current"]["models"], 1);
    assert_eq!(view["current"]["next_update"], "2099-01-01");
    assert_eq!(view["current"]["stale"], false);
    assert_eq!(view["current"]["imported_by"], "admin@example.com");

    // The same BLOB again: refused as not newer.
    let (_, location) = upload(&server, cookie.as_deref(), "same-origin", blob).await;
    assert!(location.unwrap().contains("not+newer"));
}
