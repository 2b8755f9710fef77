//! What reaches a room from its channel, on the subscriber thread: messages
//! in `seq` order (a gap is asked for, [`Room::repair`] fills it), and the
//! join, leave and broadcast notices, which settle this instance's joins
//! and leaves on their way through Redis.

use super::{Next, Room, State};
use crate::broker::redis::event::{Notice, RoomEvent, Said};
use crate::broker::redis::sequence::Arrival;
use crate::hub::audience::{Audience, Frames};
use crate::hub::deferred;
use crate::hub::member::{Dialect, Fanout};
use crate::hub::wire;
use std::sync::Arc;

impl Room {
    /// An event from the room's channel.
    pub fn on_event(self: &Arc<Self>, event: &RoomEvent) -> Next {
        let mut state = self.lock();
        match event {
            RoomEvent::Message { seq, epoch, said } => match state.sequence.arrive(*seq, epoch) {
                Arrival::Duplicate => {}
                Arrival::Gap { after } => {
                    return Next::Gap {
                        after,
                        epoch: epoch.clone(),
                    }
                }
                Arrival::Deliver { lost } => {
                    if lost {
                        self.tell_lost(&mut state, epoch);
                    }
                    self.deliver_message(&mut state, *seq, epoch, said);
                }
            },
            RoomEvent::Notice(notice) => self.on_notice(&mut state, notice),
        }
        Next::Done
    }

    fn on_notice(self: &Arc<Self>, state: &mut State, notice: &Notice) {
        let own = |who: &str| {
            who.strip_prefix(self.ctx.instance.as_str())
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|conn| conn.parse::<u64>().ok())
        };
        match notice {
            Notice::Joined { name, who } => {
                let frames = wire::join_notice(name, &self.name);
                if let Some(conn) = own(who) {
                    if let Some(pending) = state.pending.get_mut(&conn) {
                        if pending.answered.is_some() {
                            self.settle(state, conn, false);
                        } else {
                            // The others hear it now; the joiner, once
                            // its answer is out, with what follows.
                            self.to_everyone(state, frames, true);
                            if let Some(pending) = state.pending.get_mut(&conn) {
                                pending.heard = Some(Vec::new());
                            }
                        }
                        return;
                    }
                    if state.settled.remove(&conn) {
                        return;
                    }
                    if state.unheard.remove(&conn) {
                        // Joined while Redis was away: the others here hear
                        // of it now, in the order every instance does.
                        if let Some((member, _)) = state.audience.remove(conn, None) {
                            let after = state.sequence.last().unwrap_or(0);
                            let mut fanout = Self::to_bystanders(state, &frames);
                            fanout.add(state.audience.join(
                                member,
                                after,
                                frames,
                                self.scheduler(),
                            ));
                            self.ctx.stats.count(fanout);
                        }
                        return;
                    }
                    if state.audience.get(conn).is_some() {
                        return;
                    }
                }
                self.to_everyone(state, frames, true);
            }
            Notice::Left { name, who } => {
                let frames = wire::leave_notice(name, &self.name);
                if let Some(member) = own(who).and_then(|c| state.leavers.remove(&c)) {
                    self.ctx.stats.count(Audience::send_one(
                        &member.outbox,
                        member.dialect,
                        &frames,
                    ));
                }
                self.to_everyone(state, frames, true);
            }
            Notice::Broadcast { message } => {
                let frames = wire::broadcast_frames(
                    &self.name,
                    message,
                    false,
                    state.audience.text_members() > 0,
                );
                self.to_everyone(state, frames, false);
            }
        }
    }

    /// Queues `frames` to the audience (as a notice when `notice`), to the
    /// leavers, and to the joiners waiting for their answer.
    fn to_everyone(self: &Arc<Self>, state: &mut State, frames: Frames, notice: bool) {
        let mut fanout = Self::to_bystanders(state, &frames);
        fanout.add(if notice {
            state.audience.notice(frames, self.scheduler())
        } else {
            state.audience.deliver(
                frames,
                self.ctx.window,
                deferred::note(self),
                self.scheduler(),
            )
        });
        self.ctx.stats.count(fanout);
    }

    /// Queues `frames` to those who hear the room without being in its
    /// audience: the leavers, and the joiners that heard their own notice
    /// and wait for their answer.
    pub(super) fn to_bystanders(state: &mut State, frames: &Frames) -> Fanout {
        let mut fanout = Fanout::default();
        for member in state.leavers.values() {
            fanout.add(Audience::send_one(&member.outbox, member.dialect, frames));
        }
        for pending in state.pending.values_mut() {
            if let Some(after) = pending.heard.as_mut() {
                after.push(frames.clone());
            }
        }
        fanout
    }

    pub(super) fn render_json(&self, said: &Said, seq: u64, epoch: &str) -> String {
        wire::room_message(
            &said.name,
            &said.content,
            &self.name,
            seq,
            epoch,
            &said.timestamp,
        )
    }

    fn deliver_message(self: &Arc<Self>, state: &mut State, seq: u64, epoch: &str, said: &Said) {
        state.sequence.delivered(seq);
        // Encoded once per dialect, and only for a dialect someone speaks.
        let frames = Frames {
            json: state
                .speaks(Dialect::Json)
                .then(|| wire::frame(&self.render_json(said, seq, epoch))),
            text: state
                .speaks(Dialect::Text)
                .then(|| wire::frame(&wire::text_said(&said.name, &said.content))),
        };
        self.to_everyone(state, frames, false);
    }

    /// Tells everyone here that messages may have been lost, and that the
    /// room's epoch is now `epoch`.
    fn tell_lost(self: &Arc<Self>, state: &mut State, epoch: &str) {
        let frames = Frames {
            json: Some(wire::frame(&wire::recovery(&self.name, epoch, false))),
            text: Some(wire::frame(&wire::text_lost(&self.name))),
        };
        self.to_everyone(state, frames, false);
    }

    /// Repairs delivery here from the history: after a gap (`until`: the
    /// `seq` that arrived too early) or after the subscriber's connection
    /// was replaced (`until` None). `meta` is the room's epoch and last
    /// `seq` in Redis (`None`: Redis has no sequence for it any more),
    /// `held` the history the repair script read for this room's
    /// position. Delivers what was missed in order, says
    /// `recovered:false` where some of it is gone; after a new
    /// connection, also settles the joins and leaves whose notices may
    /// have been lost with the old one.
    pub fn repair(
        self: &Arc<Self>,
        meta: Option<(String, u64)>,
        held: &[(u64, Said)],
        until: Option<u64>,
    ) {
        let mut state = self.lock();
        if let Some(repair) = state.sequence.repair(meta, held, until) {
            if repair.lost {
                self.tell_lost(&mut state, &repair.epoch);
            }
            for (seq, said) in repair.deliver {
                self.deliver_message(&mut state, *seq, &repair.epoch, said);
            }
            state.sequence.delivered(repair.end);
        }
        if until.is_some() {
            return;
        }
        let answered: Vec<(u64, bool)> = state
            .pending
            .iter()
            .filter(|(_, p)| p.answered.is_some())
            .map(|(conn, p)| (*conn, p.heard.is_none()))
            .collect();
        for (conn, unheard) in answered {
            self.settle(&mut state, conn, unheard);
        }
        let leavers: Vec<u64> = state.leavers.keys().copied().collect();
        drop(state);
        for conn in leavers {
            self.release_leaver(conn);
        }
    }
}
