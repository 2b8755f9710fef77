//! The connection engine: one thread per WebSocket, the only writer on its
//! socket, plus a reader thread that only parses frames.
//!
//! - [`handler`]: the callbacks the engine makes, which the sessions
//!   implement.
//! - [`frame`]: encoding server frames (pure, no I/O).
//! - [`outbox`]: the bounded, byte-counted queue through which every other
//!   thread (rooms, streams, tails) sends to a connection.
//! - [`reader`]: the read half: a tungstenite `WebSocket` whose writes are
//!   discarded, forwarding messages, pings and closes to the connection thread.
//! - [`conn`]: the connection thread's `select!` loop, heartbeats, idle
//!   timeout and close handshakes.
//! - [`registry`]: every open connection, for server shutdown.

pub mod conn;
pub mod frame;
pub mod handler;
pub mod outbox;
pub mod reader;
pub mod registry;

pub use conn::{Conn, ConnParams};
pub use handler::Handler;
pub use outbox::{Outbox, Outgoing};
