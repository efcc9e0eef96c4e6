//! The events webhooks report, and how each is read off the audit log. Every one of them is an
//! audit event written in the transaction of the change that causes it, so the audit log is the
//! outbox: nothing a webhook reports can be committed without its event, nor the other way
//! round, and recording a change costs nothing more than it did.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::AuditRecord;

/// The event types an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "passkey.registered")]
    PasskeyRegistered,
    #[serde(rename = "passkey.revoked")]
    PasskeyRevoked,
    #[serde(rename = "passkey.renamed")]
    PasskeyRenamed,
    #[serde(rename = "passkey.flagged")]
    PasskeyFlagged,
    #[serde(rename = "enrollment_token.issued")]
    EnrollmentTokenIssued,
    /// Opt-in: one per successful sign-in.
    #[serde(rename = "user.signed_in")]
    UserSignedIn,
    /// The tenant's audit chain head, at most hourly (see `docs/audit.md`).
    #[serde(rename = "audit.checkpoint")]
    AuditCheckpoint,
    /// Sent by **Send test event** only.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// What an endpoint may subscribe to (`webhook.test` is sent on request, to any endpoint).
    pub const SUBSCRIBABLE: [EventType; 8] = [
        Self::UserCreated,
        Self::PasskeyRegistered,
        Self::PasskeyRevoked,
        Self::PasskeyRenamed,
        Self::PasskeyFlagged,
        Self::EnrollmentTokenIssued,
        Self::UserSignedIn,
        Self::AuditCheckpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::PasskeyRegistered => "passkey.registered",
            Self::PasskeyRevoked => "passkey.revoked",
            Self::PasskeyRenamed => "passkey.renamed",
            Self::PasskeyFlagged => "passkey.flagged",
            Self::EnrollmentTokenIssued => "enrollment_token.issued",
            Self::UserSignedIn => "user.signed_in",
            Self::AuditCheckpoint => "audit.checkpoint",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::SUBSCRIBABLE.into_iter().find(|t| t.as_str() == name)
    }

    /// The audit events [`from_audit`] reads this type off: an action, and the error code a
    /// refusal must carry (`None`: any outcome). The dispatcher reads only these, so that an
    /// endpoint without `user.signed_in` does not make it read every sign-in.
    pub fn sources(self) -> &'static [(&'static str, Option<&'static str>)] {
        match self {
            Self::UserCreated | Self::EnrollmentTokenIssued => &[("enrollment_token.issued", None)],
            Self::PasskeyRegistered => &[("authenticator.registered", None)],
            Self::PasskeyRevoked => &[("authenticator.revoked", None)],
            Self::PasskeyRenamed => &[("authenticator.renamed", None)],
            Self::PasskeyFlagged => &[
                ("user.signed_in", Some("counter_regressed")),
                ("authenticator.flagged", None),
            ],
            Self::UserSignedIn => &[("user.signed_in", None)],
            Self::AuditCheckpoint | Self::WebhookTest => &[],
        }
    }
}

/// A webhook event read off one audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: EventType,
    /// The user it is about: deliveries about one user go out in order.
    pub user_id: Option<String>,
    pub data: Value,
}

/// The webhook events `record` reports, in order (an enrollment token issued to a new user
/// reports `user.created` first). Refusals report nothing, except a counter that went
/// backwards (the passkey is flagged, as it is by `authenticator.flagged`).
pub fn from_audit(record: &AuditRecord) -> Vec<Event> {
    let details = record.details.clone().unwrap_or(Value::Null);
    let user_id = (record.target_kind.as_deref() == Some("user"))
        .then(|| record.target_id.clone())
        .flatten();
    let passkey = |extra: Value| {
        let mut passkey = json!({ "id": details["authenticator_id"] });
        if let (Some(p), Some(extra)) = (passkey.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        passkey
    };
    let event = |event_type, data| Event {
        event_type,
        user_id: user_id.clone(),
        data,
    };
    let success = record.outcome == "success";
    match (record.action.as_str(), success) {
        ("authenticator.registered", true) => vec![event(
            EventType::PasskeyRegistered,
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({
                    "name": details["name"],
                    "aaguid": details["aaguid"],
                    "provider": details["provider"],
                })),
            }),
        )],
        ("authenticator.revoked", true) => vec![event(
            EventType::PasskeyRevoked,
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({
                    "name": details["name"],
                    "provider": details["provider"],
                })),
                "reason": details["reason"],
                "all_of_user": details["all"].as_bool().unwrap_or(false),
                "actor": { "kind": record.actor_kind, "label": record.actor_label },
            }),
        )],
        ("authenticator.renamed", true) => vec![event(
            EventType::PasskeyRenamed,
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({ "name": details["to"] })),
                "previous_name": details["from"],
                "actor": { "kind": record.actor_kind, "label": record.actor_label },
            }),
        )],
        ("user.signed_in", false) if record.error_code.as_deref() == Some("counter_regressed") => {
            vec![event(
                EventType::PasskeyFlagged,
                json!({
                    "user_id": user_id,
                    "passkey": passkey(json!({})),
                    "reason": "counter_regressed",
                    "status": Value::Null,
                }),
            )]
        }
        // A health flag raised as it happened: a sign-in reported another backup state, or FIDO
        // metadata an instance admin imported refuses the passkey's model.
        ("authenticator.flagged", true) => vec![event(
            EventType::PasskeyFlagged,
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({ "name": details["name"] })),
                "reason": details["reason"],
                "status": details["status"],
            }),
        )],
        ("user.signed_in", true) => vec![event(
            EventType::UserSignedIn,
            json!({ "user_id": user_id, "passkey": passkey(json!({})) }),
        )],
        ("enrollment_token.issued", true) => {
            let mut events = Vec::new();
            if details["user_created"].as_bool() == Some(true) {
                events.push(event(EventType::UserCreated, json!({ "user_id": user_id })));
            }
            events.push(event(
                EventType::EnrollmentTokenIssued,
                json!({
                    "user_id": user_id,
                    "token_id": details["token_id"],
                    "scopes": details["scopes"],
                    "expires_at": details["expires_at"],
                }),
            ));
            events
        }
        _ => Vec::new(),
    }
}

/// The webhook event id (`webhook-id`) of the `n`th event read off audit event `audit_id`: the
/// same on every endpoint and every retry, so receivers can drop duplicates by it.
pub fn event_id(audit_id: i64, n: usize) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"latchkey/webhook-event/v1/")
        .chain_update(audit_id.to_be_bytes())
        .chain_update((n as u64).to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The body as sent: `{id, type, timestamp, tenant_id, data}` (compact JSON).
pub fn body(
    id: Uuid,
    event_type: EventType,
    timestamp: chrono::DateTime<chrono::Utc>,
    tenant_id: Uuid,
    data: &Value,
) -> String {
    json!({
        "id": format!("evt_{}", id.simple()),
        "type": event_type.as_str(),
        "timestamp": timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "tenant_id": tenant_id,
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type [`from_audit`] reports comes from one of its declared sources, so the
    /// dispatcher's narrowed read misses nothing.
    #[test]
    fn every_reported_type_is_read_from_its_declared_sources() {
        let record = |action: &str, outcome: &str, code: Option<&str>| AuditRecord {
            id: 1,
            occurred_at: chrono::Utc::now(),
            tenant_id: Some(uuid::Uuid::nil()),
            actor_kind: "operator".into(),
            actor_id: None,
            actor_label: None,
            action: action.into(),
            target_kind: Some("user".into()),
            target_id: Some("bob".into()),
            outcome: outcome.into(),
            error_code: code.map(Into::into),
            details: Some(json!({ "user_created": true, "authenticator_id": "x" })),
            ip: None,
            user_agent: None,
        };
        let actions = [
            "enrollment_token.issued",
            "authenticator.registered",
            "authenticator.revoked",
            "authenticator.renamed",
            "authenticator.flagged",
            "user.signed_in",
            "tenant.renamed",
        ];
        let codes = [None, Some("counter_regressed"), Some("credential_revoked")];
        for action in actions {
            for (outcome, code) in codes
                .iter()
                .map(|c| (if c.is_some() { "failure" } else { "success" }, *c))
            {
                for event in from_audit(&record(action, outcome, code)) {
                    assert!(
                        event
                            .event_type
                            .sources()
                            .iter()
                            .any(|(a, c)| *a == action && c.is_none_or(|c| Some(c) == code)),
                        "{action} {outcome} {code:?} reports {:?}",
                        event.event_type
                    );
                }
            }
        }
    }
}
