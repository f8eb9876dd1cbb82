/** Worker thread: owns onnxruntime sessions and turns tile pixels into output maps. */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { ModelCard } from './model-card';
import { extractMaps, prepareInput, type RawOutput, type TileOutputMaps } from './preprocess';
import { serveWorker } from '../workers/pool';

export interface InferenceWorkerData { provider: string; intraOpThreads: number }
export interface InferenceTask { model: string; onnxPath: string; card: ModelCard; rgb: Uint8Array; width: number; height: number }
export interface InferenceResult { maps: TileOutputMaps; inferenceMs: number }

const config = workerData as InferenceWorkerData;
const sessions = new Map<string, Promise<ort.InferenceSession>>();

function sessionFor(task: InferenceTask): Promise<ort.InferenceSession> {
  let s = sessions.get(task.onnxPath);
  if (!s) {
    s = ort.InferenceSession.create(task.onnxPath, {
      executionProviders: [config.provider],
      intraOpNumThreads: config.intraOpThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    sessions.set(task.onnxPath, s);
    s.catch(() => sessions.delete(task.onnxPath));
  }
  return s;
}

serveWorker<InferenceTask, InferenceResult>(parentPort!, async (task) => {
  const session = await sessionFor(task);
  const started = performance.now();
  const input = prepareInput(task.rgb, task.width, task.height, task.card.input);
  const feeds = { [task.card.input.name]: new ort.Tensor('float32', input.data, input.dims) };
  const out = await session.run(feeds);
  const raw: Record<string, RawOutput> = {};
  for (const [name, t] of Object.entries(out)) raw[name] = { data: t.data as Float32Array, dims: t.dims };
  const maps = extractMaps(task.card, raw, input.pw, input.ph, task.width, task.height);
  for (const t of Object.values(out)) t.dispose?.();
  const transfer = [maps.dy.buffer, maps.dx.buffer, maps.typeLogits.buffer, ...(maps.cellprob ? [maps.cellprob.buffer] : [])] as ArrayBuffer[];
  return { result: { maps, inferenceMs: performance.now() - started }, transfer };
});
