//! What the operator view (`GET /admin/stats`) shows beyond the counters:
//! the recent events with the names of the clients they happened to
//! ([`events`]), the last five minutes second by second ([`series`]), and
//! the message rates of the largest rooms ([`room_rates`]).
//!
//! The engine, the sessions, the hub, the brokers and the head door feed
//! it through small calls where things happen; `http::admin` only renders
//! it. It knows nothing of HTTP, sessions or rooms, and costs nothing on a
//! hot path: events are rare, the series is sampled by the one
//! housekeeping thread ([`crate::housekeeping`]), and room rates are
//! worked out when someone asks.

pub mod events;
pub mod room_rates;
pub mod series;

pub use events::{Event, Events, Kind};
pub use room_rates::RoomRates;
pub use series::{Sample, Series};
