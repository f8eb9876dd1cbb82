/**
 * The tile engine: inference workers (onnxruntime sessions) feeding post-processing workers.
 * Stages run in separate pools so inference of tile n+1 overlaps post-processing of tile n.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { WorkerPool } from '../workers/pool';
import type { InferenceResult, InferenceTask, InferenceWorkerData } from '../inference/inference-worker';
import type { PostprocessResult, PostprocessTask } from './postprocess-worker';
import type { RegisteredModel } from '../inference/model-registry';
import type { TileOutputMaps } from '../inference/preprocess';
import type { FeatureContext } from '../results/features';
import type { PostprocessOptions } from '../postprocess';

export interface EngineOptions {
  provider: string;
  /** Inference workers (sessions). Default 1: onnxruntime already uses several threads per run. */
  inferenceWorkers?: number;
  /** Threads per onnxruntime session. Default: all cores. */
  intraOpThreads?: number;
  /** Post-processing workers. Default: cores - 1, at least 1. */
  postprocessWorkers?: number;
}

export interface TileOutcome extends PostprocessResult { inferenceMs: number }

export class TileEngine {
  readonly inference: WorkerPool<InferenceTask, InferenceResult>;
  readonly postprocess: WorkerPool<PostprocessTask, PostprocessResult>;

  constructor(readonly options: EngineOptions) {
    const cores = availableParallelism();
    const data: InferenceWorkerData = { provider: options.provider, intraOpThreads: options.intraOpThreads ?? cores };
    this.inference = new WorkerPool(join(__dirname, '../inference/inference-worker.js'), {
      name: 'inference', size: options.inferenceWorkers ?? 1, workerData: data,
    });
    this.postprocess = new WorkerPool(join(__dirname, 'postprocess-worker.js'), {
      name: 'post-processing', size: options.postprocessWorkers ?? Math.max(1, cores - 1),
    });
  }

  infer(model: RegisteredModel, rgb: Uint8Array, width: number, height: number, signal?: AbortSignal): Promise<InferenceResult> {
    if (!model.card || !model.onnxPath) return Promise.reject(new Error(`model ${model.name} is not ready: ${model.error}`));
    const task: InferenceTask = { model: model.name, onnxPath: model.onnxPath, card: model.card, rgb, width, height };
    return this.inference.run(task, [rgb.buffer as ArrayBuffer], signal);
  }

  finish(maps: TileOutputMaps, options: PostprocessOptions, context: FeatureContext, signal?: AbortSignal): Promise<PostprocessResult> {
    const transfer = [maps.dy.buffer, maps.dx.buffer, maps.typeLogits.buffer, ...(maps.cellprob ? [maps.cellprob.buffer] : [])] as ArrayBuffer[];
    return this.postprocess.run({ maps, options, context }, transfer, signal);
  }

  async close(): Promise<void> {
    await Promise.all([this.inference.close(), this.postprocess.close()]);
  }
}
