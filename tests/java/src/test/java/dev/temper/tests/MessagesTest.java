package dev.temper.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.EventType;
import io.temporal.api.history.v1.HistoryEvent;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowStub;
import io.temporal.client.WorkflowUpdateException;
import io.temporal.common.converter.DefaultDataConverter;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.QueryMethod;
import io.temporal.workflow.SignalMethod;
import io.temporal.workflow.UpdateMethod;
import io.temporal.workflow.UpdateValidatorMethod;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Signals, queries and updates (with a validator). */
class MessagesTest extends ServerTestBase {

  @WorkflowInterface
  public interface Mailbox {
    @WorkflowMethod(name = "JavaMailbox")
    String run();

    @SignalMethod
    void post(String message);

    @SignalMethod
    void close();

    @QueryMethod
    List<String> messages();
  }

  public static class MailboxImpl implements Mailbox {
    private final List<String> messages = new ArrayList<>();
    private boolean closed;

    @Override
    public String run() {
      Workflow.await(() -> closed);
      return String.join(",", messages);
    }

    @Override
    public void post(String message) {
      messages.add(message);
    }

    @Override
    public void close() {
      closed = true;
    }

    @Override
    public List<String> messages() {
      return new ArrayList<>(messages);
    }
  }

  @WorkflowInterface
  public interface Counter {
    @WorkflowMethod(name = "JavaCounter")
    int run();

    /** Adds a positive amount and returns the new total. */
    @UpdateMethod
    int add(int amount);

    @UpdateValidatorMethod(updateName = "add")
    void validateAdd(int amount);

    @SignalMethod
    void finish();
  }

  public static class CounterImpl implements Counter {
    private int total;
    private boolean finished;

    @Override
    public int run() {
      Workflow.await(() -> finished);
      return total;
    }

    @Override
    public int add(int amount) {
      total += amount;
      return total;
    }

    @Override
    public void validateAdd(int amount) {
      if (amount <= 0) {
        throw new IllegalArgumentException("amount must be positive, got " + amount);
      }
    }

    @Override
    public void finish() {
      finished = true;
    }
  }

  @Test
  @Timeout(60)
  void signalThenQuery() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(MailboxImpl.class);
    factory.start();

    Mailbox mailbox = client.newWorkflowStub(Mailbox.class, options(workflowId("mailbox")));
    WorkflowClient.start(mailbox::run);

    signalThenPollQuery(mailbox, "first", List.of("first"));
    signalThenPollQuery(mailbox, "second", List.of("first", "second"));
    mailbox.close();

    assertEquals("first,second",
        resultWithin(WorkflowStub.fromTyped(mailbox), String.class, Duration.ofSeconds(30)));
    // A closed workflow still answers queries from its history.
    assertEquals(List.of("first", "second"), mailbox.messages());
  }

  /**
   * Signal, then query until the state shows the signal. A query right after a signal may see
   * the state before it (the server may answer before the signal's workflow task ran), so poll;
   * say how it went, to make that gap visible in the output.
   */
  private static void signalThenPollQuery(Mailbox mailbox, String message, List<String> expected) {
    mailbox.post(message);
    long signalled = System.nanoTime();
    int[] queries = {0};
    List<String> firstAnswer = new ArrayList<>();
    pollUntil(
        () -> {
          List<String> seen = mailbox.messages();
          if (queries[0]++ == 0) {
            firstAnswer.addAll(seen);
          }
          return seen.equals(expected);
        },
        Duration.ofSeconds(20),
        "the query to show " + expected);
    if (queries[0] > 1) {
      System.out.printf(
          "[signal-query] %s: the first query after signal '%s' answered %s (pre-signal state); "
              + "%s after %d queries, %d ms%n",
          server().kind(), message, firstAnswer, expected, queries[0],
          (System.nanoTime() - signalled) / 1_000_000);
    }
  }

  @Test
  @Timeout(60)
  void updateWithValidator() {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(CounterImpl.class);
    factory.start();

    Counter counter = client.newWorkflowStub(Counter.class, options(workflowId("counter")));
    WorkflowExecution execution = WorkflowClient.start(counter::run);

    assertEquals(5, counter.add(5));
    WorkflowUpdateException rejected = assertThrows(WorkflowUpdateException.class, () -> counter.add(-3));
    String why = String.valueOf(rejected.getCause());
    assertTrue(why.contains("amount must be positive"), why);
    assertEquals(12, counter.add(7));

    counter.finish();
    assertEquals(12, resultWithin(WorkflowStub.fromTyped(counter), Integer.class, Duration.ofSeconds(30)));

    // Only the two accepted updates are in the history; the rejected one left no trace.
    List<HistoryEvent> events = history(execution);
    List<String> types = eventTypes(events);
    List<HistoryEvent> accepted = eventsOf(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED);
    List<HistoryEvent> completed = eventsOf(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED);
    assertEquals(2, accepted.size(), types.toString());
    assertEquals(2, completed.size(), types.toString());
    assertTrue(eventsOf(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED).isEmpty(),
        types.toString());
    List<Integer> amounts = new ArrayList<>();
    for (HistoryEvent event : accepted) {
      var input = event.getWorkflowExecutionUpdateAcceptedEventAttributes()
          .getAcceptedRequest().getInput();
      assertEquals("add", input.getName());
      amounts.add(DefaultDataConverter.STANDARD_INSTANCE.fromPayloads(
          0, java.util.Optional.of(input.getArgs()), Integer.class, Integer.class));
    }
    assertEquals(List.of(5, 7), amounts);
  }
}
