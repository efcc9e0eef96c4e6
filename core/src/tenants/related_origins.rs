//! Related origins (WebAuthn Related Origin Requests): web origins on *other* sites that may use
//! the tenant's RP ID — `https://shop.example.de` for RP ID `example.com`. A browser lets such a
//! page use the RP ID only if `https://<rp id>/.well-known/webauthn` lists it; Latchkey accepts
//! them as expected origins (client data and CORS) only when the tenant lists them here, and
//! generates that document.
//!
//! The browsers' limit: a client reads the document's origins in order and gives up after
//! **5 distinct registrable-domain labels** (the label is the registrable domain without its
//! public suffix: `example` for `shop.example.de` and `www.example.co.uk`). Chrome implements
//! exactly 5 and the specification requires at least 5, so 5 is the most that works everywhere;
//! more would make origins beyond the fifth label fail in the browser while Latchkey accepted
//! them. Refused at save.
//!
//! Also here: iOS app IDs (`TEAMID.bundle.id`) the tenant's apps sign in with, which the origin
//! doctor looks for in the apple-app-site-association file.

use super::config::{Origin, origin};
use crate::{Error, Result};

/// The most distinct registrable-domain labels a browser follows (see the module's docs).
pub const MAX_LABELS: usize = 5;

/// The registrable-domain label of `host` (`example` for `shop.example.de`); `None` for a host
/// with no registrable domain (a bare public suffix, `localhost`).
pub fn label(host: &str) -> Option<String> {
    let domain = psl::domain_str(host)?;
    let suffix = psl::suffix_str(domain)?;
    domain
        .strip_suffix(suffix)
        .map(|l| l.trim_end_matches('.').to_owned())
        .filter(|l| !l.is_empty())
}

/// Every related origin line (one per line, blank lines ignored), duplicates removed in order.
/// Each is a web origin (`https://`, or `http://localhost`) whose host is **not** the RP ID or
/// under it (those are expected origins), with a registrable domain; at most [`MAX_LABELS`]
/// distinct labels.
pub fn related_origins(field: &str, lines: &str, rp_id: Option<&str>) -> Result<Vec<String>> {
    let mut seen: Vec<String> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let web = match origin(field, line, None)? {
            Origin::Web(web) => web,
            Origin::Android(_) => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{line}: related origins are web origins; Android apps go in Expected origins."
                    ),
                ));
            }
        };
        let host = url::Url::parse(&web)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        if let Some(rp_id) = rp_id
            && (host == rp_id || host.ends_with(&format!(".{rp_id}")))
        {
            return Err(Error::invalid(
                field,
                format!("{web} is on the RP ID's own site: list it under Expected origins."),
            ));
        }
        let Some(label) = label(&host) else {
            return Err(Error::invalid(
                field,
                format!(
                    "{web} has no registrable domain (browsers accept related origins on registrable domains only)."
                ),
            ));
        };
        if !labels.contains(&label) {
            labels.push(label);
        }
        if labels.len() > MAX_LABELS {
            return Err(Error::invalid(
                field,
                format!(
                    "At most {MAX_LABELS} different site names ({}, …): browsers stop reading \
                     the list after {MAX_LABELS}, so {web} would never work.",
                    labels[..MAX_LABELS].join(", ")
                ),
            ));
        }
        if !seen.contains(&web) {
            seen.push(web);
        }
    }
    Ok(seen)
}

/// The `/.well-known/webauthn` document for `related` (the RP ID's site must serve it).
pub fn well_known_document(related: &[String]) -> serde_json::Value {
    serde_json::json!({ "origins": related })
}

/// Every iOS app ID line: `TEAMID.bundle.id` — a 10-character team ID (letters and digits), a
/// dot, a bundle ID (letters, digits, `-`, `.`). Duplicates removed in order.
pub fn ios_app_ids(field: &str, lines: &str) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let valid = line.split_once('.').is_some_and(|(team, bundle)| {
            team.len() == 10
                && team.chars().all(|c| c.is_ascii_alphanumeric())
                && !bundle.is_empty()
                && bundle.len() <= 155
                && !bundle.starts_with('.')
                && !bundle.ends_with('.')
                && bundle
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        });
        if !valid {
            return Err(Error::invalid(
                field,
                format!(
                    "{}: an iOS app ID is TEAMID.bundle.id, e.g. ABCDE12345.com.example.app.",
                    line.chars().take(80).collect::<String>()
                ),
            ));
        }
        let id = line.to_owned();
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_registrable_domains_without_their_suffix() {
        assert_eq!(label("shop.example.de").as_deref(), Some("example"));
        assert_eq!(label("www.example.co.uk").as_deref(), Some("example"));
        assert_eq!(label("example.com").as_deref(), Some("example"));
        assert_eq!(label("co.uk"), None);
    }

    #[test]
    fn related_origins_are_other_sites_within_the_label_limit() {
        let ok = related_origins(
            "f",
            "https://shop.example.de\nhttps://example.fr\nhttps://shop.example.de",
            Some("example.com"),
        );
        assert_eq!(
            ok.ok(),
            Some(vec![
                "https://shop.example.de".to_owned(),
                "https://example.fr".to_owned()
            ])
        );
        for refused in [
            "https://login.example.com",
            "https://example.com",
            "android:apk-key-hash:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "http://shop.example.de",
            "https://shop.example.de/path",
            "https://co.uk",
        ] {
            let err = related_origins("f", refused, Some("example.com"));
            assert_eq!(
                err.err()
                    .and_then(|e| e.field().map(str::to_owned))
                    .as_deref(),
                Some("f"),
                "{refused}"
            );
        }
        let five = "https://a.de\nhttps://b.de\nhttps://c.de\nhttps://d.de\nhttps://e.de\nhttps://www.a.fr";
        assert!(related_origins("f", five, Some("example.com")).is_ok());
        let six = format!("{five}\nhttps://f.de");
        let err = related_origins("f", &six, Some("example.com"))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("At most 5")));
    }

    #[test]
    fn ios_app_ids_are_team_and_bundle() {
        assert_eq!(
            ios_app_ids(
                "f",
                "ABCDE12345.com.example.app\nABCDE12345.com.example.app"
            )
            .ok(),
            Some(vec!["ABCDE12345.com.example.app".to_owned()])
        );
        for refused in [
            "com.example.app",
            "ABCDE1234.com.x",
            "ABCDE12345.",
            "ABCDE12345.a b",
        ] {
            assert!(ios_app_ids("f", refused).is_err(), "{refused}");
        }
    }
}
