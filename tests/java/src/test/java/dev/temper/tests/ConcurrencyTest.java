package dev.temper.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.temporal.activity.ActivityInterface;
import io.temporal.activity.ActivityOptions;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowStub;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Many workflows at once, each with an activity. */
class ConcurrencyTest extends ServerTestBase {
  static final int WORKFLOWS = 200;
  static final int STARTER_THREADS = 8;

  @ActivityInterface
  public interface Squarer {
    long square(long n);
  }

  public static class SquarerImpl implements Squarer {
    @Override
    public long square(long n) {
      return n * n;
    }
  }

  @WorkflowInterface
  public interface SquareWorkflow {
    @WorkflowMethod(name = "JavaSquareWorkflow")
    long run(long n);
  }

  public static class SquareWorkflowImpl implements SquareWorkflow {
    private final Squarer squarer =
        Workflow.newActivityStub(
            Squarer.class,
            ActivityOptions.newBuilder().setStartToCloseTimeout(Duration.ofSeconds(30)).build());

    @Override
    public long run(long n) {
      return squarer.square(n) + 1;
    }
  }

  @Test
  @Timeout(180)
  void twoHundredConcurrentWorkflowsWithActivities() throws Exception {
    WorkerFactory factory = newWorkerFactory();
    Worker worker = factory.newWorker(taskQueue);
    worker.registerWorkflowImplementationTypes(SquareWorkflowImpl.class);
    worker.registerActivitiesImplementations(new SquarerImpl());
    factory.start();

    String prefix = workflowId("square");
    long began = System.nanoTime();
    // Start them from a few client threads at once, then wait for all the results.
    List<CompletableFuture<Long>> results = new ArrayList<>();
    ExecutorService starters = Executors.newFixedThreadPool(STARTER_THREADS);
    try {
      List<Future<WorkflowStub>> stubs = new ArrayList<>();
      for (int i = 0; i < WORKFLOWS; i++) {
        long n = i;
        stubs.add(starters.submit(() -> {
          SquareWorkflow workflow =
              client.newWorkflowStub(SquareWorkflow.class, options(prefix + "-" + n));
          WorkflowClient.start(workflow::run, n);
          return WorkflowStub.fromTyped(workflow);
        }));
      }
      for (Future<WorkflowStub> stub : stubs) {
        results.add(stub.get(60, TimeUnit.SECONDS).getResultAsync(Long.class));
      }
    } finally {
      starters.shutdownNow();
    }
    long started = System.nanoTime();
    CompletableFuture.allOf(results.toArray(new CompletableFuture[0])).get(150, TimeUnit.SECONDS);
    long finished = System.nanoTime();

    for (int i = 0; i < WORKFLOWS; i++) {
      assertEquals((long) i * i + 1, results.get(i).get(), "workflow " + i);
    }
    System.out.printf(
        "[concurrency] %s: %d workflows with an activity each: started in %d ms, all completed "
            + "in %d ms%n",
        server().kind(), WORKFLOWS, (started - began) / 1_000_000, (finished - began) / 1_000_000);
  }
}
