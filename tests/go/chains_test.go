package gotests

import (
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// ParentWorkflow runs ChildWorkflow under childID and returns what it returned.
func ParentWorkflow(ctx workflow.Context, childID string) (string, error) {
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: childID})
	var got string
	if err := workflow.ExecuteChildWorkflow(ctx, ChildWorkflow, "ping").Get(ctx, &got); err != nil {
		return "", err
	}
	return "parent got: " + got, nil
}

// ChildWorkflow answers with the id of the parent the SDK says it has.
func ChildWorkflow(ctx workflow.Context, msg string) (string, error) {
	parent := "(none)"
	if p := workflow.GetInfo(ctx).ParentWorkflowExecution; p != nil {
		parent = p.ID
	}
	return fmt.Sprintf("%s from child of %s", msg, parent), nil
}

func TestChildWorkflow(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	tq := unique("go-child")
	startWorker(t, tq, func(r worker.Registry) {
		r.RegisterWorkflow(ParentWorkflow)
		r.RegisterWorkflow(ChildWorkflow)
	})
	parentID := unique("go-parent-wf")
	childID := parentID + "-child"
	run := startWorkflow(ctx, t, parentID, tq, ParentWorkflow, childID)

	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatalf("parent result: %v", err)
	}
	if want := "parent got: ping from child of " + parentID; got != want {
		t.Fatalf("parent result %q, want %q", got, want)
	}

	desc, err := testClient.DescribeWorkflowExecution(ctx, childID, "")
	if err != nil {
		t.Fatalf("DescribeWorkflowExecution(child): %v", err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("child status %s, want Completed", info.GetStatus())
	}
	if p := info.GetParentExecution(); p.GetWorkflowId() != parentID || p.GetRunId() != run.GetRunID() {
		t.Errorf("child's parent execution %v, want workflow %s run %s", p, parentID, run.GetRunID())
	}
	if info.GetParentNamespaceId() == "" {
		t.Errorf("child's parent namespace id is empty")
	}
	if info.GetType().GetName() != "ChildWorkflow" {
		t.Errorf("child's workflow type %q, want ChildWorkflow", info.GetType().GetName())
	}

	events := history(ctx, t, parentID, run.GetRunID())
	initiated := eventsOfType(events, enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
	started := eventsOfType(events, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
	completed := eventsOfType(events, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)
	if len(initiated) != 1 || len(started) != 1 || len(completed) != 1 {
		t.Fatalf("want one child initiated, started and completed in the parent's history: %v", eventTypes(events))
	}
	childExec := started[0].GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution()
	if childExec.GetWorkflowId() != childID || childExec.GetRunId() != info.GetExecution().GetRunId() {
		t.Errorf("ChildWorkflowExecutionStarted names %v, want %s run %s", childExec, childID, info.GetExecution().GetRunId())
	}

	childEvents := history(ctx, t, childID, "")
	first := childEvents[0].GetWorkflowExecutionStartedEventAttributes()
	if p := first.GetParentWorkflowExecution(); p.GetWorkflowId() != parentID || p.GetRunId() != run.GetRunID() {
		t.Errorf("child's WorkflowExecutionStarted parent %v, want %s run %s", p, parentID, run.GetRunID())
	}
	if first.GetParentInitiatedEventId() != initiated[0].GetEventId() {
		t.Errorf("child's parent initiated event id %d, want %d", first.GetParentInitiatedEventId(), initiated[0].GetEventId())
	}
}

// CountingWorkflow continues as new, adding one to count, until count reaches target.
func CountingWorkflow(ctx workflow.Context, count, target int) (int, error) {
	if count < target {
		return 0, workflow.NewContinueAsNewError(ctx, CountingWorkflow, count+1, target)
	}
	return count, nil
}

func TestContinueAsNew(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	tq := unique("go-can")
	startWorker(t, tq, func(r worker.Registry) { r.RegisterWorkflow(CountingWorkflow) })
	id := unique("go-can-wf")
	const target = 5
	run := startWorkflow(ctx, t, id, tq, CountingWorkflow, 0, target)

	firstRunID := run.GetRunID() // Get moves the run to the chain's last
	var got int
	if err := run.Get(ctx, &got); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if got != target {
		t.Fatalf("result %d, want %d", got, target)
	}

	// Walk the chain from the first run through each run's continued-as-new event.
	runIDs := []string{firstRunID}
	seen := map[string]bool{firstRunID: true}
	for i := 0; ; i++ {
		runID := runIDs[i]
		events := history(ctx, t, id, runID)
		started := events[0].GetWorkflowExecutionStartedEventAttributes()
		var count, tgt int
		if err := client.NewValues(started.GetInput()).Get(&count, &tgt); err != nil {
			t.Fatalf("run %d: decoding input: %v", i, err)
		}
		if count != i || tgt != target {
			t.Errorf("run %d started with (%d, %d), want (%d, %d)", i, count, tgt, i, target)
		}
		if started.GetFirstExecutionRunId() != firstRunID {
			t.Errorf("run %d: first execution run id %q, want %q", i, started.GetFirstExecutionRunId(), firstRunID)
		}
		if i > 0 && started.GetContinuedExecutionRunId() != runIDs[i-1] {
			t.Errorf("run %d: continued execution run id %q, want %q", i, started.GetContinuedExecutionRunId(), runIDs[i-1])
		}
		last := events[len(events)-1]
		if i == target {
			if last.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
				t.Fatalf("run %d (the last) ends with %s, want WorkflowExecutionCompleted", i, last.GetEventType())
			}
			break
		}
		if last.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
			t.Fatalf("run %d ends with %s, want WorkflowExecutionContinuedAsNew", i, last.GetEventType())
		}
		next := last.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		if next == "" || seen[next] {
			t.Fatalf("run %d continued as new into run %q: empty or already in the chain %v", i, next, runIDs)
		}
		seen[next] = true
		runIDs = append(runIDs, next)
	}
	if len(runIDs) != target+1 {
		t.Fatalf("chain has %d runs, want %d", len(runIDs), target+1)
	}

	desc, err := testClient.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("DescribeWorkflowExecution: %v", err)
	}
	if latest := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(); latest != runIDs[target] {
		t.Errorf("latest run %q, want the chain's last %q", latest, runIDs[target])
	}
	if s := desc.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("latest run's status %s, want Completed", s)
	}
	firstDesc, err := testClient.DescribeWorkflowExecution(ctx, id, firstRunID)
	if err != nil {
		t.Fatalf("DescribeWorkflowExecution(first run): %v", err)
	}
	if s := firstDesc.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
		t.Errorf("first run's status %s, want ContinuedAsNew", s)
	}
}
