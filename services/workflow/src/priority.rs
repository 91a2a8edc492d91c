//! Task priority (Temporal's `temporal.api.common.v1.Priority`): how an activity or a child
//! workflow inherits its workflow's priority.

use temper_proto::temporal::api::common::v1::Priority;

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
