//! What anonymous traffic may cost: the rules that bound what a caller who proves nothing (the
//! Client API, the portal's sign-in and setup pages) can make Latchkey write.
//!
//! - **Requests** are limited at the HTTP edge, per source (an IPv4 address or an IPv6 /64,
//!   [`SourceKey`]): across all tenants and the portal together, and per tenant on the Client
//!   API. Those limits are counted in memory per instance.
//! - **Ceremonies** are the one row an anonymous request can create — registrations' and the
//!   portal's; a tenant sign-in's is sealed into its ID and stores nothing until it is
//!   verified (`crate::webauthn::sealed`). A source holds at most
//!   [`AbuseLimits::open_ceremonies_per_source`] unfinished ones (unused, unexpired; counted in
//!   the database, so across instances and restarts); beyond, options answer `rate_limited`
//!   with the time until its oldest one expires. Finishing a ceremony frees its place, so a
//!   busy office behind one address is limited by what it leaves unfinished, not by its size.
//! - **Refusals** get their own audit event only when they used up a live ceremony (each
//!   ceremony can be refused once: it is consumed), so they are bounded by the ceremonies.
//!   Refusals that carry nothing real — an unparseable credential, an unknown, used or expired
//!   ceremony, a token that matches nothing — are counted in memory ([`RefusalTally`]) and
//!   written once a minute as one aggregated event per tenant, action, code and target (a
//!   target is always a real object: the user of a token that was found), with the count and
//!   the busiest sources. A crash loses at most that minute's counts: none of them was
//!   acknowledged as anything but a refusal.

mod proxies;
mod refusals;
mod source;

pub use proxies::TrustedProxies;
pub use refusals::RefusalTally;
pub(crate) use refusals::record_tally;
pub use source::SourceKey;

/// What the services need of this module: the configured bounds and the refusal counts (one
/// tally per instance, shared by every clone of the services).
#[derive(Debug, Clone, Default)]
pub struct AbuseControls {
    pub limits: AbuseLimits,
    pub refusals: std::sync::Arc<RefusalTally>,
}

/// The configurable bounds on anonymous writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseLimits {
    /// Unfinished ceremonies one source may hold (`None`: no bound).
    pub open_ceremonies_per_source: Option<u32>,
}

impl AbuseLimits {
    pub const DEFAULT_OPEN_CEREMONIES_PER_SOURCE: u32 = 100;
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            open_ceremonies_per_source: Some(Self::DEFAULT_OPEN_CEREMONIES_PER_SOURCE),
        }
    }
}
