//! Latchkey's domain core: the services that own every rule and transaction, the SeaORM entities
//! they use, and the error type the edges (REST handlers, server functions, CLI) translate.
//!
//! The edges never touch entities or the database directly; they parse, authorize and call a
//! service method.

pub mod abuse;
pub mod access;
pub mod audit;
pub mod clock;
mod cpu;
pub mod db;
pub mod end_users;
pub mod entities;
pub mod error;
pub mod instance;
pub mod instance_keys;
pub mod invitations;
pub mod metadata;
pub mod operators;
pub mod outbound;
pub mod secrets;
mod services;
pub mod sessions;
mod single_use;
pub mod tenants;
pub mod user_agent;
pub mod validate;
pub mod webauthn;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorCode, Result};
pub use services::{DEFAULT_PUBLIC_URL, DatabaseGauges, Services};

#[cfg(feature = "testing")]
pub mod testing;
