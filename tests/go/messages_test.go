package gotests

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// MailboxState is what MailboxWorkflow's "state" query answers.
type MailboxState struct {
	Received []string
}

// MailboxWorkflow collects "add" signals until one says "done", and returns them.
func MailboxWorkflow(ctx workflow.Context) ([]string, error) {
	received := []string{}
	if err := workflow.SetQueryHandler(ctx, "state", func() (MailboxState, error) {
		return MailboxState{Received: received}, nil
	}); err != nil {
		return nil, err
	}
	add := workflow.GetSignalChannel(ctx, "add")
	for {
		var item string
		add.Receive(ctx, &item)
		if item == "done" {
			return received, nil
		}
		received = append(received, item)
	}
}

func TestSignalAndQuery(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	tq := unique("go-signal")
	startWorker(t, tq, func(r worker.Registry) { r.RegisterWorkflow(MailboxWorkflow) })
	id := unique("go-signal-wf")
	run := startWorkflow(ctx, t, id, tq, MailboxWorkflow)

	queryUntil := func(want []string) {
		t.Helper()
		var last MailboxState
		attempts := 0
		waitUntil(t, 20*time.Second, fmt.Sprintf("query state %v", want), func() (bool, error) {
			attempts++
			v, err := testClient.QueryWorkflow(ctx, id, "", "state")
			if err != nil {
				return false, err
			}
			if err := v.Get(&last); err != nil {
				return false, err
			}
			if !slices.Equal(last.Received, want) {
				return false, fmt.Errorf("query answered %v", last.Received)
			}
			return true, nil
		})
		if attempts > 1 {
			// Not an error (a query may be answered before the signal is applied), but
			// worth knowing.
			t.Logf("query showed %v only on attempt %d", want, attempts)
		}
	}

	queryUntil([]string{})
	for i, item := range []string{"a", "b"} {
		if err := testClient.SignalWorkflow(ctx, id, "", "add", item); err != nil {
			t.Fatalf("SignalWorkflowExecution(%q): %v", item, err)
		}
		queryUntil([]string{"a", "b"}[:i+1])
	}
	if err := testClient.SignalWorkflow(ctx, id, "", "add", "done"); err != nil {
		t.Fatalf("SignalWorkflowExecution(done): %v", err)
	}
	var result []string
	if err := run.Get(ctx, &result); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if !slices.Equal(result, []string{"a", "b"}) {
		t.Fatalf("result %v, want [a b]", result)
	}

	events := history(ctx, t, id, run.GetRunID())
	var signals []string
	for _, e := range eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) {
		a := e.GetWorkflowExecutionSignaledEventAttributes()
		var item string
		if err := client.NewValues(a.GetInput()).Get(&item); err != nil {
			t.Fatalf("decoding signal input: %v", err)
		}
		signals = append(signals, a.GetSignalName()+":"+item)
	}
	if want := []string{"add:a", "add:b", "add:done"}; !slices.Equal(signals, want) {
		t.Errorf("signals in history %v, want %v", signals, want)
	}
}

// CounterWorkflow adds the numbers of "add" updates, which a validator accepts only if
// positive, until a "finish" signal; it returns the total.
func CounterWorkflow(ctx workflow.Context) (int, error) {
	total := 0
	err := workflow.SetUpdateHandlerWithOptions(ctx, "add",
		func(ctx workflow.Context, n int) (int, error) {
			total += n
			return total, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, n int) error {
			if n <= 0 {
				return fmt.Errorf("%d is not positive", n)
			}
			return nil
		}})
	if err != nil {
		return 0, err
	}
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return 0, err
	}
	return total, nil
}

func TestUpdateWithValidator(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	tq := unique("go-update")
	startWorker(t, tq, func(r worker.Registry) { r.RegisterWorkflow(CounterWorkflow) })
	id := unique("go-update-wf")
	run := startWorkflow(ctx, t, id, tq, CounterWorkflow)

	update := func(updateID string, n int) (int, error) {
		h, err := testClient.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateID:     updateID,
			UpdateName:   "add",
			Args:         []any{n},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err != nil {
			return 0, err
		}
		var total int
		err = h.Get(ctx, &total)
		return total, err
	}

	if total, err := update("valid-1", 5); err != nil || total != 5 {
		t.Fatalf("update add 5: total %d, error %v; want 5, nil", total, err)
	}
	_, err := update("rejected-1", -3)
	if err == nil {
		t.Fatalf("update add -3: no error, want the validator's rejection")
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !strings.Contains(err.Error(), "-3 is not positive") {
		t.Fatalf("update add -3: error %q, want the validator's %q", err, "-3 is not positive")
	}
	t.Logf("rejected update's error: %v", err)
	if total, err := update("valid-2", 2); err != nil || total != 7 {
		t.Fatalf("update add 2: total %d, error %v; want 7, nil", total, err)
	}

	if err := testClient.SignalWorkflow(ctx, id, "", "finish", nil); err != nil {
		t.Fatalf("SignalWorkflowExecution(finish): %v", err)
	}
	var total int
	if err := run.Get(ctx, &total); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if total != 7 {
		t.Fatalf("result %d, want 7 (the rejected update must not count)", total)
	}

	events := history(ctx, t, id, run.GetRunID())
	var accepted, completed []string
	for _, e := range eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) {
		accepted = append(accepted, e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetMeta().GetUpdateId())
	}
	for _, e := range eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED) {
		completed = append(completed, e.GetWorkflowExecutionUpdateCompletedEventAttributes().GetMeta().GetUpdateId())
	}
	want := []string{"valid-1", "valid-2"}
	if !slices.Equal(accepted, want) || !slices.Equal(completed, want) {
		t.Errorf("updates accepted %v and completed %v in history, want %v for both; history: %v",
			accepted, completed, want, eventTypes(events))
	}
	if n := len(eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED)); n != 0 {
		t.Errorf("%d WorkflowExecutionUpdateRejected events in history, want none (rejections are not recorded)", n)
	}
	if n := len(eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED)); n != 0 {
		t.Errorf("%d WorkflowTaskFailed events in history, want none", n)
	}
}
