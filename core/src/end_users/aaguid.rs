//! Passkey providers by AAGUID (the community list, `core/data/aaguid.json`): the name shown for
//! an authenticator and its icons. Parsed once per process, on first use.

use std::{collections::HashMap, sync::LazyLock};

use serde::Deserialize;
use uuid::Uuid;

/// A passkey provider: "iCloud Keychain", "Google Password Manager", …
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Provider {
    pub name: String,
    /// `data:` URIs (SVG or PNG) for light and dark backgrounds.
    pub icon_light: Option<String>,
    pub icon_dark: Option<String>,
}

static PROVIDERS: LazyLock<HashMap<Uuid, Provider>> = LazyLock::new(|| {
    let raw: HashMap<String, Provider> =
        serde_json::from_str(include_str!("../../data/aaguid.json")).unwrap_or_default();
    raw.into_iter()
        .filter_map(|(aaguid, provider)| Some((Uuid::parse_str(&aaguid).ok()?, provider)))
        .collect()
});

/// The provider behind an AAGUID, if the list knows it. The all-zero AAGUID (what most
/// authenticators send without attestation) is nobody.
pub fn provider(aaguid: Uuid) -> Option<&'static Provider> {
    PROVIDERS.get(&aaguid)
}

/// Every known model, sorted by name (then AAGUID): what people pick from.
pub fn by_name() -> Vec<(Uuid, &'static str)> {
    let mut all: Vec<(Uuid, &'static str)> = PROVIDERS
        .iter()
        .map(|(aaguid, provider)| (*aaguid, provider.name.as_str()))
        .collect();
    all.sort_by(|a, b| {
        a.1.to_lowercase()
            .cmp(&b.1.to_lowercase())
            .then(a.0.cmp(&b.0))
    });
    all
}

/// The name a new authenticator gets when the user gives none.
pub fn default_name(aaguid: Uuid) -> String {
    provider(aaguid).map_or_else(|| "Passkey".to_owned(), |p| p.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_compiled_in_and_names_known_providers() {
        let icloud = Uuid::parse_str("dd4ec289-e01d-41c9-bb89-70fa845d4bf2").ok();
        let google = Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").ok();
        assert!(PROVIDERS.len() > 40);
        assert_eq!(
            icloud.map(default_name).as_deref(),
            Some("iCloud Keychain (Managed)")
        );
        assert_eq!(
            google.map(default_name).as_deref(),
            Some("Google Password Manager")
        );
        assert_eq!(default_name(Uuid::nil()), "Passkey");
        assert!(
            google
                .and_then(provider)
                .is_some_and(|p| p.icon_light.is_some())
        );
    }
}
