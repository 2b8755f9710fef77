//! Where a shared room's sequence stands on this instance: the epoch and
//! the last `seq` delivered here. It decides, for each message that
//! arrives and for each repair, what is delivered, what is a duplicate,
//! what is missing, and when members must be told that something was lost.
//! It also remembers the highest `seq` this instance's own publishes were
//! given, so that the scripts can tell when Redis's count went back (see
//! [`Sequence::known`]). Pure: the room holds it under its lock and does
//! the delivering.

use crate::broker::redis::event::Said;

/// The epoch and last `seq` delivered here, if known.
#[derive(Debug, Default)]
pub struct Sequence {
    epoch: Option<String>,
    last: Option<u64>,
    /// The epoch and `seq` Redis gave this instance's latest publish.
    published: Option<(String, u64)>,
}

/// What to do with a message that arrived on the room's channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Deliver it; with `lost`, first tell everyone that messages may have
    /// been lost (the room's epoch changed).
    Deliver {
        /// The epoch changed since the last message here.
        lost: bool,
    },
    /// Delivered already (a repair brought it first).
    Duplicate,
    /// Messages after `after` are missing: repair first.
    Gap {
        /// The last `seq` delivered here.
        after: u64,
    },
}

/// What a repair delivers.
#[derive(Debug)]
pub struct Repair<'h> {
    /// Tell everyone first that messages were lost.
    pub lost: bool,
    /// The room's epoch now.
    pub epoch: String,
    /// The missing messages, in order.
    pub deliver: Vec<&'h (u64, Said)>,
    /// The last `seq` accounted for once they are delivered.
    pub end: u64,
}

impl Sequence {
    /// The epoch and last `seq` delivered here.
    pub fn position(&self) -> (Option<String>, Option<u64>) {
        (self.epoch.clone(), self.last)
    }

    /// Redis numbered a publish of this instance `seq` in `epoch`.
    pub fn published(&mut self, epoch: &str, seq: u64) {
        match &mut self.published {
            Some((e, s)) if e == epoch => *s = (*s).max(seq),
            _ => self.published = Some((epoch.to_string(), seq)),
        }
    }

    /// What this instance knows Redis handed out: the last `seq` delivered
    /// here and the last its own publishes were given, each with its
    /// epoch. A room whose count in Redis is below either, in the same
    /// epoch, lost messages someone was given: the scripts then start a
    /// new epoch before numbering anything.
    pub fn known(&self) -> [(String, u64); 2] {
        let delivered = match (&self.epoch, self.last) {
            (Some(e), Some(s)) => (e.clone(), s),
            _ => (String::new(), 0),
        };
        [
            delivered,
            self.published.clone().unwrap_or((String::new(), 0)),
        ]
    }

    /// The epoch of the last message delivered here.
    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    /// The last `seq` delivered here.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// A join read the room at `last` in `epoch`: where delivery starts
    /// when nothing was known here.
    pub fn start(&mut self, epoch: &str, last: u64) {
        if self.last.is_none() {
            self.epoch = Some(epoch.to_string());
            self.last = Some(last);
        }
    }

    /// Message `seq` of `epoch` arrived live.
    pub fn arrive(&mut self, seq: u64, epoch: &str) -> Arrival {
        let mut lost = false;
        if self.epoch.as_deref() != Some(epoch) {
            // The room's sequence restarted (its history expired or Redis
            // lost it): what came before may be lost.
            lost = self.epoch.is_some();
            self.epoch = Some(epoch.to_string());
            self.last = None;
        }
        match self.last {
            Some(last) if seq <= last => Arrival::Duplicate,
            Some(last) if seq > last + 1 => Arrival::Gap { after: last },
            _ => Arrival::Deliver { lost },
        }
    }

    /// Message `seq` was delivered here.
    pub fn delivered(&mut self, seq: u64) {
        self.last = Some(self.last.map_or(seq, |last| last.max(seq)));
    }

    /// A repair after a gap (`until`: the `seq` that arrived too early)
    /// or a new subscriber connection (`until` None): `meta` is the room's
    /// epoch and last `seq` in Redis (None: it has no sequence there any
    /// more), `held` the history read for this position. None when there
    /// is nothing to deliver or tell.
    pub fn repair<'h>(
        &mut self,
        meta: Option<(String, u64)>,
        held: &'h [(u64, Said)],
        until: Option<u64>,
    ) -> Option<Repair<'h>> {
        let Some((epoch, top)) = meta else {
            // The next message's new epoch tells everyone of the loss.
            self.last = None;
            return None;
        };
        let end = until.map_or(top, |seq| seq.saturating_sub(1));
        let repair = match (self.epoch.as_deref(), self.last) {
            (Some(here), Some(last)) if here == epoch => {
                let deliver: Vec<_> = held
                    .iter()
                    .filter(|(seq, _)| *seq > last && *seq <= end)
                    .collect();
                let complete =
                    end <= last || deliver.first().is_some_and(|(seq, _)| *seq == last + 1);
                Repair {
                    lost: !complete,
                    epoch,
                    deliver,
                    end: end.max(last),
                }
            }
            (Some(here), _) => {
                let lost = here != epoch;
                // The count starts again in this epoch.
                self.last = None;
                Repair {
                    lost,
                    deliver: held.iter().filter(|(seq, _)| *seq <= end).collect(),
                    epoch,
                    end,
                }
            }
            // Nothing delivered here yet: every member here joined after
            // the position its own join read.
            (None, _) => Repair {
                lost: false,
                epoch,
                deliver: Vec::new(),
                end,
            },
        };
        self.epoch = Some(repair.epoch.clone());
        Some(repair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn held(seqs: &[u64]) -> Vec<(u64, Said)> {
        seqs.iter()
            .map(|s| {
                let said = Said {
                    name: "a".into(),
                    content: s.to_string(),
                    timestamp: json!(0),
                };
                (*s, said)
            })
            .collect()
    }

    #[test]
    fn arrivals_in_order_repeated_early_and_in_a_new_epoch() {
        let mut s = Sequence::default();
        s.start("E", 3);
        assert_eq!(s.arrive(4, "E"), Arrival::Deliver { lost: false });
        s.delivered(4);
        assert_eq!(s.arrive(4, "E"), Arrival::Duplicate);
        assert_eq!(s.arrive(7, "E"), Arrival::Gap { after: 4 });
        assert_eq!(s.arrive(1, "F"), Arrival::Deliver { lost: true });
    }

    #[test]
    fn a_repair_delivers_what_is_missing_and_says_what_is_gone() {
        let mut s = Sequence::default();
        s.start("E", 1);
        let h = held(&[2, 3, 4]);
        let r = s.repair(Some(("E".into(), 4)), &h, Some(4)).unwrap();
        assert!(!r.lost);
        assert_eq!(
            r.deliver.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(r.end, 3);
        let h = held(&[6, 7]);
        let mut s = Sequence::default();
        s.start("E", 3);
        let r = s.repair(Some(("E".into(), 7)), &h, None).unwrap();
        assert!(r.lost, "4 and 5 are gone");
        let h = held(&[1, 2]);
        let r = s.repair(Some(("F".into(), 2)), &h, None).unwrap();
        assert!(
            r.lost && r.deliver.len() == 2,
            "another epoch: all it holds"
        );
        assert_eq!(s.last(), None, "counted again from its first delivery");
        assert!(s.repair(None, &h, None).is_none());
        assert_eq!(s.last(), None);
    }

    #[test]
    fn what_is_known_is_the_delivered_and_the_published_high_water() {
        let mut s = Sequence::default();
        assert_eq!(s.known(), [(String::new(), 0), (String::new(), 0)]);
        s.start("E", 3);
        s.published("E", 5);
        s.published("E", 4);
        assert_eq!(s.known(), [("E".into(), 3), ("E".into(), 5)]);
        s.published("F", 1);
        assert_eq!(s.known()[1], ("F".into(), 1));
    }
}
