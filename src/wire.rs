//! JSON shapes shared by every part of the JSON dialect: the `error` reply
//! and its codes, and server timestamps. Pure functions, no I/O.

use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The error codes of the contract (`{"type":"error","code":...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The text was not a JSON object.
    InvalidJson,
    /// `type` names no message this server knows.
    UnknownType,
    /// A required field is missing or has the wrong type.
    MissingField,
    /// A name breaks the naming rules.
    BadName,
    /// A room message from a client that is not in the room.
    NotInRoom,
    /// A direct message to nobody connected.
    UnknownClient,
    /// `start` while this client's stream runs.
    AlreadyRunning,
    /// `stop` with no stream running.
    NotRunning,
    /// `start` with a producer the server does not configure.
    UnknownProducer,
    /// A `follow` name outside the tail directory.
    BadFile,
    /// A `follow` of a file that does not exist.
    NotFound,
    /// The client sends faster than allowed.
    RateLimited,
    /// The server cannot do this now: the request needs Redis, which cannot
    /// be reached, or the OS refused a thread or a process.
    Unavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::BadName => "bad_name",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::UnknownClient => "unknown_client",
            ErrorCode::AlreadyRunning => "already_running",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::UnknownProducer => "unknown_producer",
            ErrorCode::BadFile => "bad_file",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// An error reply: a code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl WireError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }

    /// The `{"type":"error",...}` text of this error.
    pub fn to_json(&self) -> String {
        json!({"type": "error", "code": self.code.as_str(), "message": self.message}).to_string()
    }
}

/// The name in `message[field]`: `missing_field` when it is absent or
/// null, `bad_name` when it is anything but a string that keeps the naming
/// rules (a number, a list, `"a b"`). Every name field of every message
/// type goes through here.
pub fn name_field<'m>(message: &'m Value, field: &str) -> Result<&'m str, WireError> {
    match message.get(field) {
        None | Some(Value::Null) => Err(WireError::new(
            ErrorCode::MissingField,
            format!("`{field}` (a name) is required"),
        )),
        Some(Value::String(name)) if crate::names::is_valid(name) => Ok(name),
        Some(other) => Err(WireError::new(
            ErrorCode::BadName,
            format!(
                "bad {field} {other}: a name is a string of 1-64 of A-Z a-z 0-9 _ . - \
                 (not starting with .)"
            ),
        )),
    }
}

/// Milliseconds since the Unix epoch, the server's `timestamp`.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_type_code_and_message() {
        let v: serde_json::Value =
            serde_json::from_str(&WireError::new(ErrorCode::BadName, "no").to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "bad_name");
        assert_eq!(v["message"], "no");
    }

    #[test]
    fn name_fields_absent_are_missing_and_any_other_non_name_is_bad() {
        let m = json!({"s": "ok", "n": 5, "l": ["ok"], "o": {}, "b": true, "z": null, "e": "a b"});
        assert_eq!(name_field(&m, "s").unwrap(), "ok");
        for f in ["absent", "z"] {
            assert_eq!(name_field(&m, f).unwrap_err().code, ErrorCode::MissingField);
        }
        for f in ["n", "l", "o", "b", "e"] {
            assert_eq!(name_field(&m, f).unwrap_err().code, ErrorCode::BadName);
        }
    }
}
