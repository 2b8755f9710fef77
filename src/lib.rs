//! strand: a WebSocket server for real-time streaming from small machines.
//!
//! strand is thread-per-connection and fully synchronous: a blocking accept
//! loop ([`server`]) hands each connection to the request-head door
//! ([`http::door`]), where it waits without a thread until its head is
//! complete; then a (cached) thread answers it or upgrades to a WebSocket.
//! Each WebSocket runs the connection engine ([`ws`]) on that one thread,
//! woken by the shared readiness thread when its socket is readable or
//! writable; any thread writes to a socket through its write gate without
//! blocking. What a connection *means* (echo, a text room, the JSON hub) is
//! a [`ws::Handler`] in [`session`].
//!
//! There is no async runtime anywhere: on a small host a few thousand
//! threads are cheap, simple to reason about, and easy to measure.
// Only `threads`, `ws::readiness` and `memory` may use `unsafe` (each opts
// in, with the reason why).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod acceptor;
pub mod acme;
pub mod activity;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod config;
pub mod follow;
pub mod housekeeping;
pub mod http;
pub mod hub;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod server;
pub mod service_manager;
pub mod session;
pub mod shared;
pub mod stream;
pub mod threads;
pub mod tls;
pub mod web;
pub mod wire;
pub mod ws;

/// The server's name and version, as sent in `welcome` messages.
pub const SERVER_NAME: &str = concat!("strand/", env!("CARGO_PKG_VERSION"));
