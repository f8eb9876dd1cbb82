/**
 * The one place where the evaluation touches the daemon's segmentation code. Everything else in
 * bridge/eval/ only sees the `Segmenter` interface below.
 *
 * Model mode calls `segmentRgbImage(rgb, width, height, micronsPerPixel, { engine, model })` from
 * bridge/pipeline/segment-image.ts (the daemon's own per-image pipeline, which resizes to the model's
 * resolution and back), with the daemon's ModelRegistry (card validation), provider selection
 * (`--device`, as the daemon's) and TileEngine (inference + post-processing worker pools).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ModelCard } from '../inference/model-card';
import { viewsFor, type TtaViews } from '../inference/tta';
import type { RegisteredModel } from '../inference/model-registry';
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
  /** Execution provider that runs the model (model mode only). */
  provider?: string;
  /** Test-time augmentation views per tile in effect (model mode only). */
  views?: number;
  /** The model's ONNX file that runs (model mode only): the card's `file`, or its `cpuFile` on the CPU. */
  modelFile?: string;
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
export function findModel(modelsDir: string, model: string): { card: ModelCard; dir: string; onnxPath: string; registered: RegisteredModel } {
  const { ModelRegistry } = require('../inference/model-registry') as typeof import('../inference/model-registry');
  let registry: InstanceType<typeof ModelRegistry>;
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
  return { card: m.card, dir: m.dir, onnxPath: m.onnxPath, registered: m };
}

// ---- coupling to the daemon (bridge/pipeline/segment-image.ts) ----------------------------------
// The daemon's modules are required lazily (types are imported statically and erased), so the oracle
// modes keep working whatever state the inference/post-processing code is in.

type SegmentImageModule = typeof import('../pipeline/segment-image');
type EngineModule = typeof import('../pipeline/engine');
type ProvidersModule = typeof import('../inference/providers');

export type DeviceRequest = import('../inference/providers').DeviceRequest;

export interface ModelSegmenterOptions {
  /** onnxruntime execution provider: 'auto' tries CUDA, WebGPU, then CPU, like the daemon. */
  device: DeviceRequest;
  /** Threads per onnxruntime session (default: all cores). */
  intraOpThreads?: number;
  /** Post-processing workers (default: cores - 1). */
  postprocessWorkers?: number;
  /** Test-time augmentation views per tile (default: the card's input.testTimeAugmentation, else 1). */
  views?: TtaViews;
  /** On the CPU, run the card's `file`, not its int8 `cpuFile` (the daemon's --full-precision). */
  fullPrecision?: boolean;
  log?: (line: string) => void;
}

export async function modelSegmenter(modelsDir: string, model: string, micronsPerPixel: number, options: ModelSegmenterOptions): Promise<Segmenter> {
  const m = findModel(modelsDir, model);
  const card = m.card;
  const { segmentRgbImage } = require('../pipeline/segment-image') as SegmentImageModule;
  const { TileEngine } = require('../pipeline/engine') as EngineModule;
  const { selectProvider, summariseError, ProviderUnavailable } = require('../inference/providers') as ProvidersModule;
  const i = card.input;
  const probe = { path: m.onnxPath, inputName: i.name, dims: i.layout === 'NCHW' ? [1, i.channels, i.modelSize, i.modelSize] : [1, i.modelSize, i.modelSize, i.channels] };
  let provider: string;
  // As the daemon: the test inferences in a child process (a provider that aborts is skipped, not fatal).
  const { IsolatedChecks } = require('../inference/isolated-checks') as typeof import('../inference/isolated-checks');
  const checks = new IsolatedChecks();
  const { runFileFor } = require('../inference/model-registry') as typeof import('../inference/model-registry');
  const { loadableRunFile } = require('../inference/model-file') as typeof import('../inference/model-file');
  try {
    try {
      const choice = await selectProvider(options.device, probe, { probe: checks.probe });
      for (const sk of choice.skipped) options.log?.(`[eval] execution provider ${sk.provider} skipped: ${sk.reason}`);
      provider = choice.name;
      options.log?.(`[eval] execution provider: ${choice.name}${choice.deviceName ? ` (${choice.deviceName})` : ''}`);
    } catch (e) {
      if (e instanceof ProviderUnavailable) throw new SetupError(e.message);
      throw new SetupError(`model "${model}" could not be run: ${summariseError(e)}`);
    }
    try {
      // The daemon's rule and fallback (server.verifyModels): an int8 cpuFile that does not load runs the card's file.
      m.registered.onnxPath = await loadableRunFile({ ...m.registered, onnxPath: runFileFor(m.registered, provider, options.fullPrecision === true) },
        provider, (reason) => options.log?.(`[eval] model cpuFile could not be loaded (${reason}); running its full-precision file`), checks.checkFile);
    } catch (e) {
      throw new SetupError(`model "${model}" could not be run: ${summariseError(e)}`);
    }
  } finally {
    await checks.close();
  }
  const modelFile = path.basename(m.registered.onnxPath!);
  options.log?.(`[eval] model file: ${modelFile}`);
  const engine = new TileEngine({ provider, intraOpThreads: options.intraOpThreads, postprocessWorkers: options.postprocessWorkers });
  const views = viewsFor(card.input, options.views);
  const ie = { engine, model: m.registered, views };
  return {
    name: model,
    classNames: card.classes.map((c) => c.name),
    provider,
    views,
    modelFile,
    async segment(tile) {
      const r = await segmentRgbImage(tile.rgb, tile.width, tile.height, micronsPerPixel, ie);
      if (r.width !== tile.width || r.height !== tile.height || r.labels.length !== tile.width * tile.height) {
        throw new Error(`segmentRgbImage returned ${r.width}x${r.height} for a ${tile.width}x${tile.height} tile`);
      }
      return { labels: r.labels, classOfLabel: r.classOfLabel };
    },
    close: async () => {
      await engine.close();
    },
  };
}
