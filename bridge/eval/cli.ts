/**
 * `npm run eval -- [--data DIR] [--model NAME] [--models DIR] [--limit N] [--oracle | --oracle-erode]
 *                  [--mpp UM] [--iterations N] [--seed S] [--no-images]
 *                  [--qupath-watershed [--watershed-threshold T] [--watershed-mpp UM] [--qupath-headless DIR]]`
 *
 * Segments every tile of an evaluation split with the daemon's own pipeline (or an oracle, or QuPath's own
 * Cell detection as a baseline: watershed-segmenter.ts), and
 * prints one JSON object LAST on stdout: bPQ, mPQ, perClass.<name>.{PQ, DQ, SQ, R2} with 95 %
 * bootstrap intervals (<metric>_CI), detection F1 (Fd, detectionPrecision, detectionRecall), plus model, tiles, seconds; and `images`: the same split with the
 * tiles stitched back into their source images (stitch.ts), each whole image segmented at once, PQ per
 * image (bPQ = mean over images, per-class PQ summed over images and averaged per image).
 * Splits whose instances have no class (MoNuSeg, CPM-15) get binary metrics only. Progress goes to stderr.
 * Conventions: see metrics.ts (bPQ per tile then averaged; per-class PQ aggregated over the data set).
 * Exit codes: 0 ok, 2 setup problem (data set or model missing, bad arguments), 1 anything else.
 */
import type { TtaViews } from '../inference/tta';
import { ttaFlag, UsageError } from '../cli/args';
import * as path from 'node:path';
import { DatasetError, openDataset, readTile } from './dataset';
import { BOOTSTRAP_DEFAULTS, bootstrapIntervals, datasetMetrics, pqFromCounts, tileStats, type Interval, type TileStats } from './metrics';
import { stitchTiles, tileLayout } from './stitch';
import { watershedSegmenter, type WatershedParams } from './watershed-segmenter';
import { defaultModelName, modelSegmenter, oracleSegmenter, SetupError, type DeviceRequest, type Segmenter } from './segmenter';

const DEVICES: DeviceRequest[] = ['auto', 'cpu', 'cuda', 'webgpu'];

const REPO_ROOT = path.resolve(__dirname, '../../..');
/** Radius within which a predicted centroid detects a true nucleus (HoVer-Net's 12 px at 40x). */
const DETECTION_RADIUS_UM = 3;

export interface EvalOptions {
  data: string;
  modelsDir: string;
  model: string;
  mode: 'model' | 'oracle' | 'oracle-erode' | 'qupath-watershed';
  limit: number | null;
  /** µm per pixel of the evaluation tiles (CoNSeP: 0.25). */
  micronsPerPixel: number;
  iterations: number;
  seed: number;
  /** Execution provider for model mode (as the daemon's --device). */
  device: DeviceRequest;
  /** Threads per onnxruntime session (default: all cores). */
  threads?: number;
  /** Also evaluate whole source images (tiles stitched back); default true. */
  images: boolean;
  /** Test-time augmentation views per tile (default: the model card's, else 1). */
  views?: TtaViews;
  /** On the CPU, run the card's `file`, not its int8 `cpuFile`. */
  fullPrecision?: boolean;
  /** qupath-watershed mode: the headless QuPath runtime folder and the detection's parameters. */
  qupathHeadless?: string;
  watershed?: WatershedParams;
}


const USAGE = `usage: npm run eval -- [--data DIR] [--model NAME] [--models DIR] [--limit N] [--oracle | --oracle-erode]
                         [--mpp UM_PER_PX] [--device auto|cpu|cuda|webgpu] [--threads N] [--iterations N] [--seed S]
                         [--tta 1|2|4|8] [--full-precision] [--no-images]
                         [--qupath-watershed [--watershed-threshold T] [--watershed-mpp UM] [--qupath-headless DIR]]
  --data DIR        evaluation split (default ../shared/data/consep/test from the repo root)
  --models DIR      models folder (default <repo>/models)
  --model NAME      model under --models (default: models/default.json "default", else cellbridge-he-v1)
  --limit N         only the first N tiles (sorted by name)
  --oracle          predict the ground truth itself (all metrics must be exactly 1)
  --oracle-erode    predict the ground truth eroded by 1 px
  --mpp UM          µm per pixel of the tiles (default 0.25, CoNSeP at 40x)
  --device D        execution provider for the model: auto (CUDA, WebGPU, CPU), cpu, cuda, webgpu (default auto)
  --threads N       onnxruntime threads per session (default: all cores)
  --iterations N    bootstrap resamples (default ${BOOTSTRAP_DEFAULTS.iterations})
  --seed S          bootstrap seed (default ${BOOTSTRAP_DEFAULTS.seed})
  --tta V           test-time augmentation: views of each tile averaged (default: the model card's, else 1)
  --full-precision  on the CPU, run the model's full-precision file, not the int8 copy its card names (cpuFile)
  --no-images       skip the per-source-image figures (tiles stitched back into whole images)
  --qupath-watershed  score QuPath's own Cell detection (WatershedCellDetection, no deep learning; nuclei only,
                    binary metrics) instead of a model: a baseline on the same tiles and metrics (needs java
                    and the headless QuPath runtime, ../shared/qupath-headless)
  --watershed-threshold T  its hematoxylin OD threshold (QuPath's default 0.1)
  --watershed-mpp UM       the resolution it detects at, µm per pixel (QuPath's default 0.5)
  --qupath-headless DIR    the headless QuPath runtime (default ../shared/qupath-headless from the repo root)`;

export function parseArgs(argv: string[]): EvalOptions & { help: boolean } {
  const o: EvalOptions & { help: boolean } = {
    data: path.resolve(__dirname, '../../../../shared/data/consep/test'),
    modelsDir: path.join(REPO_ROOT, 'models'),
    model: '',
    mode: 'model',
    limit: null,
    micronsPerPixel: 0.25,
    iterations: BOOTSTRAP_DEFAULTS.iterations,
    seed: BOOTSTRAP_DEFAULTS.seed,
    device: 'auto',
    images: true,
    help: false,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  const num = (s: string, flag: string, integer: boolean, min: number): number => {
    const n = Number(s);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) throw new UsageError(`${flag}: invalid value "${s}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--data': o.data = path.resolve(value(i, a)); i++; break;
      case '--models': o.modelsDir = path.resolve(value(i, a)); i++; break;
      case '--model': o.model = value(i, a); i++; break;
      case '--limit': o.limit = num(value(i, a), a, true, 1); i++; break;
      case '--mpp': o.micronsPerPixel = num(value(i, a), a, false, Number.MIN_VALUE); i++; break;
      case '--iterations': o.iterations = num(value(i, a), a, true, 1); i++; break;
      case '--seed': o.seed = num(value(i, a), a, true, 0); i++; break;
      case '--device': {
        const d = value(i, a);
        if (!DEVICES.includes(d as DeviceRequest)) throw new UsageError(`--device must be one of ${DEVICES.join(', ')}`);
        o.device = d as DeviceRequest; i++; break;
      }
      case '--threads': o.threads = num(value(i, a), a, true, 1); i++; break;
      case '--tta': o.views = ttaFlag(value(i, a)); i++; break;
      case '--oracle': o.mode = 'oracle'; break;
      case '--oracle-erode': o.mode = 'oracle-erode'; break;
      case '--qupath-watershed': o.mode = 'qupath-watershed'; break;
      case '--watershed-threshold': o.watershed = { ...o.watershed, threshold: num(value(i, a), a, false, 0) }; i++; break;
      case '--watershed-mpp': o.watershed = { ...o.watershed, requestedPixelSizeMicrons: num(value(i, a), a, false, Number.MIN_VALUE) }; i++; break;
      case '--qupath-headless': o.qupathHeadless = path.resolve(value(i, a)); i++; break;
      case '--no-images': o.images = false; break;
      case '--full-precision': o.fullPrecision = true; break;
      case '-h': case '--help': o.help = true; break;
      default: throw new UsageError(`unknown argument "${a}"`);
    }
  }
  if (o.mode !== 'qupath-watershed' && (o.watershed || o.qupathHeadless)) {
    throw new UsageError('--watershed-threshold, --watershed-mpp and --qupath-headless go with --qupath-watershed');
  }
  if (!o.model) o.model = defaultModelName(o.modelsDir);
  return o;
}

const norm = (s: string) => s.trim().toLowerCase();
/** JSON has no NaN: undefined metrics are written as null. */
const num = (v: number): number | null => (Number.isFinite(v) ? v : null);
const ci = (v: Interval): [number | null, number | null] => [num(v[0]), num(v[1])];

export const CONVENTIONS = [
  'Match: GT and predicted instances pair when IoU > 0.5 (unique); DQ = TP/(TP+FP/2+FN/2), SQ = mean IoU of TP, PQ = DQ*SQ (TP=0 -> 0).',
  'bPQ/bDQ/bSQ: per tile, classes ignored, then mean over tiles; tiles with no GT and no prediction are skipped (HoVer-Net).',
  'perClass PQ/DQ/SQ: GT and predictions restricted to the class, TP/FP/FN/IoU summed over all tiles, then computed once (PanNuke/CoNIC multi-class PQ); mPQ = mean of per-class PQ.',
  'Fd: detection F1 of centroids paired within 3 µm (12 px at 40x; HoVer-Net F_d: minimum-total-distance assignment, then pairs within the radius), TP/FP/FN summed over tiles; detectionPrecision / detectionRecall alike.',
  'perClass Fc: classification F1 over the centroid pairs of Fd (HoVer-Net F_c, weights 2, 2, 1, 1): 2 TP / (2 TP + 2 FP + 2 FN + FP_d + FN_d), where among pairs whose true or predicted class is c TP = both c, FP = predicted c only, FN = true c only, and FP_d / FN_d are unpaired predictions / true nuclei of class c; counts summed over tiles.',
  'R2: coefficient of determination of per-tile predicted vs true instance counts per class, 1 - SS_res/SS_tot (CoNIC, sklearn r2_score).',
  'CI: percentile bootstrap [2.5, 97.5] over tiles resampled with replacement, seeded mulberry32.',
  'images: tiles stitched back into their source images (bridge/eval/stitch.ts), each image segmented whole; bPQ/bDQ/bSQ = mean over images of per-image binary PQ; perClass PQ summed over images (PQ) and mean over images of per-image class PQ (PQ_imageMean, images without that class skipped); mPQ and mPQ_imageMean = their means over classes.',
  'Class 0 (Unknown) is no class: such instances count for the binary metrics only; a split without any classed instance is evaluated binary only (binaryOnly: true).',
].join(' ');

/** Run the evaluation; returns the result object (the CLI prints it as JSON). */
export async function runEvaluation(opts: EvalOptions, log: (line: string) => void = () => {}): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const ds = openDataset(opts.data);
  const segmenter: Segmenter = opts.mode === 'model'
    ? await modelSegmenter(opts.modelsDir, opts.model, opts.micronsPerPixel, { device: opts.device, intraOpThreads: opts.threads, views: opts.views, fullPrecision: opts.fullPrecision, log })
    : opts.mode === 'qupath-watershed'
      ? await watershedSegmenter(opts.micronsPerPixel, { headless: opts.qupathHeadless, params: opts.watershed, log })
      : oracleSegmenter(ds.classes, opts.mode === 'oracle-erode');
  // A segmenter without classes (the watershed baseline) is scored like a split without classes.
  const binaryOnly = ds.binaryOnly || segmenter.classNames?.length === 0;
  const classIds = binaryOnly ? [] : [...ds.classes.keys()].sort((a, b) => a - b);
  const classNames = classIds.map((id) => ds.classes.get(id)!);
  const classIndexById = new Map(classIds.map((id, i) => [id, i]));
  const classIndexByName = new Map(classNames.map((n, i) => [norm(n), i]));
  const modelClasses = segmenter.classNames;
  if (modelClasses) {
    const missing = classNames.filter((n) => !modelClasses.some((m) => norm(m) === norm(n)));
    const extra = modelClasses.filter((m) => !classIndexByName.has(norm(m)));
    if (missing.length) log(`warning: GT classes not predicted by the model (their PQ will be 0): ${missing.join(', ')}`);
    if (extra.length && !ds.binaryOnly) log(`warning: model classes absent from the GT (binary metrics only): ${extra.join(', ')}`);
  }
  if (ds.binaryOnly) log('[eval] no instance of this split has a class: binary metrics only');
  else if (binaryOnly) log('[eval] the baseline predicts no classes: binary metrics only');
  const predClassOf = (pred: { classOfLabel: Map<number, string> }) => (id: number) => {
    const name = pred.classOfLabel.get(id);
    return name === undefined ? -1 : classIndexByName.get(norm(name)) ?? -1;
  };
  const gtClassOf = (tile: { classOf: Map<number, number> }) => (id: number) => {
    const c = tile.classOf.get(id);
    return c === undefined ? -1 : classIndexById.get(c) ?? -1;
  };

  const tiles = opts.limit ? ds.tiles.slice(0, opts.limit) : ds.tiles;
  const radius = DETECTION_RADIUS_UM / opts.micronsPerPixel;
  const stats: TileStats[] = [];
  let segmentMs = 0;
  let lastLog = performance.now();
  let images: Record<string, unknown> | null = null;
  try {
    for (let k = 0; k < tiles.length; k++) {
      const tile = await readTile(ds, tiles[k]);
      const ts = performance.now();
      const pred = await segmenter.segment(tile);
      segmentMs += performance.now() - ts;
      stats.push(tileStats(tile.name, tile.instances, gtClassOf(tile), pred.labels, predClassOf(pred), classNames.length, { width: tile.width, radius }));
      if (k === tiles.length - 1 || performance.now() - lastLog > 2000) {
        lastLog = performance.now();
        log(`[eval] ${k + 1}/${tiles.length} tiles (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
    }
    if (opts.images) images = await evaluateImages(ds, new Set(tiles), segmenter, classNames, gtClassOf, predClassOf, radius, log);
  } finally {
    await segmenter.close();
  }

  const m = datasetMetrics(stats, classNames.length);
  log(`[eval] bootstrap: ${opts.iterations} resamples of ${stats.length} tiles`);
  const b = bootstrapIntervals(stats, classNames.length, { iterations: opts.iterations, seed: opts.seed, level: 95 });
  const perClass: Record<string, unknown> = {};
  classNames.forEach((name, c) => {
    const pc = m.perClass[c];
    const pci = b.perClass[c];
    perClass[name] = {
      PQ: num(pc.PQ), PQ_CI: ci(pci.PQ),
      DQ: num(pc.DQ), DQ_CI: ci(pci.DQ),
      SQ: num(pc.SQ), SQ_CI: ci(pci.SQ),
      R2: num(pc.R2), R2_CI: ci(pci.R2),
      Fc: num(pc.Fc), Fc_CI: ci(pci.Fc),
      TP: pc.tp, FP: pc.fp, FN: pc.fn,
      trueCount: pc.trueCount, predCount: pc.predCount,
    };
  });
  return {
    model: segmenter.name,
    mode: opts.mode,
    ...(segmenter.provider ? { provider: segmenter.provider } : {}),
    ...(segmenter.views ? { testTimeAugmentation: segmenter.views } : {}),
    ...(segmenter.modelFile ? { modelFile: segmenter.modelFile } : {}),
    data: opts.data,
    tiles: stats.length,
    seconds: Number(((performance.now() - t0) / 1000).toFixed(3)),
    segmentSeconds: Number((segmentMs / 1000).toFixed(3)),
    micronsPerPixel: opts.micronsPerPixel,
    binaryOnly,
    ...(opts.mode === 'qupath-watershed' ? { watershed: { ...opts.watershed } } : {}),
    bPQ: num(m.bPQ), bPQ_CI: ci(b.bPQ),
    bDQ: num(m.bDQ), bDQ_CI: ci(b.bDQ),
    bSQ: num(m.bSQ), bSQ_CI: ci(b.bSQ),
    bTiles: m.bTiles,
    Fd: num(m.Fd), Fd_CI: ci(b.Fd), detectionPrecision: num(m.precision), detectionRecall: num(m.recall), detection: m.detection,
    mPQ: num(m.mPQ), mPQ_CI: ci(b.mPQ),
    perClass,
    classes: classNames,
    modelClasses,
    images,
    bootstrap: { iterations: opts.iterations, seed: opts.seed, level: 95, method: 'percentile, tiles resampled with replacement' },
    conventions: CONVENTIONS,
  };
}

/**
 * Per source image: stitch its tiles (only images whose tiles are all in the evaluated set), segment the
 * whole image, and compute PQ per image. Returns null when the split's tile placement is unknown.
 */
async function evaluateImages(
  ds: ReturnType<typeof openDataset>, evaluated: Set<string>, segmenter: Segmenter, classNames: string[],
  gtClassOf: (t: { classOf: Map<number, number> }) => (id: number) => number,
  predClassOf: (p: { classOfLabel: Map<number, string> }) => (id: number) => number,
  radius: number,
  log: (line: string) => void,
): Promise<Record<string, unknown> | null> {
  const layout = tileLayout(ds);
  if (!layout) { log('[eval] tile placement unknown (no source_images.json, names not <image>_<k>): no per-image figures'); return null; }
  const whole = layout.images.filter((im) => im.tiles.every((t) => evaluated.has(t.tile)));
  const t0 = performance.now();
  const stats: TileStats[] = [];
  let overlapPixels = 0, overlapDisagreements = 0, seamJoins = 0;
  for (const im of whole) {
    const placed = [];
    for (const p of im.tiles) placed.push({ x: p.x, y: p.y, tile: await readTile(ds, p.tile) });
    const img = stitchTiles(im.name, placed);
    overlapPixels += img.overlapPixels; overlapDisagreements += img.overlapDisagreements; seamJoins += img.seamJoins;
    const pred = await segmenter.segment(img);
    stats.push(tileStats(im.name, img.instances, gtClassOf(img), pred.labels, predClassOf(pred), classNames.length, { width: img.width, radius }));
    log(`[eval] image ${stats.length}/${whole.length} ${im.name} ${img.width}x${img.height} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  if (stats.length === 0) return null;
  const m = datasetMetrics(stats, classNames.length);
  const perClass: Record<string, unknown> = {};
  const imageMeans: number[] = [];
  classNames.forEach((name, c) => {
    const perImage = stats.map((s) => pqFromCounts(s.perClass[c]).PQ).filter((v) => !Number.isNaN(v));
    const mean = perImage.length ? perImage.reduce((a, b) => a + b, 0) / perImage.length : NaN;
    if (!Number.isNaN(mean)) imageMeans.push(mean);
    const pc = m.perClass[c];
    perClass[name] = { PQ: num(pc.PQ), DQ: num(pc.DQ), SQ: num(pc.SQ), PQ_imageMean: num(mean), imagesWithClass: perImage.length, TP: pc.tp, FP: pc.fp, FN: pc.fn, Fc: num(pc.Fc) };
  });
  return {
    count: stats.length,
    layout: layout.source,
    seconds: Number(((performance.now() - t0) / 1000).toFixed(3)),
    bPQ: num(m.bPQ), bDQ: num(m.bDQ), bSQ: num(m.bSQ),
    Fd: num(m.Fd), detectionPrecision: num(m.precision), detectionRecall: num(m.recall),
    mPQ: num(m.mPQ),
    mPQ_imageMean: num(imageMeans.length ? imageMeans.reduce((a, b) => a + b, 0) / imageMeans.length : NaN),
    perClass,
    perImage: stats.map((s) => { const q = pqFromCounts(s.binary); return { image: s.id, PQ: num(q.PQ), DQ: num(q.DQ), SQ: num(q.SQ), TP: s.binary.tp, FP: s.binary.fp, FN: s.binary.fn }; }),
    stitch: { overlapPixels, overlapDisagreements, seamJoins },
  };
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`eval: ${e.message}\n${USAGE}\n`); return 2; }
    throw e;
  }
  if (opts.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  let finished = false;
  process.on('exit', () => {
    if (!finished) {
      process.stderr.write('eval: stopped before finishing (nothing left to wait for: a worker reply was lost)\n');
      process.exitCode = 1;
    }
  });
  try {
    const result = await runEvaluation(opts, (line) => process.stderr.write(`${line}\n`));
    process.stdout.write(`${JSON.stringify(result)}\n`);
    finished = true;
    return 0;
  } catch (e) {
    finished = true;
    if (e instanceof DatasetError || e instanceof SetupError) {
      process.stderr.write(`eval: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) {
  main().then(
    (code) => { process.exitCode = code; },
    (e: unknown) => { process.stderr.write(`eval: failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`); process.exitCode = 1; },
  );
}
