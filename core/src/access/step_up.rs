//! Step-up ("sudo mode"): the portal actions that would let a stolen session cookie plant a
//! lasting foothold need a passkey assertion from the last few minutes, not only a live session.
//!
//! Those actions are adding a passkey to one's own account, inviting an operator or adding a
//! member, creating an API key, and changing a tenant's Relying Party ID. Only
//! [`crate::Services::step_up`] makes a [`StepUp`], from the time the session last verified a
//! passkey and the services' clock, and the window is decided here only. The actions on the
//! operator's own account take the caller as a `StepUp` instead of a bare operator; the tenant
//! actions take a [`super::TenantAccess`] that the edge passed its `StepUp` to
//! ([`super::TenantAccess::stepped_up`]). Either way the method asks for it
//! ([`StepUp::require`], [`super::TenantAccess::require_step_up`]) after authorization and input
//! validation: someone who may not act at all is told so rather than asked for their passkey
//! first, and a typo is reported before the prompt.
//!
//! The session records that time at sign-in (a user-verified assertion), at enrollment (a
//! user-verified registration) and at a step-up ceremony (an assertion limited to the operator's
//! own passkeys, user verification required). Adding a passkey is checked when the ceremony starts, not when it finishes, so an
//! operator who is slow at the prompt does not end up with a credential on the authenticator that
//! the portal refused.
//!
//! The command line is not a session: it runs with the host's access and needs no step-up.

use chrono::{DateTime, Duration, Utc};

use crate::{Error, ErrorCode, Result, access::OperatorIdentity};

/// What a refused action answers.
pub(crate) const REQUIRED_MESSAGE: &str = "Confirm it is you with your passkey to do this.";

/// How long a passkey assertion counts for step-up unless configured otherwise.
pub const DEFAULT_WINDOW: Duration = Duration::minutes(5);

/// What a request knows about its operator's last passkey verification, judged at one instant.
/// Made by [`crate::Services::step_up`].
#[derive(Debug, Clone, Copy)]
pub struct StepUp<'a> {
    operator: &'a OperatorIdentity,
    fresh: bool,
}

impl<'a> StepUp<'a> {
    /// `verified_at`: when this operator's session last verified a passkey, if it ever did.
    pub(crate) fn judge(
        operator: &'a OperatorIdentity,
        verified_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Self {
        // A time in the future (another instance's clock ahead of this one) still counts only
        // within the window around now.
        let fresh = verified_at.is_some_and(|at| (now - at).abs() < window);
        Self { operator, fresh }
    }

    pub fn operator(&self) -> &'a OperatorIdentity {
        self.operator
    }

    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Passes when the operator verified a passkey within the window; else `step_up_required`.
    pub fn require(&self) -> Result<()> {
        if self.fresh {
            Ok(())
        } else {
            Err(Error::refused(ErrorCode::StepUpRequired, REQUIRED_MESSAGE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator() -> OperatorIdentity {
        OperatorIdentity {
            id: uuid::Uuid::new_v4(),
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            is_instance_admin: false,
        }
    }

    #[test]
    fn only_a_recent_verification_steps_up() {
        let op = operator();
        let now = Utc::now();
        let window = Duration::minutes(5);
        let judged = |at: Option<DateTime<Utc>>| StepUp::judge(&op, at, now, window).require();
        assert!(judged(Some(now)).is_ok());
        assert!(judged(Some(now - Duration::seconds(299))).is_ok());
        assert_eq!(
            judged(Some(now - window)).err().map(|e| e.code()),
            Some(ErrorCode::StepUpRequired)
        );
        assert!(judged(None).is_err(), "never verified");
        assert!(
            judged(Some(now + Duration::hours(1))).is_err(),
            "from the future"
        );
    }
}
