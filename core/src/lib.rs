//! Latchkey's domain core: the services that own every rule and transaction, the SeaORM entities
//! they use, and the error type the edges (REST handlers, server functions, CLI) translate.
//!
//! The edges never touch entities or the database directly; they parse, authorize and call a
//! service method.

pub mod audit;
pub mod clock;
pub mod db;
pub mod entities;
pub mod error;
pub mod instance;
mod services;
pub mod sessions;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorCode, Result};
pub use services::Services;

#[cfg(feature = "testing")]
pub mod testing;
