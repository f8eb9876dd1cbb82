/**
 * The tile engine: inference workers (onnxruntime sessions) feeding post-processing workers.
 * Stages run in separate pools so inference of tile n+1 overlaps post-processing of tile n.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { PoolTaskAborted, PoolTaskTimeout, WorkerCrashed, WorkerPool, type WorkerIsolation } from '../workers/pool';
import type { InferenceBatchTask, InferenceResult, InferenceTask, InferenceWorkerData } from '../inference/inference-worker';
import { paddedSize } from '../inference/preprocess';
import type { PostprocessResult, PostprocessTask } from './postprocess-worker';
import type { RegisteredModel } from '../inference/model-registry';
import type { TileOutputMaps } from '../inference/preprocess';
import type { FeatureContext } from '../results/features';
import type { PostprocessOptions } from '../postprocess';
import type { TtaViews } from '../inference/tta';

export interface EngineOptions {
  provider: string;
  /** Inference workers (one onnxruntime session each, runs in flight). Default per provider, see engineDefaults. */
  inferenceWorkers?: number;
  /** Threads per onnxruntime session. Default per provider, see engineDefaults. */
  intraOpThreads?: number;
  /** Post-processing workers. Default: cores - 1, at least 1. */
  postprocessWorkers?: number;
  /**
   * Most tiles run as one batch (same model, same input size). Batches only form from tiles that are
   * already waiting, so a batch size above 1 adds no latency. Default per provider, or
   * CELLBRIDGE_BATCH_SIZE.
   */
  batchSize?: number;
  /** A task (one tile or batch) running longer than this has its worker replaced and fails; 0/undefined = no limit. */
  taskTimeoutMs?: number;
  /** Inference workers as threads or child processes. Default per provider, see engineDefaults. */
  inferenceIsolation?: WorkerIsolation;
}

export interface EngineDefaults { inferenceWorkers: number; intraOpThreads: number; batchSize: number; inferenceIsolation: WorkerIsolation }

/**
 * Sessions a provider can run at once: WebGPU one per process (see engineDefaults), so one in all
 * when the sessions are threads of the daemon; in child processes each has its own.
 */
export function maxInferenceWorkers(provider: string, isolation: WorkerIsolation = engineDefaults(provider, 1).inferenceIsolation): number {
  return provider === 'webgpu' && isolation === 'thread' ? 1 : 64;
}

/**
 * Defaults per execution provider.
 * - cpu: one session using every core (onnxruntime parallelises inside a run), batch 1.
 * - webgpu: two sessions, each in its own child process, batch 1 (batching measured slower under
 *   WebGPU, shared/reference/gpu.md). Never two in one process: two sessions in two worker threads
 *   abort the whole process inside Dawn ("Command encoding already finished", SIGABRT at the first
 *   job; H200, onnxruntime-node 1.30, bench/README "WebGPU on an H200"), so with threads WebGPU runs
 *   one. In two processes they ran CMU-1-Small-Region in 1.28–1.43 s once warm against 2.43–2.83 s
 *   for one (three: 1.18–1.21 s; bench/README "Inference in child processes").
 * - cuda: two sessions, batches of up to 4 waiting tiles (PyTorch on the same GPU gained 1.8x
 *   from batch 8; not measured with onnxruntime-node CUDA yet).
 * GPU sessions need few CPU threads (only for nodes that fall back to the CPU): the cores are left
 * to post-processing, which becomes the bottleneck.
 * GPU sessions run in child processes ('process'): a GPU driver or execution provider that aborts
 * (WebGPU did, above) then ends one inference worker, which is replaced and its tiles retried, not
 * the daemon with every client's jobs. The CPU provider stays in a thread: it has not aborted here,
 * and a thread saves the copy of each tile's maps through the IPC pipe.
 */
export function engineDefaults(provider: string, cores: number = availableParallelism()): EngineDefaults {
  const gpuThreads = Math.max(1, Math.min(4, Math.floor(cores / 4)));
  if (provider === 'cuda') return { inferenceWorkers: 2, intraOpThreads: gpuThreads, batchSize: 4, inferenceIsolation: 'process' };
  if (provider === 'webgpu') return { inferenceWorkers: 2, intraOpThreads: gpuThreads, batchSize: 1, inferenceIsolation: 'process' };
  return { inferenceWorkers: 1, intraOpThreads: cores, batchSize: 1, inferenceIsolation: 'thread' };
}

/**
 * An inference task whose worker died (not one that ran past the time limit) runs once more on the
 * replacement worker: a driver's one-off abort costs a tile's time, not the job. A second death on
 * the same task fails it (a tile that kills every worker must not crash-loop the pool).
 */
export class InferenceCrashedTwice extends WorkerCrashed {}

function envBatchSize(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.CELLBRIDGE_BATCH_SIZE;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`CELLBRIDGE_BATCH_SIZE must be an integer from 1 to 64, got "${v}"`);
  return n;
}

export interface TileOutcome extends PostprocessResult { inferenceMs: number }

interface Pending {
  key: string;
  model: RegisteredModel & { card: NonNullable<RegisteredModel['card']>; onnxPath: string };
  tile: { rgb: Uint8Array; width: number; height: number };
  resolve: (r: InferenceResult) => void;
  reject: (e: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class TileEngine {
  readonly inference: WorkerPool<InferenceTask | InferenceBatchTask, InferenceResult | InferenceResult[]>;
  readonly postprocess: WorkerPool<PostprocessTask, PostprocessResult>;
  /** The settings in effect (options, else the provider's defaults). */
  readonly settings: EngineDefaults & { postprocessWorkers: number };
  private readonly pending: Pending[] = [];
  private batchesInFlight = 0;
  /** Models whose ONNX file refused a batch (fixed batch dimension): run tile by tile. */
  private readonly unbatchable = new Set<string>();
  /** Why batching was turned off for a model (for logs and tests). */
  batchFailure: string | null = null;

  constructor(readonly options: EngineOptions, env: NodeJS.ProcessEnv = process.env) {
    const cores = availableParallelism();
    const d = engineDefaults(options.provider, cores);
    const isolation = options.inferenceIsolation ?? d.inferenceIsolation;
    this.settings = {
      inferenceWorkers: Math.min(options.inferenceWorkers ?? d.inferenceWorkers, maxInferenceWorkers(options.provider, isolation)),
      intraOpThreads: options.intraOpThreads ?? d.intraOpThreads,
      batchSize: options.batchSize ?? envBatchSize(env) ?? d.batchSize,
      postprocessWorkers: options.postprocessWorkers ?? Math.max(1, cores - 1),
      inferenceIsolation: isolation,
    };
    const data: InferenceWorkerData = { provider: options.provider, intraOpThreads: this.settings.intraOpThreads };
    this.inference = new WorkerPool(join(__dirname, '../inference/inference-worker.js'), {
      name: 'inference', size: this.settings.inferenceWorkers, workerData: data, taskTimeoutMs: options.taskTimeoutMs,
      isolation: this.settings.inferenceIsolation,
    });
    this.postprocess = new WorkerPool(join(__dirname, 'postprocess-worker.js'), {
      name: 'post-processing', size: this.settings.postprocessWorkers, taskTimeoutMs: options.taskTimeoutMs,
    });
  }

  /**
   * Model maps of one tile. `views` > 1: test-time augmentation (bridge/inference/tta.ts), the tile's
   * views run in one task on one worker (not batched with other tiles).
   */
  infer(model: RegisteredModel, rgb: Uint8Array, width: number, height: number, signal?: AbortSignal, views: TtaViews = 1): Promise<InferenceResult> {
    if (!model.card || !model.onnxPath) return Promise.reject(new Error(`model ${model.name} is not ready: ${model.error}`));
    if (this.settings.batchSize <= 1 || views > 1) {
      const task: InferenceTask = { model: model.name, onnxPath: model.onnxPath, card: model.card, rgb, width, height, ...(views > 1 ? { views } : {}) };
      return this.runInference(task, signal) as Promise<InferenceResult>;
    }
    if (signal?.aborted) return Promise.reject(new PoolTaskAborted());
    const { pw, ph } = paddedSize(model.card.input, width, height);
    return new Promise<InferenceResult>((resolve, reject) => {
      const p: Pending = {
        key: `${model.onnxPath}|${pw}x${ph}`, model: model as Pending['model'], tile: { rgb, width, height }, resolve, reject, signal,
      };
      if (signal) {
        p.onAbort = () => {
          const i = this.pending.indexOf(p);
          if (i >= 0) { this.pending.splice(i, 1); reject(new PoolTaskAborted()); }
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.push(p);
      this.pump();
    });
  }

  /** Tiles waiting for inference: in the engine's batch queue and in the worker pool's queue. */
  get inferenceQueued(): number { return this.pending.length + this.inference.queued; }

  /** Sends waiting tiles to free inference workers, grouping up to batchSize tiles of one model and size. */
  private pump(): void {
    while (this.batchesInFlight < this.inference.size && this.pending.length > 0) {
      const first = this.pending.shift()!;
      const batch = [first];
      const limit = this.unbatchable.has(first.model.onnxPath) ? 1 : this.settings.batchSize;
      for (let i = 0; i < this.pending.length && batch.length < limit;) {
        if (this.pending[i].key === first.key) batch.push(...this.pending.splice(i, 1));
        else i++;
      }
      for (const p of batch) if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
      this.batchesInFlight++;
      const m = first.model;
      const run = batch.length === 1
        ? this.runInference({ model: m.name, onnxPath: m.onnxPath, card: m.card, ...first.tile })
          .then((r) => [r as InferenceResult])
        // If the model refuses a batch, the tiles are retried one by one.
        : this.runInference({ model: m.name, onnxPath: m.onnxPath, card: m.card, tiles: batch.map((p) => p.tile) })
          .then((r) => r as InferenceResult[]);
      void run.then(
        (results) => { batch.forEach((p, i) => p.resolve(results[i])); },
        (err: Error) => {
          if (batch.length > 1 && !(err instanceof WorkerCrashed) && !this.unbatchable.has(m.onnxPath)) {
            // E.g. an ONNX file with a fixed batch dimension of 1: run this model tile by tile from now on.
            this.unbatchable.add(m.onnxPath);
            this.batchFailure = `${m.name}: ${err.message}`;
            const retry = batch.filter((p) => !p.signal?.aborted);
            for (const p of batch) if (p.signal?.aborted) p.reject(new PoolTaskAborted());
            for (const p of retry) if (p.signal && p.onAbort) p.signal.addEventListener('abort', p.onAbort, { once: true });
            this.pending.unshift(...retry);
            return;
          }
          for (const p of batch) p.reject(err);
        },
      ).finally(() => { this.batchesInFlight--; this.pump(); });
    }
  }

  /**
   * One inference task, run once more if its worker dies (InferenceCrashedTwice). The tile's pixels
   * are copied to the worker, not transferred, so that they are still here for the second try
   * (~200 KB per 256² tile against tens of milliseconds of inference).
   */
  private async runInference(task: InferenceTask | InferenceBatchTask, signal?: AbortSignal): Promise<InferenceResult | InferenceResult[]> {
    try {
      return await this.inference.run(task, [], signal);
    } catch (err) {
      if (!(err instanceof WorkerCrashed) || err instanceof PoolTaskTimeout || signal?.aborted) throw err;
      try {
        return await this.inference.run(task, [], signal);
      } catch (again) {
        if (!(again instanceof WorkerCrashed) || again instanceof PoolTaskTimeout) throw again;
        throw new InferenceCrashedTwice('inference', `${again.message} (a second time for this tile: it was retried once)`);
      }
    }
  }

  finish(maps: TileOutputMaps, options: PostprocessOptions, context: FeatureContext, signal?: AbortSignal): Promise<PostprocessResult> {
    const transfer = [maps.dy.buffer, maps.dx.buffer, maps.typeLogits.buffer, ...(maps.cellprob ? [maps.cellprob.buffer] : [])] as ArrayBuffer[];
    return this.postprocess.run({ maps, options, context }, transfer, signal);
  }

  async close(): Promise<void> {
    for (const p of this.pending.splice(0)) p.reject(new Error('inference pool closed'));
    await Promise.all([this.inference.close(), this.postprocess.close()]);
  }
}
