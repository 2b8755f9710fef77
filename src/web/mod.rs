//! The built-in web pages: `GET /` and the operator view `GET /admin`, each
//! one HTML file with its CSS and JavaScript inline, embedded in the binary
//! so a host needs nothing else.

/// The page.
pub const PAGE: &str = include_str!("index.html");

/// The operator view (`GET /admin`): reads `GET /admin/stats`.
pub const ADMIN_PAGE: &str = include_str!("admin.html");
