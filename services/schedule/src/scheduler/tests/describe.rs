//! DescribeSchedule and ListSchedules.

use super::*;
use ScheduleOverlapPolicy::*;

fn times(v: &[prost_types::Timestamp]) -> Vec<String> {
    v.iter()
        .map(|t| timestamp_from_proto(t).to_string())
        .collect()
}

#[test]
fn describe_shows_the_next_ten_times_and_the_token() {
    let (state, _) = minutely(Skip);
    let d = describe(&state, ts(T0));
    let future = times(&d.info.future_action_times);
    assert_eq!(future.len(), 10);
    assert_eq!(future[0], "2025-01-01T00:01:00Z");
    assert_eq!(future[9], "2025-01-01T00:10:00Z");
    assert_eq!(d.conflict_token, vec![0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        d.info.create_time.map(|t| timestamp_from_proto(&t)),
        Some(ts(T0))
    );
    assert_eq!(
        d.info.update_time, None,
        "Temporal sets it on the first update only"
    );
}

#[test]
fn paused_schedules_still_show_future_times_as_temporal_does() {
    let mut s = schedule(every(60), Skip);
    s.state = Some(ScheduleState {
        paused: true,
        ..Default::default()
    });
    let (state, e) = create_at(s, T0);
    assert_eq!(e.next_wake, None);
    assert_eq!(describe(&state, ts(T0)).info.future_action_times.len(), 10);
}

#[test]
fn future_times_follow_processing_and_skip_times_before_an_update() {
    let (mut state, _) = minutely(Skip);
    wake(&mut state, "2025-01-01T00:03:00Z");
    let d = describe(&state, ts("2025-01-01T00:03:00Z"));
    assert_eq!(
        times(&d.info.future_action_times)[0],
        "2025-01-01T00:04:00Z"
    );
}

#[test]
fn describe_cleans_ranges_and_list_info_trims() {
    let spec = ScheduleSpec {
        cron_string: vec!["0 12 * * *".into()],
        timezone_name: "Europe/Berlin".into(),
        ..Default::default()
    };
    let (mut state, _) = create_at(schedule(spec, Skip), T0);
    let d = describe(&state, ts(T0));
    let cal = &d.schedule.spec.as_ref().expect("spec").structured_calendar[0];
    assert_eq!(cal.hour[0].end, 12);
    assert_eq!(cal.hour[0].step, 1);
    let e = patch(
        &mut state,
        SchedulePatch {
            trigger_immediately: Some(Default::default()),
            pause: "quiet".into(),
            ..Default::default()
        },
        "2025-01-01T00:00:01Z",
    );
    start_all(&mut state, &e, "2025-01-01T00:00:01Z");
    let l = list_info(&state, ts("2025-01-01T00:00:01Z"));
    assert_eq!(l.workflow_type.map(|t| t.name), Some("T".into()));
    assert_eq!(l.notes, "quiet");
    assert!(l.paused);
    assert_eq!(l.recent_actions.len(), 1);
    assert_eq!(l.future_action_times.len(), 5);
    let spec = l.spec.expect("spec");
    assert_eq!(spec.timezone_name, "Europe/Berlin");
    assert_eq!(spec.structured_calendar[0].hour[0].step, 1);
}
