use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "validation_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub authenticator_id: Uuid,
    pub kind: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub verified_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    /// What the ceremony saw (`end_users::report::CeremonyReport`, JSON); none for tokens issued
    /// before reports existed.
    #[sea_orm(column_type = "Text", nullable)]
    pub report: Option<String>,
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
