//! A task's priority as matching uses it: its level (Temporal's priority key) and its
//! fairness key and weight.
//!
//! Levels go from 1 (dispatched first) to [`LEVELS`]; an unset key (0) is the default level
//! [`DEFAULT_LEVEL`], and keys above the last level are clipped to it, as Temporal's
//! matching does with its default of 5 levels. Within a level, tasks are handed out by
//! fairness key in proportion to their weights (see `queue::ready`); a task with no key
//! shares the key `""` with every other such task.

use temper_proto::temporal::api::common::v1::Priority;

/// How many priority levels there are.
pub(crate) const LEVELS: u8 = 5;
/// The level of a task that sets no priority key.
pub(crate) const DEFAULT_LEVEL: u8 = temper_persistence::QueueTask::DEFAULT_PRIORITY;
/// The smallest weight a fairness key gets (Temporal's floor too): smaller or unset weights
/// are raised to it, zero or negative ones mean the default weight 1.
const MIN_WEIGHT: f32 = 0.001;

/// Where a task stands in dispatch order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskPriority {
    /// 1 ..= [`LEVELS`]; lower is dispatched first.
    pub level: u8,
    /// Tasks of one level share dispatches among their fairness keys by weight.
    pub fairness_key: String,
    /// Always positive.
    pub fairness_weight: f32,
}

impl Default for TaskPriority {
    fn default() -> Self {
        Self {
            level: DEFAULT_LEVEL,
            fairness_key: String::new(),
            fairness_weight: 1.0,
        }
    }
}

impl TaskPriority {
    /// The effective priority of a request's (possibly unset) `Priority`.
    pub(crate) fn from_proto(p: Option<&Priority>) -> Self {
        let Some(p) = p else {
            return Self::default();
        };
        let level = match p.priority_key {
            k if k <= 0 => DEFAULT_LEVEL,
            k => u8::try_from(k).unwrap_or(LEVELS).min(LEVELS),
        };
        let fairness_weight = if p.fairness_weight > 0.0 {
            p.fairness_weight.max(MIN_WEIGHT)
        } else {
            // Zero (unset), negative or NaN.
            1.0
        };
        Self {
            level,
            fairness_key: p.fairness_key.clone(),
            fairness_weight,
        }
    }

    /// As a request or a stored task carries it; `None` for the default.
    pub(crate) fn to_proto(&self) -> Option<Priority> {
        (*self != Self::default()).then(|| Priority {
            priority_key: i32::from(self.level),
            fairness_key: self.fairness_key.clone(),
            fairness_weight: self.fairness_weight,
        })
    }

    /// Position of the level in per-level arrays.
    pub(crate) fn index(&self) -> usize {
        level_index(self.level)
    }
}

/// Position of `level` in per-level arrays.
pub(crate) fn level_index(level: u8) -> usize {
    usize::from(level.clamp(1, LEVELS) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(priority_key: i32, fairness_key: &str, fairness_weight: f32) -> Priority {
        Priority {
            priority_key,
            fairness_key: fairness_key.to_owned(),
            fairness_weight,
        }
    }

    #[test]
    fn unset_fields_take_their_defaults_and_keys_are_clipped() {
        assert_eq!(TaskPriority::from_proto(None), TaskPriority::default());
        let d = TaskPriority::from_proto(Some(&p(0, "", 0.0)));
        assert_eq!(d, TaskPriority::default());
        assert_eq!(d.to_proto(), None);
        assert_eq!(TaskPriority::from_proto(Some(&p(1, "", 0.0))).level, 1);
        assert_eq!(TaskPriority::from_proto(Some(&p(9, "", 0.0))).level, LEVELS);
        assert_eq!(TaskPriority::from_proto(Some(&p(-2, "", 0.0))).level, 3);
        let t = TaskPriority::from_proto(Some(&p(2, "tenant", 1e-9)));
        assert_eq!(t.fairness_weight, MIN_WEIGHT);
        assert_eq!(t.fairness_key, "tenant");
        assert_eq!(
            TaskPriority::from_proto(Some(&p(2, "t", -1.0))).fairness_weight,
            1.0
        );
        let round = TaskPriority::from_proto(Some(&p(4, "a", 3.0)));
        assert_eq!(TaskPriority::from_proto(round.to_proto().as_ref()), round);
    }
}
