/**
 * Activities. They run in the test process, so they can record what they did in `journal`
 * for the tests to check.
 */

import { CancelledFailure, Context } from '@temporalio/activity';

/** What activities did, per workflow id, in order. */
export const journal = new Map<string, string[]>();

function note(entry: string): void {
  const workflowId = Context.current().info.workflowExecution?.workflowId ?? '(standalone)';
  const entries = journal.get(workflowId) ?? [];
  entries.push(entry);
  journal.set(workflowId, entries);
}

export async function greet(name: string): Promise<string> {
  return `Hello, ${name}!`;
}

export async function double(n: number): Promise<number> {
  return n * 2;
}

/** Heartbeats until it is cancelled; records that it started and that it saw the cancel. */
export async function waitForCancel(): Promise<string> {
  const ctx = Context.current();
  note('started');
  for (;;) {
    ctx.heartbeat();
    try {
      await ctx.sleep(100);
    } catch (err) {
      if (err instanceof CancelledFailure) note('cancelled');
      throw err;
    }
  }
}

export async function cleanup(what: string): Promise<string> {
  note(`cleanup:${what}`);
  return `cleaned ${what}`;
}
