//! FIDO Metadata Service (MDS3) BLOBs an instance admin imported, and the models they describe.
//!
//! - `metadata_blobs`: one row per imported BLOB (its serial number `no`, `nextUpdate`, how many
//!   models it held, its SHA-256, who imported it and when). The newest serial is current; an
//!   older or equal one is refused at import, so a replayed BLOB cannot undo a revocation.
//! - `metadata_models`: the current BLOB's FIDO2 models by AAGUID: description, latest status,
//!   certification level, the compromise status that makes Latchkey refuse the model (if any),
//!   and its attestation root certificates (JSON array of base64 DER). Replaced whole by each
//!   import, in the import's transaction.
//!
//! Safe under a running older instance: it reads neither table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MetadataBlobs {
    Table,
    Serial,
    NextUpdate,
    Models,
    Sha256,
    ImportedAt,
    ImportedBy,
}

#[derive(DeriveIden)]
enum MetadataModels {
    Table,
    Aaguid,
    Description,
    Status,
    Certification,
    RefusedStatus,
    AttestationRoots,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MetadataBlobs::Table)
                    .col(big_integer(MetadataBlobs::Serial).primary_key())
                    .col(date(MetadataBlobs::NextUpdate))
                    .col(integer(MetadataBlobs::Models))
                    .col(string_len(MetadataBlobs::Sha256, 64))
                    .col(timestamp_with_time_zone(MetadataBlobs::ImportedAt))
                    .col(text(MetadataBlobs::ImportedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MetadataModels::Table)
                    .col(uuid(MetadataModels::Aaguid).primary_key())
                    .col(text(MetadataModels::Description))
                    .col(string_len(MetadataModels::Status, 64))
                    .col(string_len_null(MetadataModels::Certification, 64))
                    .col(string_len_null(MetadataModels::RefusedStatus, 64))
                    .col(text(MetadataModels::AttestationRoots))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MetadataModels::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MetadataBlobs::Table).to_owned())
            .await?;
        Ok(())
    }
}
