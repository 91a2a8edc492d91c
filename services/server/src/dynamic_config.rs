//! The dev server's `--dynamic-config-value KEY=VALUE` flags beyond the rate limit and batch
//! ones (`dev.rs`): which of Temporal's keys temper honours, and one warning line for each
//! key it does not.

use anyhow::Context;
use temper_server::node::NodeConfig;

/// Keys whose value sets something here.
const SUGGEST_CAN_EVENTS: &str = "limit.historyCount.suggestContinueAsNew";
const SUGGEST_CAN_BYTES: &str = "limit.historySize.suggestContinueAsNew";
const EAGER_WORKFLOW_START: &str = "system.enableEagerWorkflowStart";
const NEXUS_ENDPOINTS_REFRESH: &str = "system.refreshNexusEndpointsMinWait";
const VERSIONING_DATA_APIS: &str = "frontend.workerVersioningDataAPIs";
const UPDATE_CALLBACKS: &str = "history.enableUpdateCallbacks";
/// Matching's backlog page: tasks read from the store at once, and kept in memory per level.
const GET_TASKS_BATCH_SIZE: &str = "matching.getTasksBatchSize";
/// temper's own keys (Temporal has none for these): the frontend's fair admission and the
/// bound on open workflows per namespace, as `[frontend]` sets them on `temper server start`.
const MAX_INFLIGHT: &str = "temper.frontend.maxInflight";
const OVERLOAD_TARGET_LAG_MS: &str = "temper.frontend.overloadTargetLagMs";
const NAMESPACE_MAX_QUEUED: &str = "temper.frontend.namespaceMaxQueued";
const NAMESPACE_MAX_OPEN_WORKFLOWS: &str = "temper.frontend.namespaceMaxOpenWorkflows";
/// History's memory, as `[history]` sets it on `temper server start`.
const CACHE_BUDGET_MIB: &str = "temper.history.cacheBudgetMib";
const TIMER_WINDOW_SECONDS: &str = "temper.history.timerWindowSeconds";
const MAX_TIMERS_IN_MEMORY: &str = "temper.history.maxTimersInMemory";

/// Keys that switch on a feature temper always has: `true` is honoured by what temper does
/// anyway; `false` (switching it off) is not, and is reported.
const ALWAYS_ON: &[&str] = &[
    "frontend.enableExecuteMultiOperation",
    "frontend.activityAPIsEnabled",
    // Standalone activities (docs/standalone-activities.md) and their start delay.
    "activity.enableStandalone",
    "activity.startDelayEnabled",
    // Standalone Nexus operations (docs/nexus.md).
    "nexusoperation.enableStandalone",
    // System Nexus: a workflow's signal-with-start through `__temporal_system`, and the
    // signals' request ids DescribeWorkflowExecution resolves backlinks with (docs/nexus.md).
    "history.enableSignalWithStartFromWorkflow",
    "history.enableCHASMSignalBacklinks",
    // Task priority and fairness (docs/priority.md): Temporal needs both to dispatch by
    // priority key and fairness key; temper's matching always does.
    "matching.useNewMatcher",
    "matching.enableFairness",
];

/// Keys read elsewhere (`dev.rs`).
const READ_ELSEWHERE: &[&str] = &[
    "frontend.namespaceRPS",
    "frontend.rps",
    "frontend.namespaceRPS.visibility",
    "frontend.MaxConcurrentBatchOperationPerNamespace",
    "worker.batcherRPS",
];

/// Apply the keys temper honours to `config`; return the `key=value` of each one it does not
/// honour, after logging one line for it.
pub fn apply(values: &[String], config: &mut NodeConfig) -> anyhow::Result<Vec<String>> {
    let mut ignored = Vec::new();
    for kv in values {
        let (key, value) = kv
            .split_once('=')
            .with_context(|| format!("--dynamic-config-value {kv}: expected KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        let int = || -> anyhow::Result<i64> {
            let v: i64 = value.parse().with_context(|| {
                format!("--dynamic-config-value {key}: `{value}` is not a whole number")
            })?;
            if v < 1 {
                anyhow::bail!("--dynamic-config-value {key}: {value} must be at least 1");
            }
            Ok(v)
        };
        let boolean = || -> anyhow::Result<bool> {
            value.parse().with_context(|| {
                format!("--dynamic-config-value {key}: `{value}` is not true or false")
            })
        };
        match key {
            SUGGEST_CAN_EVENTS => config.limits.suggest_continue_as_new_events = int()?,
            SUGGEST_CAN_BYTES => config.limits.suggest_continue_as_new_bytes = int()?,
            EAGER_WORKFLOW_START => config.eager_workflow_start = boolean()?,
            VERSIONING_DATA_APIS => config.worker_versioning_data_apis = boolean()?,
            UPDATE_CALLBACKS => config.limits.update_callbacks = boolean()?,
            GET_TASKS_BATCH_SIZE => {
                let n = int()?;
                if n > 100_000 {
                    anyhow::bail!("--dynamic-config-value {key}: {value} must be 1 to 100000");
                }
                config.matching.backlog_read_batch_size = usize::try_from(n)?;
            }
            NEXUS_ENDPOINTS_REFRESH => {
                // A Go duration, bare or as a JSON string (the reference takes JSON only).
                let text = value.trim_matches('"');
                let nanos = temper_visibility::parse_duration_nanos(text)
                    .filter(|n| *n >= 0)
                    .with_context(|| {
                        format!(
                            "--dynamic-config-value {key}: `{value}` is not a duration such as 1s"
                        )
                    })?;
                config.nexus_endpoints_refresh = std::time::Duration::from_nanos(nanos as u64);
            }
            MAX_INFLIGHT => config.admission.max_inflight = u32::try_from(int()?)?,
            OVERLOAD_TARGET_LAG_MS => {
                let ms: f64 = value.parse().ok().filter(|ms: &f64| *ms > 0.0 && *ms < 1e6).with_context(|| {
                    format!("--dynamic-config-value {key}: `{value}` is not a number of milliseconds above 0")
                })?;
                config.admission.overload_target_lag =
                    Some(std::time::Duration::from_secs_f64(ms / 1e3));
            }
            NAMESPACE_MAX_QUEUED => config.admission.max_queued = u32::try_from(int()?)?,
            NAMESPACE_MAX_OPEN_WORKFLOWS => config.open_workflows.default = u64::try_from(int()?)?,
            CACHE_BUDGET_MIB => {
                let mib = u64::try_from(int()?)?.min(1 << 20);
                config.memory.cache_budget = temper_history::CacheBudget::new(
                    usize::try_from(mib << 20).unwrap_or(usize::MAX),
                );
            }
            TIMER_WINDOW_SECONDS => {
                let s = u64::try_from(int()?)?;
                if !(10..=86_400).contains(&s) {
                    anyhow::bail!("--dynamic-config-value {key}: {value} must be 10 to 86400");
                }
                config.memory.timer_window = std::time::Duration::from_secs(s);
            }
            MAX_TIMERS_IN_MEMORY => {
                use temper_server::config::{MAX_MAX_TIMERS, MIN_MAX_TIMERS};
                let n = u64::try_from(int()?)?;
                if !(MIN_MAX_TIMERS..=MAX_MAX_TIMERS).contains(&n) {
                    anyhow::bail!(
                        "--dynamic-config-value {key}: {value} must be {MIN_MAX_TIMERS} to {MAX_MAX_TIMERS}"
                    );
                }
                config.memory.max_timers = usize::try_from(n)?;
            }
            k if ALWAYS_ON.contains(&k) => {
                if !boolean()? {
                    ignored.push(format!("{key}={value}"));
                }
            }
            k if READ_ELSEWHERE.contains(&k) => {}
            _ => ignored.push(format!("{key}={value}")),
        }
    }
    for kv in &ignored {
        tracing::warn!(
            setting = kv.as_str(),
            "ignoring a dynamic config value temper does not honour"
        );
        eprintln!("warning: ignoring dynamic config value `{kv}` (temper does not honour it)");
    }
    Ok(ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_nexus_endpoint_refresh_takes_go_durations_bare_or_quoted() {
        for (v, want) in [("\"0s\"", 0), ("250ms", 250), ("\"2s\"", 2000)] {
            let mut config = NodeConfig::dev(4, "n");
            let kv = format!("system.refreshNexusEndpointsMinWait={v}");
            apply(&values(&[&kv]), &mut config).expect("valid");
            assert_eq!(
                config.nexus_endpoints_refresh,
                std::time::Duration::from_millis(want)
            );
        }
        let mut config = NodeConfig::dev(4, "n");
        assert!(
            apply(
                &values(&["system.refreshNexusEndpointsMinWait=soon"]),
                &mut config
            )
            .is_err()
        );
    }

    #[test]
    fn the_backlog_page_size_is_matchings_get_tasks_batch_size() {
        let mut config = NodeConfig::dev(4, "n");
        apply(&values(&["matching.getTasksBatchSize=20"]), &mut config).expect("valid");
        assert_eq!(config.matching.backlog_read_batch_size, 20);
        for bad in ["0", "100001", "x"] {
            let mut config = NodeConfig::dev(4, "n");
            let kv = format!("matching.getTasksBatchSize={bad}");
            assert!(apply(&values(&[&kv]), &mut config).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_overload_target_takes_fractional_milliseconds() {
        let mut config = NodeConfig::dev(4, "n");
        apply(
            &values(&["temper.frontend.overloadTargetLagMs=2.5"]),
            &mut config,
        )
        .expect("valid");
        assert_eq!(
            config.admission.overload_target_lag,
            Some(std::time::Duration::from_micros(2500))
        );
        for bad in ["0", "-1", "x", "NaN"] {
            let mut config = NodeConfig::dev(4, "n");
            let kv = format!("temper.frontend.overloadTargetLagMs={bad}");
            assert!(apply(&values(&[&kv]), &mut config).is_err(), "{bad}");
        }
    }

    #[test]
    fn history_memory_keys_set_the_cache_budget_and_the_timer_window() {
        let mut config = NodeConfig::dev(4, "n");
        apply(
            &values(&[
                "temper.history.cacheBudgetMib=16",
                "temper.history.timerWindowSeconds=60",
                "temper.history.maxTimersInMemory=4096",
            ]),
            &mut config,
        )
        .expect("valid");
        assert_eq!(config.memory.cache_budget.limit(), 16 << 20);
        assert_eq!(
            config.memory.timer_window,
            std::time::Duration::from_secs(60)
        );
        assert_eq!(config.memory.max_timers, 4096);
        for bad in [
            "temper.history.maxTimersInMemory=100",
            "temper.history.cacheBudgetMib=0",
            "temper.history.timerWindowSeconds=5",
            "temper.history.timerWindowSeconds=x",
        ] {
            let mut config = NodeConfig::dev(4, "n");
            assert!(apply(&values(&[bad]), &mut config).is_err(), "{bad}");
        }
    }

    #[test]
    fn honoured_keys_set_the_config_and_the_rest_are_reported() {
        let mut config = NodeConfig::dev(4, "n");
        assert!(config.eager_workflow_start, "on by default, as in Temporal");
        let ignored = apply(
            &values(&[
                "limit.historyCount.suggestContinueAsNew=50",
                "limit.historySize.suggestContinueAsNew=1000",
                "system.enableEagerWorkflowStart=false",
                "frontend.enableExecuteMultiOperation=true",
                "frontend.activityAPIsEnabled=false",
                "frontend.rps=10",
                "history.enableChasm=true",
            ]),
            &mut config,
        )
        .expect("valid");
        assert_eq!(config.limits.suggest_continue_as_new_events, 50);
        assert_eq!(config.limits.suggest_continue_as_new_bytes, 1000);
        assert!(!config.eager_workflow_start);
        assert_eq!(
            ignored,
            [
                "frontend.activityAPIsEnabled=false",
                "history.enableChasm=true"
            ]
        );
        let mut config = NodeConfig::dev(4, "n");
        assert!(
            apply(
                &values(&["limit.historyCount.suggestContinueAsNew=x"]),
                &mut config
            )
            .is_err()
        );
        assert!(
            apply(
                &values(&["system.enableEagerWorkflowStart=yes"]),
                &mut config
            )
            .is_err()
        );
    }
}
