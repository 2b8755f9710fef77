//! The HTTP front door: waiting for a request head without a thread
//! ([`door`]), parsing it ([`request`]), deciding what it asks for
//! ([`router`]), who may upgrade ([`access`]), and writing plain answers
//! ([`response`]); the handlers of the HTTP API, which call down into the
//! hub and the tails ([`rooms`], [`files`]); the operator view
//! ([`admin`]) and the one rule for who is an operator ([`operator`]). Every connection starts at the
//! door; once its request is complete it gets a (cached) thread here.

pub mod access;
pub mod admin;
pub mod door;
pub mod files;
pub mod operator;
pub mod request;
pub mod response;
pub mod rooms;
pub mod router;

pub use request::Request;
pub use response::Response;
