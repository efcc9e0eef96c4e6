//! What simulated clients do, request by request, as a tenant's browsers and backend would: the
//! browser half sends the tenant's `Origin` and answers options with a software passkey (ES256),
//! the backend half holds the tenant's API key.

use std::time::Instant;

use latchkey_core::testing::soft_passkey::SoftPasskeys;
use serde_json::{Value, json};

use crate::{server::BenchTenant, stats::Recorder};

/// Request kinds, as reported.
pub const SIGN_IN: &str = "complete sign-in";
pub const AUTH_OPTIONS: &str = "authentication/options";
pub const AUTH_VERIFY: &str = "authentication/verify";
pub const VALIDATE: &str = "tokens/validate";
pub const ENROLLMENT: &str = "complete enrollment";
pub const ISSUE: &str = "enrollment-tokens (issue)";
pub const REG_OPTIONS: &str = "registration/options";
pub const REG_VERIFY: &str = "registration/verify";

/// Everything the clients share.
pub struct Target {
    pub http: reqwest::Client,
    /// The instances, taken in turn request by request as a round-robin load balancer would:
    /// with several, one ceremony's steps land on different instances.
    pub bases: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    pub tenants: Vec<BenchTenant>,
}

/// A simulated end user with one passkey.
pub struct SimUser {
    pub tenant: usize,
    pub user_id: String,
    pub passkeys: SoftPasskeys,
}

impl Target {
    pub fn new(
        bases: Vec<String>,
        tenants: Vec<BenchTenant>,
        concurrency: usize,
    ) -> Result<Self, String> {
        if bases.is_empty() {
            return Err("no server to drive".into());
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency * 2)
            .tcp_nodelay(true)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            bases,
            next: Default::default(),
            tenants,
        })
    }

    /// The instance for the next request.
    fn base(&self) -> &str {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.bases[n % self.bases.len()]
    }

    /// POSTs `body`, answers the JSON of a 2xx or says what came back instead.
    async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        origin: Option<&str>,
        body: &Value,
    ) -> Result<Value, String> {
        let mut request = self.http.post(format!("{}{path}", self.base())).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))
    }

    /// The backend validates a `lk_val_…` token and checks what it proves.
    async fn validate(
        &self,
        tenant: &BenchTenant,
        token: &Value,
        kind: &str,
        user_id: &str,
        rec: &mut Recorder,
    ) -> Result<(), String> {
        let started = Instant::now();
        let answer = self
            .post(
                "/api/v1/tokens/validate",
                Some(&tenant.api_key),
                None,
                &json!({ "token": token }),
            )
            .await?;
        rec.record(VALIDATE, started.elapsed());
        if answer["valid"] != true || answer["kind"] != kind || answer["user_id"] != user_id {
            return Err(format!("validation answered {answer}"));
        }
        Ok(())
    }

    /// options → sign with the passkey → verify → the backend validates the token.
    pub async fn sign_in(&self, user: &mut SimUser, rec: &mut Recorder) -> Result<(), String> {
        let tenant = &self.tenants[user.tenant];
        let base = format!("/api/client/v1/tenants/{}/authentication", tenant.id);
        let total = Instant::now();
        let started = Instant::now();
        let options = self
            .post(
                &format!("{base}/options"),
                None,
                Some(&tenant.origin),
                &json!({ "user_id": user.user_id }),
            )
            .await?;
        rec.record(AUTH_OPTIONS, started.elapsed());
        let credential = user
            .passkeys
            .authenticate(&tenant.origin, &options["publicKey"])?;
        let started = Instant::now();
        let verified = self
            .post(
                &format!("{base}/verify"),
                None,
                Some(&tenant.origin),
                &json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
            )
            .await?;
        rec.record(AUTH_VERIFY, started.elapsed());
        self.validate(tenant, &verified["token"], "sign_in", &user.user_id, rec)
            .await?;
        rec.record(SIGN_IN, total.elapsed());
        Ok(())
    }

    /// The backend issues an enrollment token for `user_id`.
    pub async fn issue(
        &self,
        tenant: &BenchTenant,
        user_id: &str,
        rec: &mut Recorder,
    ) -> Result<Value, String> {
        let started = Instant::now();
        let issued = self
            .post(
                &format!("/api/v1/users/{user_id}/enrollment-tokens"),
                Some(&tenant.api_key),
                None,
                &json!({ "username": format!("{user_id}@bench.example.com") }),
            )
            .await?;
        rec.record(ISSUE, started.elapsed());
        Ok(issued["token"].clone())
    }

    /// token → options → the passkey registers → verify → the backend validates: a new user
    /// with one passkey.
    pub async fn enroll(
        &self,
        tenant_index: usize,
        user_id: String,
        rec: &mut Recorder,
    ) -> Result<SimUser, String> {
        let tenant = &self.tenants[tenant_index];
        let total = Instant::now();
        let token = self.issue(tenant, &user_id, rec).await?;
        let token = token.as_str().ok_or("no enrollment token")?;
        let started = Instant::now();
        let options = self
            .post(
                "/api/client/v1/registration/options",
                Some(token),
                Some(&tenant.origin),
                &json!({}),
            )
            .await?;
        rec.record(REG_OPTIONS, started.elapsed());
        let mut passkeys = SoftPasskeys::new();
        let credential = passkeys.register(&tenant.origin, &options["publicKey"])?;
        let started = Instant::now();
        let registered = self
            .post(
                "/api/client/v1/registration/verify",
                Some(token),
                Some(&tenant.origin),
                &json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
            )
            .await?;
        rec.record(REG_VERIFY, started.elapsed());
        self.validate(tenant, &registered["token"], "sign_up", &user_id, rec)
            .await?;
        rec.record(ENROLLMENT, total.elapsed());
        Ok(SimUser {
            tenant: tenant_index,
            user_id,
            passkeys,
        })
    }
}
