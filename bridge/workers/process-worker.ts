/**
 * A worker script run in a child process instead of a worker thread, behind the same small surface
 * as node:worker_threads' Worker (postMessage, terminate, unref; 'message', 'error', 'exit'), so that
 * WorkerPool can run either.
 *
 * Why: native code that aborts (an onnxruntime execution provider hitting an assertion, as WebGPU's
 * Dawn did with two sessions: SIGABRT) takes the whole process with it. In a worker thread that is
 * the daemon and every client's jobs; in a child process it is one worker, which the pool replaces.
 * The price is a copy of each message through the IPC pipe (V8's structured clone, as postMessage
 * without a transfer list): about a megabyte of maps per 256² tile.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { parentPort, workerData, type TransferListItem } from 'node:worker_threads';

/** The environment variable carrying the worker's data (JSON) into the child process. */
const WORKER_DATA_ENV = 'CELLBRIDGE_WORKER_DATA';

export interface ProcessWorkerOptions {
  workerData?: unknown;
  /** maxOldGenerationSizeMb becomes the child's --max-old-space-size. */
  resourceLimits?: { maxOldGenerationSizeMb?: number };
}

/**
 * Events: 'message' (value), 'error' (Error), 'exit' (exit code, or the signal's name such as
 * 'SIGABRT' when a signal ended it).
 */
export class ProcessWorker extends EventEmitter {
  private readonly child: ChildProcess;
  private exited: Promise<number>;

  constructor(script: string, options: ProcessWorkerOptions = {}) {
    super();
    const heap = options.resourceLimits?.maxOldGenerationSizeMb;
    this.child = fork(script, [], {
      serialization: 'advanced', // typed arrays cross as typed arrays, not JSON
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [WORKER_DATA_ENV]: JSON.stringify(options.workerData ?? null) },
      execArgv: heap ? [`--max-old-space-size=${heap}`] : [],
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.emit('exit', signal ?? code ?? 0);
        resolve(code ?? 1);
      });
    });
    this.child.on('message', (m) => this.emit('message', ownBuffers(m)));
    this.child.on('error', (err) => this.emit('error', err));
  }

  /** Sends a copy (a transfer list has nothing to move between processes). Throws when `value` cannot be cloned. */
  postMessage(value: unknown, _transfer?: readonly TransferListItem[]): void {
    if (!this.child.connected) throw new Error('the worker process is gone');
    this.child.send(value as never);
  }

  /** Ends the process (SIGKILL: a wedged native call ignores gentler signals). */
  terminate(): Promise<number> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.ref(); // an unref'd child would let node exit before its 'exit' event settles this
      this.child.kill('SIGKILL');
    }
    return this.exited;
  }

  /** The process and its IPC channel do not keep the daemon alive. */
  unref(): void {
    this.child.unref();
    (this.child.channel as { unref?: () => void } | undefined)?.unref?.();
  }
}

/**
 * Node's deserializer hands back typed arrays as views into the one buffer the message arrived in;
 * a thread's postMessage gives each its own. Copy each shared view into its own buffer, so that the
 * maps of a tile can be transferred on (to post-processing) one by one and do not pin the message.
 */
export function ownBuffers<T>(value: T, depth = 0): T {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const v = value as unknown as Uint8Array;
    return (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? value : v.slice()) as T;
  }
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = ownBuffers(value[i], depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = ownBuffers(o[k], depth + 1);
  }
  return value;
}

/** What a worker script talks to: the thread's parentPort, or the child process's IPC channel. */
export interface WorkerPort {
  postMessage(value: unknown, transfer?: readonly TransferListItem[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
}

/**
 * The port and data of the worker this script runs as: a worker thread, a ProcessWorker's child
 * process, or neither (null: the module was imported, not started as a worker).
 */
export function workerSide(): { port: WorkerPort; data: unknown } | null {
  if (parentPort) return { port: parentPort, data: workerData };
  const raw = process.env[WORKER_DATA_ENV];
  if (typeof process.send !== 'function' || raw === undefined) return null;
  // The daemon went away: nothing is left to work for (and no one would reap this process).
  process.on('disconnect', () => process.exit(0));
  // A terminal's Ctrl-C (SIGINT) and systemd's stop (SIGTERM) reach the whole process group: the daemon
  // decides when its workers end (graceful shutdown lets running jobs finish, then SIGKILL or the
  // disconnect above), so these signals must not end this worker under a job still running.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  const port: WorkerPort = {
    // A send that fails means the daemon is gone (the disconnect above follows): end quietly, not with an EPIPE stack.
    postMessage: (value) => { process.send!(value, undefined, {}, (err: Error | null) => { if (err) process.exit(0); }); },
    on: (_event, listener) => process.on('message', listener),
  };
  return { port, data: JSON.parse(raw) as unknown };
}
