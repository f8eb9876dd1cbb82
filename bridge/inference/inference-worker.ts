/**
 * Inference worker (a thread, or a child process with --inference-isolation process): owns
 * onnxruntime sessions and turns tile pixels into output maps.
 */
import * as ort from './ort';
import type { ModelCard } from './model-card';
import { extractMaps, prepareInput, type RawOutput, type TileOutputMaps } from './preprocess';
import { serveWorker } from '../workers/pool';
import { workerSide } from '../workers/process-worker';
import { openSession } from './onnx-session';
import { VIEWS, addViewMaps, emptyMapsLike, scaleMaps, viewRgb, type TtaViews } from './tta';

export interface InferenceWorkerData { provider: string; intraOpThreads: number }
export interface InferenceTask {
  model: string; onnxPath: string; card: ModelCard; rgb: Uint8Array; width: number; height: number;
  /** Test-time augmentation: views of the tile whose maps are averaged (default 1: the tile only). */
  views?: TtaViews;
}
export interface InferenceResult { maps: TileOutputMaps; inferenceMs: number }
/** Several tiles of one model with the same input size, run as one batch (batch dimension N). */
export interface InferenceBatchTask { model: string; onnxPath: string; card: ModelCard; tiles: { rgb: Uint8Array; width: number; height: number }[] }

export { sessionOptions } from './onnx-session';

function mapsTransfer(maps: TileOutputMaps): ArrayBuffer[] {
  return [maps.dy.buffer, maps.dx.buffer, maps.typeLogits.buffer, ...(maps.cellprob ? [maps.cellprob.buffer] : [])] as ArrayBuffer[];
}

const side = workerSide();
if (side) {
  const config = side.data as InferenceWorkerData;
  const sessions = new Map<string, Promise<ort.InferenceSession>>();

  const sessionFor = (onnxPath: string): Promise<ort.InferenceSession> => {
    let s = sessions.get(onnxPath);
    if (!s) {
      s = openSession(onnxPath, { provider: config.provider, intraOpThreads: config.intraOpThreads });
      sessions.set(onnxPath, s);
      s.catch(() => sessions.delete(onnxPath));
    }
    return s;
  };

  type Tile = { rgb: Uint8Array; width: number; height: number };

  /** Tiles of one input size in one run (batch dimension N): each tile's maps, in its own frame. */
  const runTiles = async (session: ort.InferenceSession, card: ModelCard, tiles: Tile[]): Promise<TileOutputMaps[]> => {
    const inputs = tiles.map((t) => prepareInput(t.rgb, t.width, t.height, card.input));
    let data = inputs[0].data;
    const dims = [...inputs[0].dims];
    if (inputs.length > 1) {
      if (inputs.some((i) => i.dims.join() !== inputs[0].dims.join())) throw new Error('a batch must hold tiles of one input size');
      data = new Float32Array(data.length * inputs.length);
      inputs.forEach((i, k) => data.set(i.data, k * i.data.length));
      dims[0] = inputs.length;
    }
    const out = await session.run({ [card.input.name]: new ort.Tensor('float32', data, dims) });
    const maps = inputs.map((input, k) => {
      const raw: Record<string, RawOutput> = {};
      for (const [name, t] of Object.entries(out)) {
        const all = t.data as Float32Array;
        const per = all.length / inputs.length;
        raw[name] = inputs.length === 1 ? { data: all, dims: t.dims } : { data: all.subarray(k * per, (k + 1) * per), dims: [1, ...t.dims.slice(1)] };
      }
      return extractMaps(card, raw, input.pw, input.ph, tiles[k].width, tiles[k].height);
    });
    for (const t of Object.values(out)) t.dispose?.();
    return maps;
  };

  serveWorker<InferenceTask | InferenceBatchTask, InferenceResult | InferenceResult[]>(side.port, async (task) => {
    const session = await sessionFor(task.onnxPath);
    const started = performance.now();
    if (!('tiles' in task) && task.views !== undefined && task.views > 1) {
      // One run per view (a transposed view has another shape); the mean of the views' maps.
      let sum: TileOutputMaps | null = null;
      for (const view of VIEWS[task.views]) {
        const [maps] = await runTiles(session, task.card, [viewRgb(task.rgb, task.width, task.height, view)]);
        sum ??= emptyMapsLike(maps, task.width, task.height);
        addViewMaps(sum, maps, view);
      }
      const maps = scaleMaps(sum!, task.views);
      return { result: { maps, inferenceMs: performance.now() - started }, transfer: mapsTransfer(maps) };
    }
    const tiles = 'tiles' in task ? task.tiles : [task];
    const maps = await runTiles(session, task.card, tiles);
    const elapsed = performance.now() - started;
    const results: InferenceResult[] = maps.map((m) => ({ maps: m, inferenceMs: elapsed / tiles.length }));
    const transfer = results.flatMap((r) => mapsTransfer(r.maps));
    return { result: 'tiles' in task ? results : results[0], transfer };
  });
}
