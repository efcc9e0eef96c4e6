//! SeaORM entities. They mirror the schema the migrations create and stay inside this crate:
//! services hand out domain types, never entities.

pub mod api_key;
pub mod audit_event;
pub mod audit_link;
pub mod audit_retention_run;
pub mod audit_seal;
pub mod authenticator;
pub mod ceremony;
pub mod ceremony_use;
pub mod credential_dismissal;
pub mod device;
pub mod end_user;
pub mod enrollment_token;
pub mod instance_key;
pub mod metadata_blob;
pub mod metadata_model;
pub mod operator;
pub mod operator_passkey;
pub mod operator_token;
pub mod session;
pub mod tenant;
pub mod tenant_member;
pub mod validation_token;
pub mod webhook_attempt;
pub mod webhook_cursor;
pub mod webhook_delivery;
pub mod webhook_endpoint;
