//! Long-poll budgets from the caller's `grpc-timeout`. (Statuses and error details are
//! built by the one shared mapping, `temper_client::status`.)

/// How long a long poll may wait: a second less than the caller's `grpc-timeout`, capped.
pub fn long_poll_budget(
    meta: &tonic::metadata::MetadataMap,
    cap: std::time::Duration,
) -> std::time::Duration {
    let Some(t) = meta
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
    else {
        return cap;
    };
    t.saturating_sub(std::time::Duration::from_secs(1)).min(cap)
}

/// Task queue polls shorter than this are refused, as Temporal refuses them
/// (`common.MinLongPollTimeout`).
pub const MIN_TASK_POLL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`long_poll_budget`] for a task queue poll: a caller deadline under
/// [`MIN_TASK_POLL_TIMEOUT`] gets Temporal's FAILED_PRECONDITION "Context timeout is too
/// short." (a poll without a deadline waits up to `cap`).
pub fn task_poll_budget(
    meta: &tonic::metadata::MetadataMap,
    cap: std::time::Duration,
) -> Result<std::time::Duration, tonic::Status> {
    let timeout = meta
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    if timeout.is_some_and(|t| t < MIN_TASK_POLL_TIMEOUT) {
        return Err(tonic::Status::failed_precondition(
            "Context timeout is too short.",
        ));
    }
    Ok(long_poll_budget(meta, cap))
}

/// Parse gRPC's `grpc-timeout` header value (`<digits><unit>`).
pub fn parse_grpc_timeout(v: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    if v.len() < 2 {
        return None;
    }
    let (n, unit) = v.split_at(v.len() - 1);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grpc_timeout() {
        assert_eq!(
            parse_grpc_timeout("69999m"),
            Some(Duration::from_millis(69999))
        );
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("12Q"), None);
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("grpc-timeout", "5S".parse().expect("valid header"));
        assert_eq!(
            long_poll_budget(&m, Duration::from_secs(60)),
            Duration::from_secs(4)
        );
        assert_eq!(
            long_poll_budget(
                &tonic::metadata::MetadataMap::new(),
                Duration::from_secs(60)
            ),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn task_polls_under_two_seconds_are_refused_as_temporal_refuses_them() {
        let with = |t: &str| {
            let mut m = tonic::metadata::MetadataMap::new();
            m.insert("grpc-timeout", t.parse().expect("valid header"));
            task_poll_budget(&m, Duration::from_secs(60))
        };
        let e = with("1999m").expect_err("too short");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(e.message(), "Context timeout is too short.");
        assert_eq!(with("2S").expect("long enough"), Duration::from_secs(1));
        assert_eq!(with("70S").expect("an SDK's poll"), Duration::from_secs(60));
        let none = tonic::metadata::MetadataMap::new();
        assert_eq!(
            task_poll_budget(&none, Duration::from_secs(60)).expect("no deadline"),
            Duration::from_secs(60)
        );
    }
}
