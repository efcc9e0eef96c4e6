mod audit;
mod enroll;
mod home;
mod login;
mod metadata;
mod not_found;
mod operators;
mod security;
mod tenant;
mod tenants;

pub use audit::{AuditPage, TenantAuditPage};
pub use enroll::EnrollPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use metadata::MetadataPage;
pub use not_found::NotFound;
pub use operators::OperatorsPage;
pub use security::SecurityPage;
pub use tenant::{
    AffectedUsersPage, ApiKeysPage, DashboardPage, EnrollmentTokensPage, HealthPage, MembersPage,
    PasskeysPage, UserPage, UsersPage, WebhooksPage,
};
pub use tenants::{NewTenantPage, TenantsPage};
