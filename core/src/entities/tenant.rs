use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub passkeys_enabled: bool,
    pub rp_id: Option<String>,
    pub rp_name: Option<String>,
    /// JSON array of client origins.
    pub origins: String,
    pub attestation: String,
    pub user_verification: String,
    pub resident_key: String,
    pub attachment: String,
    /// JSON array of algorithm names.
    pub algorithms: String,
    pub timeout_seconds: i32,
    pub config_version: i64,
    /// JSON: the authenticator policy (`{}` is the default, allowing every authenticator).
    /// Exports written before it existed read back as the default.
    #[serde(default = "default_policy")]
    #[sea_orm(column_type = "Text")]
    pub authenticator_policy: String,
    /// JSON array of related origins (web origins on other sites).
    #[serde(default = "empty_list")]
    #[sea_orm(column_type = "Text")]
    pub related_origins: String,
    /// JSON array of iOS app IDs.
    #[serde(default = "empty_list")]
    #[sea_orm(column_type = "Text")]
    pub ios_app_ids: String,
}

/// Exports written before related origins and iOS app IDs existed read back as none.
fn empty_list() -> String {
    "[]".into()
}

fn default_policy() -> String {
    "{}".into()
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
