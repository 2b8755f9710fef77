//! `/ws/chat/{client_id}`: the JSON hub dialect. Parses each message,
//! dispatches on its `type`, and answers every bad input with an `error`
//! reply while the connection stays open.

use crate::server::Shared;
use crate::session::Session;
use crate::stream::Streams;
use crate::wire::{unix_millis, ErrorCode, WireError};
use crate::ws::Conn;
use serde_json::{json, Value};
use std::sync::Arc;

/// A JSON hub client.
pub struct HubSession {
    shared: Arc<Shared>,
    client_id: String,
    streams: Option<Streams>,
}

impl HubSession {
    /// The client `client_id`.
    pub fn new(shared: Arc<Shared>, client_id: String) -> Self {
        HubSession {
            shared,
            client_id,
            streams: None,
        }
    }

    fn dispatch(&mut self, conn: &mut Conn<'_>, message: &Value) -> Result<(), WireError> {
        let ty = message["type"].as_str().ok_or_else(|| {
            WireError::new(
                ErrorCode::MissingField,
                "every message needs a string `type`",
            )
        })?;
        match ty {
            "echo" => {
                let timestamp = message["timestamp"].as_u64().unwrap_or_else(unix_millis);
                conn.send_text(
                    &json!({"type": "echo", "original": message, "timestamp": timestamp})
                        .to_string(),
                );
                Ok(())
            }
            _ => {
                if let Some(streams) = self.streams.as_mut() {
                    if let Some(result) = streams.handle(ty, message) {
                        return result;
                    }
                }
                Err(WireError::new(
                    ErrorCode::UnknownType,
                    format!("unknown message type {ty:?}"),
                ))
            }
        }
    }
}

impl Session for HubSession {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.streams = Some(Streams::new(
            &self.shared,
            &self.client_id,
            conn.outbox().clone(),
        ));
        let welcome = json!({
            "type": "welcome",
            "client_id": self.client_id,
            "server": crate::SERVER_NAME,
            "heartbeat_s": self.shared.config.ping_interval.as_secs_f64(),
        });
        conn.send_text(&welcome.to_string());
    }

    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        let result = match serde_json::from_str::<Value>(text) {
            Ok(message) if message.is_object() => self.dispatch(conn, &message),
            Ok(_) => Err(WireError::new(
                ErrorCode::InvalidJson,
                "a message must be a JSON object",
            )),
            Err(e) => Err(WireError::new(
                ErrorCode::InvalidJson,
                format!("invalid JSON: {e}"),
            )),
        };
        if let Err(error) = result {
            conn.send_text(&error.to_json());
        }
    }

    fn on_close(&mut self) {
        if let Some(mut streams) = self.streams.take() {
            streams.close();
        }
    }
}
