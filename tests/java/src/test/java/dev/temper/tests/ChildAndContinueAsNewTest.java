package dev.temper.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.EventType;
import io.temporal.api.enums.v1.WorkflowExecutionStatus;
import io.temporal.api.history.v1.HistoryEvent;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowStub;
import io.temporal.common.converter.DefaultDataConverter;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.ChildWorkflowOptions;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A child workflow, and a chain of continue-as-new runs. */
class ChildAndContinueAsNewTest extends ServerTestBase {

  @WorkflowInterface
  public interface Child {
    @WorkflowMethod(name = "JavaChild")
    String shout(String text);
  }

  public static class ChildImpl implements Child {
    @Override
    public String shout(String text) {
      return text.toUpperCase() + "!";
    }
  }

  @WorkflowInterface
  public interface Parent {
    @WorkflowMethod(name = "JavaParent")
    String run(String text);
  }

  public static class ParentImpl implements Parent {
    @Override
    public String run(String text) {
      String childId = Workflow.getInfo().getWorkflowId() + "-child";
      Child child =
          Workflow.newChildWorkflowStub(
              Child.class, ChildWorkflowOptions.newBuilder().setWorkflowId(childId).build());
      return "parent got " + child.shout(text);
    }
  }

  @WorkflowInterface
  public interface Countdown {
    /** Continues as new until `runsLeft` is 0, adding each run's number to `sum`. */
    @WorkflowMethod(name = "JavaCountdown")
    String run(int runsLeft, int sum);
  }

  public static class CountdownImpl implements Countdown {
    @Override
    public String run(int runsLeft, int sum) {
      if (runsLeft > 0) {
        Countdown next = Workflow.newContinueAsNewStub(Countdown.class);
        next.run(runsLeft - 1, sum + runsLeft);
      }
      return "sum=" + sum;
    }
  }

  @Test
  @Timeout(60)
  void childWorkflowResultAndParentInfo() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(ParentImpl.class, ChildImpl.class);
    factory.start();

    String parentId = workflowId("parent");
    Parent parent = client.newWorkflowStub(Parent.class, options(parentId));
    WorkflowExecution parentRun = WorkflowClient.start(parent::run, "hi");
    assertEquals("parent got HI!",
        resultWithin(WorkflowStub.fromTyped(parent), String.class, Duration.ofSeconds(30)));

    List<HistoryEvent> events = history(parentRun);
    List<String> types = eventTypes(events);
    assertTrue(types.contains("START_CHILD_WORKFLOW_EXECUTION_INITIATED"), types.toString());
    assertTrue(types.contains("CHILD_WORKFLOW_EXECUTION_STARTED"), types.toString());
    assertTrue(types.contains("CHILD_WORKFLOW_EXECUTION_COMPLETED"), types.toString());
    WorkflowExecution childRun =
        eventsOf(events, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED).get(0)
            .getChildWorkflowExecutionStartedEventAttributes().getWorkflowExecution();
    assertEquals(parentId + "-child", childRun.getWorkflowId());

    var info = describe(childRun).getWorkflowExecutionInfo();
    assertEquals(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED, info.getStatus());
    assertEquals("JavaChild", info.getType().getName());
    assertTrue(info.hasParentExecution(), info.toString());
    assertEquals(parentId, info.getParentExecution().getWorkflowId());
    assertEquals(parentRun.getRunId(), info.getParentExecution().getRunId());
    assertFalse(info.getParentNamespaceId().isEmpty(), info.toString());

    // The child's own history names its parent too.
    var childStarted = history(childRun).get(0).getWorkflowExecutionStartedEventAttributes();
    assertEquals(parentId, childStarted.getParentWorkflowExecution().getWorkflowId());
    assertEquals(parentRun.getRunId(), childStarted.getParentWorkflowExecution().getRunId());
  }

  @Test
  @Timeout(60)
  void continueAsNewChain() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(CountdownImpl.class);
    factory.start();

    int continuations = 4;
    String id = workflowId("countdown");
    Countdown countdown = client.newWorkflowStub(Countdown.class, options(id));
    WorkflowExecution first = WorkflowClient.start(countdown::run, continuations, 0);
    // The typed stub follows the chain to the last run's result: 4+3+2+1.
    assertEquals("sum=10",
        resultWithin(WorkflowStub.fromTyped(countdown), String.class, Duration.ofSeconds(45)));

    // Walk the chain run by run from the first one.
    List<String> runIds = new ArrayList<>();
    List<Integer> sums = new ArrayList<>();
    String runId = first.getRunId();
    for (int i = 0; i <= continuations; i++) {
      runIds.add(runId);
      List<HistoryEvent> events = history(id, runId);
      var input = events.get(0).getWorkflowExecutionStartedEventAttributes().getInput();
      sums.add(DefaultDataConverter.STANDARD_INSTANCE.fromPayloads(
          1, Optional.of(input), Integer.class, Integer.class));
      HistoryEvent last = events.get(events.size() - 1);
      if (i < continuations) {
        assertEquals(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, last.getEventType(),
            "run " + i + ": " + eventTypes(events));
        runId = last.getWorkflowExecutionContinuedAsNewEventAttributes().getNewExecutionRunId();
      } else {
        assertEquals(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, last.getEventType(),
            "last run: " + eventTypes(events));
      }
    }
    assertEquals(continuations + 1, new HashSet<>(runIds).size(), "distinct runs: " + runIds);
    assertEquals(List.of(0, 4, 7, 9, 10), sums);

    // The workflow id now names the last run, completed.
    var latest = describe(WorkflowExecution.newBuilder().setWorkflowId(id).build())
        .getWorkflowExecutionInfo();
    assertEquals(runIds.get(continuations), latest.getExecution().getRunId());
    assertEquals(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED, latest.getStatus());
    var firstInfo = describe(first).getWorkflowExecutionInfo();
    assertEquals(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, firstInfo.getStatus());
  }
}
