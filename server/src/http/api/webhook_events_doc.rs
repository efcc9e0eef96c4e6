//! The OpenAPI document's `webhooks` section: one entry per event type Latchkey POSTs to an
//! endpoint, with the JSON schema of its body (`docs/webhooks.md` explains them). utoipa 5 has
//! no webhooks support, so the section is written here and added to the generated document;
//! `latchkey_core::webhooks::events` builds the bodies it describes (`server/tests/openapi.rs`
//! checks that the types match).

use serde_json::{Value, json};

/// Each event type with what its `data` holds.
fn events() -> Vec<(&'static str, &'static str, Value)> {
    let user_id = json!({ "type": "string", "description": "Your identifier for the user" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let actor = json!({
        "type": "object",
        "description": "Who did it: `operator` (with the email as label), `api_key`, `cli`, `system`",
        "properties": { "kind": { "type": "string" }, "label": { "type": ["string", "null"] } },
        "required": ["kind", "label"],
    });
    let passkey = |extra: Value| {
        let mut properties = json!({ "id": uuid.clone() });
        if let (Some(p), Some(extra)) = (properties.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        json!({ "type": "object", "properties": properties, "required": ["id"] })
    };
    let text = json!({ "type": ["string", "null"] });
    vec![
        (
            "user.created",
            "A user was first named (by an enrollment token)",
            json!({ "user_id": user_id }),
        ),
        (
            "enrollment_token.issued",
            "An enrollment token was issued",
            json!({
                "user_id": user_id,
                "token_id": uuid,
                "scopes": { "type": "array", "items": { "type": "string" } },
                "expires_at": { "type": "string", "format": "date-time" },
            }),
        ),
        (
            "passkey.registered",
            "A passkey was registered",
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({ "name": text, "aaguid": text, "provider": text })),
            }),
        ),
        (
            "passkey.revoked",
            "A passkey was revoked: end the user's sessions that used it",
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({ "name": text, "provider": text })),
                "reason": text,
                "all_of_user": { "type": "boolean", "description": "All of the user's passkeys were revoked at once" },
                "actor": actor,
            }),
        ),
        (
            "passkey.renamed",
            "A passkey was renamed",
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({ "name": text })),
                "previous_name": text,
                "actor": actor,
            }),
        ),
        (
            "passkey.flagged",
            "A passkey was flagged for review: `counter_regressed` (its signature counter went backwards, a cloned authenticator is likely) `backup_state_changed` (at a sign-in; `status` is `backed_up` or `not_backed_up`) or `metadata_downgraded` (FIDO metadata imported by an instance admin refuses its model; `status` says why, e.g. `REVOKED`)",
            json!({
                "user_id": user_id,
                "passkey": passkey(json!({ "name": text })),
                "reason": { "type": "string", "enum": ["counter_regressed", "backup_state_changed", "metadata_downgraded"] },
                "status": text,
            }),
        ),
        (
            "user.signed_in",
            "A user signed in (opt-in: one per sign-in)",
            json!({ "user_id": user_id, "passkey": passkey(json!({})) }),
        ),
        (
            "audit.checkpoint",
            "The tenant's audit chain head, at most hourly while it grows (see docs/audit.md)",
            json!({
                "chain": uuid,
                "head": {
                    "type": "object",
                    "properties": { "seq": { "type": "integer" }, "hash": { "type": "string" } },
                    "required": ["seq", "hash"],
                },
                "seal": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "hash": { "type": "string" },
                        "sealed_at": { "type": "string", "format": "date-time" },
                    },
                    "required": ["id", "hash", "sealed_at"],
                },
            }),
        ),
        (
            "webhook.test",
            "A test event (Send test event)",
            json!({ "message": { "type": "string" } }),
        ),
    ]
}

/// The `webhooks` object of an OpenAPI 3.1 document.
pub fn section() -> Value {
    let mut webhooks = serde_json::Map::new();
    for (name, summary, data) in events() {
        let required: Vec<&String> = data
            .as_object()
            .map(|d| d.keys().collect())
            .unwrap_or_default();
        let body = json!({
            "type": "object",
            "properties": {
                "id": { "type": "string", "description": "The event's id, also sent as `webhook-id`: drop duplicates by it" },
                "type": { "type": "string", "const": name },
                "timestamp": { "type": "string", "format": "date-time", "description": "When it happened" },
                "tenant_id": { "type": "string", "format": "uuid" },
                "data": { "type": "object", "properties": data, "required": required },
            },
            "required": ["id", "type", "timestamp", "tenant_id", "data"],
        });
        webhooks.insert(
            name.to_owned(),
            json!({
                "post": {
                    "summary": summary,
                    "description": "Signed the Standard Webhooks way: `webhook-id`, `webhook-timestamp`, `webhook-signature` (see docs/webhooks.md).",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": body } } },
                    "responses": {
                        "2XX": { "description": "Delivered" },
                        "default": { "description": "Retried with backoff for the retry period" },
                    },
                },
            }),
        );
    }
    Value::Object(webhooks)
}
