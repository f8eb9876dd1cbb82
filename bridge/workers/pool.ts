/**
 * A fixed-size pool of worker threads running one script, one task per worker at a time.
 *
 * - Fair: tasks are queued per owner (a client, see `tagOwner`) and taken round-robin between
 *   owners, so one client with many queued tiles cannot starve the others.
 * - Queued tasks can be dropped with an AbortSignal (a cancelled job frees its queued work at once).
 * - A worker that crashes (or runs past `taskTimeoutMs`) is replaced; only the task it held fails.
 * - A task that cannot be sent (postMessage throws: not structured-cloneable) fails at once with
 *   TaskNotSent; the worker stays free for the next task.
 * - `health()` says whether the pool can run work (see PoolHealth).
 * - Workers are threads, or (isolation 'process') child processes: a native abort then ends one
 *   worker, not the daemon (process-worker.ts).
 */
import { Worker, type TransferListItem } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import type { PoolHealthInfo } from '../../protocol';
import { ProcessWorker, type WorkerPort } from './process-worker';

export class PoolTaskAborted extends Error {
  constructor() { super('task aborted'); this.name = 'AbortError'; }
}

/** The worker holding the task died; `pool` names the pool ('inference', 'post-processing', …). */
export class WorkerCrashed extends Error {
  constructor(readonly pool: string, message: string) { super(message); }
}

/** The task ran longer than the pool's taskTimeoutMs; its worker was replaced. */
export class PoolTaskTimeout extends WorkerCrashed {}

/** The task could not be handed to a worker (postMessage threw, e.g. a value that cannot be cloned). */
export class TaskNotSent extends Error {
  constructor(readonly pool: string, message: string) { super(message); }
}

/** Whether a pool can run work, for `server/health` and `cellbridge health` (the protocol's type). */
export type PoolHealth = PoolHealthInfo;

const owners = new WeakMap<AbortSignal, string>();

/** Says whose work a signal's tasks are: pools share their workers round-robin between owners. */
export function tagOwner(signal: AbortSignal, owner: string): void {
  owners.set(signal, owner);
}

/**
 * Test-only fault injection: with CELLBRIDGE_TEST_CRASH_ON_TILE=N in the daemon's environment, the
 * N-th tile (1-based, counted since start-up) given to the post-processing pool makes its worker
 * thread crash. Never set it in production.
 */
export const TEST_CRASH_ENV = 'CELLBRIDGE_TEST_CRASH_ON_TILE';
/** Test-only, like TEST_CRASH_ENV: the N-th post-processing task makes its worker spin forever (a wedged worker). */
export const TEST_HANG_ENV = 'CELLBRIDGE_TEST_HANG_ON_TILE';
/**
 * Test-only, like TEST_CRASH_ENV, for the inference pool: 'N' makes the N-th inference task (1-based,
 * counted since start-up, retries included) abort its worker natively (process.abort(): SIGABRT, as a
 * crashing execution provider does); 'N+' does so for the N-th and every later task. In a worker
 * thread that ends the daemon: use it with --inference-isolation process.
 */
export const TEST_ABORT_ENV = 'CELLBRIDGE_TEST_ABORT_ON_INFERENCE';
/** Test-only, as TEST_ABORT_ENV for the start-up's test inferences ('provider check' pool, always a process). */
export const TEST_ABORT_CHECK_ENV = 'CELLBRIDGE_TEST_ABORT_ON_CHECK';
const TEST_CRASH_POOL = 'post-processing';
const TEST_ABORT_POOLS: Record<string, string> = { inference: TEST_ABORT_ENV, 'provider check': TEST_ABORT_CHECK_ENV };
const TEST_CRASH_MARKER = '__cellbridgeTestCrash';
const TEST_HANG_MARKER = '__cellbridgeTestHang';
const TEST_ABORT_MARKER = '__cellbridgeTestAbort';
const READY_KEY = '__cellbridgeWorkerReady';
const READY = { [READY_KEY]: true } as const;

interface Task<I, O> {
  input: I;
  transfer: TransferListItem[];
  resolve: (out: O) => void;
  reject: (err: Error) => void;
  owner: string;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** What the pool needs of a worker: node:worker_threads' Worker or a ProcessWorker. */
type PoolWorker = Pick<Worker, 'postMessage' | 'terminate' | 'unref' | 'on'> | ProcessWorker;

interface Slot<I, O> {
  worker: PoolWorker;
  task: Task<I, O> | null;
  timer: NodeJS.Timeout | null;
  /** The worker has loaded its script (serveWorker said so): only then do tasks and their time limit start. */
  ready: boolean;
  /** When the worker was started, and when its current task was sent (performance.now()). */
  spawnedAt: number;
  taskSince: number;
}

type WorkerReply<O> = { ok: true; result: O } | { ok: false; error: string; code?: number; data?: unknown };

export interface PoolOptions {
  size: number;
  workerData?: unknown;
  /** Node's resourceLimits for each worker (a process worker takes maxOldGenerationSizeMb only). */
  resourceLimits?: { maxOldGenerationSizeMb?: number; maxYoungGenerationSizeMb?: number };
  name: string;
  /**
   * 'thread' (default): worker threads. 'process': child processes, so that native code aborting
   * (SIGABRT) ends one worker, which is replaced, instead of the daemon; messages are copied.
   */
  isolation?: WorkerIsolation;
  /** A task still running after this long has its worker terminated and replaced; 0/undefined = no limit. */
  taskTimeoutMs?: number;
  /**
   * health() calls the pool unable to run work when every worker is busy with a task older than
   * this (ms). Default: half of taskTimeoutMs, or 60 s without one.
   */
  stallMs?: number;
}

export type WorkerIsolation = 'thread' | 'process';

/** A pool whose workers were replaced this often within a minute is crash-looping: respawns slow down and health() says so. */
const CRASH_LOOP = 5;
/** A worker that has not loaded its script after this long counts as not starting. */
const START_GRACE_MS = 30_000;

export class WorkerPool<I, O> extends EventEmitter {
  private readonly slots: Slot<I, O>[] = [];
  /** Queued tasks per owner, and the owners with queued work in round-robin order. */
  private readonly queues = new Map<string, Task<I, O>[]>();
  private readonly turn: string[] = [];
  private queuedCount = 0;
  private closed = false;
  private dispatched = 0;
  private readonly crashOn: number;
  private readonly hangOn: number;
  /** TEST_ABORT_ENV: the first task number that aborts its worker, and whether later ones do too. */
  private readonly abortOn: { from: number; onward: boolean };
  /** When workers were replaced (performance.now()), the last minute's. */
  private replacedAt: number[] = [];
  /**
   * Ref'd while tasks are queued or running, so that a caller awaiting run() keeps node alive; the
   * workers themselves are unref'd, so an idle pool does not (the daemon's server keeps it alive).
   */
  private readonly keepAlive = setInterval(() => undefined, 1 << 30);
  private unsettled = 0;

  constructor(private readonly script: string, private readonly options: PoolOptions) {
    super();
    const testN = (env: string) => {
      const n = Number(process.env[env]);
      return options.name === TEST_CRASH_POOL && Number.isInteger(n) && n > 0 ? n : 0;
    };
    this.crashOn = testN(TEST_CRASH_ENV);
    this.hangOn = testN(TEST_HANG_ENV);
    const abortEnv = TEST_ABORT_POOLS[options.name];
    const abort = /^([1-9][0-9]*)(\+?)$/.exec(abortEnv ? process.env[abortEnv] ?? '' : '');
    this.abortOn = { from: abort ? Number(abort[1]) : 0, onward: abort?.[2] === '+' };
    this.keepAlive.unref();
    for (let i = 0; i < options.size; i++) this.slots.push(this.spawn());
  }

  get size(): number { return this.slots.length; }
  get queued(): number { return this.queuedCount; }
  get busy(): number { return this.slots.filter((s) => s.task !== null).length; }

  health(now = performance.now()): PoolHealth {
    this.replacedAt = this.replacedAt.filter((t) => now - t < 60_000);
    const ready = this.slots.filter((s) => s.ready).length;
    const busy = this.busy;
    const longest = Math.max(0, ...this.slots.map((s) => (s.task ? now - s.taskSince : 0)));
    const stallMs = this.options.stallMs ?? (this.options.taskTimeoutMs ? this.options.taskTimeoutMs / 2 : 60_000);
    const h: PoolHealth = {
      name: this.options.name, size: this.slots.length, ready, busy, queued: this.queuedCount,
      longestTaskMs: Math.round(longest), replacedLastMinute: this.replacedAt.length, ok: true,
    };
    const stalled = this.slots.length > 0 && this.slots.every((s) => s.task !== null && now - s.taskSince > stallMs);
    const notStarting = this.slots.length > 0 && this.slots.every((s) => !s.ready && now - s.spawnedAt > START_GRACE_MS);
    if (this.closed) h.problem = 'closed';
    else if (stalled) h.problem = `every ${this.options.name} worker has been on one task for more than ${Math.round(stallMs / 1000)} s`;
    else if (notStarting) h.problem = `no ${this.options.name} worker has started within ${START_GRACE_MS / 1000} s`;
    else if (this.replacedAt.length >= CRASH_LOOP) h.problem = `${this.replacedAt.length} ${this.options.name} workers crashed or timed out in the last minute`;
    if (h.problem) h.ok = false;
    return h;
  }

  run(input: I, transfer: TransferListItem[] = [], signal?: AbortSignal): Promise<O> {
    if (this.closed) return Promise.reject(new Error(`${this.options.name} pool is closed`));
    if (signal?.aborted) return Promise.reject(new PoolTaskAborted());
    if (this.unsettled++ === 0) this.keepAlive.ref();
    const settled = () => { if (--this.unsettled === 0) this.keepAlive.unref(); };
    return new Promise<O>((resolve, reject) => {
      const task: Task<I, O> = {
        input, transfer, signal, owner: (signal && owners.get(signal)) ?? '',
        resolve: (out) => { settled(); resolve(out); },
        reject: (err) => { settled(); reject(err); },
      };
      if (signal) {
        task.onAbort = () => {
          if (this.unqueue(task)) task.reject(new PoolTaskAborted());
          // A task already running finishes; its result is simply ignored by the caller.
        };
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.enqueue(task);
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.queues.values()) for (const t of q) { this.detach(t); t.reject(new Error(`${this.options.name} pool closed`)); }
    this.queues.clear();
    this.turn.length = 0;
    this.queuedCount = 0;
    for (const s of this.slots) if (s.timer) clearTimeout(s.timer);
    clearInterval(this.keepAlive);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private enqueue(task: Task<I, O>): void {
    let q = this.queues.get(task.owner);
    if (!q) { this.queues.set(task.owner, (q = [])); this.turn.push(task.owner); }
    q.push(task);
    this.queuedCount++;
  }

  private unqueue(task: Task<I, O>): boolean {
    const q = this.queues.get(task.owner);
    const i = q ? q.indexOf(task) : -1;
    if (!q || i < 0) return false;
    q.splice(i, 1);
    this.queuedCount--;
    if (q.length === 0) {
      this.queues.delete(task.owner);
      const t = this.turn.indexOf(task.owner);
      if (t >= 0) this.turn.splice(t, 1);
    }
    return true;
  }

  /** The next task, round-robin between owners. */
  private next(): Task<I, O> | undefined {
    const owner = this.turn.shift();
    if (owner === undefined) return undefined;
    const q = this.queues.get(owner)!;
    const task = q.shift()!;
    this.queuedCount--;
    if (q.length > 0) this.turn.push(owner); else this.queues.delete(owner);
    return task;
  }

  /** 'thread' or 'process' (PoolOptions.isolation). */
  get isolation(): WorkerIsolation { return this.options.isolation ?? 'thread'; }

  private spawn(): Slot<I, O> {
    const worker: PoolWorker = this.isolation === 'process'
      ? new ProcessWorker(this.script, { workerData: this.options.workerData, resourceLimits: this.options.resourceLimits })
      : new Worker(this.script, { workerData: this.options.workerData, resourceLimits: this.options.resourceLimits });
    const slot: Slot<I, O> = { worker, task: null, timer: null, ready: false, spawnedAt: performance.now(), taskSince: 0 };
    worker.on('message', (reply: WorkerReply<O> | typeof READY) => {
      if ((reply as typeof READY)[READY_KEY] === true) { slot.ready = true; this.pump(); return; }
      const task = slot.task;
      slot.task = null;
      if (slot.timer) { clearTimeout(slot.timer); slot.timer = null; }
      reply = reply as WorkerReply<O>;
      if (task) {
        this.detach(task);
        if (reply.ok) task.resolve(reply.result);
        else task.reject(Object.assign(new Error(reply.error), { code: reply.code, data: reply.data }));
      }
      this.pump();
    });
    worker.on('error', (err) => this.onCrash(slot, err));
    worker.on('exit', (code: number | string) => {
      // A process worker ended by a signal reports the signal's name (SIGABRT: a native abort).
      if (!this.closed) this.onCrash(slot, new Error(typeof code === 'string' ? `worker process killed by ${code}` : `worker exited with code ${code}`));
    });
    worker.unref();
    return slot;
  }

  private onCrash(slot: Slot<I, O>, err: Error, taskError?: Error): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return; // already replaced (error is followed by exit)
    const task = slot.task;
    slot.task = null;
    if (slot.timer) { clearTimeout(slot.timer); slot.timer = null; }
    this.slots.splice(i, 1);
    void slot.worker.terminate().catch(() => undefined);
    this.emit('crash', err);
    if (task) {
      this.detach(task);
      task.reject(taskError ?? new WorkerCrashed(this.options.name, `the ${this.options.name} worker crashed (${err.message}); it was replaced`));
    }
    if (!this.closed) {
      const now = performance.now();
      this.replacedAt = this.replacedAt.filter((t) => now - t < 60_000);
      this.replacedAt.push(now);
      // A worker that dies as it starts must not make a tight respawn loop.
      if (this.replacedAt.length >= CRASH_LOOP) setTimeout(() => this.respawn(), 1000).unref();
      else this.respawn();
    }
  }

  private respawn(): void {
    if (this.closed || this.slots.length >= this.options.size) return;
    this.slots.push(this.spawn());
    this.pump();
  }

  private detach(task: Task<I, O>): void {
    if (task.signal && task.onAbort) task.signal.removeEventListener('abort', task.onAbort);
  }

  private pump(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (this.queuedCount === 0) return;
      if (slot.task !== null || !slot.ready) continue;
      const task = this.next()!;
      slot.task = task;
      slot.taskSince = performance.now();
      const limit = this.options.taskTimeoutMs;
      if (limit && limit > 0) {
        slot.timer = setTimeout(() => {
          const err = new PoolTaskTimeout(this.options.name, `the ${this.options.name} task ran longer than ${Math.round(limit / 1000)} s and was stopped; its worker was replaced`);
          this.onCrash(slot, err, err);
        }, limit);
        slot.timer.unref();
      }
      const n = ++this.dispatched;
      try {
        if (n === this.crashOn) slot.worker.postMessage({ [TEST_CRASH_MARKER]: true });
        else if (n === this.hangOn) slot.worker.postMessage({ [TEST_HANG_MARKER]: true });
        else if (this.abortOn.from > 0 && (n === this.abortOn.from || (this.abortOn.onward && n > this.abortOn.from))) slot.worker.postMessage({ [TEST_ABORT_MARKER]: true });
        else slot.worker.postMessage(task.input, task.transfer);
      } catch (err) {
        // Nothing reached the worker: it stays free, only this task fails.
        slot.task = null;
        if (slot.timer) { clearTimeout(slot.timer); slot.timer = null; }
        this.detach(task);
        task.reject(new TaskNotSent(this.options.name, `the task could not be sent to a ${this.options.name} worker: ${(err as Error).message}`));
        setImmediate(() => this.pump());
      }
    }
  }
}

/**
 * Helper for worker scripts: answer each message with the handler's result. `port`: the thread's
 * parentPort or, in a process worker, what workerSide() returns.
 */
export function serveWorker<I, O>(
  port: WorkerPort,
  handler: (input: I) => Promise<{ result: O; transfer?: TransferListItem[] }>,
): void {
  port.postMessage(READY);
  port.on('message', async (value: unknown) => {
    const input = value as I;
    if (typeof input === 'object' && input !== null && (input as Record<string, unknown>)[TEST_ABORT_MARKER] === true) {
      process.abort(); // test only (TEST_ABORT_ENV): what a crashing native library does
    }
    if (typeof input === 'object' && input !== null && (input as Record<string, unknown>)[TEST_CRASH_MARKER] === true) {
      setImmediate(() => { throw new Error(`test crash (${TEST_CRASH_ENV})`); });
      return;
    }
    if (typeof input === 'object' && input !== null && (input as Record<string, unknown>)[TEST_HANG_MARKER] === true) {
      for (;;) { /* test hang (TEST_HANG_ENV): only the pool's task timeout ends this */ }
    }
    try {
      const { result, transfer } = await handler(input);
      port.postMessage({ ok: true, result } satisfies WorkerReply<O>, transfer ?? []);
    } catch (err) {
      const e = err as Error & { code?: number; data?: unknown };
      port.postMessage({ ok: false, error: e.message ?? String(err), code: typeof e.code === 'number' ? e.code : undefined, data: e.data } satisfies WorkerReply<O>);
    }
  });
}
