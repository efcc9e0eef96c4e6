//! Each tenant's passkey configuration (spec: "Tenant passkey configuration"), on the tenant row:
//! it is read together with the tenant on every ceremony, and one version number covers it all.
//!
//! Every column has a default (the spec's defaults) so existing tenants stay valid. Lists are
//! JSON text written by the application, which validates them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    PasskeysEnabled,
    RpId,
    RpName,
    /// JSON array of origins as they appear in `clientDataJSON`.
    Origins,
    Attestation,
    UserVerification,
    ResidentKey,
    Attachment,
    /// JSON array of algorithm names (`ES256`, `ES384`, `RS256`).
    Algorithms,
    TimeoutSeconds,
    /// Bumped by every change, so caches of an older configuration are recognisably stale.
    ConfigVersion,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let columns = [
            boolean(Tenants::PasskeysEnabled).default(false).to_owned(),
            string_len_null(Tenants::RpId, 253).to_owned(),
            string_len_null(Tenants::RpName, 100).to_owned(),
            text(Tenants::Origins).default("[]").to_owned(),
            string_len(Tenants::Attestation, 16)
                .default("none")
                .to_owned(),
            string_len(Tenants::UserVerification, 16)
                .default("preferred")
                .to_owned(),
            string_len(Tenants::ResidentKey, 16)
                .default("preferred")
                .to_owned(),
            string_len(Tenants::Attachment, 16)
                .default("any")
                .to_owned(),
            text(Tenants::Algorithms)
                .default(r#"["ES256","RS256"]"#)
                .to_owned(),
            integer(Tenants::TimeoutSeconds).default(300).to_owned(),
            big_integer(Tenants::ConfigVersion).default(1).to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tenants::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Tenants::ConfigVersion,
            Tenants::TimeoutSeconds,
            Tenants::Algorithms,
            Tenants::Attachment,
            Tenants::ResidentKey,
            Tenants::UserVerification,
            Tenants::Attestation,
            Tenants::Origins,
            Tenants::RpName,
            Tenants::RpId,
            Tenants::PasskeysEnabled,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tenants::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
