//! Tenants' end users, their authenticators (passkeys), and the two single-use tokens of the
//! Server API: enrollment tokens (`lk_enr_…`, let a browser register a passkey for a user) and
//! validation tokens (`lk_val_…`, prove to the tenant's backend that a ceremony succeeded).
//!
//! Every row carries `tenant_id`; tokens are stored as SHA-256 only. Revoked authenticators and
//! used tokens are kept (who, when, why) rather than deleted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum EndUsers {
    Table,
    Id,
    TenantId,
    /// The tenant's own identifier for the user (the API's `user_id`).
    ExternalId,
    Username,
    /// `lower(username)`, for case-insensitive prefix search.
    UsernameKey,
    DisplayName,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Authenticators {
    Table,
    Id,
    TenantId,
    UserId,
    /// The credential ID, base64url without padding (unique per tenant).
    CredentialId,
    /// The verifier's stored credential (public key, counter, flags) as JSON.
    Credential,
    Name,
    Aaguid,
    ProviderName,
    /// JSON array of transport hints.
    Transports,
    Algorithm,
    BackupEligible,
    BackupState,
    UserVerified,
    SignCount,
    Attachment,
    UserAgent,
    CreatedAt,
    LastUsedAt,
    /// Set when an assertion's counter went backwards (a possible clone).
    CounterRegressedAt,
    RevokedAt,
    /// Who revoked it (audit actor label).
    RevokedBy,
    RevokedReason,
}

#[derive(DeriveIden)]
enum EnrollmentTokens {
    Table,
    Id,
    TenantId,
    UserId,
    TokenHash,
    TokenPrefix,
    /// JSON array of scopes (`add:authenticators`).
    Scopes,
    /// Who issued it (audit actor label).
    IssuedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    /// The authenticator its registration created.
    AuthenticatorId,
    RevokedAt,
    RevokedBy,
}

#[derive(DeriveIden)]
enum ValidationTokens {
    Table,
    Id,
    TenantId,
    UserId,
    AuthenticatorId,
    /// `sign_up` or `sign_in`.
    Kind,
    TokenHash,
    VerifiedAt,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EndUsers::Table)
                    .col(pk_uuid(EndUsers::Id))
                    .col(uuid(EndUsers::TenantId))
                    .col(string_len(EndUsers::ExternalId, 128))
                    .col(string_len_null(EndUsers::Username, 256))
                    .col(string_len_null(EndUsers::UsernameKey, 256))
                    .col(string_len_null(EndUsers::DisplayName, 256))
                    .col(timestamp_with_time_zone(EndUsers::CreatedAt))
                    .col(timestamp_with_time_zone(EndUsers::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_end_users_tenant")
                            .from(EndUsers::Table, EndUsers::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_end_users_tenant_external")
                    .table(EndUsers::Table)
                    .col(EndUsers::TenantId)
                    .col(EndUsers::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_end_users_tenant_username")
                    .table(EndUsers::Table)
                    .col(EndUsers::TenantId)
                    .col(EndUsers::UsernameKey)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Authenticators::Table)
                    .col(pk_uuid(Authenticators::Id))
                    .col(uuid(Authenticators::TenantId))
                    .col(uuid(Authenticators::UserId))
                    .col(string_len(Authenticators::CredentialId, 1400))
                    .col(text(Authenticators::Credential))
                    .col(string_len(Authenticators::Name, 100))
                    .col(uuid(Authenticators::Aaguid))
                    .col(string_len_null(Authenticators::ProviderName, 200))
                    .col(text(Authenticators::Transports))
                    .col(integer(Authenticators::Algorithm))
                    .col(boolean(Authenticators::BackupEligible))
                    .col(boolean(Authenticators::BackupState))
                    .col(boolean(Authenticators::UserVerified))
                    .col(big_integer(Authenticators::SignCount))
                    .col(string_len_null(Authenticators::Attachment, 20))
                    .col(string_len_null(Authenticators::UserAgent, 512))
                    .col(timestamp_with_time_zone(Authenticators::CreatedAt))
                    .col(timestamp_with_time_zone_null(Authenticators::LastUsedAt))
                    .col(timestamp_with_time_zone_null(
                        Authenticators::CounterRegressedAt,
                    ))
                    .col(timestamp_with_time_zone_null(Authenticators::RevokedAt))
                    .col(string_len_null(Authenticators::RevokedBy, 320))
                    .col(string_len_null(Authenticators::RevokedReason, 500))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_authenticators_tenant")
                            .from(Authenticators::Table, Authenticators::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_authenticators_user")
                            .from(Authenticators::Table, Authenticators::UserId)
                            .to(EndUsers::Table, EndUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_authenticators_tenant_credential")
                    .table(Authenticators::Table)
                    .col(Authenticators::TenantId)
                    .col(Authenticators::CredentialId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_authenticators_user")
                    .table(Authenticators::Table)
                    .col(Authenticators::UserId)
                    .col(Authenticators::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EnrollmentTokens::Table)
                    .col(pk_uuid(EnrollmentTokens::Id))
                    .col(uuid(EnrollmentTokens::TenantId))
                    .col(uuid(EnrollmentTokens::UserId))
                    .col(string_len_uniq(EnrollmentTokens::TokenHash, 64))
                    .col(string_len(EnrollmentTokens::TokenPrefix, 24))
                    .col(text(EnrollmentTokens::Scopes))
                    .col(string_len(EnrollmentTokens::IssuedBy, 320))
                    .col(timestamp_with_time_zone(EnrollmentTokens::CreatedAt))
                    .col(timestamp_with_time_zone(EnrollmentTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(EnrollmentTokens::UsedAt))
                    .col(uuid_null(EnrollmentTokens::AuthenticatorId))
                    .col(timestamp_with_time_zone_null(EnrollmentTokens::RevokedAt))
                    .col(string_len_null(EnrollmentTokens::RevokedBy, 320))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollment_tokens_tenant")
                            .from(EnrollmentTokens::Table, EnrollmentTokens::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollment_tokens_user")
                            .from(EnrollmentTokens::Table, EnrollmentTokens::UserId)
                            .to(EndUsers::Table, EndUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_enrollment_tokens_tenant_expiry")
                    .table(EnrollmentTokens::Table)
                    .col(EnrollmentTokens::TenantId)
                    .col(EnrollmentTokens::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ValidationTokens::Table)
                    .col(pk_uuid(ValidationTokens::Id))
                    .col(uuid(ValidationTokens::TenantId))
                    .col(uuid(ValidationTokens::UserId))
                    .col(uuid(ValidationTokens::AuthenticatorId))
                    .col(string_len(ValidationTokens::Kind, 16))
                    .col(string_len_uniq(ValidationTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(ValidationTokens::VerifiedAt))
                    .col(timestamp_with_time_zone(ValidationTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ValidationTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_validation_tokens_tenant")
                            .from(ValidationTokens::Table, ValidationTokens::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_validation_tokens_user")
                            .from(ValidationTokens::Table, ValidationTokens::UserId)
                            .to(EndUsers::Table, EndUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_validation_tokens_expiry")
                    .table(ValidationTokens::Table)
                    .col(ValidationTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ValidationTokens::Table.into_iden(),
            EnrollmentTokens::Table.into_iden(),
            Authenticators::Table.into_iden(),
            EndUsers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
