package gotests

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// stamper's Stamp activity says which worker ran it.
type stamper struct{ worker string }

func (s *stamper) Stamp(_ context.Context, what string) (string, error) {
	return s.worker + ":" + what, nil
}

// RelayWorkflow runs Stamp, waits for a "go" signal, runs Stamp again, and returns both
// stamps and the signal.
func RelayWorkflow(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var before, after, sig string
	if err := workflow.ExecuteActivity(ctx, "Stamp", "before").Get(ctx, &before); err != nil {
		return "", err
	}
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, &sig)
	if err := workflow.ExecuteActivity(ctx, "Stamp", "after").Get(ctx, &after); err != nil {
		return "", err
	}
	return before + " " + sig + " " + after, nil
}

func TestWorkerRestartMidWorkflow(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	tq := unique("go-restart")
	register := func(name string) func(worker.Registry) {
		return func(r worker.Registry) {
			r.RegisterWorkflow(RelayWorkflow)
			r.RegisterActivityWithOptions((&stamper{worker: name}).Stamp, activity.RegisterOptions{Name: "Stamp"})
		}
	}
	first := startWorkerWith(t, tq, worker.Options{Identity: "first-worker"}, register("w1"))
	id := unique("go-restart-wf")
	run := startWorkflow(ctx, t, id, tq, RelayWorkflow)

	// Blocked on the signal: the first activity completed and a workflow task after it too.
	waitUntil(t, 30*time.Second, "the workflow to block on its signal", func() (bool, error) {
		events, err := fetchHistory(ctx, id, run.GetRunID())
		if err != nil {
			return false, err
		}
		activityDone := false
		for _, e := range events {
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				activityDone = true
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				if activityDone {
					return true, nil
				}
			}
		}
		return false, nil
	})

	first.Stop()
	// The SDK's workflow cache is per process: empty it, so the new worker has to rebuild
	// the workflow from its history as a new process would.
	worker.PurgeStickyWorkflowCache()
	startWorkerWith(t, tq, worker.Options{Identity: "second-worker"}, register("w2"))

	signalled := time.Now()
	if err := testClient.SignalWorkflow(ctx, id, "", "go", "signal"); err != nil {
		t.Fatalf("SignalWorkflowExecution: %v", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	t.Logf("done %s after the signal to the new worker", time.Since(signalled).Round(time.Millisecond))
	if want := "w1:before signal w2:after"; got != want {
		t.Fatalf("result %q, want %q", got, want)
	}

	events := history(ctx, t, id, run.GetRunID())
	var identities []string
	for _, e := range eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED) {
		identities = append(identities, e.GetWorkflowTaskStartedEventAttributes().GetIdentity())
	}
	if len(identities) < 3 || identities[0] != "first-worker" || identities[len(identities)-1] != "second-worker" {
		t.Errorf("workflow tasks started by %v, want first-worker first and second-worker last", identities)
	}
	if n := len(eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED)); n != 0 {
		t.Errorf("%d WorkflowTaskFailed events, want none; history: %v", n, eventTypes(events))
	}
}

// Double is an activity.
func Double(_ context.Context, n int) (int, error) { return 2 * n, nil }

// DoubleWorkflow runs Double with only a start-to-close timeout.
func DoubleWorkflow(ctx workflow.Context, n int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var doubled int
	err := workflow.ExecuteActivity(ctx, Double, n).Get(ctx, &doubled)
	return doubled, err
}

func TestManyConcurrentWorkflows(t *testing.T) {
	const (
		count    = 200
		starters = 16 // concurrent StartWorkflowExecution calls
	)
	ctx := testContext(t, 180*time.Second)
	tq := unique("go-many")
	startWorker(t, tq, func(r worker.Registry) {
		r.RegisterWorkflow(DoubleWorkflow)
		r.RegisterActivity(Double)
	})
	prefix := unique("go-many-wf")

	began := time.Now()
	runs := make([]client.WorkflowRun, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	next := make(chan int)
	for range starters {
		wg.Go(func() {
			for i := range next {
				runs[i], errs[i] = testClient.ExecuteWorkflow(ctx,
					client.StartWorkflowOptions{ID: fmt.Sprintf("%s-%d", prefix, i), TaskQueue: tq}, DoubleWorkflow, i)
			}
		})
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("starting workflow %d: %v", i, err)
		}
	}
	startedIn := time.Since(began)

	for i, run := range runs {
		var got int
		if err := run.Get(ctx, &got); err != nil {
			t.Fatalf("workflow %d result: %v", i, err)
		}
		if got != 2*i {
			t.Fatalf("workflow %d result %d, want %d", i, got, 2*i)
		}
	}
	elapsed := time.Since(began)
	t.Logf("%d workflows with one activity each: all started in %s, all completed in %s (%.0f workflows/s)",
		count, startedIn.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(count)/elapsed.Seconds())
}
