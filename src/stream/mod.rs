//! Per-client streams and file following for one hub connection
//! (placeholder: the streams issue builds this).

use crate::server::Shared;
use crate::wire::WireError;
use crate::ws::Outbox;
use serde_json::Value;
use std::sync::Arc;

/// The streams and follows of one hub connection.
pub struct Streams {
    _outbox: Arc<Outbox>,
}

impl Streams {
    /// Streams for `client_id`, sending to `outbox`.
    pub fn new(_shared: &Arc<Shared>, _client_id: &str, outbox: Arc<Outbox>) -> Streams {
        Streams { _outbox: outbox }
    }

    /// Handles `start`, `stop`, `follow` and `unfollow`: `None` for any
    /// other type. On success the replies (and data) have been queued on the
    /// outbox, in order; an error is for the caller to send.
    pub fn handle(&mut self, _ty: &str, _message: &Value) -> Option<Result<(), WireError>> {
        None
    }

    /// Stops everything this connection runs; called when it ends.
    pub fn close(&mut self) {}
}
