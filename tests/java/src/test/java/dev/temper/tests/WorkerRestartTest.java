package dev.temper.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.EventType;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowStub;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.SignalMethod;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A workflow outlives the worker that started it and finishes on a new one. */
class WorkerRestartTest extends ServerTestBase {

  @WorkflowInterface
  public interface Gate {
    @WorkflowMethod(name = "JavaGate")
    String run(String before);

    @SignalMethod
    void open(String key);
  }

  public static class GateImpl implements Gate {
    private String key;

    @Override
    public String run(String before) {
      // Some history before the wait, to be replayed by the new worker.
      Workflow.sleep(Duration.ofMillis(100));
      Workflow.await(() -> key != null);
      return before + " then " + key;
    }

    @Override
    public void open(String key) {
      this.key = key;
    }
  }

  private WorkerFactory startWorker() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(GateImpl.class);
    factory.start();
    return factory;
  }

  @Test
  @Timeout(90)
  void workflowCompletesOnNewWorkerAfterRestart() throws InterruptedException {
    WorkerFactory first = startWorker();
    Gate gate = client.newWorkflowStub(Gate.class, options(workflowId("gate")));
    WorkflowExecution execution = WorkflowClient.start(gate::run, "started");

    // Blocked on the signal: the timer has fired and a later workflow task has completed.
    pollUntil(
        () -> {
          List<String> types = eventTypes(history(execution));
          return types.contains("TIMER_FIRED")
              && types.lastIndexOf("WORKFLOW_TASK_COMPLETED") > types.indexOf("TIMER_FIRED");
        },
        Duration.ofSeconds(30),
        "the workflow to wait for its signal");

    long stopping = System.nanoTime();
    first.shutdown();
    first.awaitTermination(20, TimeUnit.SECONDS);
    assertTrue(first.isTerminated(), "the first worker stopped");
    long stopped = System.nanoTime();

    // Signal while no worker runs; the workflow must wait for one.
    gate.open("reopened");
    WorkflowStub stub = WorkflowStub.fromTyped(gate);

    startWorker();
    assertEquals("started then reopened", resultWithin(stub, String.class, Duration.ofSeconds(45)));
    long done = System.nanoTime();
    System.out.printf(
        "[worker-restart] %s: first worker stopped in %d ms; new worker finished the workflow in "
            + "%d ms%n",
        server().kind(), (stopped - stopping) / 1_000_000, (done - stopped) / 1_000_000);

    List<String> types = eventTypes(history(execution));
    assertEquals(1, types.stream().filter("WORKFLOW_EXECUTION_SIGNALED"::equals).count(), types.toString());
    assertEquals("WORKFLOW_EXECUTION_COMPLETED", types.get(types.size() - 1), types.toString());
    assertTrue(eventsOf(history(execution), EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED).isEmpty(),
        "no workflow task failed: " + types);
  }
}
