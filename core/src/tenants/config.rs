//! A tenant's passkey configuration (spec: "Tenant passkey configuration") and the rules every
//! value must satisfy before it is saved. Each rule refuses with a message written for the form
//! field it belongs to; nothing here touches the database.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The prefix of an Android app's origin in `clientDataJSON`.
pub const ANDROID_ORIGIN_PREFIX: &str = "android:apk-key-hash:";

/// Timeout bounds in seconds (spec).
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 30..=600;

/// `none` / `indirect` / `direct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Attestation {
    #[default]
    None,
    Indirect,
    Direct,
}

/// `required` / `preferred` / `discouraged` (user verification and resident key share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    Required,
    #[default]
    Preferred,
    Discouraged,
}

/// Which authenticators may register: any, or only one attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Attachment {
    #[default]
    Any,
    Platform,
    CrossPlatform,
}

/// A COSE signature algorithm the tenant accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    Es256,
    Es384,
    Rs256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Self::Es256, Self::Es384, Self::Rs256];

    /// The COSE identifier (`alg` in `pubKeyCredParams`).
    /// Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn cose(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::Es384 => -35,
            Self::Rs256 => -257,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Rs256 => "RS256",
        }
    }
}

/// One expected origin: a web origin or an Android app's signing-certificate hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// `https://host[:port]` (or `http://localhost[:port]`), normalised.
    Web(String),
    /// The SHA-256 of the app's signing certificate.
    Android([u8; 32]),
}

impl Origin {
    /// As it appears in `clientDataJSON.origin` (and in the stored list).
    pub fn as_client_origin(&self) -> String {
        match self {
            Self::Web(origin) => origin.clone(),
            Self::Android(hash) => {
                format!("{ANDROID_ORIGIN_PREFIX}{}", URL_SAFE_NO_PAD.encode(hash))
            }
        }
    }

    /// The signing certificate's fingerprint as `keytool` prints it (`AA:BB:…`), for Android
    /// origins: people recognise that, not the base64url form.
    pub fn fingerprint(&self) -> Option<String> {
        match self {
            Self::Web(_) => None,
            Self::Android(hash) => Some(fingerprint_of(hash)),
        }
    }
}

/// The Digital Asset Links statement list an Android app's site serves at
/// `https://<rp id>/.well-known/assetlinks.json`, so the app may use the site's passkeys (and
/// its other credentials): the app `package` signed with any of `fingerprints` (`AA:BB:…`).
/// An empty package name shows the placeholder `com.example.app`.
pub fn asset_links(package: &str, fingerprints: &[String]) -> serde_json::Value {
    let package = match package.trim() {
        "" => "com.example.app",
        package => package,
    };
    serde_json::json!([{
        "relation": [
            "delegate_permission/common.handle_all_urls",
            "delegate_permission/common.get_login_creds",
        ],
        "target": {
            "namespace": "android_app",
            "package_name": package,
            "sha256_cert_fingerprints": fingerprints,
        },
    }])
}

/// `AA:BB:…` upper-case hex with colons.
pub fn fingerprint_of(hash: &[u8]) -> String {
    hash.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A Relying Party ID: a lowercase host name (or `localhost`), not an IP address, not a public
/// suffix. Returns it as given (after trimming) when valid.
pub fn rp_id(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    let refuse = |message: String| Err(Error::invalid(field, message));
    if value.is_empty() {
        return refuse(
            "Enter the Relying Party ID, the domain your users sign in on (e.g. example.com)."
                .into(),
        );
    }
    if value.contains("://") || value.contains('/') {
        return refuse(
            "Enter a domain name only, without scheme or path (e.g. example.com, not https://example.com/).".into(),
        );
    }
    if value.parse::<std::net::IpAddr>().is_ok()
        || value
            .trim_matches(['[', ']'])
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    {
        return refuse("An IP address cannot be a Relying Party ID: use a domain name.".into());
    }
    if value.contains(':') {
        return refuse("A Relying Party ID has no port: enter the domain name only.".into());
    }
    if value.ends_with('.') {
        return refuse(format!(
            "Remove the trailing dot: {}.",
            value.trim_end_matches('.')
        ));
    }
    if !value.is_ascii() {
        return match idna::domain_to_ascii(value) {
            Ok(ascii) => refuse(format!(
                "Enter internationalised domain names in their ASCII (punycode) form: {ascii}."
            )),
            Err(_) => refuse("This is not a valid domain name.".into()),
        };
    }
    if value != value.to_ascii_lowercase() {
        return refuse(format!(
            "Use lowercase letters: {}.",
            value.to_ascii_lowercase()
        ));
    }
    host_name_syntax(field, value)?;
    // Punycode labels must decode to a valid name (`xn--` followed by garbage is not one).
    if value.split('.').any(|l| l.starts_with("xn--")) {
        let (_, decoded) = idna::domain_to_unicode(value);
        if decoded.is_err() {
            return refuse("This punycode (xn--) label is not valid.".into());
        }
    }
    // What browsers make of it: a name whose last label is a number is an IPv4 address to them
    // (`0.0` is 0.0.0.0, `1.2.3` is 1.2.0.3, `0x7f.1` is 127.0.0.1) or no host at all (`a.1`).
    match url::Host::parse(value) {
        Ok(url::Host::Domain(host)) if host == value => {}
        Ok(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {
            return refuse("An IP address cannot be a Relying Party ID: use a domain name.".into());
        }
        _ => {
            return refuse(
                "This is not a valid domain name: its last label must not be a number.".into(),
            );
        }
    }
    if value == "localhost" {
        return Ok(value.to_owned());
    }
    if psl::suffix_str(value) == Some(value) {
        return refuse(format!(
            "{value} is a public suffix (shared by unrelated sites): use your own domain under it."
        ));
    }
    Ok(value.to_owned())
}

/// Letters, digits and hyphens in dot-separated labels of 1..=63 characters, 253 at most.
fn host_name_syntax(field: &str, value: &str) -> Result<()> {
    let valid = value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "This is not a valid domain name: use letters, digits, hyphens and dots (e.g. auth.example.com).",
        ))
    }
}

/// One expected origin line, checked against the RP ID (when there is one yet).
pub fn origin(field: &str, value: &str, rp_id: Option<&str>) -> Result<Origin> {
    let value = value.trim();
    let refuse = |message: String| Err(Error::invalid(field, format!("{value}: {message}")));
    if let Some(hash) = value.strip_prefix(ANDROID_ORIGIN_PREFIX) {
        if hash.ends_with('=') {
            return refuse(
                "remove the '=' padding (the hash is base64url without padding).".into(),
            );
        }
        if hash.len() != 43 {
            return refuse(format!(
                "the hash must be 43 base64url characters (a SHA-256), not {}.",
                hash.chars().count()
            ));
        }
        return match URL_SAFE_NO_PAD
            .decode(hash)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(bytes) => Ok(Origin::Android(bytes)),
            None => refuse("the hash is not base64url (letters, digits, '-' and '_').".into()),
        };
    }
    if value.starts_with("android:") {
        return refuse(format!(
            "Android origins look like {ANDROID_ORIGIN_PREFIX}<base64url SHA-256>; use the fingerprint field below to add one."
        ));
    }
    let Ok(url) = url::Url::parse(value) else {
        return refuse("not an origin; web origins look like https://example.com.".into());
    };
    let Some(host) = url.host_str().map(str::to_owned) else {
        return refuse("a web origin needs a host, like https://example.com.".into());
    };
    match url.scheme() {
        "https" => {}
        "http" if host == "localhost" => {}
        "http" => return refuse("use https:// (plain http is allowed only for localhost).".into()),
        _ => return refuse("a web origin starts with https://.".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("an origin has no user name or password.".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return refuse(
            "an origin has no path, query or fragment: scheme, host and port only.".into(),
        );
    }
    if value.trim_end_matches('/').ends_with('.') || host.ends_with('.') {
        return refuse("remove the trailing dot.".into());
    }
    if let Some(rp_id) = rp_id
        && host != rp_id
        && !host.ends_with(&format!(".{rp_id}"))
    {
        return refuse(format!(
            "its host must be {rp_id} or a subdomain of it (the Relying Party ID)."
        ));
    }
    Ok(Origin::Web(url.origin().ascii_serialization()))
}

/// A signing-certificate SHA-256 fingerprint as `keytool -list -v` or Gradle's `signingReport`
/// print it: 32 hex bytes separated by colons (spaces and a leading `SHA256:` are tolerated).
pub fn fingerprint(field: &str, value: &str) -> Result<[u8; 32]> {
    let trimmed = value.trim();
    let body = ["SHA256:", "SHA-256:", "sha256:", "sha-256:"]
        .iter()
        .find_map(|p| trimmed.strip_prefix(p))
        .unwrap_or(trimmed);
    let hex: String = body
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '\t'))
        .collect();
    let refuse = |message: &str| Err(Error::invalid(field, message.to_owned()));
    if hex.is_empty() {
        return refuse(
            "Enter the SHA-256 fingerprint of your app's signing certificate (AA:BB:…).",
        );
    }
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return refuse("A fingerprint is hexadecimal: 0-9 and A-F, in pairs separated by colons.");
    }
    if hex.len() != 64 {
        return refuse(if hex.len() == 40 {
            "This looks like a SHA-1 fingerprint; Android origins need the SHA-256 one (32 pairs)."
        } else {
            "A SHA-256 fingerprint has 32 pairs of hex digits (AA:BB:… 32 times)."
        });
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| Error::invalid(field, "A fingerprint is hexadecimal."))?;
    }
    Ok(bytes)
}

/// Every origin line (one per line, blank lines ignored), duplicates removed in order.
pub fn origins(field: &str, lines: &str, rp_id: Option<&str>) -> Result<Vec<Origin>> {
    let mut seen = Vec::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let origin = origin(field, line, rp_id)?;
        if !seen.contains(&origin) {
            seen.push(origin);
        }
    }
    Ok(seen)
}

/// A tenant's passkey configuration as stored and used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyConfig {
    pub enabled: bool,
    pub rp_id: Option<String>,
    pub rp_name: Option<String>,
    pub origins: Vec<Origin>,
    /// Web origins on other sites that may use the RP ID (see `related_origins`).
    pub related_origins: Vec<String>,
    /// The tenant's iOS apps (`TEAMID.bundle.id`), for the origin doctor.
    pub ios_app_ids: Vec<String>,
    pub attestation: Attestation,
    pub user_verification: Requirement,
    pub resident_key: Requirement,
    pub attachment: Attachment,
    pub algorithms: Vec<Algorithm>,
    pub timeout_seconds: u32,
    /// Which authenticators may hold the tenant's passkeys (saved on its own, with a dry run).
    pub policy: super::policy::AuthenticatorPolicy,
    /// Bumped by every change.
    pub version: i64,
}

impl Default for PasskeyConfig {
    /// The spec's defaults: passkeys off, UV and resident key preferred, attestation none, any
    /// attachment, ES256 + RS256, 300 s.
    fn default() -> Self {
        Self {
            enabled: false,
            rp_id: None,
            rp_name: None,
            origins: Vec::new(),
            related_origins: Vec::new(),
            ios_app_ids: Vec::new(),
            attestation: Attestation::None,
            user_verification: Requirement::Preferred,
            resident_key: Requirement::Preferred,
            attachment: Attachment::Any,
            algorithms: vec![Algorithm::Es256, Algorithm::Rs256],
            timeout_seconds: 300,
            policy: super::policy::AuthenticatorPolicy::default(),
            version: 1,
        }
    }
}

impl PasskeyConfig {
    /// Every web origin a browser may use this tenant's passkeys from: the expected web origins
    /// and the related origins (CORS and the client data's origin).
    pub fn web_origins(&self) -> impl Iterator<Item = &str> {
        self.origins
            .iter()
            .filter_map(|o| match o {
                Origin::Web(web) => Some(web.as_str()),
                Origin::Android(_) => None,
            })
            .chain(self.related_origins.iter().map(String::as_str))
    }

    /// The values an audit event records (before/after): everything but the version.
    pub fn audit_view(&self) -> serde_json::Value {
        serde_json::json!({
            "enabled": self.enabled,
            "rp_id": self.rp_id,
            "rp_name": self.rp_name,
            "origins": self.origins.iter().map(Origin::as_client_origin).collect::<Vec<_>>(),
            "related_origins": self.related_origins,
            "ios_app_ids": self.ios_app_ids,
            "attestation": self.attestation,
            "user_verification": self.user_verification,
            "resident_key": self.resident_key,
            "attachment": self.attachment,
            "algorithms": self.algorithms,
            "timeout_seconds": self.timeout_seconds,
        })
    }
}

/// What an operator (or the CLI) submits. Free text where people type; the rules above turn it
/// into a [`PasskeyConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyConfigInput {
    pub enabled: bool,
    pub rp_id: String,
    pub rp_name: String,
    /// One origin per line.
    pub origins: String,
    /// One related origin per line (web origins on other sites).
    #[serde(default)]
    pub related_origins: String,
    /// One iOS app ID per line.
    #[serde(default)]
    pub ios_app_ids: String,
    pub attestation: Attestation,
    pub user_verification: Requirement,
    pub resident_key: Requirement,
    pub attachment: Attachment,
    pub algorithms: Vec<Algorithm>,
    pub timeout_seconds: u32,
    /// The operator confirmed replacing (or clearing) a saved RP ID, which orphans every
    /// passkey registered for it. Without it such a change is refused.
    #[serde(default)]
    pub confirm_rp_id_change: bool,
}

impl PasskeyConfigInput {
    /// Checks every field; the first refusal names its field (`rp_id`, `rp_name`, `origins`,
    /// `algorithms`, `timeout_seconds`, `enabled`). `version` is the stored one (the caller
    /// bumps it when saving). The policy is the default one: the caller keeps the stored one.
    pub fn validate(&self, version: i64) -> Result<PasskeyConfig> {
        let rp_id = match self.rp_id.trim() {
            "" => None,
            value => Some(rp_id("rp_id", value)?),
        };
        let rp_name = match self.rp_name.trim() {
            "" => None,
            value => Some(crate::validate::label(
                "rp_name",
                "Relying Party name",
                value,
                100,
            )?),
        };
        let origins = origins("origins", &self.origins, rp_id.as_deref())?;
        let related_origins = super::related_origins::related_origins(
            "related_origins",
            &self.related_origins,
            rp_id.as_deref(),
        )?;
        let ios_app_ids = super::related_origins::ios_app_ids("ios_app_ids", &self.ios_app_ids)?;
        let mut algorithms = self.algorithms.clone();
        algorithms.sort();
        algorithms.dedup();
        if algorithms.is_empty() {
            return Err(Error::invalid(
                "algorithms",
                "Choose at least one algorithm.",
            ));
        }
        if !TIMEOUT_RANGE.contains(&self.timeout_seconds) {
            return Err(Error::invalid(
                "timeout_seconds",
                format!(
                    "The timeout must be between {} and {} seconds.",
                    TIMEOUT_RANGE.start(),
                    TIMEOUT_RANGE.end()
                ),
            ));
        }
        if self.enabled {
            if rp_id.is_none() {
                return Err(Error::invalid(
                    "rp_id",
                    "Passkeys cannot be enabled without a Relying Party ID.",
                ));
            }
            if origins.is_empty() {
                return Err(Error::invalid(
                    "origins",
                    "Passkeys cannot be enabled without at least one expected origin.",
                ));
            }
        }
        Ok(PasskeyConfig {
            enabled: self.enabled,
            rp_id,
            rp_name,
            origins,
            related_origins,
            ios_app_ids,
            attestation: self.attestation,
            user_verification: self.user_verification,
            resident_key: self.resident_key,
            attachment: self.attachment,
            algorithms,
            timeout_seconds: self.timeout_seconds,
            policy: super::policy::AuthenticatorPolicy::default(),
            version,
        })
    }
}

impl From<&PasskeyConfig> for PasskeyConfigInput {
    fn from(c: &PasskeyConfig) -> Self {
        Self {
            enabled: c.enabled,
            rp_id: c.rp_id.clone().unwrap_or_default(),
            rp_name: c.rp_name.clone().unwrap_or_default(),
            origins: c
                .origins
                .iter()
                .map(Origin::as_client_origin)
                .collect::<Vec<_>>()
                .join("\n"),
            related_origins: c.related_origins.join("\n"),
            ios_app_ids: c.ios_app_ids.join("\n"),
            attestation: c.attestation,
            user_verification: c.user_verification,
            resident_key: c.resident_key,
            attachment: c.attachment,
            algorithms: c.algorithms.clone(),
            timeout_seconds: c.timeout_seconds,
            confirm_rp_id_change: false,
        }
    }
}

/// A serde enum as its wire name (the stored form, and the portal's select values).
pub fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A submitted wire name back into its enum; anything else is a field error.
pub fn enum_from<T: serde::de::DeserializeOwned>(field: &str, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| Error::invalid(field, "Choose one of the listed values."))
}

/// The stored form back. A row holding something unknown is corrupt: an internal error, never a
/// silent default (a damaged `required` must not read back as `preferred`).
pub(crate) fn enum_stored<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| Error::Internal(format!("stored {what} {name:?} unreadable")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Ok(v) => panic!("expected a refusal, got {v:?}"),
            Err(e) => {
                assert_eq!(e.field(), Some("f"), "field named");
                e.to_string()
            }
        }
    }

    #[test]
    fn asset_links_delegate_sign_in_to_the_signed_app() {
        let fingerprint = "AA:BB".to_owned();
        let document = asset_links("  ", std::slice::from_ref(&fingerprint));
        assert_eq!(
            document[0]["target"]["package_name"],
            serde_json::json!("com.example.app")
        );
        assert_eq!(
            document[0]["target"]["sha256_cert_fingerprints"],
            serde_json::json!(["AA:BB"])
        );
        assert_eq!(
            document[0]["relation"][1],
            serde_json::json!("delegate_permission/common.get_login_creds")
        );
        let document = asset_links(" com.shop.app ", &[]);
        assert_eq!(
            document[0]["target"]["package_name"],
            serde_json::json!("com.shop.app")
        );
    }

    #[test]
    fn rp_ids() {
        for ok in [
            "example.com",
            "auth.example.com",
            "localhost",
            "xn--bcher-kva.example",
            "a-b.example.co.uk",
            "app.localhost",
        ] {
            assert_eq!(
                rp_id("f", &format!(" {ok} ")).ok().as_deref(),
                Some(ok),
                "{ok}"
            );
        }
        let cases: &[(&str, &str)] = &[
            ("", "Enter the Relying Party ID"),
            ("Example.com", "Use lowercase letters: example.com"),
            ("example.com.", "Remove the trailing dot: example.com"),
            ("bücher.example", "punycode) form: xn--bcher-kva.example"),
            ("example.com:443", "no port"),
            ("https://example.com", "without scheme or path"),
            ("example.com/login", "without scheme or path"),
            ("192.168.1.10", "IP address"),
            ("::1", "IP address"),
            ("[::1]", "IP address"),
            // IPv4 addresses as browsers parse them.
            ("0.0", "IP address"),
            ("1.2.3", "IP address"),
            ("0x7f.1", "IP address"),
            ("example.0", "last label must not be a number"),
            ("a.1", "last label must not be a number"),
            ("com", "public suffix"),
            ("co.uk", "public suffix"),
            ("github.io", "public suffix"),
            ("intranet", "public suffix"),
            ("-bad.example.com", "not a valid domain name"),
            ("bad_.example.com", "not a valid domain name"),
            ("a..b.com", "not a valid domain name"),
            ("xn--zz-.example", "not a valid domain name"),
        ];
        for (input, expected) in cases {
            let got = message(rp_id("f", input));
            assert!(got.contains(expected), "{input:?}: {got}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(message(rp_id("f", &long)).contains("not a valid domain name"));
    }

    #[test]
    fn web_origins() {
        let ok: &[(&str, Option<&str>, &str)] = &[
            (
                "https://example.com",
                Some("example.com"),
                "https://example.com",
            ),
            (
                "https://example.com/",
                Some("example.com"),
                "https://example.com",
            ),
            (
                "https://Auth.Example.com:8443",
                Some("example.com"),
                "https://auth.example.com:8443",
            ),
            (
                "https://example.com:443",
                Some("example.com"),
                "https://example.com",
            ),
            (
                "http://localhost:5173",
                Some("localhost"),
                "http://localhost:5173",
            ),
            (
                "https://deep.sub.example.com",
                Some("example.com"),
                "https://deep.sub.example.com",
            ),
            ("https://anything.test", None, "https://anything.test"),
        ];
        for (input, rp, expected) in ok {
            assert_eq!(
                origin("f", input, *rp).ok(),
                Some(Origin::Web((*expected).into())),
                "{input}"
            );
        }
        let refused: &[(&str, Option<&str>, &str)] = &[
            (
                "https://evil-example.com",
                Some("example.com"),
                "must be example.com or a subdomain",
            ),
            (
                "https://example.com.evil.net",
                Some("example.com"),
                "must be example.com or a subdomain",
            ),
            (
                "https://other.com",
                Some("example.com"),
                "must be example.com or a subdomain",
            ),
            ("http://example.com", Some("example.com"), "use https://"),
            (
                "http://localhost.example.com",
                Some("example.com"),
                "use https://",
            ),
            (
                "ftp://example.com",
                Some("example.com"),
                "starts with https://",
            ),
            ("https://example.com/login", Some("example.com"), "no path"),
            (
                "https://example.com?x=1",
                Some("example.com"),
                "no path, query",
            ),
            (
                "https://example.com#top",
                Some("example.com"),
                "no path, query or fragment",
            ),
            (
                "https://user:pw@example.com",
                Some("example.com"),
                "no user name",
            ),
            ("https://example.com.", Some("example.com"), "trailing dot"),
            ("example.com", Some("example.com"), "not an origin"),
            (
                "android:apk-key-hash",
                Some("example.com"),
                "use the fingerprint field",
            ),
        ];
        for (input, rp, expected) in refused {
            let got = message(origin("f", input, *rp));
            assert!(got.contains(expected), "{input}: {got}");
            assert!(got.starts_with(input.trim()), "names the line: {got}");
        }
    }

    #[test]
    fn android_origins() {
        let hash = [0xABu8; 32];
        let encoded = URL_SAFE_NO_PAD.encode(hash);
        let line = format!("{ANDROID_ORIGIN_PREFIX}{encoded}");
        let parsed = origin("f", &line, Some("example.com")).ok();
        assert_eq!(parsed, Some(Origin::Android(hash)));
        assert_eq!(
            parsed.as_ref().map(Origin::as_client_origin),
            Some(line.clone())
        );
        assert_eq!(
            parsed.and_then(|o| o.fingerprint()).as_deref(),
            Some(vec!["AB"; 32].join(":").as_str())
        );
        let padded = format!("{line}=");
        assert!(message(origin("f", &padded, None)).contains("padding"));
        let short = format!("{ANDROID_ORIGIN_PREFIX}{}", &encoded[..42]);
        assert!(message(origin("f", &short, None)).contains("43 base64url characters"));
        let standard_b64 = format!("{ANDROID_ORIGIN_PREFIX}{}", "+".repeat(43));
        assert!(message(origin("f", &standard_b64, None)).contains("not base64url"));
    }

    #[test]
    fn fingerprints() {
        let expected: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let colons = fingerprint_of(&expected);
        for input in [
            colons.clone(),
            colons.to_lowercase(),
            format!("  SHA256: {colons} "),
            colons.replace(':', " "),
            colons.replace(':', ": "),
            colons.replace(':', ""),
        ] {
            assert_eq!(fingerprint("f", &input).ok(), Some(expected), "{input}");
        }
        let sha1 = vec!["AB"; 20].join(":");
        assert!(message(fingerprint("f", &sha1)).contains("SHA-1"));
        assert!(message(fingerprint("f", &colons[3..])).contains("32 pairs"));
        assert!(message(fingerprint("f", &colons.replace('0', "G"))).contains("hexadecimal"));
        assert!(message(fingerprint("f", "  ")).contains("Enter the SHA-256"));
    }

    #[test]
    fn whole_configurations() {
        let mut input = PasskeyConfigInput::from(&PasskeyConfig::default());
        assert_eq!(
            input.validate(1).ok(),
            Some(PasskeyConfig::default()),
            "defaults are valid"
        );
        input.enabled = true;
        assert_eq!(
            input
                .validate(1)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("rp_id")
        );
        input.rp_id = "example.com".into();
        assert_eq!(
            input
                .validate(1)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("origins")
        );
        let android = format!(
            "{ANDROID_ORIGIN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode([1u8; 32])
        );
        input.origins = format!(
            "https://example.com\nhttps://auth.example.com\n{android}\nhttps://example.com"
        );
        input.algorithms = vec![Algorithm::Rs256, Algorithm::Es256, Algorithm::Rs256];
        let config = input.validate(7).ok();
        assert_eq!(config.as_ref().map(|c| c.origins.len()), Some(3));
        assert_eq!(
            config.as_ref().map(|c| c.algorithms.clone()),
            Some(vec![Algorithm::Es256, Algorithm::Rs256])
        );
        assert_eq!(config.as_ref().map(|c| c.version), Some(7));
        for (field, change) in [
            (
                "algorithms",
                Box::new(|i: &mut PasskeyConfigInput| i.algorithms.clear())
                    as Box<dyn Fn(&mut PasskeyConfigInput)>,
            ),
            (
                "timeout_seconds",
                Box::new(|i: &mut PasskeyConfigInput| i.timeout_seconds = 29),
            ),
            (
                "timeout_seconds",
                Box::new(|i: &mut PasskeyConfigInput| i.timeout_seconds = 601),
            ),
            (
                "origins",
                Box::new(|i: &mut PasskeyConfigInput| {
                    i.origins = "https://evil-example.com".into()
                }),
            ),
            (
                "rp_name",
                Box::new(|i: &mut PasskeyConfigInput| i.rp_name = "x".repeat(101)),
            ),
        ] {
            let mut bad = input.clone();
            change(&mut bad);
            assert_eq!(
                bad.validate(1)
                    .err()
                    .and_then(|e| e.field().map(str::to_owned))
                    .as_deref(),
                Some(field)
            );
        }
        assert_eq!(enum_name(&Attachment::CrossPlatform), "cross_platform");
        assert_eq!(
            enum_stored::<Requirement>("uv", "required").ok(),
            Some(Requirement::Required)
        );
        assert!(matches!(
            enum_stored::<Requirement>("uv", "garbage"),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn origin_lists_drop_blanks_and_duplicates_in_order() {
        let list = origins(
            "f",
            "https://example.com\n\n  https://auth.example.com \nhttps://example.com/\n",
            Some("example.com"),
        );
        assert_eq!(
            list.ok(),
            Some(vec![
                Origin::Web("https://example.com".into()),
                Origin::Web("https://auth.example.com".into()),
            ])
        );
        let err = message(origins(
            "f",
            "https://example.com\nhttps://evil.com",
            Some("example.com"),
        ));
        assert!(err.starts_with("https://evil.com"), "{err}");
    }
}
