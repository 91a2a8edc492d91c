package gotests

import (
	"context"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Greet is an activity.
func Greet(_ context.Context, name string) (string, error) {
	return "hello " + name, nil
}

// GreetWorkflow runs Greet with only a start-to-close timeout: the server fills in the
// other activity timeouts.
func GreetWorkflow(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var greeting string
	err := workflow.ExecuteActivity(ctx, Greet, name).Get(ctx, &greeting)
	return greeting, err
}

func TestActivityWithOnlyStartToCloseTimeout(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	tq := unique("go-activity")
	startWorker(t, tq, func(r worker.Registry) {
		r.RegisterWorkflow(GreetWorkflow)
		r.RegisterActivity(Greet)
	})
	id := unique("go-activity-wf")
	run := startWorkflow(ctx, t, id, tq, GreetWorkflow, "go")

	var greeting string
	if err := run.Get(ctx, &greeting); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if greeting != "hello go" {
		t.Fatalf("result %q, want %q", greeting, "hello go")
	}

	events := history(ctx, t, id, run.GetRunID())
	scheduled := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
	started := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED)
	completed := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
	if len(scheduled) != 1 || len(started) != 1 || len(completed) != 1 {
		t.Fatalf("want one activity scheduled, started and completed; history: %v", eventTypes(events))
	}
	attrs := scheduled[0].GetActivityTaskScheduledEventAttributes()
	if got := attrs.GetStartToCloseTimeout().AsDuration(); got != 10*time.Second {
		t.Errorf("scheduled start-to-close timeout %s, want 10s", got)
	}
	if attrs.GetActivityType().GetName() != "Greet" {
		t.Errorf("scheduled activity type %q, want Greet", attrs.GetActivityType().GetName())
	}
	// Unset timeouts are recorded as zero ("no limit": the workflow has no run timeout), and
	// the server fills in its default retry policy, as the reference server does.
	for name, d := range map[string]*durationpb.Duration{
		"schedule-to-close": attrs.GetScheduleToCloseTimeout(),
		"schedule-to-start": attrs.GetScheduleToStartTimeout(),
		"heartbeat":         attrs.GetHeartbeatTimeout(),
	} {
		if d.AsDuration() != 0 {
			t.Errorf("scheduled %s timeout %s, want 0 (unset, no limit)", name, d.AsDuration())
		}
	}
	retry := attrs.GetRetryPolicy()
	if retry.GetInitialInterval().AsDuration() != time.Second || retry.GetBackoffCoefficient() != 2 ||
		retry.GetMaximumInterval().AsDuration() != 100*time.Second || retry.GetMaximumAttempts() != 0 {
		t.Errorf("scheduled retry policy %v, want the default: initial 1s, coefficient 2, maximum 100s, unlimited attempts", retry)
	}
	if attempt := started[0].GetActivityTaskStartedEventAttributes().GetAttempt(); attempt != 1 {
		t.Errorf("activity started on attempt %d, want 1", attempt)
	}
	if last := events[len(events)-1].GetEventType(); last != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
		t.Errorf("last event %s, want WorkflowExecutionCompleted", last)
	}
}

// TimerWorkflow sleeps on a timer and returns the workflow time that passed.
func TimerWorkflow(ctx workflow.Context, d time.Duration) (time.Duration, error) {
	start := workflow.Now(ctx)
	if err := workflow.NewTimer(ctx, d).Get(ctx, nil); err != nil {
		return 0, err
	}
	return workflow.Now(ctx).Sub(start), nil
}

func TestTimer(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	tq := unique("go-timer")
	startWorker(t, tq, func(r worker.Registry) { r.RegisterWorkflow(TimerWorkflow) })
	const d = 1500 * time.Millisecond
	id := unique("go-timer-wf")
	began := time.Now()
	run := startWorkflow(ctx, t, id, tq, TimerWorkflow, d)

	var slept time.Duration
	if err := run.Get(ctx, &slept); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	elapsed := time.Since(began)
	if elapsed < d {
		t.Errorf("workflow finished %s after start, before its %s timer could fire", elapsed, d)
	}
	if slept < d {
		t.Errorf("workflow time advanced %s across the timer, want at least %s", slept, d)
	}

	events := history(ctx, t, id, run.GetRunID())
	startedEvents := eventsOfType(events, enumspb.EVENT_TYPE_TIMER_STARTED)
	fired := eventsOfType(events, enumspb.EVENT_TYPE_TIMER_FIRED)
	if len(startedEvents) != 1 || len(fired) != 1 {
		t.Fatalf("want one TimerStarted and one TimerFired; history: %v", eventTypes(events))
	}
	started := startedEvents[0].GetTimerStartedEventAttributes()
	if got := started.GetStartToFireTimeout().AsDuration(); got != d {
		t.Errorf("TimerStarted start-to-fire timeout %s, want %s", got, d)
	}
	firedAttrs := fired[0].GetTimerFiredEventAttributes()
	if firedAttrs.GetTimerId() != started.GetTimerId() {
		t.Errorf("TimerFired timer id %q, TimerStarted %q", firedAttrs.GetTimerId(), started.GetTimerId())
	}
	if firedAttrs.GetStartedEventId() != startedEvents[0].GetEventId() {
		t.Errorf("TimerFired started event id %d, want %d", firedAttrs.GetStartedEventId(), startedEvents[0].GetEventId())
	}
	gap := fired[0].GetEventTime().AsTime().Sub(startedEvents[0].GetEventTime().AsTime())
	if gap < d {
		t.Errorf("TimerFired only %s after TimerStarted, want at least %s", gap, d)
	}
	if last := events[len(events)-1].GetEventType(); last != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
		t.Errorf("last event %s, want WorkflowExecutionCompleted", last)
	}
	t.Logf("timer of %s: workflow done %s after start", d, elapsed.Round(time.Millisecond))
}
