//! The tasks of one partition that wait in memory for a poller, in dispatch order: by
//! priority level first (level 1 before level 2...), and within a level shared among
//! fairness keys in proportion to their weights.
//!
//! Fair sharing is stride scheduling, the way Temporal's matching assigns fairness "passes":
//! each key has a pass (a virtual time); the key with the lowest pass gives the next task, and
//! its pass then grows by `STRIDE / weight` of that task. A key with weight 3 so gets three
//! dispatches for every one of a key with weight 1 while both have tasks. A key that had no
//! tasks starts again at the level's current virtual time: idleness earns no credit. Within
//! a key, tasks keep their order (FIFO, a task put back goes to the front).
//!
//! The common case, every task without a fairness key, keeps one FIFO queue per level and no
//! ordering structure at all: pushing and popping are a `VecDeque` operation plus a scan of
//! the five level counts.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::SystemTime;

use tokio::time::Instant;

use super::limit::{KeyLimits, apply_rate};
use crate::priority::{LEVELS, level_index};
use crate::task::Task;

/// What [`ReadyQueue::pop`] found.
#[derive(Debug)]
pub(crate) enum Pop {
    Task(Task),
    /// Every ready task's fairness key is at its rate limit: the first may go at the time
    /// given (`None`: not while the limit is 0).
    Held(Option<Instant>),
    Empty,
}

/// When the first of the held tasks may go: `held` so far (`None`: none held yet), and one
/// more held until `at` (`None`: while the limit stays 0).
fn sooner(held: Option<Option<Instant>>, at: Option<Instant>) -> Option<Instant> {
    match (held.flatten(), at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The weight a task of `key` counts with: a weight override of the task queue
/// (UpdateTaskQueueConfig) replaces the task's own.
fn weight_of(overrides: &HashMap<String, f32>, key: &str, task: &Task) -> f32 {
    match overrides.get(key) {
        Some(&w) if w > 0.0 => w,
        Some(_) => 1.0,
        None => task.info.priority.fairness_weight,
    }
}

/// Pass increment of a task of weight 1.
const STRIDE: f64 = 1_000_000.0;

fn stride(weight: f32) -> u64 {
    // Weights are at least 0.001 (see `TaskPriority`), so this stays far from overflow; a
    // huge weight still moves its key forward, so no key holds a level forever.
    ((STRIDE / f64::from(weight.max(0.001))) as u64).max(1)
}

#[derive(Default)]
struct Slot {
    key: String,
    pass: u64,
    tasks: VecDeque<Task>,
}

/// One priority level.
struct Level {
    /// Slot 0 is the key `""` and always exists; others come and go with their keys.
    slots: Vec<Slot>,
    /// Slot of each live non-empty key.
    index: HashMap<String, usize>,
    free: Vec<usize>,
    /// Non-empty slots by (pass, slot); kept only while some key other than `""` is live.
    active: BTreeSet<(u64, usize)>,
    /// The pass of the last task handed out.
    vtime: u64,
    len: usize,
}

impl Default for Level {
    fn default() -> Self {
        Self {
            slots: vec![Slot::default()],
            index: HashMap::new(),
            free: Vec::new(),
            active: BTreeSet::new(),
            vtime: 0,
            len: 0,
        }
    }
}

impl Level {
    fn keyed(&self) -> bool {
        !self.index.is_empty()
    }

    fn slot_for(&mut self, key: &str) -> usize {
        if key.is_empty() {
            return 0;
        }
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        if !self.keyed() && !self.slots[0].tasks.is_empty() {
            // From now on slots are ordered by pass; slot 0 joins the order.
            self.active.insert((self.slots[0].pass, 0));
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i];
        slot.key.clear();
        slot.key.push_str(key);
        slot.pass = 0;
        self.index.insert(key.to_owned(), i);
        i
    }

    fn push(&mut self, task: Task, front: bool) {
        let i = self.slot_for(&task.info.priority.fairness_key);
        let keyed = self.keyed();
        let vtime = self.vtime;
        let slot = &mut self.slots[i];
        let was_empty = slot.tasks.is_empty();
        if was_empty {
            slot.pass = slot.pass.max(vtime);
        }
        if front {
            slot.tasks.push_front(task);
        } else {
            slot.tasks.push_back(task);
        }
        if was_empty && keyed {
            self.active.insert((slot.pass, i));
        }
        self.len += 1;
    }

    /// The next task, skipping keys at their rate limit (with `limits`). `Held(at)` when
    /// every key with a task is at its limit.
    fn pop(
        &mut self,
        overrides: &HashMap<String, f32>,
        limits: Option<&mut KeyLimits>,
        now: Instant,
    ) -> Pop {
        let keyed = self.keyed();
        let i = match limits {
            None if keyed => match self.active.pop_first() {
                Some((_, i)) => i,
                None => return Pop::Empty,
            },
            None => 0,
            Some(limits) => {
                let mut held: Option<Option<Instant>> = None;
                let mut chosen = None;
                // No allocation per pop: the two iterators live on the stack.
                let mut by_pass;
                let mut only_unkeyed;
                let candidates: &mut dyn Iterator<Item = (u64, usize)> = if keyed {
                    by_pass = self.active.iter().copied();
                    &mut by_pass
                } else {
                    only_unkeyed = std::iter::once((0, 0));
                    &mut only_unkeyed
                };
                for (pass, i) in candidates {
                    let slot = &self.slots[i];
                    let Some(front) = slot.tasks.front() else {
                        continue;
                    };
                    let weight = weight_of(overrides, &slot.key, front);
                    match limits.try_take(&slot.key, weight, now) {
                        Ok(()) => {
                            chosen = Some((pass, i));
                            break;
                        }
                        Err(at) => {
                            held = Some(sooner(held, at));
                        }
                    }
                }
                match chosen {
                    Some(entry) => {
                        if keyed {
                            self.active.remove(&entry);
                        }
                        entry.1
                    }
                    None => return held.map_or(Pop::Empty, Pop::Held),
                }
            }
        };
        let slot = &mut self.slots[i];
        let Some(task) = slot.tasks.pop_front() else {
            return Pop::Empty;
        };
        self.len -= 1;
        self.vtime = slot.pass;
        slot.pass = slot
            .pass
            .saturating_add(stride(weight_of(overrides, &slot.key, &task)));
        if !slot.tasks.is_empty() {
            if keyed {
                self.active.insert((slot.pass, i));
            }
        } else if i != 0 {
            // The key has nothing left: forget it (it starts afresh when it comes back).
            let key = std::mem::take(&mut slot.key);
            self.index.remove(&key);
            slot.key = key;
            self.free.push(i);
            if !self.keyed() {
                // Only `""` is left: back to plain FIFO.
                self.active.clear();
                self.slots.truncate(1);
                self.free.clear();
            }
        }
        Pop::Task(task)
    }

    /// The task this level would hand out next.
    fn peek(&self) -> Option<&Task> {
        let i = if self.keyed() {
            self.active.first()?.1
        } else {
            0
        };
        self.slots[i].tasks.front()
    }
}

/// Ready tasks of one partition.
pub(crate) struct ReadyQueue {
    levels: [Level; LEVELS as usize],
    len: usize,
    /// Fairness key -> the weight its tasks get, whatever they carry (UpdateTaskQueueConfig).
    overrides: HashMap<String, f32>,
    /// The per fairness key rate limit, if one is set (UpdateTaskQueueConfig).
    key_limits: Option<KeyLimits>,
}

impl Default for ReadyQueue {
    fn default() -> Self {
        Self {
            levels: std::array::from_fn(|_| Level::default()),
            len: 0,
            overrides: HashMap::new(),
            key_limits: None,
        }
    }
}

impl ReadyQueue {
    /// Replace the fairness weight overrides; `false` if they were these already.
    pub(crate) fn set_weight_overrides(&mut self, overrides: &HashMap<String, f32>) -> bool {
        if self.overrides == *overrides {
            return false;
        }
        self.overrides.clone_from(overrides);
        true
    }

    /// Set (`Some`: tasks a second for a key of weight 1) or remove the per fairness key
    /// rate limit.
    pub(crate) fn set_key_rate_limit(&mut self, rate: Option<f64>, now: Instant) {
        apply_rate(&mut self.key_limits, rate, now, |rate, _| {
            KeyLimits::new(rate)
        });
    }

    /// Whether a per fairness key rate limit is set.
    pub(crate) fn key_limited(&self) -> bool {
        self.key_limits.is_some()
    }

    /// Take a dispatch of `task`'s fairness key, for a task handed out without going
    /// through this queue (a sync match). Always `Ok` without a key limit.
    pub(crate) fn take_key(&mut self, task: &Task, now: Instant) -> Result<(), Option<Instant>> {
        let Some(limits) = self.key_limits.as_mut() else {
            return Ok(());
        };
        let key = &task.info.priority.fairness_key;
        limits.try_take(key, weight_of(&self.overrides, key, task), now)
    }

    /// Give back the dispatch taken for `task` (by [`Self::take_key`] or [`Self::pop`])
    /// when it was not handed out after all.
    pub(crate) fn refund_key(&mut self, task: &Task) {
        if let Some(limits) = self.key_limits.as_mut() {
            limits.refund(&task.info.priority.fairness_key);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tasks waiting at `level`.
    pub(crate) fn level_len(&self, level: u8) -> usize {
        self.levels[level_index(level)].len
    }

    /// Tasks of fairness key `key` waiting at `level`.
    pub(crate) fn key_len(&self, level: u8, key: &str) -> usize {
        let l = &self.levels[level_index(level)];
        let slot = if key.is_empty() {
            Some(0)
        } else {
            l.index.get(key).copied()
        };
        slot.map_or(0, |i| l.slots[i].tasks.len())
    }

    /// The highest-priority level that has a task.
    pub(crate) fn best_level(&self) -> Option<u8> {
        self.levels
            .iter()
            .position(|l| l.len > 0)
            .map(|i| i as u8 + 1)
    }

    /// Queue a task behind the others of its key.
    pub(crate) fn push_back(&mut self, task: Task) {
        let i = task.info.priority.index();
        self.levels[i].push(task, false);
        self.len += 1;
    }

    /// Put a task that was not started back in front of the others of its key.
    pub(crate) fn push_front(&mut self, task: Task) {
        let i = task.info.priority.index();
        self.levels[i].push(task, true);
        self.len += 1;
    }

    /// The next task to hand out: from the highest level that has one whose fairness key
    /// is under its rate limit (with `limited` and a key limit set; a key at its limit holds
    /// back neither other keys nor lower levels).
    pub(crate) fn pop(&mut self, now: Instant, limited: bool) -> Pop {
        let mut held: Option<Option<Instant>> = None;
        for level in self.levels.iter_mut().filter(|l| l.len > 0) {
            let limits = if limited {
                self.key_limits.as_mut()
            } else {
                None
            };
            match level.pop(&self.overrides, limits, now) {
                Pop::Task(task) => {
                    self.len -= 1;
                    return Pop::Task(task);
                }
                Pop::Held(at) => {
                    held = Some(sooner(held, at));
                }
                Pop::Empty => {}
            }
        }
        held.map_or(Pop::Empty, Pop::Held)
    }

    /// When the task `level` would hand out next was created.
    pub(crate) fn level_next_create_time(&self, level: u8) -> Option<SystemTime> {
        self.levels[level_index(level)]
            .peek()
            .map(|t| t.info.create_time)
    }

    /// When the oldest of the tasks each level would hand out next was created.
    pub(crate) fn oldest_create_time(&self) -> Option<SystemTime> {
        self.levels
            .iter()
            .filter_map(|l| l.peek())
            .map(|t| t.info.create_time)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use temper_proto::temporal::api::common::v1::WorkflowExecution;

    use super::*;
    use crate::priority::TaskPriority;
    use crate::task::{Origin, TaskInfo};

    fn task(id: i64, level: u8, key: &str, weight: f32) -> Task {
        Task {
            info: TaskInfo {
                namespace_id: "ns".into(),
                execution: WorkflowExecution {
                    workflow_id: format!("wf-{id}"),
                    run_id: String::new(),
                },
                scheduled_event_id: id,
                attempt: 1,
                create_time: UNIX_EPOCH,
                expiry_time: None,
                directive: None,
                priority: TaskPriority {
                    level,
                    fairness_key: key.to_owned(),
                    fairness_weight: weight,
                },
            },
            origin: Origin::Memory,
        }
    }

    impl ReadyQueue {
        /// The next task, ignoring key limits.
        fn pop_any(&mut self) -> Option<Task> {
            match self.pop(Instant::now(), false) {
                Pop::Task(t) => Some(t),
                _ => None,
            }
        }
    }

    fn drain(q: &mut ReadyQueue) -> Vec<i64> {
        std::iter::from_fn(|| q.pop_any())
            .map(|t| t.info.scheduled_event_id)
            .collect()
    }

    #[test]
    fn levels_go_first_and_each_level_is_fifo() {
        let mut q = ReadyQueue::default();
        for (id, level) in [(1, 3), (2, 5), (3, 1), (4, 3), (5, 2), (6, 1)] {
            q.push_back(task(id, level, "", 1.0));
        }
        assert_eq!(q.len(), 6);
        assert_eq!(q.best_level(), Some(1));
        assert_eq!(q.level_len(3), 2);
        assert_eq!(drain(&mut q), vec![3, 6, 5, 1, 4, 2]);
        assert!(q.is_empty());
        assert_eq!(q.best_level(), None);
    }

    #[test]
    fn a_task_put_back_goes_first_again() {
        let mut q = ReadyQueue::default();
        q.push_back(task(1, 3, "", 1.0));
        q.push_back(task(2, 3, "", 1.0));
        let first = q.pop_any().expect("task");
        q.push_front(first);
        assert_eq!(drain(&mut q), vec![1, 2]);
    }

    #[test]
    fn keys_share_a_level_by_weight() {
        let mut q = ReadyQueue::default();
        for id in 0..400 {
            q.push_back(task(id, 3, "light", 1.0));
            q.push_back(task(1000 + id, 3, "heavy", 3.0));
        }
        let first: Vec<i64> = (0..400)
            .map(|_| q.pop_any().expect("task").info.scheduled_event_id)
            .collect();
        let heavy = first.iter().filter(|&&id| id >= 1000).count();
        assert!((290..=310).contains(&heavy), "heavy got {heavy} of 400");
        // Each key stays in order.
        let light: Vec<i64> = first.iter().copied().filter(|&id| id < 1000).collect();
        assert!(light.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tasks_without_a_key_share_like_any_key() {
        let mut q = ReadyQueue::default();
        for id in 0..100 {
            q.push_back(task(id, 3, "", 1.0));
            q.push_back(task(1000 + id, 3, "tenant", 1.0));
        }
        let first: Vec<i64> = (0..100)
            .map(|_| q.pop_any().expect("task").info.scheduled_event_id)
            .collect();
        let keyed = first.iter().filter(|&&id| id >= 1000).count();
        assert!((45..=55).contains(&keyed), "tenant got {keyed} of 100");
        // Once the keyed tasks are gone, the level is plain FIFO again.
        assert_eq!(drain(&mut q).len(), 100);
        q.push_back(task(1, 3, "", 1.0));
        q.push_back(task(2, 3, "", 1.0));
        assert_eq!(drain(&mut q), vec![1, 2]);
    }

    #[test]
    fn an_idle_key_earns_no_credit() {
        let mut q = ReadyQueue::default();
        for id in 0..50 {
            q.push_back(task(id, 3, "busy", 1.0));
        }
        for _ in 0..40 {
            q.pop_any();
        }
        // A newcomer joins at the current virtual time: it alternates with "busy" instead
        // of taking the next 40 dispatches.
        for id in 100..110 {
            q.push_back(task(id, 3, "late", 1.0));
        }
        let next: Vec<i64> = (0..6)
            .map(|_| q.pop_any().expect("task").info.scheduled_event_id)
            .collect();
        let late = next.iter().filter(|&&id| id >= 100).count();
        assert!((2..=4).contains(&late), "{next:?}");
    }

    #[test]
    fn an_infinite_weight_does_not_hold_the_level_forever() {
        assert_eq!(stride(f32::INFINITY), 1);
        assert_eq!(stride(1.0), 1_000_000);
        assert!(stride(0.0) > 999 * stride(1.0));
    }

    #[test]
    fn higher_levels_win_over_fairness() {
        let mut q = ReadyQueue::default();
        q.push_back(task(1, 4, "a", 100.0));
        q.push_back(task(2, 2, "b", 0.01));
        q.push_back(task(3, 4, "", 1.0));
        assert_eq!(q.pop_any().map(|t| t.info.scheduled_event_id), Some(2));
        assert_eq!(q.oldest_create_time(), Some(UNIX_EPOCH));
        assert_eq!(drain(&mut q).len(), 2);
    }

    #[test]
    fn a_weight_override_replaces_the_weight_tasks_carry() {
        let mut q = ReadyQueue::default();
        // Both keys' tasks say weight 1; the override gives "gold" weight 3.
        let mut overrides = HashMap::new();
        overrides.insert("gold".to_owned(), 3.0);
        assert!(q.set_weight_overrides(&overrides));
        assert!(!q.set_weight_overrides(&overrides), "unchanged");
        for id in 0..100 {
            q.push_back(task(id, 3, "gold", 1.0));
            q.push_back(task(1000 + id, 3, "plain", 1.0));
        }
        let first: Vec<i64> = (0..80)
            .map(|_| q.pop_any().expect("task").info.scheduled_event_id)
            .collect();
        let gold = first.iter().filter(|&&id| id < 1000).count();
        assert!((58..=62).contains(&gold), "gold got {gold} of 80");
        // Unset, the tasks' own weights count again: equal shares.
        assert!(q.set_weight_overrides(&HashMap::new()));
        let next: Vec<i64> = (0..40)
            .map(|_| q.pop_any().expect("task").info.scheduled_event_id)
            .collect();
        let gold = next.iter().filter(|&&id| id < 1000).count();
        assert!((18..=22).contains(&gold), "gold got {gold} of 40");
        // An override also lowers a weight the tasks carry.
        let mut q = ReadyQueue::default();
        overrides.clear();
        overrides.insert("heavy".to_owned(), 1.0);
        q.set_weight_overrides(&overrides);
        for id in 0..50 {
            q.push_back(task(id, 3, "heavy", 10.0));
            q.push_back(task(1000 + id, 3, "light", 1.0));
        }
        let first: Vec<i64> = (0..40)
            .map(|_| q.pop_any().expect("task").info.scheduled_event_id)
            .collect();
        let heavy = first.iter().filter(|&&id| id < 1000).count();
        assert!((18..=22).contains(&heavy), "heavy got {heavy} of 40");
    }

    #[test]
    fn a_key_at_its_rate_limit_holds_back_only_itself() {
        let t0 = Instant::now();
        let mut q = ReadyQueue::default();
        q.set_key_rate_limit(Some(2.0), t0);
        assert!(q.key_limited());
        for id in 0..10 {
            q.push_back(task(id, 3, "flood", 1.0));
        }
        q.push_back(task(100, 3, "quiet", 1.0));
        q.push_back(task(200, 4, "", 1.0));
        let mut got = Vec::new();
        while let Pop::Task(t) = q.pop(t0, true) {
            got.push(t.info.scheduled_event_id);
        }
        // flood's burst of two, quiet's task and the lower level's: flood waits 0.5 s.
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 100, 200]);
        match q.pop(t0, true) {
            Pop::Held(Some(at)) => assert_eq!(at, t0 + std::time::Duration::from_millis(500)),
            other => panic!("{other:?}"),
        }
        // Unlimited (forwarding to the root partition), it goes at once.
        assert!(matches!(q.pop(t0, false), Pop::Task(_)));
        // A refund gives the dispatch back.
        let t1 = t0 + std::time::Duration::from_secs(1);
        let Pop::Task(t) = q.pop(t1, true) else {
            panic!("flood has two tokens again");
        };
        q.refund_key(&t);
        q.push_front(t);
        assert!(matches!(q.pop(t1, true), Pop::Task(_)));
        assert!(matches!(q.pop(t1, true), Pop::Task(_)));
        assert!(matches!(q.pop(t1, true), Pop::Held(Some(_))));
        // Without a rate the keys are paused.
        q.set_key_rate_limit(Some(0.0), t1);
        assert!(matches!(
            q.pop(t1 + std::time::Duration::from_secs(9), true),
            Pop::Held(None)
        ));
        q.set_key_rate_limit(None, t1);
        assert_eq!(drain(&mut q).len(), 5);
    }

    #[test]
    fn key_limits_apply_to_tasks_without_a_key_too() {
        let t0 = Instant::now();
        let mut q = ReadyQueue::default();
        q.set_key_rate_limit(Some(1.0), t0);
        q.push_back(task(1, 3, "", 1.0));
        q.push_back(task(2, 3, "", 1.0));
        assert!(matches!(q.pop(t0, true), Pop::Task(_)));
        assert!(matches!(q.pop(t0, true), Pop::Held(Some(_))));
        let probe = task(3, 3, "", 1.0);
        assert!(q.take_key(&probe, t0).is_err(), "a sync match is held too");
        assert!(q.take_key(&task(4, 3, "other", 2.0), t0).is_ok());
    }
}
