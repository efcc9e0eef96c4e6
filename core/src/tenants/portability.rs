//! A tenant's users and passkeys as JSON Lines (`latchkey export` / `latchkey import`), so a
//! tenant can move to another instance, or leave with its data.
//!
//! The first line is a header (format, version, the tenant with its passkey configuration),
//! then one line per user, one per passkey and one per bound device, each the stored row. The tenant keeps its id, so
//! its backends' configuration and its Client API URLs stay valid on the new instance. Nothing
//! secret of Latchkey's goes out: no API keys, tokens, sessions, ceremonies, instance keys or
//! memberships (operators are per instance: `--owner` names the new owner). Credential public
//! keys and counters are not secrets.
//!
//! An export is one read snapshot (PostgreSQL: a repeatable-read transaction; SQLite: one read
//! transaction), so users and passkeys agree however much is written meanwhile. An import is
//! one write transaction: any refused line — unreadable, another tenant's row, a passkey of a
//! user not in the file — or a tenant id already on this instance refuses the whole file and
//! writes nothing.

use std::{
    collections::HashSet,
    io::{BufRead, Write},
};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    Clock, Error, Result,
    access::{Actor, Role},
    audit::{self, AuditEntry, RequestMeta},
    entities::{authenticator, device, end_user, tenant},
    error::on_unique,
    invitations::insert_member,
};

/// The header's `format`.
pub const FORMAT: &str = "latchkey.tenant";
/// The header's `version`: this release writes this one. Version 2 added bound devices; a
/// version 1 file (none) is read too.
pub const VERSION: u32 = 2;
const READABLE_VERSIONS: [u32; 2] = [1, 2];
/// Rows read per query while exporting.
const BATCH: u64 = 500;

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header {
        format: String,
        version: u32,
        exported_at: DateTime<Utc>,
        tenant: tenant::Model,
    },
    User(end_user::Model),
    Passkey(authenticator::Model),
    Device(device::Model),
}

/// What an export or import carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub users: u64,
    pub passkeys: u64,
    pub devices: u64,
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<()> {
    let mut text =
        serde_json::to_string(line).map_err(|e| Error::Internal(format!("export: {e}")))?;
    text.push('\n');
    out.write_all(text.as_bytes())
        .map_err(|e| Error::Internal(format!("writing the export: {e}")))
}

/// Writes `tenant_id`'s export to `out` (the host's access: the command line); audited.
pub(crate) async fn export(
    db: &sea_orm::DatabaseConnection,
    clock: &dyn Clock,
    tenant_id: Uuid,
    out: &mut impl Write,
) -> Result<Counts> {
    let snapshot = db
        .begin_with_config(
            Some(sea_orm::IsolationLevel::RepeatableRead),
            Some(sea_orm::AccessMode::ReadOnly),
        )
        .await?;
    let tenant = tenant::Entity::find_by_id(tenant_id)
        .one(&snapshot)
        .await?
        .ok_or(Error::NotFound)?;
    write_line(
        out,
        &Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            exported_at: clock.now(),
            tenant,
        },
    )?;
    let mut counts = Counts::default();
    let mut after = Uuid::nil();
    loop {
        let users = end_user::Entity::find()
            .filter(end_user::Column::TenantId.eq(tenant_id))
            .filter(end_user::Column::Id.gt(after))
            .order_by_asc(end_user::Column::Id)
            .limit(BATCH)
            .all(&snapshot)
            .await?;
        let Some(last) = users.last() else { break };
        after = last.id;
        for user in users {
            write_line(out, &Line::User(user))?;
            counts.users += 1;
        }
    }
    let mut after = Uuid::nil();
    loop {
        let passkeys = authenticator::Entity::find()
            .filter(authenticator::Column::TenantId.eq(tenant_id))
            .filter(authenticator::Column::Id.gt(after))
            .order_by_asc(authenticator::Column::Id)
            .limit(BATCH)
            .all(&snapshot)
            .await?;
        let Some(last) = passkeys.last() else { break };
        after = last.id;
        for passkey in passkeys {
            write_line(out, &Line::Passkey(passkey))?;
            counts.passkeys += 1;
        }
    }
    // Bound devices move too: without them every user's next sign-in would report a new device.
    let mut after = Uuid::nil();
    loop {
        let devices = device::Entity::find()
            .filter(device::Column::TenantId.eq(tenant_id))
            .filter(device::Column::Id.gt(after))
            .order_by_asc(device::Column::Id)
            .limit(BATCH)
            .all(&snapshot)
            .await?;
        let Some(last) = devices.last() else { break };
        after = last.id;
        for row in devices {
            write_line(out, &Line::Device(row))?;
            counts.devices += 1;
        }
    }
    snapshot.commit().await?;
    audit::record_in(
        db,
        clock,
        AuditEntry::new(Actor::Cli, "tenant.exported")
            .tenant(tenant_id)
            .target("tenant", tenant_id.to_string())
            .details(serde_json::json!({
                "users": counts.users,
                "passkeys": counts.passkeys,
                "devices": counts.devices,
            })),
    )
    .await?;
    Ok(counts)
}

const DUPLICATE: &str = "a duplicate row (an id or credential id seen before)";

fn refused(line: usize, why: impl std::fmt::Display) -> Error {
    Error::invalid("file", format!("line {line}: {why}; nothing was imported"))
}

/// Imports an export read from `input` as a new tenant (owned by `owner`, an operator, when
/// given). All or nothing.
pub(crate) async fn import(
    db: &sea_orm::DatabaseConnection,
    clock: &dyn Clock,
    input: impl BufRead,
    owner: Option<Uuid>,
) -> Result<(Uuid, Counts)> {
    let txn = crate::db::begin_write(db).await?;
    let mut tenant_id = None;
    let mut users = HashSet::new();
    let mut counts = Counts::default();
    for (index, text) in input.lines().enumerate() {
        let n = index + 1;
        let text = text.map_err(|e| refused(n, e))?;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| refused(n, e))?;
        match (line, tenant_id) {
            (
                Line::Header {
                    format,
                    version,
                    tenant,
                    ..
                },
                None,
            ) => {
                if format != FORMAT || !READABLE_VERSIONS.contains(&version) {
                    return Err(refused(
                        n,
                        format!("not a {FORMAT} export of version 1 or {VERSION}"),
                    ));
                }
                if tenant::Entity::find_by_id(tenant.id)
                    .one(&txn)
                    .await?
                    .is_some()
                {
                    return Err(Error::refused(
                        crate::ErrorCode::InvalidRequest,
                        format!(
                            "tenant {} already exists on this instance; nothing was imported",
                            tenant.id
                        ),
                    ));
                }
                // The configuration is checked as a saved one would be.
                super::config_of(&tenant).map_err(|e| refused(n, e))?;
                tenant_id = Some(tenant.id);
                tenant::Entity::insert(tenant.into_active_model().reset_all())
                    .exec_without_returning(&txn)
                    .await?;
            }
            (Line::Header { .. }, Some(_)) => return Err(refused(n, "a second header")),
            (_, None) => return Err(refused(n, "the header must come first")),
            (Line::User(user), Some(tenant)) => {
                if user.tenant_id != tenant {
                    return Err(refused(n, "a user of another tenant"));
                }
                users.insert(user.id);
                end_user::Entity::insert(user.into_active_model().reset_all())
                    .exec_without_returning(&txn)
                    .await
                    .map_err(on_unique(|| refused(n, DUPLICATE)))?;
                counts.users += 1;
            }
            (Line::Passkey(passkey), Some(tenant)) => {
                if passkey.tenant_id != tenant {
                    return Err(refused(n, "a passkey of another tenant"));
                }
                if !users.contains(&passkey.user_id) {
                    return Err(refused(
                        n,
                        "a passkey of a user not in the file (users first)",
                    ));
                }
                authenticator::Entity::insert(passkey.into_active_model().reset_all())
                    .exec_without_returning(&txn)
                    .await
                    .map_err(on_unique(|| refused(n, DUPLICATE)))?;
                counts.passkeys += 1;
            }
            (Line::Device(row), Some(tenant)) => {
                if row.tenant_id != tenant {
                    return Err(refused(n, "a device of another tenant"));
                }
                if !users.contains(&row.user_id) {
                    return Err(refused(
                        n,
                        "a device of a user not in the file (users first)",
                    ));
                }
                device::Entity::insert(row.into_active_model().reset_all())
                    .exec_without_returning(&txn)
                    .await
                    .map_err(on_unique(|| refused(n, DUPLICATE)))?;
                counts.devices += 1;
            }
        }
    }
    let tenant_id = tenant_id.ok_or_else(|| refused(1, "an empty file"))?;
    if let Some(owner) = owner {
        insert_member(&txn, tenant_id, owner, Role::Owner, clock.now()).await?;
    }
    audit::record_in(
        &txn,
        clock,
        AuditEntry::new(Actor::Cli, "tenant.imported")
            .tenant(tenant_id)
            .target("tenant", tenant_id.to_string())
            .details(serde_json::json!({
                "users": counts.users,
                "passkeys": counts.passkeys,
                "devices": counts.devices,
                "owner": owner,
            }))
            .meta(RequestMeta::default()),
    )
    .await?;
    super::config_events::announce(&txn, tenant_id).await?;
    txn.commit().await?;
    Ok((tenant_id, counts))
}
