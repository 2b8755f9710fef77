//! The connection engine: one thread per WebSocket, woken by one shared
//! readiness thread, writing through one write gate per socket.
//!
//! - [`handler`]: the callbacks the engine makes, which the sessions
//!   implement.
//! - [`frame`]: encoding server frames (pure, no I/O).
//! - [`outbox`]: the write gate of a socket: any thread writes a frame
//!   without blocking when nothing waits, else it is queued (bounded in
//!   bytes) for the connection thread to drain.
//! - [`tls_wire`]: a TLS connection's session as the write gate drives
//!   it: frames sealed a batch at a time, ciphertext received fed in.
//! - [`reader`]: parsing client frames from a non-blocking source
//!   (tungstenite, its automatic replies discarded).
//! - [`readiness`]: the one thread that waits on every socket (`polling`,
//!   oneshot) and wakes its owner.
//! - [`conn`]: the connection thread's `select!` loop, heartbeats, idle
//!   timeout, slow consumers and close handshakes.
//! - [`registry`]: every open connection, for server shutdown.
//!
//! The engine knows no session, room or stream, and nothing of HTTP.

pub mod conn;
pub mod frame;
pub mod handler;
pub mod outbox;
pub mod reader;
pub mod readiness;
pub mod registry;
pub mod tls_wire;

pub use conn::{Conn, ConnParams};
pub use handler::Handler;
pub use outbox::{Outbox, Outgoing};
