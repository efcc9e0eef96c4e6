//! The audit log as a download: every event matching a filter, as CSV or JSON Lines, read a
//! keyset batch at a time so that a long log never sits in memory.
//!
//! The first batch is read (and so authorized) before anything is answered: a refusal is an
//! error the edge can turn into a status, never a truncated download. A failure after that can
//! only end the stream early, loudly in the log.

use std::sync::Arc;

use std::collections::HashMap;

use futures_util::{StreamExt, stream::BoxStream};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::{AUDIT_EXPORT_BATCH, AuditFilter, AuditLog, AuditPage, AuditRecord, AuditScope};
use crate::{Clock, Result, entities::audit_link};

/// The download's format, named by its file name (`audit.csv`, `audit.jsonl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    JsonLines,
}

impl ExportFormat {
    pub fn from_file_name(name: &str) -> Option<Self> {
        match name {
            "audit.csv" => Some(Self::Csv),
            "audit.jsonl" => Some(Self::JsonLines),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::JsonLines => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
        }
    }
}

/// A download ready to be sent: its name, type and the bytes, a batch per chunk.
pub struct AuditExport {
    pub file_name: String,
    pub format: ExportFormat,
    pub chunks: BoxStream<'static, std::io::Result<Vec<u8>>>,
}

const CSV_HEADER: [&str; 18] = [
    "id",
    "occurred_at",
    "tenant_id",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_kind",
    "target_id",
    "outcome",
    "error_code",
    "ip",
    "user_agent",
    "details",
    "chain",
    "chain_seq",
    "chain_prev",
    "chain_hash",
];

/// The events' links (see [`super::chain`]), by event id: what lets an outside party verify
/// the export. A recent event may not be sealed yet.
type Links = HashMap<i64, audit_link::Model>;

async fn links_of(db: &DatabaseConnection, events: &[AuditRecord]) -> Result<Links> {
    Ok(audit_link::Entity::find()
        .filter(audit_link::Column::EventId.is_in(events.iter().map(|e| e.id)))
        .all(db)
        .await?
        .into_iter()
        .map(|l| (l.event_id, l))
        .collect())
}

/// Where the export stands between chunks.
enum Step {
    Page(AuditPage, Links),
    After(i64),
    Done,
}

/// Starts the export of `scope`'s events matching `filter` (its `before` and `limit` are the
/// export's own).
pub(crate) async fn start(
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    scope: AuditScope,
    filter: AuditFilter,
    format: ExportFormat,
) -> Result<AuditExport> {
    let filter = AuditFilter {
        before: None,
        limit: Some(AUDIT_EXPORT_BATCH),
        ..filter
    };
    let first = AuditLog::new(&db, clock.as_ref())
        .scoped_page(&scope, &filter)
        .await?;
    let first_links = links_of(&db, &first.events).await?;
    let file_name = match &scope {
        AuditScope::Tenant(access) => format!(
            "latchkey-audit-{}.{}",
            access.tenant_id(),
            format.extension()
        ),
        AuditScope::Instance(_) => format!("latchkey-audit-instance.{}", format.extension()),
    };
    let context = Arc::new((db, clock, scope, filter));
    let chunks = futures_util::stream::unfold(
        (Step::Page(first, first_links), true),
        move |(step, first)| {
            let context = context.clone();
            async move {
                let (db, clock, scope, filter) = context.as_ref();
                let (page, links) = match step {
                    Step::Done => return None,
                    Step::Page(page, links) => (page, links),
                    Step::After(before) => {
                        let filter = AuditFilter {
                            before: Some(before),
                            ..filter.clone()
                        };
                        let read = async {
                            let page = AuditLog::new(db, clock.as_ref())
                                .scoped_page(scope, &filter)
                                .await?;
                            let links = links_of(db, &page.events).await?;
                            Ok::<_, crate::Error>((page, links))
                        };
                        match read.await {
                            Ok(read) => read,
                            Err(err) => {
                                tracing::error!(error = %err, "audit export ended early");
                                return None;
                            }
                        }
                    }
                };
                let chunk = render(format, first, &page.events, &links);
                let next = page.next.map_or(Step::Done, Step::After);
                Some((Ok(chunk), (next, false)))
            }
        },
    )
    // Fused: a consumer may poll once more after the end (compression layers do), which
    // `unfold` forbids.
    .fuse()
    .boxed();
    Ok(AuditExport {
        file_name,
        format,
        chunks,
    })
}

fn render(
    format: ExportFormat,
    first_chunk: bool,
    events: &[AuditRecord],
    links: &Links,
) -> Vec<u8> {
    let mut out = Vec::new();
    if first_chunk && format == ExportFormat::Csv {
        out.extend(csv_line(CSV_HEADER.iter().map(|h| (*h).to_owned())));
    }
    for event in events {
        match format {
            ExportFormat::Csv => out.extend(csv_line(csv_fields(event, links.get(&event.id)))),
            ExportFormat::JsonLines => {
                let mut line = json_line(event);
                if let Some(object) = line.as_object_mut() {
                    object.insert(
                        "chain".to_owned(),
                        links.get(&event.id).map_or(serde_json::Value::Null, |l| {
                            serde_json::json!({
                                "name": l.chain,
                                "seq": l.seq,
                                "prev": l.prev_hash,
                                "hash": l.hash,
                            })
                        }),
                    );
                }
                out.extend(line.to_string().into_bytes());
                out.push(b'\n');
            }
        }
    }
    out
}

fn csv_fields(e: &AuditRecord, link: Option<&audit_link::Model>) -> impl Iterator<Item = String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        e.id.to_string(),
        e.occurred_at.to_rfc3339(),
        e.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        e.actor_kind.clone(),
        opt(&e.actor_id),
        opt(&e.actor_label),
        e.action.clone(),
        opt(&e.target_kind),
        opt(&e.target_id),
        e.outcome.clone(),
        opt(&e.error_code),
        opt(&e.ip),
        opt(&e.user_agent),
        e.details
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default(),
        link.map(|l| l.chain.clone()).unwrap_or_default(),
        link.map(|l| l.seq.to_string()).unwrap_or_default(),
        link.map(|l| l.prev_hash.clone()).unwrap_or_default(),
        link.map(|l| l.hash.clone()).unwrap_or_default(),
    ]
    .into_iter()
}

/// One RFC 4180 line. A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
/// first) gets a leading `'`: user agents and labels come from strangers.
fn csv_line(fields: impl Iterator<Item = String>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let fields: Vec<String> = fields
        .map(|f| {
            if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{f}")
            } else {
                f
            }
        })
        .collect();
    // Writing to memory cannot fail.
    let _ = writer.write_record(&fields);
    writer.into_inner().unwrap_or_default()
}

/// The event as a JSON Lines export shows it (before its `chain` member): exactly what its
/// chain link hashes.
pub(crate) fn json_line(e: &AuditRecord) -> serde_json::Value {
    super::chain::document(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line(
            ["a,b", "say \"hi\"", "=cmd()", "-1", "plain"]
                .into_iter()
                .map(str::to_owned),
        );
        assert_eq!(
            String::from_utf8(line).unwrap_or_default(),
            "\"a,b\",\"say \"\"hi\"\"\",'=cmd(),'-1,plain\r\n"
        );
    }
}
