package dev.temper.tests;

import static org.junit.jupiter.api.Assertions.fail;

import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.enums.v1.EventType;
import io.temporal.api.history.v1.HistoryEvent;
import io.temporal.api.workflowservice.v1.DescribeWorkflowExecutionRequest;
import io.temporal.api.workflowservice.v1.DescribeWorkflowExecutionResponse;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowClientOptions;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import io.temporal.worker.WorkerFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * What every test class shares: a client of the suite's server, a task queue and workflow id
 * prefix unique to the test, worker factories shut down after the test, and polling helpers.
 */
@ExtendWith(ServerExtension.class)
public abstract class ServerTestBase {
  protected static final Duration POLL_INTERVAL = Duration.ofMillis(50);

  protected WorkflowClient client;
  /** A task queue of this test alone. */
  protected String taskQueue;

  private String testName;
  private final List<WorkerFactory> factories = new ArrayList<>();

  @BeforeEach
  void setUpClient(TestInfo info) {
    TestServer server = TestServer.get();
    client =
        WorkflowClient.newInstance(
            server.service(),
            WorkflowClientOptions.newBuilder().setNamespace(TestServer.NAMESPACE).build());
    testName = info.getTestMethod().map(m -> m.getName()).orElse("test");
    taskQueue = unique(testName);
  }

  @AfterEach
  void shutDownWorkers() throws InterruptedException {
    for (WorkerFactory factory : factories) {
      factory.shutdownNow();
    }
    for (WorkerFactory factory : factories) {
      factory.awaitTermination(10, TimeUnit.SECONDS);
    }
    factories.clear();
  }

  protected static TestServer server() {
    return TestServer.get();
  }

  /** A name unique to this run: prefix plus random suffix. */
  protected static String unique(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 10);
  }

  /** A workflow id unique to this test and call. */
  protected String workflowId(String what) {
    return unique(testName + "-" + what);
  }

  /** A factory whose workers the test registers and starts; shut down after the test. */
  protected WorkerFactory newWorkerFactory() {
    WorkerFactory factory = WorkerFactory.newInstance(client);
    factories.add(factory);
    return factory;
  }

  /**
   * Start options with no workflow timeouts, as most users start workflows: the server then has
   * no run timeout to derive unset activity timeouts from. Tests are bounded by @Timeout instead.
   */
  protected WorkflowOptions options(String workflowId) {
    return WorkflowOptions.newBuilder().setTaskQueue(taskQueue).setWorkflowId(workflowId).build();
  }

  // ------------------------------------------------------------------------- results

  /** The workflow's result within `timeout`; on time-out the failure shows the history. */
  protected <R> R resultWithin(WorkflowStub stub, Class<R> type, Duration timeout) {
    try {
      return stub.getResult(timeout.toMillis(), TimeUnit.MILLISECONDS, type);
    } catch (TimeoutException e) {
      WorkflowExecution execution = stub.getExecution();
      return fail(
          "no result from " + execution.getWorkflowId() + " within " + timeout + "; history: "
              + eventTypes(history(execution.getWorkflowId(), execution.getRunId())));
    }
  }

  // ------------------------------------------------------------------------- history

  protected List<HistoryEvent> history(String workflowId, String runId) {
    return client.fetchHistory(workflowId, runId).getEvents();
  }

  protected List<HistoryEvent> history(WorkflowExecution execution) {
    return history(execution.getWorkflowId(), execution.getRunId());
  }

  /** Event type names without the EVENT_TYPE_ prefix, for readable assertions. */
  protected static List<String> eventTypes(List<HistoryEvent> events) {
    return events.stream()
        .map(e -> e.getEventType().name().replaceFirst("^EVENT_TYPE_", ""))
        .collect(Collectors.toList());
  }

  protected static List<HistoryEvent> eventsOf(List<HistoryEvent> events, EventType type) {
    return events.stream().filter(e -> e.getEventType() == type).collect(Collectors.toList());
  }

  /** Poll the history until it holds an event of `type`; return the history then. */
  protected List<HistoryEvent> waitForEvent(WorkflowExecution execution, EventType type, Duration timeout) {
    return pollUntil(
        () -> {
          List<HistoryEvent> events = history(execution);
          return eventsOf(events, type).isEmpty() ? null : events;
        },
        timeout,
        type + " in the history of " + execution.getWorkflowId());
  }

  protected DescribeWorkflowExecutionResponse describe(WorkflowExecution execution) {
    return client
        .getWorkflowServiceStubs()
        .blockingStub()
        .describeWorkflowExecution(
            DescribeWorkflowExecutionRequest.newBuilder()
                .setNamespace(TestServer.NAMESPACE)
                .setExecution(execution)
                .build());
  }

  // ------------------------------------------------------------------------- polling

  /**
   * Call `check` until it returns something other than null or false, and return that; an
   * exception from `check` counts as "not yet". Fails after `timeout` with the last error.
   */
  protected static <T> T pollUntil(Supplier<T> check, Duration timeout, String what) {
    long deadline = System.nanoTime() + timeout.toNanos();
    Throwable last = null;
    Object lastValue = null;
    while (true) {
      try {
        T value = check.get();
        if (value != null && !Boolean.FALSE.equals(value)) {
          return value;
        }
        lastValue = value;
      } catch (RuntimeException | AssertionError e) {
        last = e;
      }
      if (System.nanoTime() >= deadline) {
        AssertionError error =
            new AssertionError(
                "timed out after " + timeout + " waiting for " + what
                    + (last != null ? " (last error: " + last + ")" : " (last value: " + lastValue + ")"));
        if (last != null) {
          error.initCause(last);
        }
        throw error;
      }
      try {
        Thread.sleep(POLL_INTERVAL.toMillis());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted while waiting for " + what, e);
      }
    }
  }
}
