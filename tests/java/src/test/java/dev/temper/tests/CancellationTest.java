package dev.temper.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.temporal.activity.Activity;
import io.temporal.activity.ActivityCancellationType;
import io.temporal.activity.ActivityInterface;
import io.temporal.activity.ActivityOptions;
import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.WorkflowExecutionStatus;
import io.temporal.api.history.v1.HistoryEvent;
import io.temporal.client.ActivityCompletionException;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowFailedException;
import io.temporal.client.WorkflowStub;
import io.temporal.failure.CanceledFailure;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.CancellationScope;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Cancelling a workflow cancels its activity, and cleanup still runs in a detached scope. */
class CancellationTest extends ServerTestBase {
  /** Workflow ids whose long activity started / saw its cancellation / whose cleanup ran. */
  static final Set<String> STARTED = ConcurrentHashMap.newKeySet();
  static final Set<String> SAW_CANCEL = ConcurrentHashMap.newKeySet();
  static final Set<String> CLEANED_UP = ConcurrentHashMap.newKeySet();

  @ActivityInterface
  public interface Chores {
    /** Heartbeats until cancelled (or a minute passes). */
    String longChore();

    void cleanUp(String workflowId);
  }

  public static class ChoresImpl implements Chores {
    @Override
    public String longChore() {
      String workflowId = Activity.getExecutionContext().getInfo().getWorkflowId();
      STARTED.add(workflowId);
      long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
      try {
        while (System.nanoTime() < deadline) {
          // The server answers a heartbeat with the cancel request once there is one.
          Activity.getExecutionContext().heartbeat(null);
          Thread.sleep(200);
        }
      } catch (ActivityCompletionException e) {
        SAW_CANCEL.add(workflowId);
        throw e;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw Activity.wrap(e);
      }
      return "finished uncancelled";
    }

    @Override
    public void cleanUp(String workflowId) {
      CLEANED_UP.add(workflowId);
    }
  }

  @WorkflowInterface
  public interface Cancellable {
    @WorkflowMethod(name = "JavaCancellable")
    String run();
  }

  public static class CancellableImpl implements Cancellable {
    private final Chores chores =
        Workflow.newActivityStub(
            Chores.class,
            ActivityOptions.newBuilder()
                .setStartToCloseTimeout(Duration.ofMinutes(2))
                .setHeartbeatTimeout(Duration.ofSeconds(2))
                // Wait until the activity itself confirms the cancellation.
                .setCancellationType(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
                .build());

    @Override
    public String run() {
      try {
        return chores.longChore();
      } catch (Exception e) {
        // Cancelled: the workflow's scope is cancelled now, so clean up in a detached one.
        CancellationScope cleanup =
            Workflow.newDetachedCancellationScope(
                () -> chores.cleanUp(Workflow.getInfo().getWorkflowId()));
        cleanup.run();
        throw e;
      }
    }
  }

  @Test
  @Timeout(90)
  void cancelRunsCleanupAndEndsCanceled() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(CancellableImpl.class);
    worker.registerActivitiesImplementations(new ChoresImpl());
    factory.start();

    String id = workflowId("cancel");
    Cancellable workflow = client.newWorkflowStub(Cancellable.class, options(id));
    WorkflowExecution execution = WorkflowClient.start(workflow::run);
    WorkflowStub stub = WorkflowStub.fromTyped(workflow);

    pollUntil(() -> STARTED.contains(id), Duration.ofSeconds(30), "the long activity to start");
    stub.cancel();

    WorkflowFailedException failed =
        assertThrows(WorkflowFailedException.class,
            () -> resultWithin(stub, String.class, Duration.ofSeconds(45)));
    assertInstanceOf(CanceledFailure.class, failed.getCause(), String.valueOf(failed.getCause()));

    assertTrue(SAW_CANCEL.contains(id), "the activity saw its cancellation");
    assertTrue(CLEANED_UP.contains(id), "the cleanup activity ran");
    assertEquals(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED,
        describe(execution).getWorkflowExecutionInfo().getStatus());

    List<HistoryEvent> events = history(execution);
    List<String> types = eventTypes(events);
    List<String> expectedInOrder =
        List.of(
            "WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            "ACTIVITY_TASK_CANCEL_REQUESTED",
            "ACTIVITY_TASK_CANCELED",
            "ACTIVITY_TASK_COMPLETED", // the cleanup activity
            "WORKFLOW_EXECUTION_CANCELED");
    int from = 0;
    for (String expected : expectedInOrder) {
      int at = types.subList(from, types.size()).indexOf(expected);
      assertTrue(at >= 0, expected + " after event #" + from + " in " + types);
      from += at + 1;
    }
    assertEquals("WORKFLOW_EXECUTION_CANCELED", types.get(types.size() - 1), types.toString());
  }
}
