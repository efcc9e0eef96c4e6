//! Each tenant's WebAuthn relying party, built from its configuration and cached per
//! configuration version (design invariant 6): a changed configuration has a new version, and a
//! cached relying party of another version is never used.
//!
//! Built on `webauthn-rs-core`'s expert constructor because the high-level `webauthn-rs` API
//! fixes user verification, resident key and the algorithm list, and wants a web origin first
//! (a tenant may list Android `android:apk-key-hash:` origins, which only match exactly).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use url::Url;
use uuid::Uuid;
use webauthn_rs_core::{
    WebauthnCore,
    proto::{
        AttestationConveyancePreference, AuthenticatorAttachment, COSEAlgorithm,
        UserVerificationPolicy,
    },
};

use crate::{
    Error, Result,
    tenants::config::{Algorithm, Attachment, Attestation, PasskeyConfig, Requirement},
};

/// A tenant's relying party for one configuration version.
pub(crate) struct TenantRelyingParty {
    pub config: Arc<PasskeyConfig>,
    pub core: WebauthnCore,
}

impl TenantRelyingParty {
    /// The RP ID (a relying party is built only for a configuration that has one).
    pub(crate) fn rp_id(&self) -> &str {
        self.config.rp_id.as_deref().unwrap_or_default()
    }

    pub(crate) fn build(config: Arc<PasskeyConfig>) -> Result<Self> {
        let rp_id = config
            .rp_id
            .as_deref()
            .ok_or_else(|| Error::Internal("relying party without an RP ID".into()))?;
        // The expected origins (web and Android) and the related origins.
        let origins = config
            .origins
            .iter()
            .map(|o| o.as_client_origin())
            .chain(config.related_origins.iter().cloned())
            .map(|o| {
                Url::parse(&o)
                    .map_err(|e| Error::Internal(format!("stored origin unparsable: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let core = WebauthnCore::new_unsafe_experts_only(
            config.rp_name.as_deref().unwrap_or(rp_id),
            rp_id,
            origins,
            Duration::from_secs(u64::from(config.timeout_seconds)),
            // Origins match exactly: subdomains and other ports must be listed.
            Some(false),
            Some(false),
        );
        Ok(Self { config, core })
    }

    pub fn user_verification(&self) -> UserVerificationPolicy {
        match self.config.user_verification {
            Requirement::Required => UserVerificationPolicy::Required,
            Requirement::Preferred => UserVerificationPolicy::Preferred,
            Requirement::Discouraged => UserVerificationPolicy::Discouraged_DO_NOT_USE,
        }
    }

    pub fn attestation(&self) -> AttestationConveyancePreference {
        match self.config.attestation {
            Attestation::None => AttestationConveyancePreference::None,
            Attestation::Indirect => AttestationConveyancePreference::Indirect,
            Attestation::Direct => AttestationConveyancePreference::Direct,
        }
    }

    pub fn attachment(&self) -> Option<AuthenticatorAttachment> {
        match self.config.attachment {
            Attachment::Any => None,
            Attachment::Platform => Some(AuthenticatorAttachment::Platform),
            Attachment::CrossPlatform => Some(AuthenticatorAttachment::CrossPlatform),
        }
    }

    pub fn algorithms(&self) -> Vec<COSEAlgorithm> {
        self.config
            .algorithms
            .iter()
            .map(|a| match a {
                Algorithm::Es256 => COSEAlgorithm::ES256,
                Algorithm::Es384 => COSEAlgorithm::ES384,
                Algorithm::Rs256 => COSEAlgorithm::RS256,
            })
            .collect()
    }
}

/// The per-instance cache of tenants' relying parties.
#[derive(Default)]
pub struct RelyingParties {
    // Held only for a lookup or an insert, never across an await.
    entries: RwLock<HashMap<Uuid, Arc<TenantRelyingParty>>>,
}

impl RelyingParties {
    /// The relying party for exactly this configuration (version), built on first use.
    pub(crate) fn for_config(
        &self,
        tenant_id: Uuid,
        config: &Arc<PasskeyConfig>,
    ) -> Result<Arc<TenantRelyingParty>> {
        if let Ok(entries) = self.entries.read()
            && let Some(rp) = entries.get(&tenant_id)
            && rp.config.version == config.version
        {
            return Ok(rp.clone());
        }
        let rp = Arc::new(TenantRelyingParty::build(config.clone())?);
        if let Ok(mut entries) = self.entries.write() {
            let newer = entries
                .get(&tenant_id)
                .is_some_and(|e| e.config.version > config.version);
            if !newer {
                entries.insert(tenant_id, rp.clone());
            }
        }
        Ok(rp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::config::Origin;

    fn config(version: i64) -> Arc<PasskeyConfig> {
        Arc::new(PasskeyConfig {
            enabled: true,
            rp_id: Some("example.com".into()),
            origins: vec![
                Origin::Web("https://example.com".into()),
                Origin::Android([7; 32]),
            ],
            version,
            ..PasskeyConfig::default()
        })
    }

    #[test]
    fn relying_parties_are_reused_per_version_and_rebuilt_on_change() {
        let cache = RelyingParties::default();
        let tenant = Uuid::new_v4();
        let v1 = config(1);
        let a = cache
            .for_config(tenant, &v1)
            .unwrap_or_else(|e| panic!("{e}"));
        let b = cache
            .for_config(tenant, &v1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache
            .for_config(tenant, &config(2))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.config.version, 2);
        assert_eq!(c.core.get_allowed_origins().len(), 2);
    }
}
