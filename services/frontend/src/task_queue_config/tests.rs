use super::*;

fn request() -> ws::UpdateTaskQueueConfigRequest {
    ws::UpdateTaskQueueConfigRequest {
        namespace: "default".into(),
        identity: "ops".into(),
        task_queue: "orders".into(),
        task_queue_type: TaskQueueType::Activity as i32,
        ..Default::default()
    }
}

fn rate(rps: f32, reason: &str) -> Option<RateLimitUpdate> {
    Some(RateLimitUpdate {
        rate_limit: Some(RateLimit {
            requests_per_second: rps,
        }),
        reason: reason.into(),
    })
}

fn message(r: &ws::UpdateTaskQueueConfigRequest) -> String {
    let s = check_request(r).expect_err("refused");
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    s.message().to_owned()
}

#[test]
fn bad_requests_get_temporals_messages() {
    let mut r = request();
    r.task_queue_type = TaskQueueType::Workflow as i32;
    r.update_queue_rate_limit = rate(5.0, "");
    assert_eq!(
        message(&r),
        "Setting rate limit on workflow task queues is not allowed."
    );
    r.update_queue_rate_limit = None;
    r.update_fairness_key_rate_limit_default = rate(5.0, "");
    assert_eq!(
        message(&r),
        "Setting fairness key rate limit on workflow task queues is not allowed."
    );
    // Removing a limit of a workflow task queue is fine.
    r.update_fairness_key_rate_limit_default = Some(RateLimitUpdate::default());
    assert!(check_request(&r).is_ok());

    let mut r = request();
    r.update_queue_rate_limit = rate(-1.0, "");
    assert_eq!(
        message(&r),
        "RequestsPerSecond for UpdateQueueRateLimit rate limit must be non-negative."
    );
    r.update_queue_rate_limit = rate(1.0, &"x".repeat(1001));
    assert_eq!(
        message(&r),
        "UpdateQueueRateLimit.Reason field too long (max 1000 characters)."
    );
    r.update_queue_rate_limit = rate(0.0, &"x".repeat(1000));
    assert!(check_request(&r).is_ok(), "zero is a valid limit");
    r.update_fairness_key_rate_limit_default = rate(-0.5, "");
    assert_eq!(
        message(&r),
        "RequestsPerSecond for UpdateFairnessKeyRateLimitDefault rate limit must be non-negative."
    );

    let mut r = request();
    r.identity = "i".repeat(1001);
    assert_eq!(
        message(&r),
        "Identity field too long (max 1000 characters)."
    );

    let mut r = request();
    r.set_fairness_weight_overrides.insert(String::new(), 1.0);
    assert_eq!(
        message(&r),
        "fairness weight override key must not be empty"
    );
    let mut r = request();
    r.set_fairness_weight_overrides.insert("k".repeat(65), 1.0);
    assert_eq!(message(&r), "fairness key length exceeds limit");
    let mut r = request();
    r.set_fairness_weight_overrides.insert("gold".into(), 0.0);
    assert_eq!(
        message(&r),
        "invalid fairness weight weight for key \"gold\": must be greater than zero"
    );
    let mut r = request();
    r.unset_fairness_weight_overrides.push(String::new());
    assert_eq!(
        message(&r),
        "fairness weight override key must not be empty"
    );
    let mut r = request();
    r.set_fairness_weight_overrides.insert("gold".into(), 2.0);
    r.unset_fairness_weight_overrides.push("gold".into());
    assert_eq!(
        message(&r),
        "fairness weight override key \"gold\" present in both set and unset lists"
    );
    let mut r = request();
    for i in 0..1001 {
        r.unset_fairness_weight_overrides.push(format!("k{i}"));
    }
    assert_eq!(
        message(&r),
        "too many fairness weight overrides in request: got 1001, maximum 1000"
    );
}

#[test]
fn updates_replace_limits_and_merge_overrides() {
    let t = |s| Timestamp {
        seconds: s,
        nanos: 0,
    };
    let mut config = TaskQueueConfig::default();
    let mut r = request();
    r.update_queue_rate_limit = rate(10.0, "noisy tenant");
    r.set_fairness_weight_overrides.insert("gold".into(), 3.0);
    r.set_fairness_weight_overrides.insert("bronze".into(), 0.5);
    apply(&mut config, &r, t(1)).expect("applies");
    let queue = config.queue_rate_limit.clone().expect("queue limit");
    assert_eq!(queue.rate_limit.map(|r| r.requests_per_second), Some(10.0));
    let meta = queue.metadata.expect("metadata");
    assert_eq!(
        (meta.reason.as_str(), meta.update_identity.as_str()),
        ("noisy tenant", "ops")
    );
    assert_eq!(meta.update_time, Some(t(1)));
    assert!(config.fairness_keys_rate_limit_default.is_none());
    assert_eq!(config.fairness_weight_overrides.len(), 2);

    // An update without a rate limit removes it; overrides are set and unset key by key.
    let mut r = request();
    r.update_queue_rate_limit = Some(RateLimitUpdate {
        rate_limit: None,
        reason: "done".into(),
    });
    r.unset_fairness_weight_overrides.push("bronze".into());
    r.set_fairness_weight_overrides.insert("silver".into(), 2.0);
    apply(&mut config, &r, t(2)).expect("applies");
    let queue = config
        .queue_rate_limit
        .clone()
        .expect("kept with its metadata");
    assert!(queue.rate_limit.is_none());
    assert_eq!(queue.metadata.map(|m| m.reason), Some("done".into()));
    let mut keys: Vec<_> = config.fairness_weight_overrides.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["gold", "silver"]);

    // An empty update changes nothing.
    let before = config.clone();
    apply(&mut config, &request(), t(3)).expect("applies");
    assert_eq!(config, before);

    // The queue holds at most 1000 overrides.
    let mut r = request();
    for i in 0..999 {
        r.set_fairness_weight_overrides.insert(format!("k{i}"), 1.0);
    }
    let e = apply(&mut config, &r, t(4)).expect_err("1001 overrides");
    assert_eq!(
        e.to_string(),
        "fairness weight overrides update rejected: exceeding maximum key size"
    );
}
