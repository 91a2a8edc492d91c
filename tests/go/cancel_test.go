package gotests

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// HeartbeatUntilCanceled heartbeats until the server tells it the activity was cancelled.
// It notes "started" and then "canceled" in the workflow's probe.
func HeartbeatUntilCanceled(ctx context.Context) error {
	key := activity.GetInfo(ctx).WorkflowExecution.ID
	probe(key) <- "started"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		activity.RecordHeartbeat(ctx)
		select {
		case <-ctx.Done():
			probe(key) <- "canceled"
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// CleanUp notes "cleanup: <what>" in the workflow's probe.
func CleanUp(ctx context.Context, what string) error {
	probe(activity.GetInfo(ctx).WorkflowExecution.ID) <- "cleanup: " + what
	return nil
}

// CancellableWorkflow waits on a long timer and an activity. When cancelled it waits for
// the activity to acknowledge, runs CleanUp in a disconnected context and ends cancelled.
func CancellableWorkflow(ctx workflow.Context) error {
	timer := workflow.NewTimer(ctx, time.Hour)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    2 * time.Second,
		WaitForCancellation: true,
	})
	activityErr := workflow.ExecuteActivity(actx, HeartbeatUntilCanceled).Get(actx, nil)
	timerErr := timer.Get(ctx, nil)
	if !temporal.IsCanceledError(activityErr) || !temporal.IsCanceledError(timerErr) {
		return fmt.Errorf("want both cancelled: activity ended with %v, timer with %v", activityErr, timerErr)
	}

	cleanupCtx, _ := workflow.NewDisconnectedContext(ctx)
	cleanupCtx = workflow.WithActivityOptions(cleanupCtx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	if err := workflow.ExecuteActivity(cleanupCtx, CleanUp, "after cancel").Get(cleanupCtx, nil); err != nil {
		return err
	}
	return ctx.Err()
}

func TestCancellationWithCleanup(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	tq := unique("go-cancel")
	startWorker(t, tq, func(r worker.Registry) {
		r.RegisterWorkflow(CancellableWorkflow)
		r.RegisterActivity(HeartbeatUntilCanceled)
		r.RegisterActivity(CleanUp)
	})
	id := unique("go-cancel-wf")
	run := startWorkflow(ctx, t, id, tq, CancellableWorkflow)

	if note := awaitProbe(t, id, 20*time.Second, "the activity to start"); note != "started" {
		t.Fatalf("first activity note %q, want started", note)
	}
	if err := testClient.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatalf("RequestCancelWorkflowExecution: %v", err)
	}
	if note := awaitProbe(t, id, 20*time.Second, "the activity to see its cancellation"); note != "canceled" {
		t.Fatalf("activity note %q, want canceled", note)
	}
	if note := awaitProbe(t, id, 20*time.Second, "the cleanup activity"); note != "cleanup: after cancel" {
		t.Fatalf("activity note %q, want the cleanup", note)
	}

	err := run.Get(ctx, nil)
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("workflow result error %v (%T), want a CanceledError", err, err)
	}
	desc, err := testClient.DescribeWorkflowExecution(ctx, id, run.GetRunID())
	if err != nil {
		t.Fatalf("DescribeWorkflowExecution: %v", err)
	}
	if s := desc.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
		t.Errorf("status %s, want Canceled", s)
	}

	events := history(ctx, t, id, run.GetRunID())
	types := eventTypes(events)
	for _, want := range []enumspb.EventType{
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
		enumspb.EVENT_TYPE_TIMER_CANCELED,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, // the cleanup
	} {
		if len(eventsOfType(events, want)) == 0 {
			t.Errorf("no %s in history: %v", want, types)
		}
	}
	var cleanupScheduled bool
	for _, e := range eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
		if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "CleanUp" {
			cleanupScheduled = true
		}
	}
	if !cleanupScheduled {
		t.Errorf("no CleanUp activity scheduled in history: %v", types)
	}
	if last := events[len(events)-1].GetEventType(); last != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED {
		t.Errorf("last event %s, want WorkflowExecutionCanceled", last)
	}
}
