//! Retry policies applied by the server: defaults, validation, and the next backoff.

use std::time::{Duration, SystemTime};

use temper_proto::temporal::api::common::v1::RetryPolicy;
use temper_proto::temporal::api::enums::v1::RetryState;
use temper_proto::temporal::api::failure::v1::{Failure, failure::FailureInfo};

use crate::time::{dur, from_dur, is_negative};

const DEFAULT_INITIAL_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_BACKOFF: f64 = 2.0;
const DEFAULT_MAX_INTERVAL_FACTOR: u32 = 100;

/// Fill unset fields with Temporal's defaults.
pub fn with_defaults(mut p: RetryPolicy) -> RetryPolicy {
    let initial = from_dur(&p.initial_interval);
    let initial = if initial.is_zero() {
        DEFAULT_INITIAL_INTERVAL
    } else {
        initial
    };
    p.initial_interval = dur(initial);
    if p.backoff_coefficient == 0.0 {
        p.backoff_coefficient = DEFAULT_BACKOFF;
    }
    if from_dur(&p.maximum_interval).is_zero() {
        p.maximum_interval = dur(initial * DEFAULT_MAX_INTERVAL_FACTOR);
    }
    p
}

/// The default policy for activities without one.
pub fn default_activity_policy() -> RetryPolicy {
    with_defaults(RetryPolicy::default())
}

/// Check a policy the way Temporal does.
pub fn validate_policy(p: &RetryPolicy) -> Result<(), String> {
    if is_negative(&p.initial_interval) {
        return Err("InitialInterval cannot be negative on retry policy.".into());
    }
    if p.backoff_coefficient != 0.0 && p.backoff_coefficient < 1.0 {
        return Err("BackoffCoefficient cannot be less than 1 on retry policy.".into());
    }
    if is_negative(&p.maximum_interval) {
        return Err("MaximumInterval cannot be negative on retry policy.".into());
    }
    let max = from_dur(&p.maximum_interval);
    if !max.is_zero() && max < from_dur(&p.initial_interval) {
        return Err("MaximumInterval cannot be less than InitialInterval on retry policy.".into());
    }
    if p.maximum_attempts < 0 {
        return Err("MaximumAttempts cannot be negative on retry policy.".into());
    }
    Ok(())
}

/// The type name a failure is matched by against `non_retryable_error_types`.
fn failure_type(f: &Failure) -> Option<String> {
    match &f.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(a)) => Some(a.r#type.clone()),
        Some(FailureInfo::TimeoutFailureInfo(t)) => {
            let name = match t.timeout_type {
                1 => "StartToClose",
                2 => "ScheduleToStart",
                3 => "ScheduleToClose",
                4 => "Heartbeat",
                _ => "Unspecified",
            };
            Some(format!("TemporalTimeout:{name}"))
        }
        _ => None,
    }
}

/// Decide whether attempt `attempt` (1-based, just failed with `failure`) is retried.
/// `Ok(delay)`: retry after `delay`. `Err(state)`: stop, with the retry state to record.
pub fn next_backoff(
    policy: &RetryPolicy,
    attempt: i32,
    failure: Option<&Failure>,
    now: SystemTime,
    expiration: Option<SystemTime>,
) -> Result<Duration, RetryState> {
    if let Some(f) = failure {
        if let Some(FailureInfo::ApplicationFailureInfo(a)) = &f.failure_info
            && a.non_retryable
        {
            return Err(RetryState::NonRetryableFailure);
        }
        if let Some(t) = failure_type(f)
            && policy.non_retryable_error_types.contains(&t)
        {
            return Err(RetryState::NonRetryableFailure);
        }
    }
    if policy.maximum_attempts > 0 && attempt >= policy.maximum_attempts {
        return Err(RetryState::MaximumAttemptsReached);
    }
    let initial = from_dur(&policy.initial_interval).max(Duration::from_millis(1));
    let coefficient = if policy.backoff_coefficient >= 1.0 {
        policy.backoff_coefficient
    } else {
        DEFAULT_BACKOFF
    };
    let exp = (attempt.max(1) - 1).min(1000);
    let mut secs = initial.as_secs_f64() * coefficient.powi(exp);
    let max = from_dur(&policy.maximum_interval);
    if !max.is_zero() {
        secs = secs.min(max.as_secs_f64());
    }
    let delay = Duration::from_secs_f64(secs.min(10.0 * 365.0 * 86400.0));
    if let Some(exp) = expiration
        && now + delay >= exp
    {
        return Err(RetryState::Timeout);
    }
    // An explicit zero policy on workflow retries means "no retry policy".
    Ok(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::failure::v1::ApplicationFailureInfo;

    fn app_failure(t: &str, non_retryable: bool) -> Failure {
        Failure {
            message: "boom".into(),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    r#type: t.into(),
                    non_retryable,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    #[test]
    fn exponential_capped() {
        let p = with_defaults(RetryPolicy {
            initial_interval: dur(Duration::from_millis(100)),
            backoff_coefficient: 2.0,
            maximum_interval: dur(Duration::from_millis(300)),
            ..Default::default()
        });
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            next_backoff(&p, 1, None, now, None),
            Ok(Duration::from_millis(100))
        );
        assert_eq!(
            next_backoff(&p, 2, None, now, None),
            Ok(Duration::from_millis(200))
        );
        assert_eq!(
            next_backoff(&p, 3, None, now, None),
            Ok(Duration::from_millis(300))
        );
    }

    #[test]
    fn stops() {
        let p = with_defaults(RetryPolicy {
            maximum_attempts: 2,
            non_retryable_error_types: vec!["Bad".into()],
            ..Default::default()
        });
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            next_backoff(&p, 2, None, now, None),
            Err(RetryState::MaximumAttemptsReached)
        );
        assert_eq!(
            next_backoff(&p, 1, Some(&app_failure("Bad", false)), now, None),
            Err(RetryState::NonRetryableFailure)
        );
        assert_eq!(
            next_backoff(&p, 1, Some(&app_failure("Ok", true)), now, None),
            Err(RetryState::NonRetryableFailure)
        );
        assert_eq!(
            next_backoff(&p, 1, None, now, Some(now + Duration::from_millis(500))),
            Err(RetryState::Timeout)
        );
        assert!(next_backoff(&p, 1, Some(&app_failure("Ok", false)), now, None).is_ok());
    }

    #[test]
    fn defaults_and_validation() {
        let p = default_activity_policy();
        assert_eq!(from_dur(&p.initial_interval), Duration::from_secs(1));
        assert_eq!(from_dur(&p.maximum_interval), Duration::from_secs(100));
        assert_eq!(p.backoff_coefficient, 2.0);
        assert!(
            validate_policy(&RetryPolicy {
                backoff_coefficient: 0.5,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            validate_policy(&RetryPolicy {
                maximum_attempts: -1,
                ..Default::default()
            })
            .is_err()
        );
    }
}
