//! Scenarios: what load to generate, chosen by name with `--option key=value`. A scenario
//! resolves to a [`Plan`]: which workflow to start, with which parameters, in which
//! namespaces (and with which fairness keys), what the starter does after each start
//! (signals), and how much the activity worker can take.

mod commands;
mod history;
pub mod nexus;
mod workflows;

#[cfg(test)]
mod nexus_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

pub use commands::{ACTIVITY_TYPE, normal_queue, proto_duration, schedule_activity, start_timer};
pub use history::HistorySummary;
pub use workflows::{
    Decision, MAX_FAILED_WORKFLOW_TASKS, Outcome, SIGNAL_NAME, WorkflowKind, WorkflowParams,
    WorkflowTask, child_workflow_id, decide,
};

/// One documented option of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// A scenario as `list-scenarios` shows it.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub options: &'static [OptionInfo],
}

const COUNT_LIMIT: u32 = 1000;
const TIMER_LIMIT_MS: u64 = 3_600_000;
const NAMESPACE_LIMIT: u32 = 64;
const FLOOD_LIMIT: u32 = 1000;
const WEIGHT_MIN: f32 = 0.001;
const WEIGHT_MAX: f32 = 1000.0;
/// Activity slots of the generator's worker when a scenario does not limit them: as many as
/// tasks in hand of any kind.
pub const DEFAULT_ACTIVITY_SLOTS: u32 = 512;
const ACTIVITY_MS_LIMIT: u64 = 10_000;
/// The fairness keys of fairness-mix: `a` floods, `b` is the small one.
pub const FAIRNESS_KEYS: [&str; 2] = ["a", "b"];

/// Every scenario, in the order `list-scenarios` prints them.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "noop",
        summary: "the workflow completes in its first workflow task",
        options: &[],
    },
    ScenarioInfo {
        name: "activity",
        summary: "one activity, then complete",
        options: &[],
    },
    ScenarioInfo {
        name: "sequential-activities",
        summary: "`count` activities one after the other",
        options: &[OptionInfo {
            name: "count",
            default: "5",
            help: "activities per workflow",
        }],
    },
    ScenarioInfo {
        name: "parallel-activities",
        summary: "`count` activities scheduled together, complete when all are done",
        options: &[OptionInfo {
            name: "count",
            default: "5",
            help: "activities per workflow",
        }],
    },
    ScenarioInfo {
        name: "timers",
        summary: "`count` timers of `duration_ms` one after the other",
        options: &[
            OptionInfo {
                name: "count",
                default: "3",
                help: "timers per workflow",
            },
            OptionInfo {
                name: "duration_ms",
                default: "100",
                help: "length of each timer",
            },
        ],
    },
    ScenarioInfo {
        name: "signals",
        summary: "the starter sends `count` signals to each workflow, which completes once it has them all",
        options: &[OptionInfo {
            name: "count",
            default: "5",
            help: "signals per workflow",
        }],
    },
    ScenarioInfo {
        name: "child-workflows",
        summary: "`count` child workflows (each a noop), complete when all children are done",
        options: &[OptionInfo {
            name: "count",
            default: "3",
            help: "children per workflow",
        }],
    },
    ScenarioInfo {
        name: "nexus",
        summary: "a caller workflow calls a sync Nexus operation, then an async one (a handler workflow the generator's Nexus worker starts); the run creates its Nexus endpoint if missing",
        options: &[],
    },
    ScenarioInfo {
        name: "tenant-mix",
        summary: "namespaces loadtest-ns-0..N-1 (registered if missing); loadtest-ns-0 gets flood_factor times the load of each other one; reports per-namespace numbers",
        options: &[
            OptionInfo {
                name: "namespaces",
                default: "3",
                help: "number of namespaces",
            },
            OptionInfo {
                name: "flood_factor",
                default: "10",
                help: "load of loadtest-ns-0 relative to each other namespace",
            },
            OptionInfo {
                name: "inner",
                default: "activity",
                help: "the scenario every namespace runs (its options pass through)",
            },
        ],
    },
    ScenarioInfo {
        name: "fairness-mix",
        summary: "one task queue, workflows started with fairness key a or b; a gets flood_factor times b's load; the activity worker has activity_slots slots and each activity takes activity_ms, so tasks wait in matching; reports per-key numbers",
        options: &[
            OptionInfo {
                name: "flood_factor",
                default: "10",
                help: "load of fairness key a relative to key b (0: key b alone)",
            },
            OptionInfo {
                name: "weight_a",
                default: "1.0",
                help: "fairness_weight of key a's workflows (and their activities)",
            },
            OptionInfo {
                name: "weight_b",
                default: "1.0",
                help: "fairness_weight of key b's workflows (and their activities)",
            },
            OptionInfo {
                name: "send_keys",
                default: "1",
                help: "1: start each workflow with its key's Priority; 0: start without one (FIFO dispatch), reporting by key all the same, for the comparison",
            },
            OptionInfo {
                name: "activity_slots",
                default: "8",
                help: "activities the generator's worker runs at once (it polls only with a free slot)",
            },
            OptionInfo {
                name: "activity_ms",
                default: "20",
                help: "how long each activity takes before the worker completes it",
            },
            OptionInfo {
                name: "inner",
                default: "activity",
                help: "the scenario both keys run (its options pass through)",
            },
        ],
    },
];

/// Options every scenario accepts; the run, not the workflow, uses them.
pub const RUN_OPTIONS: &[OptionInfo] = &[OptionInfo {
    name: "sticky",
    default: "false",
    help: "use sticky task queues (the worker caches histories; tasks carry only new events)",
}];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("unknown scenario {name:?}; the scenarios are: {known}")]
    UnknownScenario { name: String, known: String },
    #[error("scenario {scenario} has no option {option:?}; its options are: {known}")]
    UnknownOption {
        scenario: String,
        option: String,
        known: String,
    },
    #[error("option {option}={value:?}: {reason}")]
    BadValue {
        option: String,
        value: String,
        reason: String,
    },
}

/// The fairness key and weight a share's workflows start with (`Priority`; their activities
/// inherit it).
#[derive(Debug, Clone, PartialEq)]
pub struct Fairness {
    pub key: String,
    pub weight: f32,
    /// Started with this key and weight (`Priority`); false: started without, only reported
    /// by key.
    pub send: bool,
}

/// A namespace (and, with fairness-mix, a fairness key in it) and its share of the load.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceShare {
    pub name: String,
    pub weight: u32,
    pub fairness: Option<Fairness>,
}

/// What a run starts: the resolved scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub scenario: String,
    pub workflow: WorkflowKind,
    pub params: WorkflowParams,
    /// Signals the starter sends to each workflow after starting it.
    pub signals: u32,
    pub namespaces: Vec<NamespaceShare>,
    /// Register the namespaces that do not exist yet.
    pub register_namespaces: bool,
    /// Activities the generator's worker runs at once, per namespace.
    pub activity_slots: u32,
    /// How long the generator's worker takes over each activity.
    pub activity_delay: Duration,
    /// Every option with its value, defaults included (for the report).
    pub options: BTreeMap<String, String>,
}

impl Plan {
    /// The run needs a Nexus endpoint per namespace and a Nexus worker.
    pub fn uses_nexus(&self) -> bool {
        self.workflow == WorkflowKind::Nexus
    }

    /// Each namespace of the run once, in the order of the shares.
    pub fn namespace_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.namespaces {
            if !out.contains(&s.name.as_str()) {
                out.push(&s.name);
            }
        }
        out
    }
}

/// The name of tenant-mix namespace `i`.
pub fn tenant_namespace(i: u32) -> String {
    format!("loadtest-ns-{i}")
}

fn info(name: &str) -> Result<&'static ScenarioInfo, ScenarioError> {
    SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ScenarioError::UnknownScenario {
            name: name.to_string(),
            known: SCENARIOS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Resolve the options of `info`: reject unknown ones, fill in defaults.
fn resolve(
    info: &ScenarioInfo,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ScenarioError> {
    if let Some(unknown) = given
        .keys()
        .find(|k| !info.options.iter().any(|o| o.name == k.as_str()))
    {
        let known: Vec<&str> = info.options.iter().map(|o| o.name).collect();
        return Err(ScenarioError::UnknownOption {
            scenario: info.name.to_string(),
            option: unknown.clone(),
            known: if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            },
        });
    }
    Ok(info
        .options
        .iter()
        .map(|o| {
            let v = given
                .get(o.name)
                .cloned()
                .unwrap_or_else(|| o.default.to_string());
            (o.name.to_string(), v)
        })
        .collect())
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    options: &BTreeMap<String, String>,
    name: &str,
    min: T,
    max: T,
) -> Result<T, ScenarioError> {
    let raw = options.get(name).map(String::as_str).unwrap_or_default();
    let bad = |reason: String| ScenarioError::BadValue {
        option: name.to_string(),
        value: raw.to_string(),
        reason,
    };
    let v: T = raw
        .trim()
        .parse()
        .map_err(|_| bad("not a whole number".to_string()))?;
    if v < min || v > max {
        return Err(bad(format!("must be between {min} and {max}")));
    }
    Ok(v)
}

/// A fairness weight: a number the server takes as it is (it would treat zero or less as 1.0
/// and clamp tiny ones, which would make the report's weights lie).
fn fairness_weight(options: &BTreeMap<String, String>, name: &str) -> Result<f32, ScenarioError> {
    let raw = options.get(name).map(String::as_str).unwrap_or_default();
    match raw.trim().parse::<f32>() {
        Ok(v) if (WEIGHT_MIN..=WEIGHT_MAX).contains(&v) => Ok(v),
        _ => Err(ScenarioError::BadValue {
            option: name.to_string(),
            value: raw.to_string(),
            reason: format!("must be a number between {WEIGHT_MIN} and {WEIGHT_MAX}"),
        }),
    }
}

/// Resolve scenario `name` with `options` for a run in `namespace`.
pub fn plan(
    name: &str,
    options: &BTreeMap<String, String>,
    namespace: &str,
) -> Result<Plan, ScenarioError> {
    let info = info(name)?;
    if name == "tenant-mix" {
        return tenant_mix(info, options);
    }
    if name == "fairness-mix" {
        return fairness_mix(info, options, namespace);
    }
    let options = resolve(info, options)?;
    let mut params = WorkflowParams::default();
    if options.contains_key("count") {
        params.count = number(&options, "count", 0, COUNT_LIMIT)?;
    }
    if options.contains_key("duration_ms") {
        params.duration_ms = number(&options, "duration_ms", 0, TIMER_LIMIT_MS)?;
    }
    let workflow = match name {
        "noop" => WorkflowKind::Noop,
        "activity" => WorkflowKind::Activity,
        "sequential-activities" => WorkflowKind::SequentialActivities,
        "parallel-activities" => WorkflowKind::ParallelActivities,
        "timers" => WorkflowKind::Timers,
        "signals" => WorkflowKind::Signals,
        "child-workflows" => WorkflowKind::ChildWorkflows,
        "nexus" => WorkflowKind::Nexus,
        other => unreachable!("scenario {other} is listed but has no workflow"),
    };
    let signals = if workflow == WorkflowKind::Signals {
        params.count
    } else {
        0
    };
    Ok(Plan {
        scenario: name.to_string(),
        workflow,
        params,
        signals,
        namespaces: vec![NamespaceShare {
            name: namespace.to_string(),
            weight: 1,
            fairness: None,
        }],
        register_namespaces: false,
        activity_slots: DEFAULT_ACTIVITY_SLOTS,
        activity_delay: Duration::ZERO,
        options,
    })
}

/// Split `given` into the options of the mix scenario `info` (resolved, with defaults) and
/// the inner scenario's plan, which gets the rest.
fn inner_plan(
    info: &ScenarioInfo,
    given: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Plan), ScenarioError> {
    let (own, inner_given): (BTreeMap<_, _>, BTreeMap<_, _>) = given
        .clone()
        .into_iter()
        .partition(|(k, _)| info.options.iter().any(|o| o.name == k.as_str()));
    let own = resolve(info, &own)?;
    let inner_name = own.get("inner").cloned().unwrap_or_default();
    if inner_name.ends_with("-mix") {
        return Err(ScenarioError::BadValue {
            option: "inner".to_string(),
            value: inner_name,
            reason: format!("{} cannot run a mix scenario inside itself", info.name),
        });
    }
    let inner = plan(&inner_name, &inner_given, "")?;
    Ok((own, inner))
}

fn tenant_mix(
    info: &ScenarioInfo,
    given: &BTreeMap<String, String>,
) -> Result<Plan, ScenarioError> {
    // Options that are not tenant-mix's own belong to the inner scenario.
    let (own, inner) = inner_plan(info, given)?;
    let namespaces: u32 = number(&own, "namespaces", 1, NAMESPACE_LIMIT)?;
    let flood: u32 = number(&own, "flood_factor", 1, FLOOD_LIMIT)?;
    let mut options = own;
    options.extend(inner.options.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Plan {
        scenario: "tenant-mix".to_string(),
        namespaces: (0..namespaces)
            .map(|i| NamespaceShare {
                name: tenant_namespace(i),
                weight: if i == 0 { flood } else { 1 },
                fairness: None,
            })
            .collect(),
        register_namespaces: true,
        options,
        ..inner
    })
}

fn fairness_mix(
    info: &ScenarioInfo,
    given: &BTreeMap<String, String>,
    namespace: &str,
) -> Result<Plan, ScenarioError> {
    // Options that are not fairness-mix's own belong to the inner scenario.
    let (own, inner) = inner_plan(info, given)?;
    // Zero: key b alone, the baseline to compare b's numbers with.
    let flood: u32 = number(&own, "flood_factor", 0, FLOOD_LIMIT)?;
    let weight_a = fairness_weight(&own, "weight_a")?;
    let weight_b = fairness_weight(&own, "weight_b")?;
    let send: u8 = number(&own, "send_keys", 0, 1)?;
    let activity_slots: u32 = number(&own, "activity_slots", 1, DEFAULT_ACTIVITY_SLOTS)?;
    let activity_ms: u64 = number(&own, "activity_ms", 0, ACTIVITY_MS_LIMIT)?;
    let share = |key: &str, weight: u32, fairness_weight: f32| NamespaceShare {
        name: namespace.to_string(),
        weight,
        fairness: Some(Fairness {
            key: key.to_string(),
            weight: fairness_weight,
            send: send == 1,
        }),
    };
    let mut options = own;
    options.extend(inner.options.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Plan {
        scenario: "fairness-mix".to_string(),
        namespaces: (flood > 0)
            .then(|| share(FAIRNESS_KEYS[0], flood, weight_a))
            .into_iter()
            .chain([share(FAIRNESS_KEYS[1], 1, weight_b)])
            .collect(),
        register_namespaces: false,
        activity_slots,
        activity_delay: Duration::from_millis(activity_ms),
        options,
        ..inner
    })
}
