//! A page of the audit log as the portal shows it: each event with its sentence and its user
//! agent in a few words, beside the event itself.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::{
    AuditFilter, AuditLog, AuditRecord, AuditScope,
    sentence::{self, Context, Sentence},
};
use crate::{Result, entities::api_key};

/// An event and its reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadableEvent {
    pub record: AuditRecord,
    pub sentence: Sentence,
    /// `Chrome 156 on Linux`, when the user agent is recognised.
    pub user_agent_summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadablePage {
    pub events: Vec<ReadableEvent>,
    pub next: Option<i64>,
}

impl AuditLog<'_> {
    /// A page of `scope`'s events matching `filter` (the rules are [`Self::scoped_page`]'s), each
    /// with its sentence.
    pub async fn readable_page(
        &self,
        scope: &AuditScope,
        filter: &AuditFilter,
    ) -> Result<ReadablePage> {
        let page = self.scoped_page(scope, filter).await?;
        // Events name API keys by prefix; the sentence names them as their owners did.
        let key_ids: Vec<Uuid> = page
            .events
            .iter()
            .filter(|e| e.actor_kind == "api_key")
            .filter_map(|e| {
                e.actor_id
                    .as_deref()
                    .and_then(|id| Uuid::parse_str(id).ok())
            })
            .collect();
        let key_names: HashMap<String, String> = match scope {
            AuditScope::Tenant(access) if !key_ids.is_empty() => api_key::Entity::find()
                .select_only()
                .column(api_key::Column::Id)
                .column(api_key::Column::Name)
                .filter(api_key::Column::TenantId.eq(access.tenant_id()))
                .filter(api_key::Column::Id.is_in(key_ids))
                .into_tuple::<(Uuid, String)>()
                .all(self.db)
                .await?
                .into_iter()
                .map(|(id, name)| (id.to_string(), name))
                .collect(),
            _ => HashMap::new(),
        };
        let summaries = crate::user_agent::summaries(
            page.events.iter().map(|e| e.user_agent.clone()).collect(),
        )
        .await?;
        let events = page
            .events
            .into_iter()
            .zip(summaries)
            .map(|(record, user_agent_summary)| {
                let api_key_name = (record.actor_kind == "api_key")
                    .then(|| record.actor_id.as_ref().and_then(|id| key_names.get(id)))
                    .flatten()
                    .map(String::as_str);
                let sentence = sentence::describe(&record, Context { api_key_name });
                ReadableEvent {
                    record,
                    sentence,
                    user_agent_summary,
                }
            })
            .collect();
        Ok(ReadablePage {
            events,
            next: page.next,
        })
    }
}
