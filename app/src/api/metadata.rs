//! The instance's FIDO metadata: what the current BLOB is and whether it is stale. The upload
//! itself is a plain form post (`server/src/http/metadata_upload.rs`): BLOBs are megabytes.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::display_time;
use crate::PortalError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataView {
    pub current: Option<BlobView>,
    /// Instance admins import; everyone else reads.
    pub can_import: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobView {
    pub serial: i64,
    pub next_update: String,
    pub models: i32,
    pub sha256: String,
    pub imported_at: String,
    pub imported_by: String,
    pub stale: bool,
}

#[server(prefix = "/portal/api", endpoint = "metadata_status")]
pub async fn metadata_status() -> Result<MetadataView, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let current = request.services.metadata().current().await?;
    Ok(MetadataView {
        current: current.map(|b| BlobView {
            serial: b.serial,
            next_update: b.next_update.to_string(),
            models: b.models,
            sha256: b.sha256,
            imported_at: display_time(b.imported_at),
            imported_by: b.imported_by,
            stale: b.stale,
        }),
        can_import: operator.is_instance_admin,
    })
}
