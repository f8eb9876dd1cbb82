/**
 * The one place where the evaluation touches the daemon's segmentation code. Everything else in
 * bridge/eval/ only sees the `Segmenter` interface below.
 *
 * Model mode calls `segmentRgbImage(rgb, width, height, micronsPerPixel, engine)` from
 * bridge/pipeline/segment-image.ts (the daemon's own per-image pipeline, which resizes to the model's
 * resolution and back). That module is loaded at run time so this file compiles before it exists;
 * WIRING: once it (and the engine loader) are in the tree, replace `loadPipeline`/`createEngine`
 * below with static imports.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ModelCard } from '../inference/model-card';
import { ModelRegistry } from '../inference/model-registry';
import type { Tile } from './dataset';
import { erodeLabels, gtClassNames } from './oracle';

/** What a segmenter returns for one tile: a full-resolution label map and a class name per label. */
export interface EvalPrediction {
  labels: Int32Array;
  classOfLabel: Map<number, string>;
}

export interface Segmenter {
  /** Shown as `model` in the eval output. */
  name: string;
  /** Class names the segmenter can predict (model card classes), or null when it is the GT itself. */
  classNames: string[] | null;
  segment(tile: Tile): Promise<EvalPrediction>;
  close(): Promise<void>;
}

/** A setup problem (missing model, pipeline not yet available): reported without a stack trace. */
export class SetupError extends Error {
  override name = 'SetupError';
}

/** GT as the prediction (`--oracle`) or GT eroded by 1 px (`--oracle-erode`). */
export function oracleSegmenter(gtClasses: Map<number, string>, erode: boolean): Segmenter {
  return {
    name: erode ? 'oracle-erode' : 'oracle',
    classNames: null,
    async segment(tile) {
      const labels = erode ? erodeLabels(tile.instances, tile.width, tile.height) : tile.instances.slice();
      return { labels, classOfLabel: gtClassNames(tile.classOf, gtClasses) };
    },
    async close() {},
  };
}

/** The default model name: models/default.json `{ "default": NAME }` if present, else cellbridge-he-v1. */
export function defaultModelName(modelsDir: string): string {
  const f = path.join(modelsDir, 'default.json');
  if (existsSync(f)) {
    try {
      const d = JSON.parse(readFileSync(f, 'utf8')) as { default?: unknown };
      if (typeof d.default === 'string' && d.default.length > 0) return d.default;
    } catch {
      // fall through to the built-in default
    }
  }
  return 'cellbridge-he-v1';
}

/**
 * Find a model with the daemon's own registry (models/<name>/card.json, validated, ONNX file present);
 * class names come from the card's `classes`.
 */
export function findModel(modelsDir: string, model: string): { card: ModelCard; dir: string; onnxPath: string } {
  let registry: ModelRegistry;
  try {
    registry = new ModelRegistry(modelsDir);
  } catch (e) {
    throw new SetupError(`cannot read the models folder: ${(e as Error).message} (choose one with --models DIR, or use --oracle)`);
  }
  const m = registry.get(model);
  if (!m) {
    const known = registry.list().map((r) => r.name);
    throw new SetupError(`model "${model}" not found in ${registry.root} (no ${model}/card.json; models there: ${known.length ? known.join(', ') : 'none'}); choose one with --model NAME / --models DIR, or use --oracle`);
  }
  if (m.status !== 'ready' || !m.card || !m.onnxPath) throw new SetupError(`model "${model}" is not usable: ${m.error ?? 'unknown error'}`);
  return { card: m.card, dir: m.dir, onnxPath: m.onnxPath };
}

// ---- coupling to the daemon (bridge/pipeline/segment-image.ts) ----------------------------------

/** The signature promised for bridge/pipeline/segment-image.ts. */
interface SegmentedImage {
  labels: Int32Array;
  width: number;
  height: number;
  classOfLabel: Map<number, string>;
}
type SegmentRgbImage = (rgb: Uint8Array, width: number, height: number, micronsPerPixel: number, engine: unknown) => Promise<SegmentedImage>;

function loadPipeline(): SegmentRgbImage {
  const file = path.resolve(__dirname, '../pipeline/segment-image.js');
  if (!existsSync(file)) {
    throw new SetupError('model evaluation needs bridge/pipeline/segment-image.ts (segmentRgbImage), which is not in this build yet; use --oracle or --oracle-erode meanwhile');
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(file) as { segmentRgbImage?: SegmentRgbImage };
  if (typeof mod.segmentRgbImage !== 'function') throw new SetupError(`${file} does not export segmentRgbImage`);
  return mod.segmentRgbImage;
}

/** WIRING: create the daemon's InferenceEngine for a model card (not yet defined by the daemon). */
async function createEngine(_card: ModelCard, _onnxPath: string): Promise<{ engine: unknown; close(): Promise<void> }> {
  throw new SetupError('model evaluation: the InferenceEngine loader is not wired into bridge/eval/segmenter.ts yet; use --oracle or --oracle-erode meanwhile');
}

export async function modelSegmenter(modelsDir: string, model: string, micronsPerPixel: number): Promise<Segmenter> {
  const { card, onnxPath } = findModel(modelsDir, model);
  const segmentRgbImage = loadPipeline();
  const { engine, close } = await createEngine(card, onnxPath);
  return {
    name: model,
    classNames: card.classes.map((c) => c.name),
    async segment(tile) {
      const r = await segmentRgbImage(tile.rgb, tile.width, tile.height, micronsPerPixel, engine);
      if (r.width !== tile.width || r.height !== tile.height || r.labels.length !== tile.width * tile.height) {
        throw new Error(`segmentRgbImage returned ${r.width}x${r.height} for a ${tile.width}x${tile.height} tile`);
      }
      return { labels: r.labels, classOfLabel: r.classOfLabel };
    },
    close,
  };
}
