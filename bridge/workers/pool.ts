/**
 * A fixed-size pool of worker threads running one script, one task per worker at a time.
 * Queued tasks can be dropped with an AbortSignal (a cancelled job frees its queued work at once);
 * a worker that crashes is replaced and only the task it held fails.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';
import { EventEmitter } from 'node:events';

export class PoolTaskAborted extends Error {
  constructor() { super('task aborted'); this.name = 'AbortError'; }
}

export class WorkerCrashed extends Error {}

interface Task<I, O> {
  input: I;
  transfer: TransferListItem[];
  resolve: (out: O) => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Slot<I, O> {
  worker: Worker;
  task: Task<I, O> | null;
  ready: boolean;
}

type WorkerReply<O> = { ok: true; result: O } | { ok: false; error: string; code?: number };

export interface PoolOptions {
  size: number;
  workerData?: unknown;
  /** Node's resourceLimits for each worker. */
  resourceLimits?: { maxOldGenerationSizeMb?: number };
  name: string;
}

export class WorkerPool<I, O> extends EventEmitter {
  private readonly slots: Slot<I, O>[] = [];
  private readonly queue: Task<I, O>[] = [];
  private closed = false;

  constructor(private readonly script: string, private readonly options: PoolOptions) {
    super();
    for (let i = 0; i < options.size; i++) this.slots.push(this.spawn());
  }

  get size(): number { return this.slots.length; }
  get queued(): number { return this.queue.length; }
  get busy(): number { return this.slots.filter((s) => s.task !== null).length; }

  run(input: I, transfer: TransferListItem[] = [], signal?: AbortSignal): Promise<O> {
    if (this.closed) return Promise.reject(new Error(`${this.options.name} pool is closed`));
    if (signal?.aborted) return Promise.reject(new PoolTaskAborted());
    return new Promise<O>((resolve, reject) => {
      const task: Task<I, O> = { input, transfer, resolve, reject, signal };
      if (signal) {
        task.onAbort = () => {
          const i = this.queue.indexOf(task);
          if (i >= 0) {
            this.queue.splice(i, 1);
            reject(new PoolTaskAborted());
          }
          // A task already running finishes; its result is simply ignored by the caller.
        };
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.queue.push(task);
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new Error(`${this.options.name} pool closed`));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot<I, O> {
    const worker = new Worker(this.script, {
      workerData: this.options.workerData,
      resourceLimits: this.options.resourceLimits,
    });
    const slot: Slot<I, O> = { worker, task: null, ready: true };
    worker.on('message', (reply: WorkerReply<O>) => {
      const task = slot.task;
      slot.task = null;
      if (task) {
        this.detach(task);
        if (reply.ok) task.resolve(reply.result);
        else task.reject(Object.assign(new Error(reply.error), { code: reply.code }));
      }
      this.pump();
    });
    worker.on('error', (err) => this.onCrash(slot, err));
    worker.on('exit', (code) => {
      if (!this.closed) this.onCrash(slot, new Error(`worker exited with code ${code}`));
    });
    worker.unref();
    return slot;
  }

  private onCrash(slot: Slot<I, O>, err: Error): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return; // already replaced (error is followed by exit)
    const task = slot.task;
    slot.task = null;
    this.slots.splice(i, 1);
    void slot.worker.terminate().catch(() => undefined);
    this.emit('crash', err);
    if (task) {
      this.detach(task);
      task.reject(new WorkerCrashed(`${this.options.name} worker crashed: ${err.message}`));
    }
    if (!this.closed) {
      this.slots.push(this.spawn());
      this.pump();
    }
  }

  private detach(task: Task<I, O>): void {
    if (task.signal && task.onAbort) task.signal.removeEventListener('abort', task.onAbort);
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.task !== null) continue;
      const task = this.queue.shift()!;
      slot.task = task;
      slot.worker.postMessage(task.input, task.transfer);
    }
  }
}

/** Helper for worker scripts: answer each message with the handler's result. */
export function serveWorker<I, O>(
  port: import('node:worker_threads').MessagePort,
  handler: (input: I) => Promise<{ result: O; transfer?: TransferListItem[] }>,
): void {
  port.on('message', async (input: I) => {
    try {
      const { result, transfer } = await handler(input);
      port.postMessage({ ok: true, result } satisfies WorkerReply<O>, transfer ?? []);
    } catch (err) {
      const e = err as Error & { code?: number };
      port.postMessage({ ok: false, error: e.message ?? String(err), code: e.code } satisfies WorkerReply<O>);
    }
  });
}
