//! Verifying and reading a FIDO Metadata Service (MDS3) BLOB: a JWS whose `x5c` chain must end at
//! a root certificate this binary ships, and whose payload lists authenticator models.
//!
//! The JWS and X.509 checks are `compact_jwt`'s and the payload's types are `fido-mds`'s (both
//! maintained with webauthn-rs). `fido_mds::FidoMds::from_str` would do both in one call, but it
//! pins its own roots, and tests need to sign BLOBs with a root they make; so the chain is checked
//! here against [`TrustRoots`], and `fido-mds` only reads the verified payload.

use std::str::FromStr;
use std::time::SystemTime;

use chrono::NaiveDate;
use compact_jwt::{
    JwsCompact, JwsVerifier,
    crypto::{Certificate, DecodePem, JwsX509VerifierBuilder},
};
use fido_mds::StatusReport;
use uuid::Uuid;

/// The certificates a BLOB's chain must end at.
#[derive(Clone)]
pub struct TrustRoots(Vec<Certificate>);

impl TrustRoots {
    /// The roots the FIDO Alliance's metadata service is signed under: GlobalSign Root CA - R3
    /// (today's chain) and GlobalSign Root R46 (its announced successor). Shipped in the binary:
    /// an instance never fetches what it trusts.
    pub fn fido() -> Self {
        let pems = [
            include_str!("roots/globalsign-root-ca-r3.pem"),
            include_str!("roots/globalsign-root-r46.pem"),
        ];
        // Constants of this binary, checked by a unit test: a root that does not parse is left out.
        Self(
            pems.iter()
                .filter_map(|pem| Certificate::from_pem(pem.as_bytes()).ok())
                .collect(),
        )
    }

    /// Other roots: only tests sign BLOBs under a root of their own.
    #[cfg(feature = "testing")]
    pub fn from_der(roots: &[Vec<u8>]) -> Self {
        use compact_jwt::crypto::DecodeDer;
        Self(
            roots
                .iter()
                .filter_map(|der| Certificate::from_der(der).ok())
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a BLOB was refused. Each message says that nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("This is not a FIDO metadata BLOB (a signed JWT with a certificate chain).")]
    NotABlob,
    #[error(
        "The BLOB's certificate chain does not lead to the FIDO Alliance's root certificate, or a \
         certificate in it has expired."
    )]
    UntrustedChain,
    #[error("The BLOB's signature does not verify: it was changed after it was signed.")]
    BadSignature,
    #[error("The BLOB is signed, but its contents are not FIDO MDS3 metadata.")]
    NotMetadata,
}

/// A verified BLOB's facts.
#[derive(Debug, Clone)]
pub struct VerifiedBlob {
    /// `no`: strictly increasing from one BLOB to the next.
    pub serial: u32,
    /// `nextUpdate`: the BLOB is stale after this day.
    pub next_update: NaiveDate,
    pub models: Vec<ModelMetadata>,
}

/// What the metadata says about one FIDO2 authenticator model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMetadata {
    pub aaguid: Uuid,
    pub description: String,
    /// The latest status report's status, as MDS3 names it (`FIDO_CERTIFIED_L1`, `REVOKED`, …).
    pub status: String,
    /// The highest certification level reported (`FIDO_CERTIFIED_L2`, …), unless refused.
    pub certification: Option<String>,
    /// A report that makes Latchkey refuse the model (see [`REFUSING_STATUSES`]).
    pub refused_status: Option<String>,
    /// DER root certificates the model's attestation certificates chain to.
    pub attestation_roots: Vec<Vec<u8>>,
}

/// Statuses after which no passkey of the model is trusted. A report applies to some firmware
/// versions, but a registration does not say which firmware made it: any such report counts.
pub const REFUSING_STATUSES: [&str; 5] = [
    "REVOKED",
    "USER_VERIFICATION_BYPASS",
    "ATTESTATION_KEY_COMPROMISE",
    "USER_KEY_REMOTE_COMPROMISE",
    "USER_KEY_PHYSICAL_COMPROMISE",
];

/// Checks `text` against `roots` at `now` and reads its FIDO2 models. CPU-bound (a BLOB is
/// megabytes of JSON): call it off the async runtime.
pub fn verify(text: &str, roots: &TrustRoots, now: SystemTime) -> Result<VerifiedBlob, BlobError> {
    let jws = JwsCompact::from_str(text.trim()).map_err(|_| BlobError::NotABlob)?;
    let (leaf, chain) = jws
        .get_x5c_chain()
        .ok()
        .flatten()
        .ok_or(BlobError::NotABlob)?;
    let verifier = roots
        .0
        .iter()
        .fold(
            JwsX509VerifierBuilder::new(&leaf, &chain),
            |builder, root| builder.add_trust_root(root.clone()),
        )
        .build(now)
        .map_err(|_| BlobError::UntrustedChain)?;
    let released = verifier.verify(&jws).map_err(|_| BlobError::BadSignature)?;
    let raw: fido_mds::mds::FidoMds = released.from_json().map_err(|e| {
        tracing::warn!(error = %e, "a verified metadata BLOB did not parse");
        BlobError::NotMetadata
    })?;
    let next_update = NaiveDate::parse_from_str(&raw.next_update, "%Y-%m-%d")
        .map_err(|_| BlobError::NotMetadata)?;
    let serial = raw.no;
    let parsed = fido_mds::FidoMds::from(raw);
    let mut models: Vec<ModelMetadata> = parsed.fido2.iter().map(|m| model_of(m)).collect();
    // One entry per AAGUID (the models are stored by it): a BLOB listing a model twice keeps
    // the first entry, in the BLOB's order.
    let mut seen = std::collections::HashSet::new();
    models.retain(|m| seen.insert(m.aaguid));
    Ok(VerifiedBlob {
        serial,
        next_update,
        models,
    })
}

fn model_of(device: &fido_mds::FIDO2) -> ModelMetadata {
    let reports: Vec<&StatusReport> = device.status_reports.iter().collect();
    // The latest report is the model's status; a report without a date counts as current.
    let latest = reports
        .iter()
        .max_by_key(|r| (r.effective_date().is_none(), r.effective_date()))
        .map(|r| status_code(r))
        .unwrap_or("NOT_FIDO_CERTIFIED");
    let refused_status = reports
        .iter()
        .filter(|r| REFUSING_STATUSES.contains(&status_code(r)))
        .max_by_key(|r| (r.effective_date().is_none(), r.effective_date()))
        .map(|r| status_code(r).to_owned());
    let certification = if refused_status.is_some() {
        None
    } else {
        reports
            .iter()
            .filter_map(|r| certification_level(r))
            .max()
            .map(|level| CERTIFICATION_LEVELS[level].to_owned())
    };
    ModelMetadata {
        aaguid: device.aaguid,
        description: device.description.clone(),
        status: latest.to_owned(),
        certification,
        refused_status,
        attestation_roots: device.attestation_root_certificates.clone(),
    }
}

/// The certification levels, lowest first (a plain `FIDO_CERTIFIED` is level 1).
const CERTIFICATION_LEVELS: [&str; 6] = [
    "FIDO_CERTIFIED_L1",
    "FIDO_CERTIFIED_L1_PLUS",
    "FIDO_CERTIFIED_L2",
    "FIDO_CERTIFIED_L2_PLUS",
    "FIDO_CERTIFIED_L3",
    "FIDO_CERTIFIED_L3_PLUS",
];

fn certification_level(report: &StatusReport) -> Option<usize> {
    match report {
        StatusReport::FidoCertified { .. } | StatusReport::FidoCertifiedL1 { .. } => Some(0),
        StatusReport::FidoCertifiedL1Plus { .. } => Some(1),
        StatusReport::FidoCertifiedL2 { .. } => Some(2),
        StatusReport::FidoCertifiedL2Plus { .. } => Some(3),
        StatusReport::FidoCertifiedL3 { .. } => Some(4),
        StatusReport::FidoCertifiedL3Plus { .. } => Some(5),
        _ => None,
    }
}

/// A report's status as MDS3 spells it.
fn status_code(report: &StatusReport) -> &'static str {
    match report {
        StatusReport::NotFidoCertified { .. } => "NOT_FIDO_CERTIFIED",
        StatusReport::UserVerificationBypass { .. } => "USER_VERIFICATION_BYPASS",
        StatusReport::AttestationKeyCompromise { .. } => "ATTESTATION_KEY_COMPROMISE",
        StatusReport::UserKeyRemoteCompromise { .. } => "USER_KEY_REMOTE_COMPROMISE",
        StatusReport::UserKeyPhysicalCompromise { .. } => "USER_KEY_PHYSICAL_COMPROMISE",
        StatusReport::UpdateAvailable { .. } => "UPDATE_AVAILABLE",
        StatusReport::Revoked { .. } => "REVOKED",
        StatusReport::SelfAssertionSubmitted { .. } => "SELF_ASSERTION_SUBMITTED",
        StatusReport::FidoCertified { .. } => "FIDO_CERTIFIED",
        StatusReport::FidoCertifiedL1 { .. } => "FIDO_CERTIFIED_L1",
        StatusReport::FidoCertifiedL1Plus { .. } => "FIDO_CERTIFIED_L1_PLUS",
        StatusReport::FidoCertifiedL2 { .. } => "FIDO_CERTIFIED_L2",
        StatusReport::FidoCertifiedL2Plus { .. } => "FIDO_CERTIFIED_L2_PLUS",
        StatusReport::FidoCertifiedL3 { .. } => "FIDO_CERTIFIED_L3",
        StatusReport::FidoCertifiedL3Plus { .. } => "FIDO_CERTIFIED_L3_PLUS",
    }
}

/// A human name for a status code, for messages and the portal.
pub fn status_label(code: &str) -> &'static str {
    match code {
        "REVOKED" => "revoked by the FIDO Alliance",
        "USER_VERIFICATION_BYPASS" => "user verification can be bypassed",
        "ATTESTATION_KEY_COMPROMISE" => "attestation key compromised",
        "USER_KEY_REMOTE_COMPROMISE" => "user keys can be extracted remotely",
        "USER_KEY_PHYSICAL_COMPROMISE" => "user keys can be extracted with physical access",
        _ => "reported by FIDO metadata",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_roots_parse() {
        assert_eq!(TrustRoots::fido().len(), 2);
    }

    #[test]
    fn what_is_not_a_signed_blob_is_refused_as_such() {
        let roots = TrustRoots::fido();
        for text in ["", "not a jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
            assert_eq!(
                verify(text, &roots, SystemTime::now()).err(),
                Some(BlobError::NotABlob),
                "{text:?}"
            );
        }
    }
}
