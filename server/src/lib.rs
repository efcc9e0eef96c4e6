//! The `latchkey` binary's library: configuration, the HTTP edge, the server lifecycle and the
//! command line. Integration tests drive it in-process through [`server::start`].

pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod server;
pub mod telemetry;
