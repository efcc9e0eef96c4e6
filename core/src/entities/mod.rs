//! SeaORM entities. They mirror the schema the migrations create and stay inside this crate:
//! services hand out domain types, never entities.

pub mod audit_event;
pub mod operator;
pub mod session;
pub mod tenant;
