package dev.temper.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.temporal.activity.ActivityInterface;
import io.temporal.activity.ActivityOptions;
import io.temporal.api.enums.v1.EventType;
import io.temporal.api.history.v1.HistoryEvent;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowStub;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** An activity with only a start-to-close timeout, and a durable timer. */
class ActivityAndTimerTest extends ServerTestBase {

  @ActivityInterface
  public interface Greetings {
    String greet(String name);
  }

  public static class GreetingsImpl implements Greetings {
    @Override
    public String greet(String name) {
      return "Hello, " + name + "!";
    }
  }

  @WorkflowInterface
  public interface GreetWorkflow {
    @WorkflowMethod(name = "JavaGreetWorkflow")
    String run(String name);
  }

  public static class GreetWorkflowImpl implements GreetWorkflow {
    // Only StartToCloseTimeout: the server has to fill in the other timeouts.
    private final Greetings greetings =
        Workflow.newActivityStub(
            Greetings.class,
            ActivityOptions.newBuilder().setStartToCloseTimeout(Duration.ofSeconds(10)).build());

    @Override
    public String run(String name) {
      return greetings.greet(name);
    }
  }

  @WorkflowInterface
  public interface SleepWorkflow {
    @WorkflowMethod(name = "JavaSleepWorkflow")
    String run(long millis);
  }

  public static class SleepWorkflowImpl implements SleepWorkflow {
    @Override
    public String run(long millis) {
      long before = Workflow.currentTimeMillis();
      Workflow.sleep(Duration.ofMillis(millis));
      return "slept " + (Workflow.currentTimeMillis() - before >= millis);
    }
  }

  @Test
  @Timeout(60)
  void activityWithOnlyStartToCloseTimeout() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(GreetWorkflowImpl.class);
    worker.registerActivitiesImplementations(new GreetingsImpl());
    factory.start();

    GreetWorkflow workflow =
        client.newWorkflowStub(GreetWorkflow.class, options(workflowId("greet")));
    var execution = WorkflowClient.start(workflow::run, "Java");
    String result = resultWithin(WorkflowStub.fromTyped(workflow), String.class, Duration.ofSeconds(30));
    assertEquals("Hello, Java!", result);

    List<HistoryEvent> events = history(execution);
    List<String> types = eventTypes(events);
    assertTrue(types.contains("ACTIVITY_TASK_SCHEDULED"), types.toString());
    assertTrue(types.contains("ACTIVITY_TASK_STARTED"), types.toString());
    assertTrue(types.contains("ACTIVITY_TASK_COMPLETED"), types.toString());
    assertEquals("WORKFLOW_EXECUTION_COMPLETED", types.get(types.size() - 1), types.toString());
    var scheduled =
        eventsOf(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).get(0)
            .getActivityTaskScheduledEventAttributes();
    assertEquals("greet", scheduled.getActivityType().getName().toLowerCase());
    assertEquals(10, scheduled.getStartToCloseTimeout().getSeconds());
    // It ran once and completed: the unset timeouts did not make it time out.
    assertEquals(1, eventsOf(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED).get(0)
        .getActivityTaskStartedEventAttributes().getAttempt());
    assertTrue(eventsOf(events, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT).isEmpty(), types.toString());
    assertTrue(eventsOf(events, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED).isEmpty(), types.toString());
  }

  @Test
  @Timeout(60)
  void timerFiresAndIsInHistory() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(SleepWorkflowImpl.class);
    factory.start();

    SleepWorkflow workflow =
        client.newWorkflowStub(SleepWorkflow.class, options(workflowId("sleep")));
    var execution = WorkflowClient.start(workflow::run, 1500L);
    String result = resultWithin(WorkflowStub.fromTyped(workflow), String.class, Duration.ofSeconds(30));
    assertEquals("slept true", result);

    List<HistoryEvent> events = history(execution);
    List<String> types = eventTypes(events);
    List<HistoryEvent> started = eventsOf(events, EventType.EVENT_TYPE_TIMER_STARTED);
    List<HistoryEvent> fired = eventsOf(events, EventType.EVENT_TYPE_TIMER_FIRED);
    assertEquals(1, started.size(), types.toString());
    assertEquals(1, fired.size(), types.toString());
    var startedAttrs = started.get(0).getTimerStartedEventAttributes();
    var firedAttrs = fired.get(0).getTimerFiredEventAttributes();
    assertEquals(1500, startedAttrs.getStartToFireTimeout().getSeconds() * 1000
        + startedAttrs.getStartToFireTimeout().getNanos() / 1_000_000);
    assertEquals(startedAttrs.getTimerId(), firedAttrs.getTimerId());
    assertEquals(started.get(0).getEventId(), firedAttrs.getStartedEventId());
    // The timer fired no earlier than it was due, by the server's own event times.
    long startedAt = started.get(0).getEventTime().getSeconds() * 1000
        + started.get(0).getEventTime().getNanos() / 1_000_000;
    long firedAt = fired.get(0).getEventTime().getSeconds() * 1000
        + fired.get(0).getEventTime().getNanos() / 1_000_000;
    assertTrue(firedAt - startedAt >= 1500, "fired after " + (firedAt - startedAt) + " ms");
    assertTrue(types.indexOf("TIMER_FIRED") < types.indexOf("WORKFLOW_EXECUTION_COMPLETED"));
  }
}
