//! Shared helpers: a real Latchkey server on a free port against a fresh database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test crates; failed expectations fail the test

use std::{future::pending, sync::Arc};

use chrono::{TimeZone, Utc};
use clap::Parser;
use latchkey_core::{
    ManualClock, Services,
    testing::{TestBackend, TestDb},
};
use latchkey_server::{
    config::Cli,
    server::{RunningServer, start},
};

pub struct TestServer {
    pub server: RunningServer,
    pub services: Services,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    // Dropped last: the database outlives the server using it.
    pub db: TestDb,
}

impl TestServer {
    /// Starts a server, or `None` when PostgreSQL is wanted but absent outside CI (announced
    /// loudly by [`TestDb`]).
    pub async fn start(backend: TestBackend) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        let conn = db.connect().await;
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap());
        let services = Services::with_clock(conn, Arc::new(clock.clone()));
        let cli = Cli::try_parse_from([
            "latchkey",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            db.url().expose(),
        ])
        .expect("test configuration parses");
        let server = start(&cli.config, services.clone(), pending())
            .await
            .expect("server starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Some(Self {
            server,
            services,
            clock,
            http,
            db,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.base_url(), path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }
}
