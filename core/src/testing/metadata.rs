//! A test public-key infrastructure for FIDO metadata: a root that signs BLOBs (in place of the
//! FIDO Alliance's), and an attestation CA whose batch certificate the soft authenticator signs
//! packed attestations with. Certificates are made with `x509-cert`'s builder, valid from 2020 to
//! 2040, so that tests on a manual clock verify them.

use std::time::{Duration, SystemTime};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use p256::ecdsa::{DerSignature, SigningKey, signature::Signer};
use serde_json::{Value, json};
use uuid::Uuid;
use x509_cert::{
    Certificate,
    builder::{Builder, CertificateBuilder, profile::BuilderProfile},
    der::Encode,
    ext::{
        Extension, ToExtension,
        pkix::{BasicConstraints, KeyUsage, KeyUsages},
    },
    name::Name,
    serial_number::SerialNumber,
    spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef},
    time::{Time, Validity},
};

use crate::metadata::TrustRoots;

/// What a certificate is for.
struct Profile {
    subject: Name,
    issuer: Option<Name>,
    ca: bool,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let usage = if self.ca {
            KeyUsages::KeyCertSign | KeyUsages::CRLSign
        } else {
            KeyUsages::DigitalSignature.into()
        };
        Ok(vec![
            BasicConstraints {
                ca: self.ca,
                path_len_constraint: None,
            }
            .to_extension(tbs.subject(), &[])?,
            KeyUsage(usage).to_extension(tbs.subject(), &[])?,
        ])
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn random_key() -> Result<SigningKey, String> {
    // A random scalar is invalid only if zero or not below the group order: draw again.
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(err)?;
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err("could not draw a key".into())
}

fn years_after_1970(years: u64) -> Result<Time, String> {
    let secs = years * 365 * 24 * 3600;
    Time::try_from(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).map_err(err)
}

/// A certificate for `key`'s public key, signed by `issuer` (`None`: self-signed).
fn certificate(
    subject: &str,
    key: &SigningKey,
    issuer: Option<(&Certificate, &SigningKey)>,
    ca: bool,
) -> Result<Certificate, String> {
    let subject: Name = subject.parse().map_err(err)?;
    let profile = Profile {
        subject,
        issuer: issuer.map(|(cert, _)| cert.tbs_certificate().subject().clone()),
        ca,
    };
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(err)?;
    serial[0] &= 0x7f;
    let spki = SubjectPublicKeyInfoOwned::from_key(key.verifying_key()).map_err(err)?;
    let builder = CertificateBuilder::new(
        profile,
        SerialNumber::new(&serial).map_err(err)?,
        // 2020 to 2040: valid on the tests' manual clocks.
        Validity::new(years_after_1970(50)?, years_after_1970(70)?),
        spki,
    )
    .map_err(err)?;
    let signer = issuer.map_or(key, |(_, k)| k);
    builder.build::<_, DerSignature>(signer).map_err(err)
}

/// One model in a test BLOB.
#[derive(Debug, Clone)]
pub struct TestModel {
    pub aaguid: Uuid,
    pub description: String,
    /// Status reports, oldest first: (status, effective date).
    pub statuses: Vec<(&'static str, &'static str)>,
    /// DER roots of the model's attestation.
    pub roots: Vec<Vec<u8>>,
}

/// The test PKI: a BLOB-signing chain and an attestation CA (certificates as DER).
pub struct TestPki {
    mds_root: Vec<u8>,
    mds_signer: Vec<u8>,
    mds_signer_key: SigningKey,
    attestation_root: Vec<u8>,
    batch: Vec<u8>,
    batch_key: SigningKey,
}

impl TestPki {
    pub fn new() -> Result<Self, String> {
        let root_key = random_key()?;
        let mds_root = certificate(
            "CN=Test Metadata Root,O=Latchkey Tests",
            &root_key,
            None,
            true,
        )?;
        let mds_signer_key = random_key()?;
        let mds_signer = certificate(
            "CN=Test Metadata Signer,O=Latchkey Tests",
            &mds_signer_key,
            Some((&mds_root, &root_key)),
            false,
        )?;
        let attestation_key = random_key()?;
        let attestation_root = certificate(
            "CN=Test Attestation Root,O=Latchkey Tests",
            &attestation_key,
            None,
            true,
        )?;
        let batch_key = random_key()?;
        // The subject packed attestation requires (WebAuthn §8.2.1).
        let batch = certificate(
            "C=US,O=Latchkey Tests,OU=Authenticator Attestation,CN=Test Batch",
            &batch_key,
            Some((&attestation_root, &attestation_key)),
            false,
        )?;
        Ok(Self {
            mds_root: mds_root.to_der().map_err(err)?,
            mds_signer: mds_signer.to_der().map_err(err)?,
            mds_signer_key,
            attestation_root: attestation_root.to_der().map_err(err)?,
            batch: batch.to_der().map_err(err)?,
            batch_key,
        })
    }

    /// The roots to give [`crate::Services::with_metadata_roots`].
    pub fn metadata_roots(&self) -> TrustRoots {
        TrustRoots::from_der(std::slice::from_ref(&self.mds_root))
    }

    /// The attestation CA's root (DER), for a model's metadata.
    pub fn attestation_root(&self) -> Vec<u8> {
        self.attestation_root.clone()
    }

    /// What the soft authenticator signs packed attestations with.
    pub fn packed_attestation(&self) -> super::soft_passkey::PackedAttestation {
        super::soft_passkey::PackedAttestation {
            key: self.batch_key.clone(),
            x5c: vec![self.batch.clone()],
        }
    }

    /// A model attested by this PKI's attestation CA.
    pub fn model(
        &self,
        aaguid: Uuid,
        description: &str,
        statuses: &[(&'static str, &'static str)],
    ) -> TestModel {
        TestModel {
            aaguid,
            description: description.to_owned(),
            statuses: statuses.to_vec(),
            roots: vec![self.attestation_root()],
        }
    }

    /// A BLOB with serial `no`, signed by this PKI's metadata signer.
    pub fn blob(&self, no: u32, next_update: &str, models: &[TestModel]) -> String {
        let payload = json!({
            "legalHeader": "Test metadata, not from the FIDO Alliance.",
            "no": no,
            "nextUpdate": next_update,
            "entries": models.iter().map(entry).collect::<Vec<_>>(),
        });
        self.sign(&payload)
    }

    /// Signs `payload` as a JWS with the signer's chain in `x5c`. The signature is DER-encoded:
    /// `compact_jwt` reads an EC signature of an `x5c` JWS that way (FIDO's own BLOBs are RS256).
    pub fn sign(&self, payload: &Value) -> String {
        let header = json!({
            "alg": "ES256",
            "typ": "JWT",
            "x5c": [STANDARD.encode(&self.mds_signer), STANDARD.encode(&self.mds_root)],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signature: DerSignature = self.mds_signer_key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

fn entry(model: &TestModel) -> Value {
    json!({
        "aaguid": model.aaguid,
        "metadataStatement": {
            "aaguid": model.aaguid,
            "description": model.description,
            "friendlyNames": {},
            "authenticatorVersion": 1,
            "protocolFamily": "fido2",
            "schema": 3,
            "upv": [{ "major": 1, "minor": 1 }],
            "authenticationAlgorithms": ["secp256r1_ecdsa_sha256_raw"],
            "publicKeyAlgAndEncodings": ["cose"],
            "attestationTypes": ["basic_full"],
            "userVerificationDetails": [[{ "userVerificationMethod": "presence_internal" }]],
            "keyProtection": ["hardware", "secure_element"],
            "matcherProtection": ["on_chip"],
            "tcDisplay": [],
            "attestationRootCertificates":
                model.roots.iter().map(|r| STANDARD.encode(r)).collect::<Vec<_>>(),
            "authenticatorGetInfo": {
                "versions": ["FIDO_2_0"],
                "aaguid": model.aaguid.simple().to_string(),
                "transports": ["usb"],
                "algorithms": [{ "type": "public-key", "alg": -7 }],
            },
        },
        "statusReports": model.statuses.iter().map(|(status, date)| json!({
            "status": status,
            "effectiveDate": date,
            "authenticatorVersion": 1,
        })).collect::<Vec<_>>(),
        "timeOfLastStatusChange": model.statuses.last().map_or("2024-01-01", |(_, d)| *d),
    })
}
