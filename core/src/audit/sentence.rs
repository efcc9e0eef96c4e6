//! The audit log as people read it: each event as one sentence built from its fields ("owner@…
//! revoked bob's passkey “iPhone” — reason: lost device"). The parts that name someone or
//! something carry what the log can be filtered by, so the portal makes them links. The event
//! itself is unchanged: exports keep every field, and the sentence is only a reading of it.

use serde::{Deserialize, Serialize};

use super::AuditRecord;

/// One piece of a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    /// Who acted. `filter` is the actor filter that selects their events.
    Actor {
        label: String,
        filter: String,
    },
    /// An end user, by the tenant's own user ID.
    User {
        id: String,
    },
    /// A passkey: its name as it was then, and its ID (the passkey filter).
    Passkey {
        name: String,
        id: String,
    },
}

/// An event as one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sentence {
    pub parts: Vec<Part>,
}

impl Sentence {
    /// The sentence as plain text (a passkey's name in quotes, as the portal shows it).
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text { text } => text.clone(),
                Part::Actor { label, .. } => label.clone(),
                Part::User { id } => id.clone(),
                Part::Passkey { name, .. } => format!("“{name}”"),
            })
            .collect()
    }
}

/// Builds sentences part by part.
#[derive(Default)]
struct Words(Vec<Part>);

impl Words {
    fn text(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        if let Some(Part::Text { text: last }) = self.0.last_mut() {
            last.push_str(&text);
        } else {
            self.0.push(Part::Text { text });
        }
        self
    }

    fn part(mut self, part: Part) -> Self {
        self.0.push(part);
        self
    }

    fn maybe(self, part: Option<Part>, otherwise: &str) -> Self {
        match part {
            Some(part) => self.part(part),
            None => self.text(otherwise),
        }
    }

    fn done(self) -> Sentence {
        Sentence { parts: self.0 }
    }
}

/// What a sentence needs beyond the event: the name of the API key that acted, when the page
/// looked it up (events name keys by prefix).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    pub api_key_name: Option<&'a str>,
}

/// The event `r` as a sentence.
pub fn describe(r: &AuditRecord, context: Context<'_>) -> Sentence {
    let details = r.details.as_ref();
    let detail = |key: &str| -> Option<String> {
        details
            .and_then(|d| d.get(key))
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
            .filter(|s| !s.is_empty())
    };
    let actor = actor_part(r, context);
    let user = (r.target_kind.as_deref() == Some("user"))
        .then(|| r.target_id.clone())
        .flatten()
        .map(|id| Part::User { id });
    let passkey = |name: Option<String>| {
        detail("authenticator_id").map(|id| Part::Passkey {
            name: name.unwrap_or_else(|| "(unnamed)".to_owned()),
            id,
        })
    };
    let failed = r.outcome != "success";
    let why = refusal(r.error_code.as_deref());
    let quoted = |s: Option<String>| s.map(|s| format!("“{s}”")).unwrap_or_default();
    // Whose passkey: "bob's", or "their" when the user acted on their own.
    let users = |w: Words| match (&user, r.actor_kind.as_str()) {
        (Some(_), "end_user") => w.text("their"),
        (Some(u), _) => w.part(u.clone()).text("’s"),
        (None, _) => w.text("a user’s"),
    };
    let w = Words::default();
    match (r.action.as_str(), failed) {
        ("user.signed_in", false) => w
            .maybe(user.clone(), "A user")
            .text(" signed in with the passkey ")
            .maybe(passkey(None), "(unknown)")
            .done(),
        ("user.signed_in", true) => w
            .text("Sign-in refused for ")
            .maybe(user.clone(), "an unknown user")
            .text(format!(": {why}"))
            .done(),
        ("authenticator.registered", false) => {
            let w = if r.actor_kind == "end_user" {
                w.maybe(user.clone(), "A user")
                    .text(" registered the passkey ")
            } else {
                w.part(actor).text(" registered the passkey ")
            };
            let w = w.maybe(passkey(detail("name")), "(unknown)");
            if r.actor_kind == "end_user" {
                w.done()
            } else {
                w.text(" for ").maybe(user.clone(), "a user").done()
            }
        }
        ("registration.started" | "registration.finished", true) => w
            .text("Passkey registration refused for ")
            .maybe(user.clone(), "an unknown user")
            .text(format!(": {why}"))
            .done(),
        ("registration.started", false) => w
            .maybe(user.clone(), "A user")
            .text(" started registering a passkey")
            .done(),
        ("registration.finished", false) => w
            .maybe(user.clone(), "A user")
            .text(" finished registering a passkey")
            .done(),
        ("authenticator.renamed", _) => users(w.part(actor).text(" renamed "))
            .text(format!(" passkey {} to ", quoted(detail("from"))))
            .maybe(passkey(detail("to")), "(unknown)")
            .done(),
        ("authenticator.revoked", _) => {
            let w = if detail("all").as_deref() == Some("true") {
                users(w.part(actor).text(" revoked all of ")).text(" passkeys, among them ")
            } else {
                users(w.part(actor).text(" revoked ")).text(" passkey ")
            };
            let w = w.maybe(passkey(detail("name")), "(unknown)");
            match detail("reason") {
                Some(reason) => w.text(format!(" — reason: {reason}")).done(),
                None => w.done(),
            }
        }
        ("authenticator.flagged", _)
            if detail("reason").as_deref() == Some("backup_state_changed") =>
        {
            users(w.text("The health queue flagged "))
                .text(" passkey ")
                .maybe(passkey(detail("name")), "(unknown)")
                .text(if detail("status").as_deref() == Some("backed_up") {
                    ": it is now backed up (synced)"
                } else {
                    ": it is no longer backed up"
                })
                .done()
        }
        // Recorded by the importer of the FIDO metadata, but the metadata is what flagged it.
        ("authenticator.flagged", _) => users(w.text("FIDO metadata flagged "))
            .text(" passkey ")
            .maybe(passkey(detail("name")), "(unknown)")
            .text(format!(
                " — its model is {}",
                detail("status").unwrap_or_else(|| "refused".into())
            ))
            .done(),
        ("authenticator.health_flag_dismissed", _) => {
            users(w.part(actor).text(" dismissed a health flag on "))
                .text(format!(
                    " passkey ({})",
                    detail("reason").unwrap_or_else(|| "no reason".into())
                ))
                .done()
        }
        ("validation_token.validated", false) => w
            .part(actor)
            .text(" validated a sign-in token for ")
            .maybe(user.clone(), "a user")
            .done(),
        ("validation_token.validated", true) => w
            .part(actor)
            .text(format!(
                " presented a sign-in token that was refused: {why}"
            ))
            .done(),
        ("enrollment_token.issued", _) => {
            let w = w
                .part(actor)
                .text(" issued an enrollment token for ")
                .maybe(user.clone(), "a user");
            let mut notes = Vec::new();
            if detail("user_created").as_deref() == Some("true") {
                notes.push("a new user");
            }
            if detail("scopes").is_some_and(|s| s.contains("add:authenticators")) {
                notes.push("may add passkeys");
            }
            if notes.is_empty() {
                w.done()
            } else {
                w.text(format!(" ({})", notes.join(", "))).done()
            }
        }
        ("enrollment_token.revoked", _) => w
            .part(actor)
            .text(format!(
                " revoked the enrollment token {}…",
                detail("prefix").unwrap_or_default()
            ))
            .done(),
        ("enrollment_token.expired", _) => w
            .text(format!(
                "The enrollment token {}… expired unused",
                detail("prefix").unwrap_or_default()
            ))
            .done(),
        ("device.bound", _) => w
            .maybe(user.clone(), "A user")
            .text(" signed in from a new device")
            .done(),
        ("device.revoked", _) => users(w.part(actor).text(" revoked one of "))
            .text(" devices")
            .done(),
        ("api_key.created", _) => w
            .part(actor)
            .text(format!(" created the API key {}", quoted(detail("name"))))
            .done(),
        ("api_key.revoked", _) => w
            .part(actor)
            .text(format!(" revoked the API key {}", quoted(detail("name"))))
            .done(),
        ("tenant.created", _) => w
            .part(actor)
            .text(format!(" created the tenant {}", quoted(detail("name"))))
            .done(),
        ("tenant.renamed", _) => w
            .part(actor)
            .text(format!(
                " renamed the tenant from {} to {}",
                quoted(detail("before")),
                quoted(detail("after"))
            ))
            .done(),
        ("tenant.deleted", _) => w
            .part(actor)
            .text(format!(" deleted the tenant {}", quoted(detail("name"))))
            .done(),
        ("tenant.passkey_config_changed", _) => {
            w.part(actor).text(" changed the passkey settings").done()
        }
        ("tenant.authenticator_policy_changed", _) => w
            .part(actor)
            .text(" changed the authenticator policy")
            .done(),
        ("member.invited", _) => w
            .part(actor)
            .text(format!(
                " invited {} as {}",
                detail("email").unwrap_or_else(|| "a member".into()),
                detail("role").unwrap_or_else(|| "member".into())
            ))
            .done(),
        ("member.added", _) => w
            .part(actor)
            .text(format!(
                " joined as {}",
                detail("role").unwrap_or_else(|| "member".into())
            ))
            .done(),
        ("member.role_changed", _) => w
            .part(actor)
            .text(format!(
                " changed a member’s role to {}",
                detail("role")
                    .or_else(|| detail("after"))
                    .unwrap_or_else(|| "another".into())
            ))
            .done(),
        ("member.removed", _) => w.part(actor).text(" removed a member").done(),
        ("operator.signed_in", false) => w.part(actor).text(" signed in to the portal").done(),
        ("operator.signed_in", true) => w.text(format!("Portal sign-in refused: {why}")).done(),
        ("operator.signed_out", _) => w.part(actor).text(" signed out").done(),
        ("operator.stepped_up", false) => w
            .part(actor)
            .text(" confirmed a sensitive action with a passkey")
            .done(),
        ("operator.invited", _) => w
            .part(actor)
            .text(format!(
                " invited {} to the portal",
                detail("email").unwrap_or_else(|| "an operator".into())
            ))
            .done(),
        ("passkey.added", _) => w.part(actor).text(" added a portal passkey").done(),
        ("passkey.removed", _) => w.part(actor).text(" removed a portal passkey").done(),
        ("webhook.endpoint_created", _) => w
            .part(actor)
            .text(format!(
                " added the webhook endpoint {}",
                quoted(detail("url"))
            ))
            .done(),
        ("webhook.endpoint_disabled", _) => w
            .text(format!(
                "Latchkey disabled the webhook endpoint {}: {}",
                quoted(detail("url")),
                detail("reason").unwrap_or_default()
            ))
            .done(),
        (action, failed) => {
            let words = action.replace(['.', '_'], " ");
            let w = w.part(actor).text(format!(": {words}"));
            if failed {
                w.text(format!(" — refused: {why}")).done()
            } else {
                w.done()
            }
        }
    }
}

/// Who acted, as a part that filters by them.
fn actor_part(r: &AuditRecord, context: Context<'_>) -> Part {
    let kind = r.actor_kind.as_str();
    match (kind, r.actor_label.as_deref(), r.actor_id.as_deref()) {
        ("operator", Some(email), _) => Part::Actor {
            label: email.to_owned(),
            filter: email.to_owned(),
        },
        ("api_key", prefix, _) => Part::Actor {
            label: match (context.api_key_name, prefix) {
                (Some(name), _) => format!("API key {name}"),
                (None, Some(prefix)) => format!("API key {prefix}…"),
                (None, None) => "An API key".to_owned(),
            },
            filter: prefix.map_or_else(|| kind.to_owned(), str::to_owned),
        },
        ("end_user", _, Some(id)) => Part::User { id: id.to_owned() },
        ("cli", ..) => Part::Actor {
            label: "The command line".to_owned(),
            filter: kind.to_owned(),
        },
        ("system", ..) => Part::Actor {
            label: "Latchkey".to_owned(),
            filter: kind.to_owned(),
        },
        ("anonymous", ..) => Part::Actor {
            label: "Someone not signed in".to_owned(),
            filter: kind.to_owned(),
        },
        (_, label, id) => Part::Actor {
            label: label.or(id).unwrap_or(kind).to_owned(),
            filter: kind.to_owned(),
        },
    }
}

/// Why something was refused, in words a support person can repeat to the user.
pub fn refusal(code: Option<&str>) -> String {
    let Some(code) = code else {
        return "no reason was recorded".to_owned();
    };
    let words = match code {
        "credential_revoked" => "this passkey has been revoked",
        "credential_unknown" => "this passkey is not registered here",
        "counter_regressed" => {
            "the passkey’s signature counter went backwards (it may have been cloned)"
        }
        "origin_mismatch" => "the page’s origin is not one the tenant expects",
        "rp_id_mismatch" => "the passkey belongs to another relying party ID",
        "challenge_mismatch" => "the response answered another challenge",
        "ceremony_expired" => "it took too long and the attempt expired",
        "ceremony_invalid" => "the attempt was not valid (used already, or unknown)",
        "user_verification_required" => "the user was not verified (no PIN or biometric)",
        "authenticator_not_allowed" => "the tenant’s policy does not allow this authenticator",
        "passkeys_disabled" => "passkeys are turned off for this tenant",
        "rate_limited" => "too many attempts from this source",
        "token_invalid" => "the token is not valid",
        "token_expired" => "the token has expired",
        "token_used" => "the token had already been used",
        "scope_required" => "the token lacks the add:authenticators scope",
        "credential_exists" => "this passkey is already registered",
        "step_up_required" => "it needed a passkey confirmation first",
        other => return other.replace('_', " "),
    };
    words.to_owned()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn event(action: &str, actor: (&str, Option<&str>, Option<&str>)) -> AuditRecord {
        AuditRecord {
            id: 1,
            occurred_at: Utc::now(),
            tenant_id: None,
            actor_kind: actor.0.into(),
            actor_id: actor.1.map(Into::into),
            actor_label: actor.2.map(Into::into),
            action: action.into(),
            target_kind: Some("user".into()),
            target_id: Some("bob".into()),
            outcome: "success".into(),
            error_code: None,
            details: None,
            ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn a_revocation_names_who_whose_which_and_why() {
        let mut r = event(
            "authenticator.revoked",
            ("operator", Some("op-1"), Some("owner@example.com")),
        );
        r.details = Some(serde_json::json!({
            "authenticator_id": "0b5e…",
            "name": "iPhone",
            "reason": "lost device",
        }));
        let s = describe(&r, Context::default());
        assert_eq!(
            s.text(),
            "owner@example.com revoked bob’s passkey “iPhone” — reason: lost device"
        );
        assert!(s.parts.contains(&Part::User { id: "bob".into() }));
        assert!(s.parts.contains(&Part::Passkey {
            name: "iPhone".into(),
            id: "0b5e…".into()
        }));
    }

    #[test]
    fn a_metadata_flag_names_the_passkey_and_the_models_status() {
        let mut r = event("authenticator.flagged", ("cli", None, None));
        r.details = Some(serde_json::json!({
            "authenticator_id": "0b5e…",
            "name": "YubiKey",
            "reason": "metadata_downgraded",
            "status": "REVOKED",
        }));
        assert_eq!(
            describe(&r, Context::default()).text(),
            "FIDO metadata flagged bob’s passkey “YubiKey” — its model is REVOKED"
        );
    }

    #[test]
    fn a_backup_state_flag_says_which_way_it_changed() {
        let mut r = event("authenticator.flagged", ("system", None, Some("latchkey")));
        r.details = Some(serde_json::json!({
            "authenticator_id": "0b5e…",
            "name": "Pixel",
            "reason": "backup_state_changed",
            "status": "backed_up",
        }));
        assert_eq!(
            describe(&r, Context::default()).text(),
            "The health queue flagged bob’s passkey “Pixel”: it is now backed up (synced)"
        );
    }

    #[test]
    fn a_refused_sign_in_says_why_in_words() {
        let mut r = event("user.signed_in", ("anonymous", None, None));
        r.outcome = "failure".into();
        r.error_code = Some("credential_revoked".into());
        assert_eq!(
            describe(&r, Context::default()).text(),
            "Sign-in refused for bob: this passkey has been revoked"
        );
    }

    #[test]
    fn an_api_key_is_named_as_its_owners_named_it() {
        let r = event(
            "validation_token.validated",
            ("api_key", Some("key-1"), Some("lk_sk_ab12")),
        );
        assert_eq!(
            describe(
                &r,
                Context {
                    api_key_name: Some("checkout-backend")
                }
            )
            .text(),
            "API key checkout-backend validated a sign-in token for bob"
        );
        assert_eq!(
            describe(&r, Context::default()).text(),
            "API key lk_sk_ab12… validated a sign-in token for bob"
        );
    }

    #[test]
    fn an_unknown_action_still_reads() {
        let r = event("something.new_happened", ("cli", None, None));
        assert_eq!(
            describe(&r, Context::default()).text(),
            "The command line: something new happened"
        );
    }
}
