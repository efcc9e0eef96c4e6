//! SeaORM entities. They mirror the schema the migrations create and stay inside this crate:
//! services hand out domain types, never entities.

pub mod api_key;
pub mod audit_event;
pub mod ceremony;
pub mod operator;
pub mod operator_passkey;
pub mod operator_token;
pub mod session;
pub mod tenant;
pub mod tenant_member;
