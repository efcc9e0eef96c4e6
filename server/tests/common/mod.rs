//! Shared helpers: a real Latchkey server on a free port against a fresh database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test crates; failed expectations fail the test

pub mod instance;
pub mod process;

use std::{future::pending, ops::Deref, sync::Arc};

use chrono::{TimeZone, Utc};
use clap::Parser;
use latchkey_core::{
    ManualClock, Services,
    testing::{TestBackend, TestDb, soft_passkey::SoftPasskeys},
};
use latchkey_server::{
    config::Cli,
    server::{RunningServer, start},
};
use serde_json::Value;

pub struct TestServer {
    pub server: RunningServer,
    pub services: Services,
    pub clock: ManualClock,
    /// The server as HTTP clients reach it (its methods are the server's, through `Deref`).
    pub site: Site,
    /// The server's database, for inspecting what requests did.
    pub conn: sea_orm::DatabaseConnection,
    // Dropped last: the database outlives the server using it.
    pub db: TestDb,
}

impl TestServer {
    /// Starts a server, or `None` when PostgreSQL is wanted but absent outside CI (announced
    /// loudly by [`TestDb`]).
    pub async fn start(backend: TestBackend) -> Option<Self> {
        // Tests fire many Client API calls from one address; the limit has its own test.
        Self::start_with(
            backend,
            &["--client-rate-limit", "0", "--source-rate-limit", "0"],
        )
        .await
    }

    /// Like [`Self::start`], with extra command-line options.
    pub async fn start_with(backend: TestBackend, extra: &[&str]) -> Option<Self> {
        Self::start_configured(backend, extra, |services| services).await
    }

    /// Like [`Self::start`], trusting FIDO metadata BLOBs signed under `roots` (a test PKI's).
    pub async fn start_trusting(
        backend: TestBackend,
        roots: latchkey_core::metadata::TrustRoots,
    ) -> Option<Self> {
        Self::start_configured(
            backend,
            &["--client-rate-limit", "0", "--source-rate-limit", "0"],
            move |services| services.with_metadata_roots(roots),
        )
        .await
    }

    async fn start_configured(
        backend: TestBackend,
        extra: &[&str],
        configure: impl FnOnce(Services) -> Services,
    ) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        let conn = db.connect().await;
        // Starts at the wall clock's time (to the second) so that cookie lifetimes, which
        // tower-sessions computes from the wall clock, agree with the server's own deadlines.
        let wall = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
        let clock = ManualClock::new(wall);
        let services = configure(latchkey_core::testing::services(
            conn.clone(),
            Arc::new(clock.clone()),
        ));
        let mut args = vec![
            "latchkey",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            db.url().expose(),
        ];
        args.extend_from_slice(extra);
        let cli = Cli::try_parse_from(args).expect("test configuration parses");
        let server = start(&cli.config, services.clone(), pending())
            .await
            .expect("server starts");
        let site = Site::new(&server.base_url());
        Some(Self {
            server,
            services,
            clock,
            site,
            conn,
            db,
        })
    }

    /// The first-run setup, as the logged link's visitor does it: answers their browser.
    pub async fn set_up_first_operator(&self, email: &str) -> Browser {
        set_up_first_operator(&self.services, &self.site, email).await
    }
}

/// A second server on a [`TestServer`]'s database (see [`TestServer::beside`]).
pub struct Beside {
    pub server: RunningServer,
    pub services: Services,
    pub site: Site,
}

impl Deref for Beside {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}

impl TestServer {
    /// Another server on this one's database, with a connection pool of its own opened now.
    /// SQLite loads the planner's statistics when a connection opens: a pool opened before a
    /// bulk load and its `ANALYZE` plans without them, as no long-running instance does.
    pub async fn beside(&self) -> Beside {
        let services =
            latchkey_core::testing::services(self.db.connect().await, Arc::new(self.clock.clone()));
        let cli = Cli::try_parse_from([
            "latchkey",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            self.db.url().expose(),
            "--client-rate-limit",
            "0",
            "--source-rate-limit",
            "0",
        ])
        .expect("test configuration parses");
        let server = start(&cli.config, services.clone(), pending())
            .await
            .expect("server starts");
        let site = Site::new(&server.base_url());
        Beside {
            server,
            services,
            site,
        }
    }
}

impl Deref for TestServer {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}

/// The first-run setup on `site`, with a setup token `services` issue (as the logged link
/// would carry): answers the visitor's browser, signed in.
pub async fn set_up_first_operator(services: &Services, site: &Site, email: &str) -> Browser {
    let issued = services
        .operators()
        .issue_setup_token()
        .await
        .expect("setup token")
        .expect("no operator yet");
    site.enroll(&issued.token, email).await
}

/// A Latchkey instance as HTTP clients reach it: browsers on the portal, backends on the APIs.
pub struct Site {
    pub base_url: String,
    pub http: reqwest::Client,
}

impl Site {
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A request that never answers fails the test instead of stalling the suite.
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("http client");
        Self {
            base_url: base_url.to_owned(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }
}

/// The origin the test server's portal believes it is served from (the default public URL).
pub const ORIGIN: &str = "http://localhost:3000";

/// A browser's session with the portal: its session cookie and its passkeys.
pub struct Browser {
    pub cookie: Option<String>,
    pub passkeys: SoftPasskeys,
}

/// The `name=value` part of the session cookie a response sets, and the whole header.
pub fn session_cookie(res: &reqwest::Response) -> Option<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("latchkey_session="))
        .map(|v| {
            (
                v.split(';').next().unwrap_or_default().to_owned(),
                v.to_owned(),
            )
        })
}

impl Site {
    /// Calls a portal server function as same-origin page script would (form-encoded arguments,
    /// JSON answer), with the browser's cookie.
    pub async fn call(
        &self,
        endpoint: &str,
        cookie: Option<&str>,
        args: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(&format!("/portal/api/{endpoint}")))
            .header("sec-fetch-site", "same-origin")
            .header("accept", "application/json")
            .header("user-agent", "Latchkey tests")
            .form(args);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send().await.expect("request")
    }

    /// Like [`Self::call`], for calls that must succeed: answers the JSON and keeps a new cookie.
    pub async fn call_ok(
        &self,
        browser: &mut Browser,
        endpoint: &str,
        args: &[(&str, &str)],
    ) -> Value {
        let res = self.call(endpoint, browser.cookie.as_deref(), args).await;
        let status = res.status();
        if let Some((cookie, _)) = session_cookie(&res) {
            browser.cookie = Some(cookie);
        }
        let text = res.text().await.expect("body");
        assert!(status.is_success(), "{endpoint}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Registers a passkey through `begin`/`finish` server functions (setup, invitation).
    pub async fn enroll(&self, token: &str, email: &str) -> Browser {
        let mut browser = Browser {
            cookie: None,
            passkeys: SoftPasskeys::new(),
        };
        let options = self
            .call_ok(
                &mut browser,
                "begin_enrollment",
                &[
                    ("token", token),
                    ("email", email),
                    ("display_name", "Test Operator"),
                ],
            )
            .await;
        let public_key: Value =
            serde_json::from_str(options["public_key"].as_str().expect("options")).expect("json");
        let credential = browser
            .passkeys
            .register(ORIGIN, &public_key)
            .expect("registers")
            .to_string();
        let ceremony = options["ceremony_id"]
            .as_str()
            .expect("ceremony id")
            .to_owned();
        self.call_ok(
            &mut browser,
            "finish_enrollment",
            &[("ceremony_id", &ceremony), ("credential", &credential)],
        )
        .await;
        assert!(browser.cookie.is_some(), "enrollment signs the operator in");
        browser
    }

    /// Signs in with the browser's passkey (discoverable, no username); answers the response of
    /// `finish_sign_in`.
    pub async fn sign_in(&self, browser: &mut Browser) -> reqwest::Response {
        let options = self.call_ok(browser, "begin_sign_in", &[]).await;
        let public_key: Value =
            serde_json::from_str(options["public_key"].as_str().expect("options")).expect("json");
        let credential = browser
            .passkeys
            .authenticate(ORIGIN, &public_key)
            .expect("signs")
            .to_string();
        let ceremony = options["ceremony_id"]
            .as_str()
            .expect("ceremony id")
            .to_owned();
        let res = self
            .call(
                "finish_sign_in",
                browser.cookie.as_deref(),
                &[("ceremony_id", &ceremony), ("credential", &credential)],
            )
            .await;
        if let Some((cookie, _)) = session_cookie(&res) {
            browser.cookie = Some(cookie);
        }
        res
    }

    /// GET with the browser's cookie.
    pub async fn get_as(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send().await.expect("request")
    }
}
