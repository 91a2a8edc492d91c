/**
 * The official TypeScript SDK against one server (temper, or the reference with
 * TEMPER_TEST_SERVER=temporal), started once for the whole file.
 */

import assert from 'node:assert/strict';
import { after, before, test, TestContext } from 'node:test';

import {
  CancelledFailure,
  Client,
  Connection,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
  Worker,
  WorkerOptions,
  WorkflowBundleWithSourceMap,
} from '@temporalio/worker';

import * as activities from './activities';
import {
  eventTypes,
  historyEvents,
  NAMESPACE,
  resultWithin,
  ServerProcess,
  unique,
  waitForEvent,
  waitUntil,
} from './harness';
import {
  accumulatorWorkflow,
  addItemSignal,
  addNumberUpdate,
  cancellableWorkflow,
  chainWorkflow,
  ChildReport,
  closeUpdate,
  finishSignal,
  greetingWorkflow,
  itemsQuery,
  parentWorkflow,
  proceedSignal,
  shoppingListWorkflow,
  stageQuery,
  timerWorkflow,
  twoStageWorkflow,
} from './workflows';

let server: ServerProcess | undefined;
let connection: Connection | undefined;
let nativeConnection: NativeConnection | undefined;
let client: Client;
let workflowBundle: WorkflowBundleWithSourceMap;
let anyFailed = false;

before(
  async () => {
    Runtime.install({
      logger: new DefaultLogger('WARN'),
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} } },
    });
    server = new ServerProcess();
    // The server starts while the workflows are bundled (once for the whole run).
    const bundled = bundleWorkflowCode({
      workflowsPath: require.resolve('./workflows'),
      logger: new DefaultLogger('WARN'),
    });
    try {
      await server.start();
    } finally {
      workflowBundle = await bundled;
    }
    connection = await Connection.connect({ address: server.address });
    client = new Client({ connection, namespace: NAMESPACE });
    nativeConnection = await NativeConnection.connect({ address: server.address });
  },
  { timeout: 120_000 },
);

after(
  async () => {
    await connection?.close().catch(() => undefined);
    await nativeConnection?.close().catch(() => undefined);
    if (server) {
      await server.stop();
      const keep = anyFailed || process.env.TEMPER_TEST_KEEP === '1';
      if (anyFailed) {
        process.stderr.write(
          `\n--- ${server.kind} server log tail (${server.logFile}) ---\n${server.logTail(40)}\n---\n`,
        );
      }
      server.cleanup(keep);
    }
  },
  { timeout: 60_000 },
);

/** A test with its own time bound; failures keep the server's log for the report. */
function serverTest(name: string, timeoutMs: number, fn: (t: TestContext) => Promise<void>): void {
  test(name, { timeout: timeoutMs }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      anyFailed = true;
      throw err;
    }
  });
}

function workerOptions(taskQueue: string, extra: Partial<WorkerOptions> = {}): WorkerOptions {
  assert.ok(nativeConnection, 'no server connection (did the server start?)');
  return { connection: nativeConnection, namespace: NAMESPACE, taskQueue, workflowBundle, activities, ...extra };
}

/** Run `fn` while a worker polls `taskQueue`; the worker is shut down afterwards. */
async function withWorker<R>(taskQueue: string, fn: () => Promise<R>, extra: Partial<WorkerOptions> = {}): Promise<R> {
  const worker = await Worker.create(workerOptions(taskQueue, extra));
  return await worker.runUntil(fn);
}

/** The error a promise rejects with; fails if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    const value = await promise;
    assert.fail(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err;
  }
}

// ----------------------------------------------------------------------------- tests

serverTest('activity with only startToCloseTimeout completes', 60_000, async () => {
  const taskQueue = unique('tq-activity');
  await withWorker(taskQueue, async () => {
    const handle = await client.workflow.start(greetingWorkflow, {
      taskQueue,
      workflowId: unique('greeting'),
      args: ['temper'],
    });
    assert.equal(await resultWithin(client, handle, 20_000), 'Hello, temper!');

    const events = await historyEvents(handle);
    const types = eventTypes(events);
    assert.ok(types.includes('ACTIVITY_TASK_COMPLETED'), `history: ${types.join(', ')}`);
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes);
    const attrs = scheduled?.activityTaskScheduledEventAttributes;
    assert.equal(attrs?.activityType?.name, 'greet');
    assert.equal(Number(attrs?.startToCloseTimeout?.seconds), 30);
    assert.equal(types[types.length - 1], 'WORKFLOW_EXECUTION_COMPLETED');
  });
});

serverTest('timer fires and is recorded in the history', 60_000, async () => {
  const taskQueue = unique('tq-timer');
  await withWorker(taskQueue, async () => {
    const handle = await client.workflow.start(timerWorkflow, {
      taskQueue,
      workflowId: unique('timer'),
      args: [1_000],
    });
    assert.equal(await resultWithin(client, handle, 20_000), 'slept enough');

    const events = await historyEvents(handle);
    const types = eventTypes(events);
    const started = events.find((e) => e.timerStartedEventAttributes);
    const fired = events.find((e) => e.timerFiredEventAttributes);
    assert.ok(started && fired, `TIMER_STARTED and TIMER_FIRED expected; history: ${types.join(', ')}`);
    assert.ok(types.indexOf('TIMER_STARTED') < types.indexOf('TIMER_FIRED'));
    assert.equal(Number(started.timerStartedEventAttributes?.startToFireTimeout?.seconds), 1);
    assert.equal(fired.timerFiredEventAttributes?.timerId, started.timerStartedEventAttributes?.timerId);
    assert.equal(
      String(fired.timerFiredEventAttributes?.startedEventId),
      String(started.eventId),
      'TIMER_FIRED points at its TIMER_STARTED',
    );
  });
});

serverTest('signals change state that a query reads', 60_000, async () => {
  const taskQueue = unique('tq-signal');
  await withWorker(taskQueue, async () => {
    const handle = await client.workflow.start(shoppingListWorkflow, {
      taskQueue,
      workflowId: unique('shopping'),
    });
    await handle.signal(addItemSignal, 'apples');
    await handle.signal(addItemSignal, 'pears');
    // A query may be answered before the worker has applied the signals: poll it.
    await waitUntil(
      async () => {
        const items = await handle.query(itemsQuery);
        return JSON.stringify(items) === JSON.stringify(['apples', 'pears']);
      },
      { timeoutMs: 15_000, what: 'the query to show both signalled items' },
    );
    await handle.signal(finishSignal);
    assert.deepEqual(await resultWithin(client, handle, 20_000), ['apples', 'pears']);

    const types = eventTypes(await historyEvents(handle));
    assert.equal(types.filter((t) => t === 'WORKFLOW_EXECUTION_SIGNALED').length, 3);
    // Queries leave no trace in the history.
    assert.equal(types[types.length - 1], 'WORKFLOW_EXECUTION_COMPLETED');
  });
});

serverTest('update with a validator: accepted updates return, rejected ones are not recorded', 60_000, async () => {
  const taskQueue = unique('tq-update');
  await withWorker(taskQueue, async () => {
    const handle = await client.workflow.start(accumulatorWorkflow, {
      taskQueue,
      workflowId: unique('accumulator'),
    });
    assert.equal(await handle.executeUpdate(addNumberUpdate, { args: [5] }), 5);

    const err = await rejection(handle.executeUpdate(addNumberUpdate, { args: [-3] }));
    assert.ok(err instanceof WorkflowUpdateFailedError, `expected WorkflowUpdateFailedError, got ${err}`);
    assert.match(String(err.cause?.message), /rejected negative number -3/);

    assert.equal(await handle.executeUpdate(addNumberUpdate, { args: [7] }), 12);
    await handle.executeUpdate(closeUpdate);
    assert.deepEqual(await resultWithin(client, handle, 20_000), [5, 7]);

    const events = await historyEvents(handle);
    const types = eventTypes(events);
    // Three accepted updates (5, 7, close); the rejected one left no event.
    assert.equal(types.filter((t) => t === 'WORKFLOW_EXECUTION_UPDATE_ACCEPTED').length, 3, types.join(', '));
    assert.equal(types.filter((t) => t === 'WORKFLOW_EXECUTION_UPDATE_COMPLETED').length, 3, types.join(', '));
    assert.ok(!types.includes('WORKFLOW_EXECUTION_UPDATE_REJECTED'), types.join(', '));
  });
});

serverTest('child workflow returns its result and knows its parent', 60_000, async () => {
  const taskQueue = unique('tq-child');
  await withWorker(taskQueue, async () => {
    const workflowId = unique('parent');
    const handle = await client.workflow.start(parentWorkflow, { taskQueue, workflowId, args: [21] });
    const report = await resultWithin<Awaited<ReturnType<typeof parentWorkflow>>>(client, handle, 30_000);

    assert.equal(report.child.doubled, 42);
    assert.equal(report.parentWorkflowId, workflowId);
    assert.equal(report.parentRunId, handle.firstExecutionRunId);
    assert.equal(report.childWorkflowId, `${workflowId}-child`);
    const expectedParent: ChildReport['parent'] = {
      workflowId,
      runId: handle.firstExecutionRunId,
      namespace: NAMESPACE,
    };
    assert.deepEqual(report.child.parent, expectedParent);

    const child = client.workflow.getHandle(report.childWorkflowId, report.childRunId);
    const description = await child.describe();
    assert.equal(description.status.name, 'COMPLETED');
    assert.deepEqual(
      { workflowId: description.parentExecution?.workflowId, runId: description.parentExecution?.runId },
      { workflowId, runId: handle.firstExecutionRunId },
    );
    assert.deepEqual(await child.result(), report.child);

    const types = eventTypes(await historyEvents(handle));
    for (const t of [
      'START_CHILD_WORKFLOW_EXECUTION_INITIATED',
      'CHILD_WORKFLOW_EXECUTION_STARTED',
      'CHILD_WORKFLOW_EXECUTION_COMPLETED',
    ]) {
      assert.ok(types.includes(t), `${t} expected; history: ${types.join(', ')}`);
    }
  });
});

serverTest('cancel: activity and timer are cancelled, cleanup runs, workflow ends Cancelled', 60_000, async () => {
  const taskQueue = unique('tq-cancel');
  await withWorker(taskQueue, async () => {
    const workflowId = unique('cancellable');
    const handle = await client.workflow.start(cancellableWorkflow, { taskQueue, workflowId });
    await waitUntil(() => activities.journal.get(workflowId)?.includes('started'), {
      timeoutMs: 20_000,
      what: 'the activity to start',
    });
    await waitForEvent(handle, 'TIMER_STARTED', 10_000);

    await handle.cancel();
    const err = await rejection(resultWithin(client, handle, 30_000));
    assert.ok(err instanceof WorkflowFailedError, `expected WorkflowFailedError, got ${err}`);
    assert.ok(err.cause instanceof CancelledFailure, `expected a CancelledFailure cause, got ${err.cause}`);

    assert.deepEqual(activities.journal.get(workflowId), ['started', 'cancelled', 'cleanup:after-cancel']);
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    const types = eventTypes(await historyEvents(handle));
    for (const t of [
      'WORKFLOW_EXECUTION_CANCEL_REQUESTED',
      'ACTIVITY_TASK_CANCEL_REQUESTED',
      'ACTIVITY_TASK_CANCELED',
      'TIMER_CANCELED',
    ]) {
      assert.ok(types.includes(t), `${t} expected; history: ${types.join(', ')}`);
    }
    assert.equal(types.filter((t) => t === 'ACTIVITY_TASK_COMPLETED').length, 1, 'the cleanup activity completed');
    assert.equal(types[types.length - 1], 'WORKFLOW_EXECUTION_CANCELED');
  });
});

serverTest('continue-as-new carries a counter through distinct runs', 60_000, async () => {
  const taskQueue = unique('tq-can');
  await withWorker(taskQueue, async () => {
    const workflowId = unique('chain');
    const handle = await client.workflow.start(chainWorkflow, { taskQueue, workflowId, args: [4] });
    const report = await resultWithin<Awaited<ReturnType<typeof chainWorkflow>>>(client, handle, 30_000);

    assert.equal(report.count, 4);
    assert.equal(report.runIds.length, 5);
    assert.equal(new Set(report.runIds).size, 5, `runs are distinct: ${report.runIds.join(', ')}`);
    assert.equal(report.runIds[0], handle.firstExecutionRunId);

    const latest = await client.workflow.getHandle(workflowId).describe();
    assert.equal(latest.runId, report.runIds[4]);
    assert.equal(latest.status.name, 'COMPLETED');

    const first = client.workflow.getHandle(workflowId, report.runIds[0]);
    assert.equal((await first.describe()).status.name, 'CONTINUED_AS_NEW');
    const firstEvents = await historyEvents(first);
    const last = firstEvents[firstEvents.length - 1];
    assert.equal(eventTypes([last])[0], 'WORKFLOW_EXECUTION_CONTINUED_AS_NEW');
    assert.equal(last.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId, report.runIds[1]);
  });
});

serverTest('a workflow survives a worker restart', 90_000, async () => {
  const taskQueue = unique('tq-restart');
  const workflowId = unique('two-stage');
  const first = await Worker.create(workerOptions(taskQueue, { identity: 'first-worker' }));
  const firstRun = first.run();
  let firstStopped = false;
  const stopFirst = async () => {
    if (firstStopped) return;
    firstStopped = true;
    if (first.getState() === 'RUNNING') first.shutdown();
    await firstRun;
  };
  const handle = await (async () => {
    try {
      const h = await client.workflow.start(twoStageWorkflow, { taskQueue, workflowId, args: ['worker'] });
      await waitUntil(async () => (await h.query(stageQuery)) === 'waiting', {
        timeoutMs: 20_000,
        what: 'the workflow to wait for the signal',
      });
      return h;
    } finally {
      await stopFirst();
    }
  })();
  assert.equal(first.getState(), 'STOPPED');

  // A new Worker with a fresh workflow cache: it has to replay the history.
  const result = await withWorker(
    taskQueue,
    async () => {
      await handle.signal(proceedSignal, 'again');
      return await resultWithin(client, handle, 45_000);
    },
    { identity: 'second-worker' },
  );
  assert.deepEqual(result, ['Hello, worker!', 'Hello, again!']);

  const events = await historyEvents(handle);
  const types = eventTypes(events);
  const signalled = types.indexOf('WORKFLOW_EXECUTION_SIGNALED');
  assert.ok(signalled > 0, types.join(', '));
  const completedBy = (from: number, to: number) =>
    events
      .slice(from, to)
      .filter((e) => e.workflowTaskCompletedEventAttributes)
      .map((e) => e.workflowTaskCompletedEventAttributes?.identity);
  assert.ok(completedBy(0, signalled).every((id) => id === 'first-worker'), completedBy(0, signalled).join(', '));
  const afterSignal = completedBy(signalled, events.length);
  assert.ok(
    afterSignal.length > 0 && afterSignal.every((id) => id === 'second-worker'),
    afterSignal.join(', '),
  );
});

serverTest('200 concurrent workflows with an activity each complete', 150_000, async (t) => {
  const taskQueue = unique('tq-many');
  const count = 200;
  const prefix = unique('many');
  await withWorker(taskQueue, async () => {
    const started = Date.now();
    const handles = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        client.workflow.start(greetingWorkflow, { taskQueue, workflowId: `${prefix}-${i}`, args: [`#${i}`] }),
      ),
    );
    const allStarted = (Date.now() - started) / 1000;
    const results = await Promise.all(handles.map((h) => resultWithin<string>(client, h, 120_000)));
    const elapsed = (Date.now() - started) / 1000;
    t.diagnostic(
      `${count} workflows with an activity each completed in ${elapsed.toFixed(2)} s ` +
        `(all started after ${allStarted.toFixed(2)} s)`,
    );
    assert.deepEqual(
      results,
      handles.map((_, i) => `Hello, #${i}!`),
    );
  });
});
