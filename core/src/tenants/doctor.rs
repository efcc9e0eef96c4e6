//! The origin doctor: reads, from the tenant's RP ID site, the files browsers and mobile
//! platforms consult before they let a page or an app use the tenant's passkeys, and says per
//! file what matches the configuration and what does not.
//!
//! | file | needed when | checked |
//! |---|---|---|
//! | `/.well-known/webauthn` | related origins are configured | JSON `{"origins": […]}` listing every related origin |
//! | `/.well-known/assetlinks.json` | Android origins are configured | a `delegate_permission/common.get_login_creds` statement for an `android_app` with each configured signing-certificate fingerprint |
//! | `/.well-known/apple-app-site-association` | iOS app IDs are configured | `webcredentials.apps` listing every iOS app ID |
//!
//! Each must answer `200` with `Content-Type: application/json`. The RP ID's site is
//! `https://<rp id>`; for RP ID `localhost` (development) it is each of the tenant's
//! `http://localhost` origins, as there is no canonical site. The expected web origins are
//! checked to lie on the RP ID (a browser refuses an RP ID that is not a registrable suffix of
//! the page's host). Requests go through [`crate::outbound`] (no private addresses unless the
//! instance allows them, timeouts, a size limit, no redirects to other hosts), concurrently.

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, Duration, Utc};

use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::Tenants;
use super::config::{Origin, PasskeyConfig, fingerprint_of};
use super::related_origins::{MAX_LABELS, label, well_known_document};
use crate::{
    Error, Result,
    access::{Permission, TenantAccess},
    outbound::{FetchError, Fetched, Outbound},
};

/// How often one tenant's sites may be checked: each check makes up to a few requests to sites
/// the tenant names, which nobody should be able to turn into a flood.
pub const CHECK_INTERVAL_SECONDS: i64 = 10;

/// When each tenant was last checked (this instance's memory: the bound is per instance).
#[derive(Default)]
pub struct CheckThrottle {
    last: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl CheckThrottle {
    /// Takes the tenant's turn at `now`, or says in how many seconds it comes.
    fn take(&self, tenant_id: Uuid, now: DateTime<Utc>) -> std::result::Result<(), u64> {
        let interval = Duration::seconds(CHECK_INTERVAL_SECONDS);
        let Ok(mut last) = self.last.lock() else {
            return Ok(());
        };
        // Forget turns long past, so the map stays as small as the recent checks.
        last.retain(|_, at| now - *at < interval);
        if let Some(at) = last.get(&tenant_id) {
            let wait = (interval - (now - *at)).num_seconds();
            return Err(u64::try_from(wait).unwrap_or(1).max(1));
        }
        last.insert(tenant_id, now);
        Ok(())
    }
}

impl Tenants<'_> {
    /// The `/.well-known/webauthn` document the tenant's RP ID site must serve.
    pub async fn well_known_webauthn(&self, access: &TenantAccess) -> Result<serde_json::Value> {
        access.require(Permission::CheckOrigins)?;
        let config = self.stored_config(access.tenant_id()).await?;
        Ok(well_known_document(&config.related_origins))
    }

    /// Runs the origin doctor on the tenant's saved configuration (owners and admins, and the
    /// tenant's backend), once per [`CHECK_INTERVAL_SECONDS`] per tenant.
    pub async fn check_origins(
        &self,
        access: &TenantAccess,
        outbound: &Outbound,
        throttle: &CheckThrottle,
    ) -> Result<DoctorReport> {
        access.require(Permission::CheckOrigins)?;
        let config = self.stored_config(access.tenant_id()).await?;
        throttle
            .take(access.tenant_id(), self.clock.now())
            .map_err(|retry_after_seconds| Error::Throttled {
                message: format!(
                    "This tenant's sites were checked moments ago; check again in {retry_after_seconds} s."
                ),
                retry_after_seconds,
            })?;
        Ok(check(outbound, &config).await)
    }
}

/// One line of a report: what was found, and whether it is as it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub ok: bool,
    pub message: String,
}

impl Finding {
    fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: message.into(),
        }
    }

    fn problem(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
        }
    }
}

/// The well-known files the doctor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WellKnownFile {
    Webauthn,
    AssetLinks,
    AppleAppSiteAssociation,
}

impl WellKnownFile {
    pub fn path(self) -> &'static str {
        match self {
            Self::Webauthn => "/.well-known/webauthn",
            Self::AssetLinks => "/.well-known/assetlinks.json",
            Self::AppleAppSiteAssociation => "/.well-known/apple-app-site-association",
        }
    }
}

/// One file as read from one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    pub file: WellKnownFile,
    pub url: String,
    /// Every finding is `ok`.
    pub ok: bool,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// Findings about the configured origins themselves.
    pub origins: Vec<Finding>,
    /// One per file and site read; none when the configuration needs none of them.
    pub files: Vec<FileReport>,
}

impl DoctorReport {
    pub fn ok(&self) -> bool {
        self.origins.iter().all(|f| f.ok) && self.files.iter().all(|f| f.ok)
    }
}

/// The sites the RP ID's files are read from (see the module's docs).
fn rp_sites(config: &PasskeyConfig) -> Vec<Url> {
    let Some(rp_id) = config.rp_id.as_deref() else {
        return Vec::new();
    };
    if rp_id == "localhost" {
        return config
            .origins
            .iter()
            .filter_map(|o| match o {
                Origin::Web(web) => Url::parse(web).ok(),
                Origin::Android(_) => None,
            })
            .filter(|u| u.host_str() == Some("localhost"))
            .collect();
    }
    Url::parse(&format!("https://{rp_id}"))
        .into_iter()
        .collect()
}

/// What the configuration needs served, and the findings about its origins.
pub(crate) fn plan(config: &PasskeyConfig) -> (Vec<Finding>, Vec<(WellKnownFile, Url)>) {
    let mut origins = Vec::new();
    let rp_id = config.rp_id.as_deref().unwrap_or_default();
    if rp_id.is_empty() {
        origins.push(Finding::problem(
            "No Relying Party ID is set: there is nothing to check.",
        ));
        return (origins, Vec::new());
    }
    for origin in &config.origins {
        if let Origin::Web(web) = origin {
            let host = Url::parse(web)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            if host == rp_id || host.ends_with(&format!(".{rp_id}")) {
                origins.push(Finding::ok(format!(
                    "{web}: the RP ID {rp_id} is a registrable suffix of its host."
                )));
            } else {
                origins.push(Finding::problem(format!(
                    "{web}: the RP ID {rp_id} is not a registrable suffix of its host; browsers refuse it there (list it as a related origin instead)."
                )));
            }
        }
    }
    let mut labels: Vec<String> = Vec::new();
    for related in &config.related_origins {
        if let Some(l) = Url::parse(related)
            .ok()
            .and_then(|u| u.host_str().and_then(label))
            && !labels.contains(&l)
        {
            labels.push(l);
        }
    }
    if !config.related_origins.is_empty() {
        origins.push(Finding {
            ok: labels.len() <= MAX_LABELS,
            message: format!(
                "{} related origin(s) on {} site name(s) ({}); browsers follow at most {MAX_LABELS}.",
                config.related_origins.len(),
                labels.len(),
                labels.join(", ")
            ),
        });
    }
    let mut files = Vec::new();
    for site in rp_sites(config) {
        let needed = [
            (!config.related_origins.is_empty(), WellKnownFile::Webauthn),
            (
                config
                    .origins
                    .iter()
                    .any(|o| matches!(o, Origin::Android(_))),
                WellKnownFile::AssetLinks,
            ),
            (
                !config.ios_app_ids.is_empty(),
                WellKnownFile::AppleAppSiteAssociation,
            ),
        ];
        for (needed, file) in needed {
            if needed && let Ok(url) = site.join(file.path()) {
                files.push((file, url));
            }
        }
    }
    if files.is_empty() && rp_sites(config).is_empty() {
        origins.push(Finding::problem(
            "RP ID localhost: no http://localhost origin to read the files from.",
        ));
    }
    (origins, files)
}

/// Runs the doctor for `config`.
pub async fn check(outbound: &Outbound, config: &PasskeyConfig) -> DoctorReport {
    let (origins, planned) = plan(config);
    let fetches = planned.into_iter().map(|(file, url)| async move {
        let fetched = outbound.get(&url).await;
        judge(config, file, &url, fetched)
    });
    DoctorReport {
        origins,
        files: futures_util::future::join_all(fetches).await,
    }
}

/// The report for one file: how it was served, then what it says.
pub(crate) fn judge(
    config: &PasskeyConfig,
    file: WellKnownFile,
    url: &Url,
    fetched: Result<Fetched, FetchError>,
) -> FileReport {
    let mut findings = Vec::new();
    match fetched {
        Err(err) => findings.push(Finding::problem(format!("Missing: {err}."))),
        Ok(fetched) if fetched.refused_redirect.is_some() => {
            findings.push(Finding::problem(format!(
                "Missing: it redirects to {}, another host (not followed; it must be served here).",
                fetched.refused_redirect.unwrap_or_default()
            )));
        }
        Ok(fetched) if fetched.status != 200 => findings.push(Finding::problem(format!(
            "Missing: the site answered HTTP {}.",
            fetched.status
        ))),
        Ok(fetched) => {
            let media = fetched
                .content_type
                .as_deref()
                .and_then(|c| c.split(';').next())
                .map(|c| c.trim().to_ascii_lowercase());
            if media.as_deref() == Some("application/json") {
                findings.push(Finding::ok("Served as application/json."));
            } else {
                findings.push(Finding::problem(format!(
                    "Wrong content type {}: it must be served as application/json.",
                    media.unwrap_or_else(|| "(none)".into())
                )));
            }
            match serde_json::from_slice::<serde_json::Value>(&fetched.body) {
                Err(_) => findings.push(Finding::problem("The file is not JSON.")),
                Ok(document) => findings.extend(match file {
                    WellKnownFile::Webauthn => webauthn_findings(config, &document),
                    WellKnownFile::AssetLinks => asset_links_findings(config, &document),
                    WellKnownFile::AppleAppSiteAssociation => aasa_findings(config, &document),
                }),
            }
        }
    }
    FileReport {
        file,
        url: url.to_string(),
        ok: findings.iter().all(|f| f.ok),
        findings,
    }
}

fn webauthn_findings(config: &PasskeyConfig, document: &serde_json::Value) -> Vec<Finding> {
    let Some(listed) = document["origins"].as_array() else {
        return vec![Finding::problem(
            "No \"origins\" array: the document is {\"origins\": [\"https://…\", …]}.",
        )];
    };
    let listed: Vec<&str> = listed.iter().filter_map(|o| o.as_str()).collect();
    config
        .related_origins
        .iter()
        .map(|related| {
            if listed.contains(&related.as_str()) {
                Finding::ok(format!("{related} is listed."))
            } else {
                Finding::problem(format!(
                    "{related} is not listed: browsers will not let it use the RP ID."
                ))
            }
        })
        .collect()
}

/// The fingerprints (`AA:BB:…`) each `android_app` package is delegated sign-in credentials
/// for, and those listed without that relation.
fn asset_links_findings(config: &PasskeyConfig, document: &serde_json::Value) -> Vec<Finding> {
    let Some(statements) = document.as_array() else {
        return vec![Finding::problem(
            "Not a statement list: Digital Asset Links files are a JSON array.",
        )];
    };
    // (package, fingerprint, delegates credentials)
    let mut found: Vec<(String, String, bool)> = Vec::new();
    for statement in statements {
        let target = &statement["target"];
        if target["namespace"].as_str() != Some("android_app") {
            continue;
        }
        let package = target["package_name"].as_str().unwrap_or("?").to_owned();
        let delegates = statement["relation"].as_array().is_some_and(|r| {
            r.iter()
                .any(|x| x.as_str() == Some("delegate_permission/common.get_login_creds"))
        });
        for fingerprint in target["sha256_cert_fingerprints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
        {
            found.push((package.clone(), fingerprint.to_ascii_uppercase(), delegates));
        }
    }
    let mut findings = Vec::new();
    for origin in &config.origins {
        let Origin::Android(hash) = origin else {
            continue;
        };
        let fingerprint = fingerprint_of(hash);
        let matching: Vec<&(String, String, bool)> =
            found.iter().filter(|(_, f, _)| *f == fingerprint).collect();
        if let Some((package, _, _)) = matching.iter().find(|(_, _, d)| *d) {
            findings.push(Finding::ok(format!(
                "{package} signed with {fingerprint} may use the passkeys."
            )));
        } else if let Some((package, _, _)) = matching.first() {
            findings.push(Finding::problem(format!(
                "{package} with {fingerprint} is listed without the relation delegate_permission/common.get_login_creds."
            )));
        } else {
            let packages: Vec<String> =
                found.iter().map(|(p, f, _)| format!("{p} ({f})")).collect();
            findings.push(Finding::problem(format!(
                "No statement lists the fingerprint {fingerprint} (the configured {}); the file lists {}.",
                origin.as_client_origin(),
                if packages.is_empty() {
                    "no Android app".to_owned()
                } else {
                    packages.join(", ")
                }
            )));
        }
    }
    findings
}

fn aasa_findings(config: &PasskeyConfig, document: &serde_json::Value) -> Vec<Finding> {
    let Some(apps) = document["webcredentials"]["apps"].as_array() else {
        return vec![Finding::problem(
            "No \"webcredentials\": {\"apps\": […]}: iOS apps may not use this site's passkeys.",
        )];
    };
    let apps: Vec<&str> = apps.iter().filter_map(|a| a.as_str()).collect();
    config
        .ios_app_ids
        .iter()
        .map(|id| {
            if apps.contains(&id.as_str()) {
                Finding::ok(format!("{id} is listed in webcredentials.apps."))
            } else {
                Finding::problem(format!("{id} is missing from webcredentials.apps."))
            }
        })
        .collect()
}
