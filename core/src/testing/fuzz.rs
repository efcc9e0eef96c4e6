//! Strategies for the property tests of the parsers that take outside input: arbitrary JSON
//! trees, and mutations of a real WebAuthn credential (`PublicKeyCredential.toJSON()` as the
//! software passkey produces it) — members replaced, removed or added, strings edited, and the
//! bytes inside base64url members (client data, authenticator data, attestation object,
//! signature, user handle) flipped, cut or extended.
//!
//! A mutation is described independently of the credential it is applied to (positions are
//! [`Index`]es into whatever is there), so the same case can be replayed against a credential
//! answering a fresh challenge, and shrinks to a small description.
//!
//! Also: what people type into a tenant's passkey configuration (RP IDs, origins, Android
//! fingerprints, whole forms), end-user IDs, presented secrets, and [`check_async`] to run
//! cases against a database or a server.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use proptest::{prelude::*, sample::Index};
use serde_json::Value;

use crate::tenants::config::{
    ANDROID_ORIGIN_PREFIX, Algorithm, Attachment, Attestation, PasskeyConfigInput, Requirement,
    fingerprint_of,
};

/// Members of WebAuthn responses and client data: arbitrary objects use them often, so that
/// parsers get past their first member more often than random keys would let them.
const WEBAUTHN_KEYS: &[&str] = &[
    "id",
    "rawId",
    "type",
    "response",
    "clientDataJSON",
    "authenticatorData",
    "signature",
    "userHandle",
    "attestationObject",
    "transports",
    "publicKey",
    "publicKeyAlgorithm",
    "authenticatorAttachment",
    "clientExtensionResults",
    "credProps",
    "rk",
    "appid",
    "uvm",
    "challenge",
    "origin",
    "crossOrigin",
    "topOrigin",
    "tokenBinding",
    "fmt",
    "attStmt",
    "authData",
];

/// Strings as they come: base64url-looking ones, WebAuthn words, any Unicode (controls too).
pub fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9_-]{0,64}",
        1 => "[A-Za-z0-9+/=_-]{0,24}",
        1 => proptest::sample::select(vec![
            "public-key", "webauthn.get", "webauthn.create", "platform", "cross-platform",
            "hybrid", "internal", "none", "packed", "", "null", "AAAA",
        ])
        .prop_map(str::to_owned),
        2 => any::<String>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(WEBAUTHN_KEYS.to_vec()).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// JSON scalars, the extreme numbers included.
pub fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        proptest::sample::select(vec![
            0i64,
            -1,
            1,
            255,
            256,
            65_535,
            -7,
            -257,
            i64::MIN,
            i64::MAX
        ])
        .prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        json_string().prop_map(Value::String),
    ]
}

/// Arbitrary JSON values: nested up to four levels, a few dozen nodes at most.
pub fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Arbitrary JSON values shaped like a credential: an object with some of the members a
/// response has, each holding anything.
pub fn credential_shaped() -> impl Strategy<Value = Value> {
    let response = proptest::collection::vec((key(), json_value()), 0..5)
        .prop_map(|members| Value::Object(members.into_iter().collect()));
    (
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        prop_oneof![response, json_value()],
        proptest::collection::vec((key(), json_value()), 0..3),
    )
        .prop_map(|(id, raw_id, kind, response, extra)| {
            let mut object = serde_json::Map::new();
            for (name, value) in [("id", id), ("rawId", raw_id), ("type", kind)] {
                if let Some(value) = value {
                    object.insert(name.into(), value);
                }
            }
            object.insert("response".into(), response);
            object.extend(extra);
            Value::Object(object)
        })
}

/// A change to a byte string.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Keep only a prefix.
    Truncate(Index),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Insert bytes somewhere.
    Insert(Index, Vec<u8>),
    /// Replace everything.
    Replace(Vec<u8>),
}

impl ByteEdit {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Self::Flip(at, mask) => {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= (*mask).max(1);
                }
            }
            Self::Truncate(at) => {
                let len = at.index(bytes.len().max(1));
                bytes.truncate(len);
            }
            Self::Extend(more) => bytes.extend_from_slice(more),
            Self::Insert(at, more) => {
                let i = at.index(bytes.len() + 1);
                let tail = bytes.split_off(i);
                bytes.extend_from_slice(more);
                bytes.extend(tail);
            }
            Self::Replace(new) => bytes.clone_from(new),
        }
    }
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        4 => (any::<Index>(), 1..=255u8).prop_map(|(at, mask)| ByteEdit::Flip(at, mask)),
        2 => any::<Index>().prop_map(ByteEdit::Truncate),
        1 => bytes.clone().prop_map(ByteEdit::Extend),
        1 => (any::<Index>(), bytes.clone()).prop_map(|(at, b)| ByteEdit::Insert(at, b)),
        1 => bytes.prop_map(ByteEdit::Replace),
    ]
}

/// A change to a text.
#[derive(Debug, Clone)]
pub enum TextEdit {
    /// Replace one character.
    Set(Index, char),
    /// Remove one character.
    Remove(Index),
    /// Insert a string.
    Insert(Index, String),
    /// Add `=` padding, as some clients do.
    Pad,
    /// Change case.
    Upper,
}

impl TextEdit {
    fn apply(&self, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        match self {
            Self::Set(at, c) => {
                if !chars.is_empty() {
                    let i = at.index(chars.len());
                    chars[i] = *c;
                }
            }
            Self::Remove(at) => {
                if !chars.is_empty() {
                    chars.remove(at.index(chars.len()));
                }
            }
            Self::Insert(at, s) => {
                let i = at.index(chars.len() + 1);
                let tail = chars.split_off(i);
                chars.extend(s.chars());
                chars.extend(tail);
            }
            Self::Pad => chars.extend("==".chars()),
            Self::Upper => return text.to_uppercase(),
        }
        chars.into_iter().collect()
    }
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    let odd = prop_oneof![
        3 => proptest::sample::select(vec!['A', '_', '-', '+', '/', '=', '.', ' ', '\0', 'é']),
        1 => any::<char>(),
    ];
    prop_oneof![
        3 => (any::<Index>(), odd).prop_map(|(at, c)| TextEdit::Set(at, c)),
        2 => any::<Index>().prop_map(TextEdit::Remove),
        1 => (any::<Index>(), json_string()).prop_map(|(at, s)| TextEdit::Insert(at, s)),
        1 => Just(TextEdit::Pad),
        1 => Just(TextEdit::Upper),
    ]
}

/// One change to a credential's JSON. Positions index the tree's nodes in document order
/// (modulo their number), so any mutation applies to any credential.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace a node (the whole credential included) by a value.
    Replace(Index, Value),
    /// Remove a member or an element.
    Remove(Index),
    /// Add a member to an object, or an element to an array, at or above a node.
    Insert(Index, String, Value),
    /// Edit the bytes of a string member (base64url-decoded when it decodes, else its UTF-8),
    /// written back as unpadded base64url.
    Bytes(Index, ByteEdit),
    /// Edit a string member as text.
    Text(Index, TextEdit),
    /// Change a member of the client data (decoded from `clientDataJSON`, parsed, re-encoded):
    /// `None` removes it.
    ClientData(String, Option<Value>),
}

/// One step of a path into a JSON tree.
#[derive(Debug, Clone)]
enum Step {
    Member(String),
    Element(usize),
}

/// Every node's path, in document order (the root first).
fn paths(value: &Value) -> Vec<Vec<Step>> {
    fn walk(value: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    here.push(Step::Member(k.clone()));
                    walk(v, here, out);
                    here.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    here.push(Step::Element(i));
                    walk(v, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn node<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(value, |node, step| match step {
        Step::Member(k) => node.get(k.as_str()),
        Step::Element(i) => node.get(*i),
    })
}

fn node_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |node, step| match step {
        Step::Member(k) => node.get_mut(k.as_str()),
        Step::Element(i) => node.get_mut(*i),
    })
}

/// The paths of the string nodes.
fn string_paths(value: &Value) -> Vec<Vec<Step>> {
    paths(value)
        .into_iter()
        .filter(|p| node(value, p).is_some_and(Value::is_string))
        .collect()
}

impl Mutation {
    /// Applies the mutation; one that finds nothing to act on leaves the credential as it is.
    pub fn apply(&self, credential: &mut Value) {
        match self {
            Self::Replace(at, new) => {
                let all = paths(credential);
                let path = &all[at.index(all.len())];
                if let Some(node) = node_mut(credential, path) {
                    *node = new.clone();
                }
            }
            Self::Remove(at) => {
                let all = paths(credential);
                let Some((last, parent)) = all[at.index(all.len())].split_last() else {
                    return;
                };
                match (node_mut(credential, parent), last) {
                    (Some(Value::Object(map)), Step::Member(k)) => {
                        map.remove(k);
                    }
                    (Some(Value::Array(items)), Step::Element(i)) if *i < items.len() => {
                        items.remove(*i);
                    }
                    _ => {}
                }
            }
            Self::Insert(at, name, new) => {
                let all = paths(credential);
                let mut path = all[at.index(all.len())].clone();
                // The nearest container at or above the node.
                loop {
                    match node_mut(credential, &path) {
                        Some(Value::Object(map)) => {
                            map.insert(name.clone(), new.clone());
                            return;
                        }
                        Some(Value::Array(items)) => {
                            items.push(new.clone());
                            return;
                        }
                        _ => {
                            if path.pop().is_none() {
                                return;
                            }
                        }
                    }
                }
            }
            Self::Bytes(at, edit) => {
                let strings = string_paths(credential);
                if strings.is_empty() {
                    return;
                }
                let path = &strings[at.index(strings.len())];
                if let Some(Value::String(text)) = node_mut(credential, path) {
                    let mut bytes = URL_SAFE_NO_PAD
                        .decode(text.as_bytes())
                        .unwrap_or_else(|_| text.as_bytes().to_vec());
                    edit.apply(&mut bytes);
                    *text = URL_SAFE_NO_PAD.encode(bytes);
                }
            }
            Self::Text(at, edit) => {
                let strings = string_paths(credential);
                if strings.is_empty() {
                    return;
                }
                let path = &strings[at.index(strings.len())];
                if let Some(Value::String(text)) = node_mut(credential, path) {
                    *text = edit.apply(text);
                }
            }
            Self::ClientData(member, new) => {
                let Some(Value::String(encoded)) = credential
                    .get_mut("response")
                    .and_then(|r| r.get_mut("clientDataJSON"))
                else {
                    return;
                };
                let Some(mut data) = URL_SAFE_NO_PAD
                    .decode(encoded.as_bytes())
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                else {
                    return;
                };
                if let Value::Object(map) = &mut data {
                    match new {
                        Some(value) => {
                            map.insert(member.clone(), value.clone());
                        }
                        None => {
                            map.remove(member);
                        }
                    }
                }
                *encoded = URL_SAFE_NO_PAD.encode(data.to_string());
            }
        }
    }
}

/// Values for client data members: mostly ones of the right type that are wrong (another
/// origin, another challenge, the other ceremony's type), so that the verifier's own checks are
/// reached, not only its parser.
fn client_data_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "https://evil.example",
            "https://shop.example.com:8443",
            "http://shop.example.com",
            "https://sub.shop.example.com",
            "https://shop.example.com.evil.example",
            "android:apk-key-hash:WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo",
            "webauthn.get",
            "webauthn.create",
            "payment.get",
            "",
        ])
        .prop_map(Value::from),
        2 => any::<[u8; 32]>().prop_map(|b| Value::from(URL_SAFE_NO_PAD.encode(b))),
        1 => any::<bool>().prop_map(Value::from),
        1 => json_value(),
    ]
}

/// One mutation of a credential.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let client_data_member = prop_oneof![
        3 => proptest::sample::select(vec!["type", "challenge", "origin", "crossOrigin", "topOrigin", "tokenBinding"])
            .prop_map(str::to_owned),
        1 => key(),
    ];
    prop_oneof![
        3 => (any::<Index>(), json_value()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        1 => (any::<Index>(), key(), json_value()).prop_map(|(at, k, v)| Mutation::Insert(at, k, v)),
        5 => (any::<Index>(), byte_edit()).prop_map(|(at, e)| Mutation::Bytes(at, e)),
        2 => (any::<Index>(), text_edit()).prop_map(|(at, e)| Mutation::Text(at, e)),
        2 => (client_data_member, proptest::option::of(client_data_value()))
            .prop_map(|(k, v)| Mutation::ClientData(k, v)),
    ]
}

/// One to three mutations, applied in order.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..=3)
}

/// `credential` with `mutations` applied.
pub fn mutated(credential: &Value, mutations: &[Mutation]) -> Value {
    let mut credential = credential.clone();
    for m in mutations {
        m.apply(&mut credential);
    }
    credential
}

/// What a browser (or anyone) might post as a credential: a real one changed, JSON shaped like
/// one, or any JSON at all.
#[derive(Debug, Clone)]
pub enum CredentialInput {
    Mutated(Vec<Mutation>),
    Shaped(Value),
    Any(Value),
}

impl CredentialInput {
    /// The JSON to post, given the real credential that answers the ceremony.
    pub fn render(&self, real: &Value) -> Value {
        match self {
            Self::Mutated(mutations) => mutated(real, mutations),
            Self::Shaped(value) | Self::Any(value) => value.clone(),
        }
    }
}

/// One member of the client data changed to a plausible wrong value (the verifier's own checks
/// of type, challenge and origin, past its parser).
pub fn client_data_mutation() -> impl Strategy<Value = Mutation> {
    let set =
        |member: &'static str| move |value: Value| Mutation::ClientData(member.into(), Some(value));
    prop_oneof![
        2 => proptest::sample::select(vec!["webauthn.create", "webauthn.get", "payment.get", ""])
            .prop_map(Value::from)
            .prop_map(set("type")),
        2 => any::<[u8; 32]>()
            .prop_map(|b| Value::from(URL_SAFE_NO_PAD.encode(b)))
            .prop_map(set("challenge")),
        2 => proptest::sample::select(vec![
            "https://evil.example",
            "https://shop.example.com:8443",
            "http://shop.example.com",
            "https://sub.shop.example.com",
            "https://shop.example.com.evil.example",
            "android:apk-key-hash:WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo",
        ])
        .prop_map(Value::from)
        .prop_map(set("origin")),
        1 => (
            proptest::sample::select(vec!["type", "challenge", "origin", "crossOrigin", "topOrigin"]),
            proptest::option::weighted(0.8, client_data_value()),
        )
            .prop_map(|(member, value)| Mutation::ClientData(member.to_owned(), value)),
    ]
}

/// Mostly mutations of the real credential (they reach the verifier), some arbitrary JSON.
pub fn credential_input() -> impl Strategy<Value = CredentialInput> {
    prop_oneof![
        5 => mutations().prop_map(CredentialInput::Mutated),
        2 => client_data_mutation().prop_map(|m| CredentialInput::Mutated(vec![m])),
        1 => credential_shaped().prop_map(CredentialInput::Shaped),
        1 => json_value().prop_map(CredentialInput::Any),
    ]
}

// Tenant configuration fields (`passkey_config`): RP IDs, origins, fingerprints, whole forms.

/// Odd characters people (or attackers) put into fields.
fn odd_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::sample::select(vec![
            ' ',
            '\t',
            '\n',
            '\r',
            '\0',
            '.',
            ':',
            '/',
            '\\',
            '@',
            '#',
            '?',
            '%',
            '[',
            ']',
            '=',
            '+',
            '_',
            '-',
            'İ',
            'ß',
            'ü',
            'K',
            '\u{200b}',
            '\u{202e}',
            '\u{ff0e}',
            '\u{3002}',
            '\u{fe0f}',
            '\u{10ffff}',
        ]),
        any::<char>(),
    ]
}

/// `value` with a few odd characters inserted at random places.
pub fn sprinkled(value: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        value,
        proptest::collection::vec((any::<proptest::sample::Index>(), odd_char()), 0..3),
    )
        .prop_map(|(value, inserts)| {
            let mut chars: Vec<char> = value.chars().collect();
            for (at, c) in inserts {
                let i = at.index(chars.len() + 1);
                chars.insert(i, c);
            }
            chars.into_iter().collect()
        })
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,10}",
        "[a-zA-Z0-9-]{0,12}",
        "xn--[a-z0-9-]{0,12}",
        Just("xn--bcher-kva".to_owned()),
        Just("bücher".to_owned()),
        Just("localhost".to_owned()),
        "[a-z]{63,64}",
        "\\PC{1,6}",
    ]
}

/// Host names, near misses and things that are not host names at all.
pub fn host() -> impl Strategy<Value = String> {
    let suffix = proptest::sample::select(vec![
        "com",
        "example",
        "co.uk",
        "github.io",
        "test",
        "localhost",
        "xn--p1ai",
        "invalid",
        "1",
        "bd",
    ]);
    prop_oneof![
        4 => (proptest::collection::vec(label(), 0..4), suffix)
            .prop_map(|(labels, suffix)| {
                let mut parts = labels;
                parts.push(suffix.to_owned());
                parts.join(".")
            }),
        1 => any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        1 => any::<[u16; 8]>().prop_map(|b| format!("[{}]", std::net::Ipv6Addr::from(b))),
        1 => Just("localhost".to_owned()),
        1 => "[0-9.]{1,15}",
        1 => "\\PC{0,20}",
    ]
}

/// What people type as a Relying Party ID.
pub fn rp_id_input() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => sprinkled(host()),
        1 => host().prop_map(|h| h.to_uppercase()),
        1 => (host(), "(:[0-9]{1,5})?/?\\.?").prop_map(|(h, tail)| format!(" {h}{tail} ")),
        1 => any::<String>(),
    ]
}

/// Web origins, near misses (schemes, credentials, paths, ports, dots) and anything else.
pub fn web_origin_input() -> impl Strategy<Value = String> {
    let scheme = proptest::sample::select(vec![
        "https://",
        "http://",
        "HTTPS://",
        "ftp://",
        "https:",
        "https:///",
        "//",
        "",
        "javascript:",
        "data:",
    ]);
    let userinfo = prop_oneof![
        4 => Just(String::new()),
        1 => "[a-z]{1,5}(:[a-z]{0,5})?@",
    ];
    let port = prop_oneof![
        3 => Just(String::new()),
        1 => "(:[0-9]{0,6})",
    ];
    let tail = prop_oneof![
        4 => Just(String::new()),
        1 => Just("/".to_owned()),
        1 => "/[a-z./%]{0,8}",
        1 => "\\?[a-z=]{0,5}",
        1 => "#[a-z]{0,5}",
        1 => Just(".".to_owned()),
    ];
    prop_oneof![
        5 => (scheme, userinfo, host(), port, tail)
            .prop_map(|(s, u, h, p, t)| format!("{s}{u}{h}{p}{t}")),
        2 => sprinkled(
            (host(), "(:[0-9]{1,5})?").prop_map(|(h, p)| format!("https://{h}{p}"))
        ),
        1 => any::<String>(),
    ]
}

/// `android:apk-key-hash:` origins: right, padded, standard base64, wrong lengths, garbage.
pub fn android_origin_input() -> impl Strategy<Value = String> {
    let body = prop_oneof![
        any::<[u8; 32]>().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        any::<[u8; 32]>().prop_map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        any::<[u8; 32]>().prop_map(|b| base64::engine::general_purpose::URL_SAFE.encode(b)),
        "[A-Za-z0-9_-]{42,44}",
        "[A-Za-z0-9+/=_-]{0,50}",
        "\\PC{0,50}",
    ];
    let prefix = proptest::sample::select(vec![
        ANDROID_ORIGIN_PREFIX,
        "android:",
        "android:apk-key-hash",
        "ANDROID:APK-KEY-HASH:",
        "android:apk-key-hash::",
    ]);
    prop_oneof![
        3 => (prefix, body).prop_map(|(p, b)| format!("{p}{b}")),
        1 => sprinkled(
            any::<[u8; 32]>()
                .prop_map(|b| format!("{ANDROID_ORIGIN_PREFIX}{}", URL_SAFE_NO_PAD.encode(b)))
        ),
    ]
}

/// One line of the origins field.
pub fn origin_input() -> impl Strategy<Value = String> {
    prop_oneof![3 => web_origin_input(), 1 => android_origin_input()]
}

/// Signing-certificate fingerprints as `keytool` prints them, and near misses.
pub fn fingerprint_input() -> impl Strategy<Value = String> {
    let pairs =
        proptest::collection::vec(any::<u8>(), 0..34).prop_map(|bytes| fingerprint_of(&bytes));
    let separator = proptest::sample::select(vec![":", " ", "", ": ", "-", "\t", "::"]);
    prop_oneof![
        3 => (pairs, separator, proptest::sample::select(vec!["", "SHA256: ", "sha-256:", "SHA1:"]))
            .prop_map(|(p, sep, pre)| format!("{pre}{}", p.replace(':', sep))),
        2 => sprinkled(any::<[u8; 32]>().prop_map(|b| fingerprint_of(&b))),
        1 => "[0-9a-fA-F: ]{0,100}",
        1 => any::<String>(),
    ]
}

/// Configuration forms with every field arbitrary.
fn any_passkey_config_input() -> impl Strategy<Value = PasskeyConfigInput> {
    let text = |s: BoxedStrategy<String>| prop_oneof![1 => Just(String::new()), 4 => s];
    (
        (
            any::<bool>(),
            text(rp_id_input().boxed()),
            text(prop_oneof![".{0,120}", "\\PC{95,105}"].boxed()),
            proptest::collection::vec(origin_input(), 0..4),
        ),
        (
            proptest::sample::select(vec![
                Attestation::None,
                Attestation::Indirect,
                Attestation::Direct,
            ]),
            proptest::sample::select(vec![
                Requirement::Required,
                Requirement::Preferred,
                Requirement::Discouraged,
            ]),
            proptest::sample::select(vec![
                Requirement::Required,
                Requirement::Preferred,
                Requirement::Discouraged,
            ]),
            proptest::sample::select(vec![
                Attachment::Any,
                Attachment::Platform,
                Attachment::CrossPlatform,
            ]),
            proptest::collection::vec(proptest::sample::select(Algorithm::ALL.to_vec()), 0..5),
            prop_oneof![25..=605u32, any::<u32>()],
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (enabled, rp_id, rp_name, origins),
                (
                    attestation,
                    user_verification,
                    resident_key,
                    attachment,
                    algorithms,
                    timeout_seconds,
                    confirm,
                ),
            )| PasskeyConfigInput {
                enabled,
                rp_id,
                rp_name,
                origins: origins.join("\n"),
                related_origins: String::new(),
                ios_app_ids: String::new(),
                attestation,
                user_verification,
                resident_key,
                attachment,
                algorithms,
                timeout_seconds,
                confirm_rp_id_change: confirm,
            },
        )
}

/// A config whose RP ID is valid and whose origins are under it, so that validation gets
/// past the first fields more often than arbitrary text would.
fn plausible_passkey_config_input() -> impl Strategy<Value = PasskeyConfigInput> {
    (
        any_passkey_config_input(),
        proptest::sample::select(vec![
            "example.com",
            "shop.example.co.uk",
            "localhost",
            "xn--bcher-kva.example",
        ]),
        proptest::collection::vec(
            prop_oneof!["(https://)([a-z]{1,5}\\.)?", Just("http://".to_owned()),],
            1..3,
        ),
        proptest::collection::vec(android_origin_input(), 0..2),
    )
        .prop_map(|(mut input, rp, prefixes, androids)| {
            input.rp_id = rp.to_owned();
            let mut lines: Vec<String> = prefixes.iter().map(|p| format!("{p}{rp}")).collect();
            lines.extend(androids);
            input.origins = lines.join("\n");
            input
        })
}

/// Passkey configuration forms: arbitrary ones, and ones with a valid RP ID and origins under
/// it (so that validation gets past the first fields).
pub fn passkey_config_input() -> impl Strategy<Value = PasskeyConfigInput> {
    prop_oneof![any_passkey_config_input(), plausible_passkey_config_input()]
}

// End-user IDs and secrets.

/// Tenants' user IDs: ordinary ones, ones at and around the 128-character limit (in characters
/// that lower-case to two), and any Unicode with controls, format characters and separators.
pub fn user_id_input() -> impl Strategy<Value = String> {
    let awkward = proptest::sample::select(vec![
        'İ',
        'a',
        'ß',
        'ﬃ',
        'Σ',
        '\u{0}',
        '\u{7f}',
        '\u{85}',
        '\u{200b}',
        '\u{200d}',
        '\u{202e}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{e0001}',
        '\u{fffd}',
        '\u{10ffff}',
        '👩',
        ' ',
    ]);
    prop_oneof![
        3 => "[a-zA-Z0-9_.@+-]{1,40}",
        2 => (proptest::sample::select(vec!['İ', 'a', 'Σ', '😀']), 120..=130usize)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect::<String>()),
        2 => sprinkled("[a-z0-9]{0,20}"),
        2 => proptest::collection::vec(awkward, 0..8).prop_map(|c| c.into_iter().collect::<String>()),
        1 => Just(String::new()),
        2 => any::<String>(),
    ]
}

/// What may be presented as a secret (`lk_sk_…`, `lk_enr_…`, `lk_val_…`, `lk_setup_…`,
/// `lk_inv_…`): right prefixes with well-formed random bodies (they match nothing either), near
/// misses, and anything at all.
pub fn secret_input() -> impl Strategy<Value = String> {
    let prefix = proptest::sample::select(vec![
        "lk_sk_",
        "lk_enr_",
        "lk_val_",
        "lk_setup_",
        "lk_inv_",
        "lk_",
        "LK_SK_",
        "",
    ]);
    let body = prop_oneof![
        3 => any::<[u8; 32]>().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        1 => any::<[u8; 32]>().prop_map(|b| base64::engine::general_purpose::URL_SAFE.encode(b)),
        1 => "[A-Za-z0-9_-]{0,50}",
        1 => any::<String>(),
    ];
    prop_oneof![
        4 => (prefix, body).prop_map(|(p, b)| format!("{p}{b}")),
        1 => any::<String>(),
    ]
}

/// `secret` with one character changed, removed or added (a typo, a truncated copy).
pub fn near_miss(secret: &str, edit: &TextEdit) -> String {
    let changed = edit.apply(secret);
    if changed == secret {
        format!("{secret}A")
    } else {
        changed
    }
}

/// A typo in a secret.
pub fn typo() -> impl Strategy<Value = TextEdit> {
    text_edit()
}

// Running cases.

/// Runs `cases` cases of `strategy` through the async `test` on the current runtime (which
/// must be multi-threaded: the cases run in `block_in_place`). Panics with the smallest
/// failing input proptest finds. No failure file is written: these runs have no source file
/// of their own.
pub async fn check_async<S, F, Fut>(cases: u32, strategy: S, test: F)
where
    S: Strategy,
    F: Fn(S::Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), TestCaseError>>,
{
    let handle = tokio::runtime::Handle::current();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let outcome =
        tokio::task::block_in_place(|| runner.run(&strategy, |value| handle.block_on(test(value))));
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::{strategy::ValueTree, test_runner::TestRunner};

    fn sample() -> Value {
        serde_json::json!({
            "id": "AAEC",
            "rawId": "AAEC",
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(r#"{"type":"webauthn.get","challenge":"x","origin":"https://a.test"}"#),
                "signature": "AAEC",
                "transports": ["internal"],
            },
        })
    }

    #[test]
    fn mutations_apply_to_any_credential_and_usually_change_it() {
        let mut runner = TestRunner::deterministic();
        let strategy = mutations();
        let mut changed = 0;
        for _ in 0..200 {
            let Ok(tree) = strategy.new_tree(&mut runner) else {
                panic!("no value");
            };
            let credential = sample();
            let after = mutated(&credential, &tree.current());
            if after != credential {
                changed += 1;
            }
            // Mutations of anything, even of what is no longer a credential, apply.
            mutated(&Value::Null, &tree.current());
            mutated(&after, &tree.current());
        }
        assert!(changed > 150, "{changed} of 200 changed the credential");
    }

    #[test]
    fn client_data_members_are_changed_inside_the_encoding() {
        let after = mutated(
            &sample(),
            &[Mutation::ClientData(
                "origin".into(),
                Some("https://evil.test".into()),
            )],
        );
        let encoded = after["response"]["clientDataJSON"]
            .as_str()
            .unwrap_or_default();
        let decoded = URL_SAFE_NO_PAD.decode(encoded).unwrap_or_default();
        let data: Value = serde_json::from_slice(&decoded).unwrap_or_default();
        assert_eq!(data["origin"], "https://evil.test");
        assert_eq!(data["challenge"], "x");
    }
}
