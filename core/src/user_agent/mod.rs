//! User agents summarised for people — "Chrome 156 on Linux" — for support's pages.
//!
//! The parsing is the ua-parser project's own Rust implementation (`ua-parser`); its rules are
//! the project's community regexes, which the crate does not ship: `regexes.yaml` beside this
//! file is uap-core 0.18.0's, verbatim (Apache-2.0, `LICENSE` beside it), the release that
//! `ua-parser` 0.2.2 is tested against. Update both together.
//!
//! Compiling the rules takes a fraction of a second, so it happens once, on first use; callers on
//! the async runtime go through [`summaries`], which runs on the blocking pool.

use std::sync::LazyLock;

use serde::Deserialize;
use ua_parser::{os, user_agent};

const REGEXES: &str = include_str!("regexes.yaml");

/// The two parts of the rules a summary uses (devices are not summarised).
#[derive(Deserialize)]
struct Rules {
    user_agent_parsers: Vec<user_agent::Parser<'static>>,
    os_parsers: Vec<os::Parser<'static>>,
}

struct Extractors {
    browser: user_agent::Extractor<'static>,
    os: os::Extractor<'static>,
}

static EXTRACTORS: LazyLock<Option<Extractors>> = LazyLock::new(|| {
    let built = (|| -> Result<Extractors, String> {
        let rules: Rules = serde_saphyr::from_str(REGEXES).map_err(|e| e.to_string())?;
        let browser = user_agent::Builder::new()
            .push_all(rules.user_agent_parsers)
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?;
        let os = os::Builder::new()
            .push_all(rules.os_parsers)
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Extractors { browser, os })
    })();
    match built {
        Ok(extractors) => Some(extractors),
        Err(e) => {
            // The vendored rules are tested; this would be a broken build, not bad input.
            tracing::error!(error = %e, "the user-agent rules do not compile");
            None
        }
    }
});

/// "Chrome 156 on Linux", "Mobile Safari 17 on iOS 17.4"; the agent itself (shortened) where
/// the rules know neither browser nor system.
pub fn summary(agent: &str) -> String {
    let Some(extractors) = EXTRACTORS.as_ref() else {
        return shortened(agent);
    };
    let browser = extractors
        .browser
        .extract(agent)
        .filter(|b| b.family != "Other")
        .map(|b| join(&b.family, b.major, None));
    let os = extractors
        .os
        .extract(agent)
        .filter(|o| o.os != "Other")
        .map(|o| join(&o.os, o.major.as_deref(), o.minor.as_deref()));
    match (browser, os) {
        (Some(browser), Some(os)) => format!("{browser} on {os}"),
        (Some(browser), None) => browser,
        (None, Some(os)) => format!("A browser on {os}"),
        (None, None) => shortened(agent),
    }
}

/// [`summary`] of each, off the async runtime (the first use compiles the rules).
pub async fn summaries(agents: Vec<Option<String>>) -> crate::Result<Vec<Option<String>>> {
    crate::cpu::off_runtime(move || {
        Ok(agents
            .into_iter()
            .map(|a| a.as_deref().map(summary))
            .collect())
    })
    .await
}

fn join(name: &str, major: Option<&str>, minor: Option<&str>) -> String {
    match (major, minor) {
        (Some(major), Some(minor)) if !minor.is_empty() => format!("{name} {major}.{minor}"),
        (Some(major), _) if !major.is_empty() => format!("{name} {major}"),
        _ => name.to_owned(),
    }
}

fn shortened(agent: &str) -> String {
    const MAX: usize = 60;
    if agent.chars().count() <= MAX {
        return agent.to_owned();
    }
    let mut short: String = agent.chars().take(MAX).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn common_agents_read_as_browser_and_system() {
        for (agent, expected) in [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
                "Chrome 156 on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                "Mobile Safari 17 on iOS 17.4",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox 133 on Windows 10",
            ),
        ] {
            assert_eq!(summary(agent), expected, "{agent}");
        }
    }

    #[test]
    fn unknown_agents_are_shown_shortened() {
        assert_eq!(summary("qwxz"), "qwxz");
        let long = "x".repeat(500);
        assert_eq!(summary(&long).chars().count(), 61);
    }
}
