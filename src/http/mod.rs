//! The HTTP front door: reading a request head ([`request`]), deciding what
//! it asks for ([`router`]), who may upgrade ([`access`]), and writing plain
//! answers ([`response`]); the handlers of the HTTP API, which call down into
//! the hub and the tails ([`rooms`], [`files`]). Every connection starts
//! here, on its own thread.

pub mod access;
pub mod files;
pub mod request;
pub mod response;
pub mod rooms;
pub mod router;

pub use request::Request;
pub use response::Response;
