use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metadata_models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub aaguid: Uuid,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub status: String,
    pub certification: Option<String>,
    pub refused_status: Option<String>,
    /// JSON array of base64 (standard) DER certificates.
    #[sea_orm(column_type = "Text")]
    pub attestation_roots: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
