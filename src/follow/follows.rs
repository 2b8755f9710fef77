//! One connection's follows: parses `follow` / `unfollow`, keeps a handle
//! per followed file, and releases them all when the connection ends.

use super::{FollowHandle, StartAt, Tails};
use crate::wire::{ErrorCode, WireError};
use crate::ws::Outbox;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Files one connection may follow at once (each may cost a thread).
pub const MAX_FOLLOWS: usize = 32;

/// The files one connection follows.
pub struct Follows {
    tails: Arc<Tails>,
    outbox: Arc<Outbox>,
    active: HashMap<String, FollowHandle>,
}

impl Follows {
    /// No follows yet of `tails`, for the connection behind `outbox`.
    pub fn new(tails: Arc<Tails>, outbox: Arc<Outbox>) -> Follows {
        Follows {
            tails,
            outbox,
            active: HashMap::new(),
        }
    }

    /// `{"type":"follow","file":F,"from":"end"|"start"|N,"epoch":E}`.
    /// Following a file again restarts that follow from the new point.
    pub fn follow(&mut self, message: &Value) -> Result<(), WireError> {
        let file = file_field(message)?;
        let from = match &message["from"] {
            Value::Null => StartAt::End,
            Value::String(s) if s == "end" => StartAt::End,
            Value::String(s) if s == "start" => StartAt::Start,
            v => StartAt::Offset(v.as_u64().ok_or_else(|| {
                WireError::new(
                    ErrorCode::MissingField,
                    "`from` must be \"end\", \"start\" or a byte offset",
                )
            })?),
        };
        let epoch = match &message["epoch"] {
            Value::Null => None,
            Value::String(e) => Some(e.as_str()),
            _ => {
                return Err(WireError::new(
                    ErrorCode::MissingField,
                    "`epoch` must be a string",
                ))
            }
        };
        if let Some(old) = self.active.remove(file) {
            self.tails.unfollow(old);
        } else if self.active.len() >= MAX_FOLLOWS {
            return Err(WireError::new(
                ErrorCode::RateLimited,
                format!("at most {MAX_FOLLOWS} files can be followed at once"),
            ));
        }
        let handle = self.tails.follow(file, from, epoch, &self.outbox)?;
        self.active.insert(file.to_string(), handle);
        Ok(())
    }

    /// `{"type":"unfollow","file":F}`: replies `unfollowed`, also when the
    /// file was not followed (the result is the same).
    pub fn unfollow(&mut self, message: &Value) -> Result<(), WireError> {
        let file = file_field(message)?;
        if let Some(handle) = self.active.remove(file) {
            self.tails.unfollow(handle);
        }
        self.outbox
            .send_text(&json!({"type": "unfollowed", "file": file}).to_string());
        Ok(())
    }

    /// Ends every follow (the connection is closing).
    pub fn close(&mut self) {
        for (_, handle) in self.active.drain() {
            self.tails.unfollow(handle);
        }
    }
}

impl Drop for Follows {
    /// However the connection ended, its follows end with it.
    fn drop(&mut self) {
        self.close();
    }
}

/// `file`: `missing_field` when absent or null, `bad_name` when it is not
/// a string; what a string may name is [`super::path`]'s decision.
fn file_field(message: &Value) -> Result<&str, WireError> {
    match &message["file"] {
        Value::String(file) => Ok(file),
        Value::Null => Err(WireError::new(
            ErrorCode::MissingField,
            "`file` must name a file in the tail directory",
        )),
        other => Err(WireError::new(
            ErrorCode::BadName,
            format!("bad file {other}: a file name is a string"),
        )),
    }
}
