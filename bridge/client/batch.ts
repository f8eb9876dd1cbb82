/**
 * Runs many jobs over several connections at once: `parallel` lanes, each holding one connection and
 * one job in flight. Behind a load balancer every connection may reach another daemon, so whole
 * jobs spread over the daemons. A job whose connection is lost (its daemon died or stopped) is run
 * once more, on a fresh connection; its partial results are the caller's to discard (runOne is
 * called again from the start).
 */
import { ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes } from '../../protocol';
import { CellBridgeClient, type ConnectOptions } from './client';

export interface BatchOptions {
  url: string;
  connect: ConnectOptions;
  /** Jobs in flight at once (= connections). */
  parallel: number;
  /** Further attempts for a job whose connection was lost; 1 by default. */
  retries?: number;
  /** Called when a job is given another try, with the reason. */
  onRetry?(index: number, attempt: number, reason: string): void;
}

export interface BatchAttempt<R> {
  index: number;
  /** 1 for the first try. */
  attempts: number;
  /** serverInfo.instance of the daemon that ran the last attempt (null when no connection was made). */
  instance: string | null;
  result?: R;
  error?: Error;
}

/** The result of one try: `retry` tells the batch that the daemon went away, not that the job is bad. */
export type AttemptOutcome<R> = { result: R; retry?: string };

/**
 * `runOne(client, item, attempt)` runs one job to its end on the given connection. It throws for a
 * failure (retried when the connection is gone by then), or returns `retry` for an answer that says
 * the daemon is stopping (job cancelled with ShuttingDown).
 */
export async function runBatch<I, R>(items: readonly I[], options: BatchOptions,
  runOne: (client: CellBridgeClient, item: I, attempt: number) => Promise<AttemptOutcome<R>>): Promise<BatchAttempt<R>[]> {
  const retries = options.retries ?? 1;
  const queue: { index: number; attempt: number }[] = items.map((_, index) => ({ index, attempt: 1 }));
  const done: BatchAttempt<R>[] = new Array(items.length);
  let unfinished = items.length;
  /** Lanes waiting for a job that a failing lane may still put back. */
  let wake: (() => void)[] = [];
  const settle = (a: BatchAttempt<R>) => { done[a.index] = a; unfinished--; for (const w of wake.splice(0)) w(); };
  const requeue = (index: number, attempt: number, reason: string) => {
    options.onRetry?.(index, attempt + 1, reason);
    queue.unshift({ index, attempt: attempt + 1 });
    for (const w of wake.splice(0)) w();
  };

  const lane = async () => {
    let client: CellBridgeClient | null = null;
    try {
      for (;;) {
        const next = queue.shift();
        if (!next) {
          if (unfinished === 0) return;
          // Another lane's job may still come back for a retry.
          await new Promise<void>((r) => wake.push(r));
          continue;
        }
        const { index, attempt } = next;
        const last = attempt > retries;
        if (client && !client.usable) { await client.close().catch(() => undefined); client = null; }
        try {
          client ??= await CellBridgeClient.connect(options.url, options.connect);
        } catch (err) {
          if (!last) requeue(index, attempt, (err as Error).message);
          else settle({ index, attempts: attempt, instance: null, error: err as Error });
          continue;
        }
        const instance = client.initializeResult?.serverInfo.instance ?? null;
        try {
          const outcome = await runOne(client, items[index], attempt);
          if (outcome.retry && !last) { requeue(index, attempt, outcome.retry); continue; }
          settle({ index, attempts: attempt, instance, result: outcome.result });
        } catch (err) {
          const lost = !client.usable || (err instanceof ResponseError && err.code === ErrorCodes.ShuttingDown);
          if (lost && !last) requeue(index, attempt, (err as Error).message);
          else settle({ index, attempts: attempt, instance, error: err as Error });
        }
      }
    } finally {
      await client?.close().catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.parallel, items.length)) }, lane));
  wake = [];
  return done;
}
