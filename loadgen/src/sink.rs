//! A webhook receiver that answers every delivery 200 and counts them (`--webhook-events`): the
//! server's cost of sending, not a receiver's of verifying.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::{Router, http::StatusCode, routing::post};

use crate::server::BenchTenant;

pub struct Sink {
    url: String,
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> Result<Sink, String> {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("webhook sink: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("webhook sink: {e}"))?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Sink {
        url: format!("http://{addr}/hook"),
        received,
        task,
    })
}

impl Sink {
    /// Gives every tenant an endpoint here for `events`, through the Server API.
    pub async fn subscribe(
        &self,
        base_url: &str,
        tenants: &[BenchTenant],
        events: &[String],
    ) -> Result<(), String> {
        let http = reqwest::Client::new();
        for tenant in tenants {
            let res = http
                .post(format!("{base_url}/api/v1/webhooks"))
                .bearer_auth(&tenant.api_key)
                .json(&serde_json::json!({ "url": self.url, "events": events }))
                .send()
                .await
                .map_err(|e| format!("creating a webhook endpoint: {e}"))?;
            if !res.status().is_success() {
                return Err(format!(
                    "creating a webhook endpoint: {}",
                    res.text().await.unwrap_or_default()
                ));
            }
        }
        Ok(())
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}
