use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "authenticators")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub credential_id: String,
    #[sea_orm(column_type = "Text")]
    pub credential: String,
    pub name: String,
    pub aaguid: Uuid,
    pub provider_name: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub transports: String,
    pub algorithm: i32,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
    pub sign_count: i64,
    pub attachment: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub counter_regressed_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
    pub revoked_reason: Option<String>,
    /// When a sign-in last saw the backup state flip (health queue).
    #[serde(default)]
    pub backup_state_changed_at: Option<DateTimeUtc>,
    /// `none` / `self` / `certified`: what registration could verify of the attestation.
    #[serde(default = "untrusted")]
    pub attestation_trust: String,
    /// JSON: the metadata's description and certification level, when certified.
    #[serde(default)]
    #[sea_orm(column_type = "Text", nullable)]
    pub certification: Option<String>,
    /// When a newer FIDO metadata BLOB downgraded the model, and to which status.
    #[serde(default)]
    pub metadata_flagged_at: Option<DateTimeUtc>,
    #[serde(default)]
    pub metadata_status: Option<String>,
    /// Successful sign-ins with this passkey.
    #[serde(default)]
    pub sign_in_count: i64,
}

/// Exports written before attestation trust was recorded read back as `none`.
fn untrusted() -> String {
    "none".into()
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its user: read in the same query on the sign-in path (one round trip, not two).
    #[sea_orm(
        belongs_to = "super::end_user::Entity",
        from = "Column::UserId",
        to = "super::end_user::Column::Id"
    )]
    EndUser,
}

impl Related<super::end_user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::EndUser.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
