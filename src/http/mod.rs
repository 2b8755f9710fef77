//! The HTTP front door: reading a request head ([`request`]), deciding what
//! it asks for ([`router`]), who may upgrade ([`access`]), and writing plain
//! answers ([`response`]). Every connection starts here, on its own thread.

pub mod access;
pub mod request;
pub mod response;
pub mod router;

pub use request::Request;
pub use response::Response;
