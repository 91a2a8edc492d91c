//! Task priority (Temporal's `temporal.api.common.v1.Priority`): what a valid one is, and how
//! an activity or a child workflow inherits its workflow's priority.

use temper_proto::temporal::api::common::v1::Priority;

/// Longest fairness key, in bytes (Temporal's limit).
pub const MAX_FAIRNESS_KEY_LENGTH: usize = 64;

/// Temporal's checks of a request's or command's priority, with its messages.
pub fn validate(p: Option<&Priority>) -> Result<(), &'static str> {
    let Some(p) = p else {
        return Ok(());
    };
    if p.priority_key < 0 {
        return Err("priority key can't be negative");
    }
    if p.fairness_key.len() > MAX_FAIRNESS_KEY_LENGTH {
        return Err("fairness key length exceeds limit");
    }
    if p.fairness_weight < 0.0 {
        return Err("must be greater than zero");
    }
    Ok(())
}

/// The priority of a task created by a workflow whose own priority is `base`: each field the
/// `override` leaves unset (zero, empty) comes from `base`. Temporal's `priorities.Merge`:
/// activities and child workflows inherit their workflow's priority field by field.
pub fn merge(base: Option<&Priority>, over: Option<&Priority>) -> Option<Priority> {
    match (base, over) {
        (None, over) => over.cloned(),
        (base, None) => base.cloned(),
        (Some(base), Some(over)) => Some(Priority {
            priority_key: if over.priority_key != 0 {
                over.priority_key
            } else {
                base.priority_key
            },
            fairness_key: if over.fairness_key.is_empty() {
                base.fairness_key.clone()
            } else {
                over.fairness_key.clone()
            },
            fairness_weight: if over.fairness_weight != 0.0 {
                over.fairness_weight
            } else {
                base.fairness_weight
            },
        }),
    }
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
    fn negative_keys_and_weights_and_long_fairness_keys_are_invalid() {
        assert_eq!(validate(None), Ok(()));
        assert_eq!(validate(Some(&p(0, "", 0.0))), Ok(()));
        assert_eq!(validate(Some(&p(7, &"k".repeat(64), 2.0))), Ok(()));
        assert!(validate(Some(&p(-1, "", 0.0))).is_err());
        assert!(validate(Some(&p(1, &"k".repeat(65), 0.0))).is_err());
        assert!(validate(Some(&p(1, "", -0.5))).is_err());
    }

    #[test]
    fn unset_fields_are_inherited_field_by_field() {
        let wf = p(1, "tenant-a", 3.0);
        assert_eq!(merge(Some(&wf), None), Some(wf.clone()));
        assert_eq!(merge(None, Some(&wf)), Some(wf.clone()));
        assert_eq!(merge(None, None), None);
        assert_eq!(
            merge(Some(&wf), Some(&p(4, "", 0.0))),
            Some(p(4, "tenant-a", 3.0))
        );
        assert_eq!(
            merge(Some(&wf), Some(&p(0, "tenant-b", 0.0))),
            Some(p(1, "tenant-b", 3.0))
        );
        assert_eq!(
            merge(Some(&wf), Some(&p(0, "", 0.5))),
            Some(p(1, "tenant-a", 0.5))
        );
    }
}
