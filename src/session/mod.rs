//! What a WebSocket connection means. Each endpoint of the contract is one
//! [`crate::ws::Handler`]: [`echo`] for `/ws`, [`text_room`] for
//! `/ws/{room}/{user}`, [`hub`] for `/ws/chat/{client_id}`.
//!
//! Handlers run on the connection thread. They reply through
//! [`crate::ws::Conn`] and reach other connections only through their
//! outboxes, never their sockets. [`request`] decodes hub messages (pure);
//! [`rate`] is every session's `--max-messages-per-second`.

pub mod echo;
pub mod hub;
pub mod rate;
pub mod request;
pub mod text_room;
