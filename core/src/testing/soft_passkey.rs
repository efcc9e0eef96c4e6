//! A software passkey provider that answers WebAuthn options the way a browser with a platform
//! authenticator does: it takes the `publicKey` JSON a relying party sends and returns the
//! `PublicKeyCredential.toJSON()` form a browser would post back.
//!
//! Written here because `webauthn-authenticator-rs`' soft authenticators refuse resident keys
//! and never return a `userHandle`, so they cannot take part in discoverable (username-less)
//! sign-in, which is how operators sign in to the portal. ES256 or ES384; attestation `none`, or
//! `packed` with a batch certificate (see [`super::metadata::TestPki`]).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Authenticator data flags (WebAuthn §6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// COSE algorithm identifiers.
pub const ES256: i64 = -7;
pub const ES384: i64 = -35;

/// A credential's private key.
#[derive(Clone)]
enum Key {
    P256(SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl Key {
    fn generate(algorithm: i64) -> Result<Self, String> {
        // A random scalar is invalid only if it is zero or not below the group order, which is
        // astronomically unlikely; drawing again is the standard answer.
        for _ in 0..8 {
            let key = match algorithm {
                ES256 => SigningKey::from_slice(&random_bytes::<32>()?)
                    .ok()
                    .map(Key::P256),
                ES384 => p384::ecdsa::SigningKey::from_slice(&random_bytes::<48>()?)
                    .ok()
                    .map(Key::P384),
                other => return Err(format!("algorithm {other} is not supported")),
            };
            if let Some(key) = key {
                return Ok(key);
            }
        }
        Err("could not draw a key".into())
    }

    fn algorithm(&self) -> i64 {
        match self {
            Self::P256(_) => ES256,
            Self::P384(_) => ES384,
        }
    }

    /// The uncompressed SEC1 public point.
    fn public_point(&self) -> Vec<u8> {
        match self {
            Self::P256(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            Self::P384(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    /// A DER signature over `message` (SHA-256 / SHA-384 by curve).
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(k) => {
                let signature: Signature = k.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Self::P384(k) => {
                let signature: p384::ecdsa::Signature = k.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// One credential held by the provider.
#[derive(Clone)]
pub struct SoftCredential {
    pub id: Vec<u8>,
    pub rp_id: String,
    pub user_handle: Vec<u8>,
    key: Key,
    pub counter: u32,
}

/// A batch attestation key and its certificate chain (leaf first), for `packed` attestation.
#[derive(Clone)]
pub struct PackedAttestation {
    pub key: SigningKey,
    pub x5c: Vec<Vec<u8>>,
}

/// A passkey provider with any number of discoverable credentials.
#[derive(Clone)]
pub struct SoftPasskeys {
    credentials: Vec<SoftCredential>,
    /// Reported in the UV flag: the user was verified (PIN, biometrics).
    pub user_verified: bool,
    /// Reported in the UP flag: the user was present (false: a conditional create).
    pub user_present: bool,
    /// Reported in the BE/BS flags: the credential is synced (like iCloud Keychain).
    pub backed_up: bool,
    /// Overrides the BS flag (backed up now) of a backup-eligible credential: its backup state
    /// flips while eligibility stays.
    pub backup_state: Option<bool>,
    /// The AAGUID written into new credentials' attested data.
    pub aaguid: [u8; 16],
    /// How much the signature counter moves per assertion (0, like synced passkeys, is valid).
    pub counter_step: u32,
    /// The ID the next registered credential gets (to provoke duplicates); random otherwise.
    pub next_id: Option<Vec<u8>>,
    /// What `authenticatorAttachment` the responses report.
    pub attachment: &'static str,
    /// The COSE algorithm of new credentials: [`ES256`] or [`ES384`].
    pub algorithm: i64,
    /// Attest new credentials with this batch key (`packed`); `none` otherwise.
    pub attestation: Option<PackedAttestation>,
}

impl Default for SoftPasskeys {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            user_verified: true,
            user_present: true,
            backed_up: false,
            backup_state: None,
            aaguid: [0; 16],
            counter_step: 1,
            next_id: None,
            attachment: "platform",
            algorithm: ES256,
            attestation: None,
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(field: &str, value: Option<&Value>) -> Result<Vec<u8>, String> {
    let text = value
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field} missing"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("{field} is not base64url: {e}"))
}

/// The ids of a list of credential descriptors (`excludeCredentials`, `allowCredentials`).
fn descriptor_ids(list: &Value) -> Vec<Vec<u8>> {
    list.as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| unb64("id", c.get("id")).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The options' challenge and RP ID (defaulting, as browsers do, to the origin's host).
fn challenge_and_rp_id(
    rp_id: &Value,
    public_key: &Value,
    origin: &str,
) -> Result<(String, String), String> {
    let challenge = public_key["challenge"]
        .as_str()
        .ok_or("challenge missing")?
        .to_owned();
    let rp_id = rp_id
        .as_str()
        .map(str::to_owned)
        .or_else(|| url::Url::parse(origin).ok()?.host_str().map(str::to_owned))
        .ok_or("no RP ID")?;
    Ok((challenge, rp_id))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })
        .to_string()
        .into_bytes()
}

fn cose_key(key: &Key) -> Result<Vec<u8>, String> {
    let bytes = key.public_point();
    // Uncompressed SEC1: 0x04 || x || y.
    let size = (bytes.len() - 1) / 2;
    if bytes.len() != 1 + 2 * size || bytes[0] != 4 {
        return Err("unexpected public key encoding".into());
    }
    let curve = if key.algorithm() == ES384 { 2 } else { 1 }; // P-384 / P-256
    let map = [
        (Cbor::Integer(1), Cbor::Integer(2)), // kty: EC2
        (Cbor::Integer(3), Cbor::Integer(key.algorithm().into())), // alg
        (Cbor::Integer(-1), Cbor::Integer(curve)),
        (Cbor::Integer(-2), Cbor::Bytes(bytes[1..=size].to_vec())),
        (Cbor::Integer(-3), Cbor::Bytes(bytes[size + 1..].to_vec())),
    ];
    serde_cbor_2::to_vec(&Cbor::Map(map.into_iter().collect())).map_err(|e| e.to_string())
}

impl SoftPasskeys {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn credentials(&self) -> &[SoftCredential] {
        &self.credentials
    }

    pub fn credentials_mut(&mut self) -> &mut [SoftCredential] {
        &mut self.credentials
    }

    fn flags(&self) -> u8 {
        let mut flags = if self.user_present { UP } else { 0 };
        if self.user_verified {
            flags |= UV;
        }
        if self.backed_up {
            flags |= BE | BS;
            if self.backup_state == Some(false) {
                flags &= !BS;
            }
        }
        flags
    }

    /// Answers `navigator.credentials.create({ publicKey })` made at `origin`: creates a
    /// discoverable credential (of [`Self::algorithm`]) and returns its `RegistrationResponseJSON`.
    pub fn register(&mut self, origin: &str, public_key: &Value) -> Result<Value, String> {
        let (challenge, rp_id) = challenge_and_rp_id(&public_key["rp"]["id"], public_key, origin)?;
        let user_handle = unb64("user.id", public_key["user"].get("id"))?;
        let algorithm = self.algorithm;
        let offered = public_key["pubKeyCredParams"]
            .as_array()
            .is_some_and(|params| params.iter().any(|p| p["alg"].as_i64() == Some(algorithm)));
        if !offered {
            return Err(format!(
                "the relying party does not accept algorithm {algorithm}"
            ));
        }
        let excluded = descriptor_ids(&public_key["excludeCredentials"]);
        if self
            .credentials
            .iter()
            .any(|c| c.rp_id == rp_id && excluded.contains(&c.id))
        {
            return Err("InvalidStateError: a credential of this provider is excluded".into());
        }

        let key = Key::generate(algorithm)?;
        let id = match self.next_id.take() {
            Some(id) => id,
            None => random_bytes::<16>()?.to_vec(),
        };
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags() | AT);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&self.aaguid);
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key)?);

        let client_data = client_data("webauthn.create", &challenge, origin);
        let (format, statement) = match &self.attestation {
            None => ("none", Cbor::Map(Default::default())),
            // Packed (WebAuthn §8.2): the batch key signs authenticatorData || hash(clientData).
            Some(packed) => {
                let mut signed = auth_data.clone();
                signed.extend_from_slice(&Sha256::digest(&client_data));
                let signature: Signature = packed.key.sign(&signed);
                let statement = [
                    (Cbor::Text("alg".into()), Cbor::Integer(ES256.into())),
                    (
                        Cbor::Text("sig".into()),
                        Cbor::Bytes(signature.to_der().as_bytes().to_vec()),
                    ),
                    (
                        Cbor::Text("x5c".into()),
                        Cbor::Array(packed.x5c.iter().cloned().map(Cbor::Bytes).collect()),
                    ),
                ];
                ("packed", Cbor::Map(statement.into_iter().collect()))
            }
        };
        let attestation = Cbor::Map(
            [
                (Cbor::Text("fmt".into()), Cbor::Text(format.into())),
                (Cbor::Text("attStmt".into()), statement),
                (
                    Cbor::Text("authData".into()),
                    Cbor::Bytes(auth_data.clone()),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let attestation = serde_cbor_2::to_vec(&attestation).map_err(|e| e.to_string())?;
        let public_point = key.public_point();

        self.credentials.push(SoftCredential {
            id: id.clone(),
            rp_id,
            user_handle,
            key,
            counter: 0,
        });
        // The members Chrome's `toJSON()` produces, including ones a server may ignore.
        Ok(json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": { "credProps": { "rk": true } },
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "authenticatorData": b64(&auth_data),
                "transports": ["hybrid", "internal"],
                "publicKeyAlgorithm": algorithm,
                "publicKey": b64(&public_point),
            },
        }))
    }

    /// Answers `navigator.credentials.get({ publicKey })` made at `origin` with the first
    /// credential that fits (an allowed one, or any discoverable one for the RP ID).
    pub fn authenticate(&mut self, origin: &str, public_key: &Value) -> Result<Value, String> {
        let (challenge, rp_id) = challenge_and_rp_id(&public_key["rpId"], public_key, origin)?;
        let allowed = descriptor_ids(&public_key["allowCredentials"]);
        let flags = self.flags();
        let step = self.counter_step;
        let credential = self
            .credentials
            .iter_mut()
            .find(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .ok_or("NotAllowedError: no credential for this relying party")?;
        credential.counter = credential.counter.wrapping_add(step);
        Ok(assertion(credential, flags, &challenge, origin))
    }
}

/// Signs an assertion with `credential` as it stands (used directly to replay old counters).
pub fn assertion(credential: &SoftCredential, flags: u8, challenge: &str, origin: &str) -> Value {
    assertion_of_type(credential, flags, "webauthn.get", challenge, origin)
}

/// Flag values, for hand-made assertions.
pub mod flags {
    pub const UP: u8 = super::UP;
    pub const UV: u8 = super::UV;
    pub const BE: u8 = super::BE;
    pub const BS: u8 = super::BS;
}

/// Like [`assertion`], with the `clientDataJSON.type` given (to test that a wrong one is refused).
pub fn assertion_of_type(
    credential: &SoftCredential,
    flags: u8,
    client_data_type: &str,
    challenge: &str,
    origin: &str,
) -> Value {
    let mut auth_data = Sha256::digest(credential.rp_id.as_bytes()).to_vec();
    auth_data.push(flags);
    auth_data.extend_from_slice(&credential.counter.to_be_bytes());
    let client_data = client_data(client_data_type, challenge, origin);
    let mut signed = auth_data.clone();
    signed.extend_from_slice(&Sha256::digest(&client_data));
    let signature = credential.key.sign(&signed);
    json!({
        "id": b64(&credential.id),
        "rawId": b64(&credential.id),
        "type": "public-key",
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "response": {
            "clientDataJSON": b64(&client_data),
            "authenticatorData": b64(&auth_data),
            "signature": b64(&signature),
            "userHandle": b64(&credential.user_handle),
        },
    })
}
