//! The built-in web page served at `GET /`: one HTML file with its CSS and
//! JavaScript inline, embedded in the binary so a host needs nothing else.

/// The page.
pub const PAGE: &str = include_str!("index.html");
