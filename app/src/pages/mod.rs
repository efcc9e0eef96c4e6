mod audit;
mod enroll;
mod home;
mod login;
mod not_found;
mod operators;
mod security;

pub use audit::AuditPage;
pub use enroll::EnrollPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use not_found::NotFound;
pub use operators::OperatorsPage;
pub use security::SecurityPage;
