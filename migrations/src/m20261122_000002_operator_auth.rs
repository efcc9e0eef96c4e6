//! The portal's own passkey sign-in: operators' passkeys, setup and invitation tokens, stored
//! WebAuthn ceremonies (shared with the tenant APIs later) and per-tenant memberships with roles.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Operators {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OperatorPasskeys {
    Table,
    Id,
    OperatorId,
    /// base64url (no padding) of the WebAuthn credential id; unique across all operators.
    CredentialId,
    Name,
    /// The verified credential (public key, counter, flags) as serialised by webauthn-rs.
    Passkey,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum OperatorTokens {
    Table,
    Id,
    /// `setup` (first operator) or `invitation`.
    Kind,
    /// Hex SHA-256 of the token: the token itself is shown once and never stored.
    TokenHash,
    /// A few leading characters, for recognising a token in lists and logs.
    TokenPrefix,
    Email,
    GrantsInstanceAdmin,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    UsedBy,
}

#[derive(DeriveIden)]
enum Ceremonies {
    Table,
    Id,
    /// NULL for the portal's own ceremonies.
    TenantId,
    Kind,
    /// Whom the ceremony is for (an operator id, or a tenant's user id), when known up front.
    Subject,
    /// The token the ceremony was started with (setup, invitation or enrollment), if any.
    TokenId,
    /// Serialised webauthn-rs state: challenge and policy. Never sent to the client.
    State,
    Context,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum TenantMembers {
    Table,
    TenantId,
    OperatorId,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OperatorPasskeys::Table)
                    .col(pk_uuid(OperatorPasskeys::Id))
                    .col(uuid(OperatorPasskeys::OperatorId))
                    .col(string_len_uniq(OperatorPasskeys::CredentialId, 1400))
                    .col(string_len(OperatorPasskeys::Name, 100))
                    .col(text(OperatorPasskeys::Passkey))
                    .col(timestamp_with_time_zone(OperatorPasskeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(OperatorPasskeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_operator_passkeys_operator")
                            .from(OperatorPasskeys::Table, OperatorPasskeys::OperatorId)
                            .to(Operators::Table, Operators::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_operator_passkeys_operator")
                    .table(OperatorPasskeys::Table)
                    .col(OperatorPasskeys::OperatorId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OperatorTokens::Table)
                    .col(pk_uuid(OperatorTokens::Id))
                    .col(string_len(OperatorTokens::Kind, 16))
                    .col(string_len_uniq(OperatorTokens::TokenHash, 64))
                    .col(string_len(OperatorTokens::TokenPrefix, 24))
                    .col(string_len_null(OperatorTokens::Email, 320))
                    .col(boolean(OperatorTokens::GrantsInstanceAdmin).default(false))
                    .col(uuid_null(OperatorTokens::CreatedBy))
                    .col(timestamp_with_time_zone(OperatorTokens::CreatedAt))
                    .col(timestamp_with_time_zone(OperatorTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(OperatorTokens::UsedAt))
                    .col(uuid_null(OperatorTokens::UsedBy))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Ceremonies::Table)
                    .col(pk_uuid(Ceremonies::Id))
                    .col(uuid_null(Ceremonies::TenantId))
                    .col(string_len(Ceremonies::Kind, 32))
                    .col(string_len_null(Ceremonies::Subject, 160))
                    .col(uuid_null(Ceremonies::TokenId))
                    .col(text(Ceremonies::State))
                    .col(json_null(Ceremonies::Context))
                    .col(timestamp_with_time_zone(Ceremonies::CreatedAt))
                    .col(timestamp_with_time_zone(Ceremonies::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Ceremonies::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ceremonies_expires_at")
                    .table(Ceremonies::Table)
                    .col(Ceremonies::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TenantMembers::Table)
                    .col(uuid(TenantMembers::TenantId))
                    .col(uuid(TenantMembers::OperatorId))
                    .col(string_len(TenantMembers::Role, 16))
                    .col(timestamp_with_time_zone(TenantMembers::CreatedAt))
                    .col(timestamp_with_time_zone(TenantMembers::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(TenantMembers::TenantId)
                            .col(TenantMembers::OperatorId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenant_members_tenant")
                            .from(TenantMembers::Table, TenantMembers::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenant_members_operator")
                            .from(TenantMembers::Table, TenantMembers::OperatorId)
                            .to(Operators::Table, Operators::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tenant_members_operator")
                    .table(TenantMembers::Table)
                    .col(TenantMembers::OperatorId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TenantMembers::Table.into_iden(),
            Ceremonies::Table.into_iden(),
            OperatorTokens::Table.into_iden(),
            OperatorPasskeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
