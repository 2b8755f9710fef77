//! The Lua scripts: every change to shared state is one script, so it is
//! atomic and its notice goes out in the same step (Redis runs one script
//! at a time, and a subscriber receives a channel's messages in the order
//! they were published). Key names follow [`crate::broker::redis::keys`];
//! scripts that touch other instances' or rooms' keys build them from the
//! prefix, which ties strand to a single Redis (not Cluster).
//!
//! Time is Redis's own (`TIME`), so instances' clocks never disagree about
//! who is alive. An instance is alive while its score in `P:instances` is
//! in the future; every read of presence skips members of dead instances,
//! and the first live instance to notice one reaps it ([`Scripts::beat`]).

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local alive_cache = {}
local function alive(instances, inst, now)
  local a = alive_cache[inst]
  if a == nil then
    local s = redis.call('ZSCORE', instances, inst)
    a = (s ~= false) and (tonumber(s) > now)
    alive_cache[inst] = a
  end
  return a
end
-- An event for every hub client, or for one instance: kept in a capped log
-- (so a subscriber that reconnects reads what it missed) and published
-- with its log ID.
local function logged(stream, channel, body)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', 1000, '*', 'e', body)
  redis.call('EXPIRE', stream, 86400)
  redis.call('PUBLISH', channel, id .. ' ' .. body)
end
local function all_event(prefix, body)
  logged(prefix .. ':log:all', prefix .. ':ch:all', body)
end
local function inst_event(prefix, inst, body)
  logged(prefix .. ':inst:' .. inst .. ':inbox', prefix .. ':ch:inst:' .. inst, body)
end
local function inst_of(holder)
  return string.match(holder, '^([^:]+):')
end
-- Members of a room's WHO hash on live instances; with TEXT, text members
-- only.
local function count_alive(instances, who_key, now, text)
  local n = 0
  local who = redis.call('HGETALL', who_key)
  for i = 1, #who, 2 do
    if (not text or string.sub(who[i + 1], 1, 1) == 't')
        and alive(instances, inst_of(who[i]), now) then
      n = n + 1
    end
  end
  return n
end
local function room_notice(prefix, room, kind, name, who)
  redis.call('PUBLISH', prefix .. ':ch:room:' .. room,
    '{"k":"' .. kind .. '","n":"' .. name .. '","w":"' .. who .. '"}')
end
-- A room's epoch. A new one (NEW, with an empty history) starts when the
-- room has none, or when its count went back: below a seq this instance
-- knows was handed out in the same epoch (ARGV from FIRST on: epoch, seq,
-- epoch, seq), so Redis lost messages someone was given (a failover, a
-- restart without its data). Never one (epoch, seq) for two messages.
local function room_epoch(meta, history, new, first)
  local m = redis.call('HMGET', meta, 'e', 's')
  local epoch, top = m[1], tonumber(m[2] or '0')
  local went_back = false
  for i = first, first + 2, 2 do
    if epoch and ARGV[i] == epoch and top < tonumber(ARGV[i + 1]) then
      went_back = true
    end
  end
  if epoch and not went_back then return epoch end
  redis.call('HSET', meta, 'e', new, 's', 0)
  redis.call('DEL', history)
  return new
end
-- Removes member FIELD (CONN|ROOM) of instance INST, announcing it.
local function leave_member(prefix, inst, field, value)
  local conn, room = string.match(field, '^(%d+)|(.+)$')
  if not conn then return end
  local who = prefix .. ':room:' .. room .. ':who'
  if redis.call('HDEL', who, inst .. ':' .. conn) == 1 then
    if redis.call('HLEN', who) == 0 then
      redis.call('SREM', prefix .. ':rooms', room)
    end
    room_notice(prefix, room, 'l', string.sub(value, 2), inst .. ':' .. conn)
  end
end
-- Removes everything instance D registered, announcing each member's leave
-- and each hub client's user_left, as if they had disconnected.
local function reap(prefix, d)
  local who_key = prefix .. ':inst:' .. d .. ':who'
  local who = redis.call('HGETALL', who_key)
  for i = 1, #who, 2 do
    leave_member(prefix, d, who[i], who[i + 1])
  end
  local clients = prefix .. ':clients'
  local ck = prefix .. ':inst:' .. d .. ':clients'
  for _, id in ipairs(redis.call('SMEMBERS', ck)) do
    local h = redis.call('HGET', clients, id)
    if h and inst_of(h) == d then
      redis.call('HDEL', clients, id)
      all_event(prefix, '{"k":"ul","id":"' .. id .. '"}')
    end
  end
  redis.call('DEL', who_key, ck, prefix .. ':inst:' .. d .. ':inbox')
  redis.call('ZREM', prefix .. ':instances', d)
end
"#;

/// A room message. KEYS: meta, history. ARGV: epoch for a new sequence,
/// history length, history TTL (s), channel, BODY, then what this instance
/// knows was handed out (see `room_epoch`). Returns {seq, epoch}.
const PUBLISH: &str = r#"
local epoch = room_epoch(KEYS[1], KEYS[2], ARGV[1], 6)
local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
if tonumber(ARGV[2]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'd', ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], seq .. ' ' .. epoch .. ' ' .. ARGV[5])
return {seq, epoch}
"#;

/// A join. KEYS: meta, history, who, rooms, own who. ARGV: epoch for a new
/// sequence, history TTL, channel, holder (INST:CONN), value (dialect and
/// name), room, own field (CONN|ROOM), since (-1: none), name, then what
/// this instance knows was handed out (see `room_epoch`).
/// Returns {epoch, last seq, entries after since}.
const JOIN: &str = r#"
local epoch = room_epoch(KEYS[1], KEYS[2], ARGV[1], 10)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('HSET', KEYS[5], ARGV[7], ARGV[5])
redis.call('PUBLISH', ARGV[3],
  '{"k":"j","n":"' .. ARGV[9] .. '","w":"' .. ARGV[4] .. '"}')
local seq = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
local since = tonumber(ARGV[8])
local entries = {}
if since >= 0 and since < seq then
  entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+')
end
return {epoch, seq, entries}
"#;

/// A leave. ARGV: prefix, instance, own field (CONN|ROOM). Returns 1 when
/// the member was registered (and its leave is announced).
const LEAVE: &str = r#"
local prefix, inst, field = ARGV[1], ARGV[2], ARGV[3]
local own = prefix .. ':inst:' .. inst .. ':who'
local value = redis.call('HGET', own, field)
if not value then return 0 end
redis.call('HDEL', own, field)
leave_member(prefix, inst, field, value)
return 1
"#;

/// Where delivery stands for a room after a gap or a reconnect. KEYS:
/// meta, history. ARGV: the epoch here ('' for none), the last seq
/// delivered here (-1 for none), an epoch for a new sequence, then what
/// this instance knows was handed out (see `room_epoch`: a count that went
/// back starts a new epoch here, before anything more is numbered).
/// Returns {} when the room has no sequence, else {epoch, last seq,
/// entries}: those after the last seq here in the same epoch, every held
/// one in another.
const REPAIR: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local epoch = room_epoch(KEYS[1], KEYS[2], ARGV[3], 4)
local top = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
local from = nil
if epoch == ARGV[1] and tonumber(ARGV[2]) >= 0 then
  from = tonumber(ARGV[2]) + 1
elseif ARGV[1] ~= '' then
  from = 1
end
local entries = {}
if from and from <= top then
  entries = redis.call('XRANGE', KEYS[2], from .. '-0', '+')
end
return {epoch, top, entries}
"#;

/// A `POST /broadcast` to a room. KEYS: who, instances. ARGV: channel,
/// notice. Returns the members reached.
const BROADCAST_ROOM: &str = r#"
local n = count_alive(KEYS[2], KEYS[1], now_ms(), false)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
"#;

/// A `POST /broadcast` to everyone. KEYS: clients, rooms, instances. ARGV:
/// prefix, event. Returns hub clients plus text members reached.
const BROADCAST_ALL: &str = r#"
local now = now_ms()
local n = 0
for _, h in ipairs(redis.call('HVALS', KEYS[1])) do
  if alive(KEYS[3], inst_of(h), now) then n = n + 1 end
end
for _, room in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  n = n + count_alive(KEYS[3], ARGV[1] .. ':room:' .. room .. ':who', now, true)
end
all_event(ARGV[1], ARGV[2])
return n
"#;

/// A message to every hub client. ARGV: prefix, event.
const GLOBAL: &str = r#"
all_event(ARGV[1], ARGV[2])
return 1
"#;

/// A hub client connects. KEYS: clients, own clients. ARGV: id, holder,
/// prefix. Announces it, and tells the instance holding an older
/// connection with the id to close it (4001).
const CONNECT: &str = r#"
local id, holder, prefix = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[1], id)
redis.call('HSET', KEYS[1], id, holder)
redis.call('SADD', KEYS[2], id)
all_event(prefix, '{"k":"uj","id":"' .. id .. '"}')
if old and old ~= holder then
  local inst, conn = string.match(old, '^([^:]+):(%d+)$')
  if inst then
    if inst ~= inst_of(holder) then
      redis.call('SREM', prefix .. ':inst:' .. inst .. ':clients', id)
    end
    inst_event(prefix, inst, '{"k":"r","id":"' .. id .. '","conn":' .. conn .. '}')
  end
end
return 1
"#;

/// A hub client disconnects. KEYS: clients, own clients. ARGV: id, holder,
/// prefix. Announces it only while it held the id.
const DISCONNECT: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
all_event(ARGV[3], '{"k":"ul","id":"' .. ARGV[1] .. '"}')
return 1
"#;

/// A direct message. KEYS: clients, instances. ARGV: to, prefix, event.
/// Returns 1 when `to` is connected to a live instance (and was sent it).
const DIRECT: &str = r#"
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then return 0 end
local inst = inst_of(h)
if not inst or not alive(KEYS[2], inst, now_ms()) then return 0 end
inst_event(ARGV[2], inst, ARGV[3])
return 1
"#;

/// Presence. KEYS: who, instances. Returns the names of live members.
const PRESENCE: &str = r#"
local now = now_ms()
local out = {}
local who = redis.call('HGETALL', KEYS[1])
for i = 1, #who, 2 do
  if alive(KEYS[2], inst_of(who[i]), now) then
    table.insert(out, string.sub(who[i + 1], 2))
  end
end
return out
"#;

/// A room's count. KEYS: who, instances.
const COUNT: &str = r#"
return count_alive(KEYS[2], KEYS[1], now_ms(), false)
"#;

/// Every room with live members. KEYS: rooms, instances. ARGV: prefix.
/// Returns {room, count, room, count, ...}.
const ROOMS: &str = r#"
local now = now_ms()
local out = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = count_alive(KEYS[2], ARGV[1] .. ':room:' .. room .. ':who', now, false)
  if n > 0 then
    table.insert(out, room)
    table.insert(out, n)
  end
end
return out
"#;

/// An instance's heartbeat. KEYS: instances. ARGV: instance, ms until it
/// counts as dead, prefix, seconds to keep its keys. Renews its liveness,
/// reaps every instance whose liveness ran out (once: whoever gets there
/// first), and returns {1 if it was not registered, 1 if it had been
/// reaped itself, instances reaped}.
const BEAT: &str = r#"
local now = now_ms()
local inst, prefix, keep = ARGV[1], ARGV[3], ARGV[4]
local new = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), inst)
local tomb = redis.call('EXISTS', prefix .. ':inst:' .. inst .. ':reaped')
redis.call('EXPIRE', prefix .. ':inst:' .. inst .. ':who', keep)
redis.call('EXPIRE', prefix .. ':inst:' .. inst .. ':clients', keep)
redis.call('EXPIRE', prefix .. ':inst:' .. inst .. ':inbox', keep)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
for _, d in ipairs(dead) do
  reap(prefix, d)
  redis.call('SET', prefix .. ':inst:' .. d .. ':reaped', '1', 'EX', keep)
end
return {new, tomb, #dead}
"#;

/// Registers everything this instance holds, after Redis lost it, after
/// the instance was reaped, or after changes made while Redis was away.
/// ARGV: prefix, instance, announce all ('1': it was reaped, so every join
/// is news), then the count of members and per member: CONN|ROOM, value,
/// announce ('1': joined while Redis was away); then the count of hub
/// clients and per client: id, conn, announce. Registrations it no longer
/// holds are removed and announced. Returns the ids that another live
/// instance took meanwhile (this instance closes its own with 4001).
const RESYNC: &str = r#"
local prefix, inst, all = ARGV[1], ARGV[2], ARGV[3] == '1'
local now = now_ms()
local instances = prefix .. ':instances'
local own = prefix .. ':inst:' .. inst .. ':who'
local i = 5
local want = {}
for _ = 1, tonumber(ARGV[4]) do
  local field, value, flag = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  want[field] = true
  local conn, room = string.match(field, '^(%d+)|(.+)$')
  if conn then
    local added = redis.call('HSET', prefix .. ':room:' .. room .. ':who', inst .. ':' .. conn, value)
    redis.call('SADD', prefix .. ':rooms', room)
    redis.call('HSET', own, field, value)
    if added == 1 and (all or flag == '1') then
      room_notice(prefix, room, 'j', string.sub(value, 2), inst .. ':' .. conn)
    end
  end
end
local have = redis.call('HGETALL', own)
for j = 1, #have, 2 do
  if not want[have[j]] then
    leave_member(prefix, inst, have[j], have[j + 1])
    redis.call('HDEL', own, have[j])
  end
end
local clients = prefix .. ':clients'
local ck = prefix .. ':inst:' .. inst .. ':clients'
local wanted = {}
local taken = {}
local nc = tonumber(ARGV[i])
i = i + 1
for _ = 1, nc do
  local id, conn, flag = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local mine = inst .. ':' .. conn
  local h = redis.call('HGET', clients, id)
  if h and h ~= mine and inst_of(h) ~= inst and alive(instances, inst_of(h), now) then
    table.insert(taken, id)
  else
    wanted[id] = true
    redis.call('HSET', clients, id, mine)
    redis.call('SADD', ck, id)
    if (not h) and (all or flag == '1') then
      all_event(prefix, '{"k":"uj","id":"' .. id .. '"}')
    end
  end
end
for _, id in ipairs(redis.call('SMEMBERS', ck)) do
  if not wanted[id] then
    redis.call('SREM', ck, id)
    local h = redis.call('HGET', clients, id)
    if h and inst_of(h) == inst then
      redis.call('HDEL', clients, id)
      all_event(prefix, '{"k":"ul","id":"' .. id .. '"}')
    end
  end
end
redis.call('DEL', prefix .. ':inst:' .. inst .. ':reaped')
return taken
"#;

/// A clean stop: the instance removes itself as a reaper would (its
/// connections have all ended, so normally nothing is left to announce).
/// ARGV: prefix, instance.
const BYE: &str = r#"
reap(ARGV[1], ARGV[2])
return 1
"#;

/// Every script, loaded once per process.
#[derive(Debug)]
pub struct Scripts {
    /// See [`PUBLISH`].
    pub publish: Script,
    /// See [`JOIN`].
    pub join: Script,
    /// See [`LEAVE`].
    pub leave: Script,
    /// See [`REPAIR`].
    pub repair: Script,
    /// See [`BROADCAST_ROOM`].
    pub broadcast_room: Script,
    /// See [`BROADCAST_ALL`].
    pub broadcast_all: Script,
    /// See [`GLOBAL`].
    pub global: Script,
    /// See [`CONNECT`].
    pub connect: Script,
    /// See [`DISCONNECT`].
    pub disconnect: Script,
    /// See [`DIRECT`].
    pub direct: Script,
    /// See [`PRESENCE`].
    pub presence: Script,
    /// See [`COUNT`].
    pub count: Script,
    /// See [`ROOMS`].
    pub rooms: Script,
    /// See [`BEAT`].
    pub beat: Script,
    /// See [`RESYNC`].
    pub resync: Script,
    /// See [`BYE`].
    pub bye: Script,
}

impl Scripts {
    /// Compiles (hashes) every script.
    pub fn new() -> Scripts {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            publish: s(PUBLISH),
            join: s(JOIN),
            leave: s(LEAVE),
            repair: s(REPAIR),
            broadcast_room: s(BROADCAST_ROOM),
            broadcast_all: s(BROADCAST_ALL),
            global: s(GLOBAL),
            connect: s(CONNECT),
            disconnect: s(DISCONNECT),
            direct: s(DIRECT),
            presence: s(PRESENCE),
            count: s(COUNT),
            rooms: s(ROOMS),
            beat: s(BEAT),
            resync: s(RESYNC),
            bye: s(BYE),
        }
    }

    /// Every script, to load them on a new connection.
    pub fn all(&self) -> [&Script; 16] {
        [
            &self.publish,
            &self.global,
            &self.join,
            &self.leave,
            &self.repair,
            &self.broadcast_room,
            &self.broadcast_all,
            &self.connect,
            &self.disconnect,
            &self.direct,
            &self.presence,
            &self.count,
            &self.rooms,
            &self.beat,
            &self.resync,
            &self.bye,
        ]
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}
