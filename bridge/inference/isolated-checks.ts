/**
 * The daemon's start-up test inferences (selectProvider's probe, verifyModels' file check) run in a
 * child process (provider-check-worker.ts), one after the other, so that a provider that aborts the
 * process it runs in (a broken GPU driver: SIGABRT) costs that provider, not the daemon: with
 * `--device auto` the daemon goes on to the next provider and says why it skipped this one.
 */
import { join } from 'node:path';
import { PoolTaskTimeout, WorkerCrashed, WorkerPool } from '../workers/pool';
import type { Card } from './model-file';
import type { ProviderCheckTask } from './provider-check-worker';
import type { ProbeModel, ProviderName } from './providers';

/** A test inference that takes longer than this is stopped (a hung driver) and counts as failed. */
const CHECK_TIMEOUT_MS = 120_000;

export class IsolatedChecks {
  private readonly pool = new WorkerPool<ProviderCheckTask, null>(join(__dirname, 'provider-check-worker.js'), {
    name: 'provider check', size: 1, isolation: 'process', taskTimeoutMs: CHECK_TIMEOUT_MS,
  });
  private lastCrash = '';

  constructor() {
    this.pool.on('crash', (err: Error) => { this.lastCrash = err.message; });
  }

  probe = (provider: ProviderName, model: ProbeModel): Promise<void> => this.run({ kind: 'probe', provider, model });

  checkFile = (path: string, card: Card, provider: string): Promise<void> => this.run({ kind: 'file', provider, path, card });

  close(): Promise<void> { return this.pool.close(); }

  private async run(task: ProviderCheckTask): Promise<void> {
    this.lastCrash = '';
    try {
      await this.pool.run(task);
    } catch (err) {
      if (err instanceof PoolTaskTimeout) throw new Error(`the test inference did not finish within ${CHECK_TIMEOUT_MS / 1000} s`);
      if (err instanceof WorkerCrashed) throw new Error(`the test inference ended the process it ran in (${this.lastCrash || err.message})`);
      throw err;
    }
  }
}
