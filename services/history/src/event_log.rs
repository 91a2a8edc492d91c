//! A run's history kept in memory the way it is stored: encoded batches. Decoded events
//! take about ten times the space (every event carries the largest attribute variant's
//! room), and only the events a caller asks for need decoding.

use prost::Message;
use temper_proto::temporal::api::history::v1::{History, HistoryEvent};

#[derive(Debug, Default, Clone)]
pub struct EventLog {
    /// (first event id, one past the last event id, encoded `History`).
    batches: Vec<(i64, i64, Vec<u8>)>,
}

impl EventLog {
    pub fn from_events(events: &[HistoryEvent]) -> Self {
        let mut log = Self::default();
        log.append(events);
        log
    }

    /// Add the next batch; its first event must follow the last one held.
    pub fn append(&mut self, events: &[HistoryEvent]) {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return;
        };
        let encoded = History {
            events: events.to_vec(),
        }
        .encode_to_vec();
        self.batches
            .push((first.event_id, last.event_id + 1, encoded));
    }

    /// About how much memory the log takes: its encoded batches and their bookkeeping.
    pub fn bytes(&self) -> usize {
        self.batches
            .iter()
            .map(|b| b.2.capacity() + std::mem::size_of::<(i64, i64, Vec<u8>)>())
            .sum()
    }

    /// The id the next event will get (1 for an empty log).
    pub fn next_event_id(&self) -> i64 {
        self.batches.last().map(|b| b.1).unwrap_or(1)
    }

    /// Events with `from <= id < to`.
    pub fn read(&self, from: i64, to: i64) -> Result<Vec<HistoryEvent>, prost::DecodeError> {
        let mut out = Vec::new();
        for (first, end, bytes) in &self.batches {
            if *end <= from || *first >= to {
                continue;
            }
            for ev in History::decode(bytes.as_slice())?.events {
                if ev.event_id >= from && ev.event_id < to {
                    out.push(ev);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64) -> HistoryEvent {
        HistoryEvent {
            event_id: id,
            ..Default::default()
        }
    }

    #[test]
    fn reads_ranges_across_batches() {
        let mut log = EventLog::from_events(&[ev(1), ev(2)]);
        log.append(&[ev(3), ev(4), ev(5)]);
        log.append(&[]);
        assert_eq!(log.next_event_id(), 6);
        let ids = |v: Vec<HistoryEvent>| v.iter().map(|e| e.event_id).collect::<Vec<_>>();
        assert_eq!(ids(log.read(1, 6).expect("decodes")), vec![1, 2, 3, 4, 5]);
        assert_eq!(ids(log.read(2, 4).expect("decodes")), vec![2, 3]);
        assert_eq!(ids(log.read(5, 6).expect("decodes")), vec![5]);
        assert!(log.read(6, 9).expect("decodes").is_empty());
        assert_eq!(EventLog::default().next_event_id(), 1);
    }
}
