/** Workflows; bundled once per run by the worker's bundler and run in its sandbox. */

import * as wf from '@temporalio/workflow';
import type * as activities from './activities';

const { greet, double } = wf.proxyActivities<typeof activities>({
  // Only startToCloseTimeout: the server fills in the others.
  startToCloseTimeout: '30s',
});

/** 1 and 9: one activity. */
export async function greetingWorkflow(name: string): Promise<string> {
  return await greet(name);
}

/** 2: a durable timer. */
export async function timerWorkflow(ms: number): Promise<string> {
  const before = Date.now();
  await wf.sleep(ms);
  return `slept ${Date.now() - before >= ms ? 'enough' : 'too little'}`;
}

/** 3: signals change the state, a query reads it. */
export const addItemSignal = wf.defineSignal<[string]>('addItem');
export const finishSignal = wf.defineSignal('finish');
export const itemsQuery = wf.defineQuery<string[]>('items');

export async function shoppingListWorkflow(): Promise<string[]> {
  const items: string[] = [];
  let finished = false;
  wf.setHandler(addItemSignal, (item) => void items.push(item));
  wf.setHandler(finishSignal, () => void (finished = true));
  wf.setHandler(itemsQuery, () => [...items]);
  await wf.condition(() => finished);
  return items;
}

/** 4: an update with a validator that rejects negative numbers. */
export const addNumberUpdate = wf.defineUpdate<number, [number]>('addNumber');
export const closeUpdate = wf.defineUpdate<void>('close');

export async function accumulatorWorkflow(): Promise<number[]> {
  const accepted: number[] = [];
  let closed = false;
  wf.setHandler(
    addNumberUpdate,
    (n) => {
      accepted.push(n);
      return accepted.reduce((a, b) => a + b, 0);
    },
    {
      validator: (n) => {
        if (n < 0) throw new Error(`rejected negative number ${n}`);
      },
    },
  );
  wf.setHandler(closeUpdate, () => void (closed = true));
  await wf.condition(() => closed);
  await wf.condition(wf.allHandlersFinished);
  return accepted;
}

/** 5: a parent and its child. */
export interface ChildReport {
  doubled: number;
  parent?: { workflowId: string; runId: string; namespace: string };
}

export async function childWorkflow(n: number): Promise<ChildReport> {
  const { parent } = wf.workflowInfo();
  return { doubled: await double(n), parent };
}

export interface ParentReport {
  parentWorkflowId: string;
  parentRunId: string;
  childWorkflowId: string;
  childRunId: string;
  child: ChildReport;
}

export async function parentWorkflow(n: number): Promise<ParentReport> {
  const info = wf.workflowInfo();
  const child = await wf.startChild(childWorkflow, {
    args: [n],
    workflowId: `${info.workflowId}-child`,
  });
  return {
    parentWorkflowId: info.workflowId,
    parentRunId: info.runId,
    childWorkflowId: child.workflowId,
    childRunId: child.firstExecutionRunId,
    child: await child.result(),
  };
}

/** 6: cancellation of a running activity and a timer, then cleanup that cannot be cancelled. */
const { waitForCancel, cleanup } = wf.proxyActivities<typeof activities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: '2s',
  // Wait until the activity has acknowledged the cancel before the workflow goes on.
  cancellationType: wf.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

export async function cancellableWorkflow(): Promise<string> {
  // Settle both, so the activity has acknowledged its cancel before the cleanup runs.
  const outcomes = await Promise.allSettled([waitForCancel(), wf.sleep('1 day')]);
  const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
  if (errors.length === 0) return 'not cancelled';
  const other = errors.find((e) => !wf.isCancellation(e));
  if (other !== undefined) throw other;
  await wf.CancellationScope.nonCancellable(() => cleanup('after-cancel'));
  throw errors[0];
}

/** 7: continue-as-new `remaining` times, carrying a counter and the run ids so far. */
export interface ChainReport {
  count: number;
  runIds: string[];
}

export async function chainWorkflow(remaining: number, count = 0, runIds: string[] = []): Promise<ChainReport> {
  const { runId, continuedFromExecutionRunId } = wf.workflowInfo();
  if (runIds.length > 0 && continuedFromExecutionRunId !== runIds[runIds.length - 1]) {
    throw wf.ApplicationFailure.nonRetryable(
      `continued from ${continuedFromExecutionRunId}, expected ${runIds[runIds.length - 1]}`,
    );
  }
  const seen = [...runIds, runId];
  if (remaining > 0) {
    await wf.continueAsNew<typeof chainWorkflow>(remaining - 1, count + 1, seen);
  }
  return { count, runIds: seen };
}

/** 8: runs an activity, then blocks on a signal, then runs another activity. */
export const proceedSignal = wf.defineSignal<[string]>('proceed');
export const stageQuery = wf.defineQuery<string>('stage');

export async function twoStageWorkflow(name: string): Promise<string[]> {
  let stage = 'first';
  let word: string | undefined;
  wf.setHandler(stageQuery, () => stage);
  wf.setHandler(proceedSignal, (w) => void (word = w));
  const first = await greet(name);
  stage = 'waiting';
  await wf.condition(() => word !== undefined);
  stage = 'second';
  const second = await greet(word!);
  stage = 'done';
  return [first, second];
}
