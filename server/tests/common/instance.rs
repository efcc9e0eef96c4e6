//! A real instance as a tenant's backend and its users' browsers reach it.

use serde_json::{Value, json};

use super::{Site, process::ServerProcess};

/// The tenant origin the helpers' browsers send.
pub const ORIGIN: &str = "https://shop.example.com";
pub const RP_ID: &str = "shop.example.com";

/// An instance under test: its process and how clients reach it.
pub struct Instance {
    pub process: ServerProcess,
    pub site: Site,
}

impl Instance {
    pub fn start(database_url: &str, env: Option<&[(&str, &str)]>) -> Self {
        Self::of(match env {
            Some(env) => ServerProcess::start_with(database_url, env),
            None => ServerProcess::start(database_url),
        })
    }

    /// The instance a server process is.
    pub fn of(process: ServerProcess) -> Self {
        let site = Site::new(&process.base_url);
        Self { process, site }
    }

    /// POSTs JSON as a tenant's backend (`bearer`: an API key) or a browser on the tenant's
    /// origin (`bearer`: an enrollment token, or none): answers the status and JSON body.
    pub async fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self
            .site
            .http
            .post(self.site.url(path))
            .header("origin", ORIGIN)
            .json(body);
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        answer(req).await
    }

    pub async fn sign_in_options(&self, tenant_id: &str, user_id: &str) -> Value {
        let (status, options) = self
            .post(
                &format!("/api/client/v1/tenants/{tenant_id}/authentication/options"),
                None,
                &json!({ "user_id": user_id }),
            )
            .await;
        assert_eq!(status, 200, "options: {options}");
        options
    }

    pub async fn sign_in_verify(
        &self,
        tenant_id: &str,
        options: &Value,
        credential: Value,
    ) -> (u16, Value) {
        self.post(
            &format!("/api/client/v1/tenants/{tenant_id}/authentication/verify"),
            None,
            &json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
        )
        .await
    }

    /// `application_name` of this instance's configuration listener.
    pub fn listener_name(&self) -> String {
        format!(
            "{}-{}",
            latchkey_core::tenants::config_events::APPLICATION_NAME,
            self.process.child.id()
        )
    }
}

pub async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An enrollment token for `user_id`, issued through `instance`'s Server API.
pub async fn issue(instance: &Instance, api_key: &str, user_id: &str, scopes: &[&str]) -> String {
    let (status, issued) = instance
        .post(
            &format!("/api/v1/users/{user_id}/enrollment-tokens"),
            Some(api_key),
            &json!({ "username": format!("{user_id}@example.com"), "scopes": scopes }),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    issued["token"].as_str().expect("lk_enr_ token").to_owned()
}
