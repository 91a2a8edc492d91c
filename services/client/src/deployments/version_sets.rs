//! Build id version sets: legacy worker versioning (UpdateWorkerBuildIdCompatibility,
//! GetWorkerBuildIdCompatibility, GetWorkerTaskReachability), sans-IO.
//!
//! A task queue's versioning data is a sequence of sets of compatible build ids. The last set
//! is the queue's default set, and the last build id of each set is that set's default. The
//! five operations move build ids and sets to the end (making them default) or merge two sets,
//! with the same idempotence rules, errors and limits as the Temporal server.

use std::time::SystemTime;

use temper_proto::persistence::v1::{CompatibleBuildIdSet, TaskQueueVersionSets, VersionedBuildId};
use temper_proto::temporal::api::taskqueue::v1::CompatibleVersionSet;

use super::DeploymentError;

/// Temporal's defaults: `limit.versionCompatibleSetLimitPerQueue`,
/// `limit.versionBuildIdLimitPerQueue` and `limit.workerBuildIdSize`.
pub const MAX_SETS_PER_QUEUE: usize = 10;
pub const MAX_BUILD_IDS_PER_QUEUE: usize = 100;
pub const MAX_BUILD_ID_LEN: usize = 255;

/// One change of a queue's version sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSetOp<'a> {
    /// A new build id in a new set that becomes the queue's default.
    AddNewDefault(&'a str),
    /// A new build id, default of the set of `existing`; that set becomes the queue's default
    /// if `make_set_default`.
    AddNewCompatible {
        new: &'a str,
        existing: &'a str,
        make_set_default: bool,
    },
    /// The set of this build id becomes the queue's default.
    PromoteSet(&'a str),
    /// This build id becomes its set's default.
    PromoteWithinSet(&'a str),
    /// The set of `secondary` joins the set of `primary`, whose default stays the default.
    Merge {
        primary: &'a str,
        secondary: &'a str,
    },
}

/// Where a build id is: (set index, index in the set).
pub fn find(data: &TaskQueueVersionSets, build_id: &str) -> Option<(usize, usize)> {
    data.sets.iter().enumerate().find_map(|(s, set)| {
        set.build_ids
            .iter()
            .position(|b| b.id == build_id)
            .map(|i| (s, i))
    })
}

/// The queue's sets as GetWorkerBuildIdCompatibility answers: at most `max_sets` (0: all),
/// the ones nearest the default; the default set last.
pub fn compatibility(data: &TaskQueueVersionSets, max_sets: usize) -> Vec<CompatibleVersionSet> {
    let skip = match max_sets {
        0 => 0,
        n => data.sets.len().saturating_sub(n),
    };
    data.sets[skip..]
        .iter()
        .map(|set| CompatibleVersionSet {
            build_ids: set.build_ids.iter().map(|b| b.id.clone()).collect(),
        })
        .collect()
}

/// Apply `op` to the queue's sets; Ok(false) when it changes nothing (a repeated request).
/// On an error `data` is as it was.
pub fn apply(
    data: &mut TaskQueueVersionSets,
    op: VersionSetOp<'_>,
    now: SystemTime,
) -> Result<bool, DeploymentError> {
    let mut next = data.clone();
    let tick = next.clock + 1;
    next.clock = tick;
    let changed = change(&mut next, op, tick, now)?;
    if !changed {
        return Ok(false);
    }
    check_limits(&next)?;
    *data = next;
    Ok(true)
}

fn invalid(message: String) -> DeploymentError {
    DeploymentError::InvalidArgument(message)
}

fn change(
    data: &mut TaskQueueVersionSets,
    op: VersionSetOp<'_>,
    tick: i64,
    now: SystemTime,
) -> Result<bool, DeploymentError> {
    let sets = data.sets.len();
    match op {
        VersionSetOp::AddNewDefault(id) => {
            match find(data, id) {
                Some((s, _)) if s + 1 == sets && data.sets[s].build_ids.len() == 1 => {
                    return Ok(false);
                }
                Some(_) => return Err(invalid(format!("version {id} already exists"))),
                None => {}
            }
            data.sets.push(CompatibleBuildIdSet {
                set_ids: vec![id.to_owned()],
                build_ids: vec![VersionedBuildId {
                    id: id.to_owned(),
                    became_default: tick,
                }],
                became_default: tick,
                became_default_time: Some(now.into()),
            });
        }
        VersionSetOp::AddNewCompatible {
            new,
            existing,
            make_set_default,
        } => {
            let Some((compat, _)) = find(data, existing) else {
                return Err(DeploymentError::NotFound(format!(
                    "targeted compatible_version {existing} not found"
                )));
            };
            if let Some((s, i)) = find(data, new) {
                if s != compat {
                    return Err(invalid(format!(
                        "{new} requested to be made compatible with {existing} but both versions exist and are incompatible"
                    )));
                }
                if make_set_default && s + 1 != sets {
                    return Err(invalid(format!(
                        "version {new} already exists and is not default for queue"
                    )));
                }
                if i + 1 != data.sets[s].build_ids.len() {
                    return Err(invalid(format!(
                        "version {new} already exists and is not default in set"
                    )));
                }
                return Ok(false);
            }
            data.sets[compat].build_ids.push(VersionedBuildId {
                id: new.to_owned(),
                became_default: tick,
            });
            if make_set_default {
                make_default_set(data, compat, tick, now);
            }
        }
        VersionSetOp::PromoteSet(id) => {
            let Some((s, _)) = find(data, id) else {
                return Err(DeploymentError::NotFound(format!(
                    "targeted version {id} not found"
                )));
            };
            if s + 1 == sets {
                return Ok(false);
            }
            make_default_set(data, s, tick, now);
        }
        VersionSetOp::PromoteWithinSet(id) => {
            let Some((s, i)) = find(data, id) else {
                return Err(DeploymentError::NotFound(format!(
                    "targeted version {id} not found"
                )));
            };
            let set = &mut data.sets[s].build_ids;
            if i + 1 == set.len() {
                return Ok(false);
            }
            let mut b = set.remove(i);
            b.became_default = tick;
            set.push(b);
        }
        VersionSetOp::Merge { primary, secondary } => {
            let Some((p, _)) = find(data, primary) else {
                return Err(DeploymentError::NotFound(format!(
                    "targeted primary version {primary} not found"
                )));
            };
            let Some((s, _)) = find(data, secondary) else {
                return Err(DeploymentError::NotFound(format!(
                    "targeted secondary version {secondary} not found"
                )));
            };
            if p == s {
                return Ok(false);
            }
            // The primary set's default stays the merged set's default; the merged set takes
            // the place of whichever of the two became default last.
            let mut merged = data.sets[p].clone();
            if let Some(last) = merged.build_ids.last_mut() {
                last.became_default = tick;
            }
            let other = data.sets[s].clone();
            merged.build_ids.extend(other.build_ids);
            merged.build_ids.sort_by_key(|b| b.became_default);
            merged.set_ids.extend(other.set_ids);
            merged.set_ids.sort();
            merged.set_ids.dedup();
            if other.became_default > merged.became_default {
                merged.became_default = other.became_default;
                merged.became_default_time = other.became_default_time;
            }
            data.sets[p] = merged;
            data.sets.remove(s);
            data.sets.sort_by_key(|set| set.became_default);
        }
    }
    Ok(true)
}

fn make_default_set(data: &mut TaskQueueVersionSets, s: usize, tick: i64, now: SystemTime) {
    let mut set = data.sets.remove(s);
    set.became_default = tick;
    set.became_default_time = Some(now.into());
    data.sets.push(set);
}

fn check_limits(data: &TaskQueueVersionSets) -> Result<(), DeploymentError> {
    let sets = data.sets.len();
    if sets > MAX_SETS_PER_QUEUE {
        return Err(DeploymentError::FailedPrecondition(format!(
            "update would exceed number of compatible version sets permitted in namespace dynamic config ({sets}/{MAX_SETS_PER_QUEUE})"
        )));
    }
    let ids: usize = data.sets.iter().map(|s| s.build_ids.len()).sum();
    if ids > MAX_BUILD_IDS_PER_QUEUE {
        return Err(DeploymentError::FailedPrecondition(format!(
            "update would exceed number of build IDs permitted in namespace dynamic config ({ids}/{MAX_BUILD_IDS_PER_QUEUE})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(data: &TaskQueueVersionSets) -> Vec<Vec<&str>> {
        data.sets
            .iter()
            .map(|s| s.build_ids.iter().map(|b| b.id.as_str()).collect())
            .collect()
    }

    fn run(data: &mut TaskQueueVersionSets, op: VersionSetOp<'_>) -> Result<bool, DeploymentError> {
        apply(data, op, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn defaults_move_to_the_end_and_merges_keep_the_primary_default() {
        let mut q = TaskQueueVersionSets::default();
        run(&mut q, VersionSetOp::AddNewDefault("1.0")).expect("add");
        run(
            &mut q,
            VersionSetOp::AddNewCompatible {
                new: "1.1",
                existing: "1.0",
                make_set_default: false,
            },
        )
        .expect("compatible");
        assert_eq!(ids(&q), [vec!["1.0", "1.1"]]);
        run(&mut q, VersionSetOp::PromoteWithinSet("1.0")).expect("promote within");
        assert_eq!(ids(&q), [vec!["1.1", "1.0"]]);
        run(&mut q, VersionSetOp::AddNewDefault("2.0")).expect("add 2.0");
        assert_eq!(ids(&q), [vec!["1.1", "1.0"], vec!["2.0"]]);
        run(&mut q, VersionSetOp::PromoteSet("1.0")).expect("promote set");
        assert_eq!(ids(&q), [vec!["2.0"], vec!["1.1", "1.0"]]);
        // The merged set stays where the later default of the two was (the 1.x set), and its
        // default is the primary's.
        run(
            &mut q,
            VersionSetOp::Merge {
                primary: "2.0",
                secondary: "1.0",
            },
        )
        .expect("merge");
        assert_eq!(ids(&q), [vec!["1.1", "1.0", "2.0"]]);
        assert_eq!(
            compatibility(&q, 0)[0].build_ids.last().map(String::as_str),
            Some("2.0")
        );
    }

    #[test]
    fn repeated_requests_change_nothing_and_conflicts_are_refused() {
        let mut q = TaskQueueVersionSets::default();
        assert!(run(&mut q, VersionSetOp::AddNewDefault("a")).expect("add"));
        assert!(!run(&mut q, VersionSetOp::AddNewDefault("a")).expect("again"));
        assert!(!run(&mut q, VersionSetOp::PromoteSet("a")).expect("already default"));
        assert!(run(&mut q, VersionSetOp::AddNewDefault("b")).expect("b"));
        let before = q.clone();
        let err = run(&mut q, VersionSetOp::AddNewDefault("a")).expect_err("a exists");
        assert_eq!(err.to_string(), "version a already exists");
        let err = run(
            &mut q,
            VersionSetOp::AddNewCompatible {
                new: "a",
                existing: "b",
                make_set_default: false,
            },
        )
        .expect_err("incompatible");
        assert_eq!(
            err.to_string(),
            "a requested to be made compatible with b but both versions exist and are incompatible"
        );
        let err = run(&mut q, VersionSetOp::PromoteWithinSet("zz")).expect_err("unknown");
        assert!(matches!(err, DeploymentError::NotFound(_)), "{err:?}");
        assert_eq!(err.to_string(), "targeted version zz not found");
        assert_eq!(q, before, "refused changes leave the sets alone");
    }

    #[test]
    fn limits_are_temporals() {
        let mut q = TaskQueueVersionSets::default();
        for i in 0..MAX_SETS_PER_QUEUE {
            run(&mut q, VersionSetOp::AddNewDefault(&format!("v{i}"))).expect("under the limit");
        }
        let err = run(&mut q, VersionSetOp::AddNewDefault("one-too-many")).expect_err("over");
        assert!(
            matches!(err, DeploymentError::FailedPrecondition(_)),
            "{err:?}"
        );
        assert_eq!(q.sets.len(), MAX_SETS_PER_QUEUE);
        assert_eq!(compatibility(&q, 3).len(), 3);
        assert_eq!(compatibility(&q, 3)[2].build_ids, ["v9"]);
    }
}
