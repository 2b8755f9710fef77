//! The names of every Redis key and channel strand uses, under
//! `--redis-prefix` (`P` below). Pure; the Lua scripts build the same
//! names from the prefix (see [`crate::broker::redis::scripts`]).
//!
//! | name | type | holds |
//! |---|---|---|
//! | `P:room:R:meta` | hash | `e` the room's epoch, `s` its last `seq` |
//! | `P:room:R:hist` | stream | the last `--room-history` messages, entry ID `seq-0` |
//! | `P:room:R:who` | hash | members: `INSTANCE:CONN` → dialect (`j`/`t`) and name |
//! | `P:rooms` | set | rooms with members |
//! | `P:clients` | hash | hub clients: `client_id` → `INSTANCE:CONN` |
//! | `P:instances` | sorted set | live instances, scored by when they expire (ms, Redis time) |
//! | `P:inst:I:who` | hash | instance I's members: `CONN|ROOM` → dialect and name |
//! | `P:inst:I:clients` | set | instance I's hub clients |
//! | `P:inst:I:reaped` | string | I was declared dead and its clients announced gone |
//! | `P:log:all` | stream | the last ~1,000 events for every hub client |
//! | `P:inst:I:inbox` | stream | the last ~1,000 events for instance I |
//! | `P:ch:room:R` | channel | room R's events |
//! | `P:ch:all` | channel | events for every hub client |
//! | `P:ch:inst:I` | channel | instance I's control messages |

/// Key and channel names for one prefix and one instance.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    instance: String,
}

impl Keys {
    /// The names under `prefix` for instance `instance`.
    pub fn new(prefix: &str, instance: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            instance: instance.to_string(),
        }
    }

    /// The prefix (the scripts build names from it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A room's epoch and sequence.
    pub fn meta(&self, room: &str) -> String {
        format!("{}:room:{room}:meta", self.prefix)
    }

    /// A room's history stream.
    pub fn history(&self, room: &str) -> String {
        format!("{}:room:{room}:hist", self.prefix)
    }

    /// A room's members on every instance.
    pub fn who(&self, room: &str) -> String {
        format!("{}:room:{room}:who", self.prefix)
    }

    /// The rooms with members.
    pub fn rooms(&self) -> String {
        format!("{}:rooms", self.prefix)
    }

    /// Hub clients, by id.
    pub fn clients(&self) -> String {
        format!("{}:clients", self.prefix)
    }

    /// Live instances.
    pub fn instances(&self) -> String {
        format!("{}:instances", self.prefix)
    }

    /// This instance's members.
    pub fn own_who(&self) -> String {
        format!("{}:inst:{}:who", self.prefix, self.instance)
    }

    /// This instance's hub clients.
    pub fn own_clients(&self) -> String {
        format!("{}:inst:{}:clients", self.prefix, self.instance)
    }

    /// The log of events for every hub client.
    pub fn all_log(&self) -> String {
        format!("{}:log:all", self.prefix)
    }

    /// The log of this instance's events.
    pub fn own_inbox(&self) -> String {
        format!("{}:inst:{}:inbox", self.prefix, self.instance)
    }

    /// Room `room`'s channel.
    pub fn room_channel(&self, room: &str) -> String {
        format!("{}:ch:room:{room}", self.prefix)
    }

    /// The room a channel name belongs to, if it is a room channel.
    pub fn room_of_channel<'c>(&self, channel: &'c str) -> Option<&'c str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":ch:room:")
    }

    /// The channel for every hub client.
    pub fn all_channel(&self) -> String {
        format!("{}:ch:all", self.prefix)
    }

    /// This instance's control channel.
    pub fn own_channel(&self) -> String {
        format!("{}:ch:inst:{}", self.prefix, self.instance)
    }

    /// How this instance's connection `conn` is named in shared hashes.
    pub fn holder(&self, conn: u64) -> String {
        format!("{}:{conn}", self.instance)
    }
}

/// A fresh instance id: 16 hex digits from the same randomness as epochs.
pub fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_nest_under_the_prefix() {
        let k = Keys::new("p", "i1");
        assert_eq!(k.meta("r"), "p:room:r:meta");
        assert_eq!(k.own_who(), "p:inst:i1:who");
        assert_eq!(k.holder(7), "i1:7");
        assert_eq!(k.room_of_channel(&k.room_channel("a.b")), Some("a.b"));
        assert_eq!(k.room_of_channel(&k.all_channel()), None);
        assert_eq!(k.room_of_channel("q:ch:room:r"), None);
        assert_ne!(new_instance_id(), new_instance_id());
    }
}
