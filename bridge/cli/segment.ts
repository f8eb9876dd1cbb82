/**
 * `cellbridge segment IMAGE`: segments a slide file through the same protocol QuPath uses, against a
 * running daemon (--server) or one started in-process, writing a GeoJSON FeatureCollection.
 */
import { createWriteStream, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { RoiInput, StartJobResult } from '../../protocol';
import { ErrorCodes } from '../../protocol';
import { rgbToArgb32, type CellBridgeClient } from '../client/client';
import { runBatch, type AttemptOutcome } from '../client/batch';
import { SlideReader } from '../images/slide-reader';
import { DEFAULT_LIMITS } from '../config';
import { startDaemon, type Daemon } from '../server';
import { createLogger } from '../util/log';
import { DEVICE_CHOICES, type DeviceRequest } from '../inference/providers';
import { intFlag, isolationFlag, numFlag, parseCommand, readCa, ttaFlag, UsageError } from './args';
import type { TtaViews } from '../inference/tta';
import { SEGMENT } from './specs';
import { defaultModelsDir } from './paths';

/** Reads ROIs from a GeoJSON file: a FeatureCollection, a Feature or a bare (Multi)Polygon. */
export function readRois(path: string): RoiInput[] {
  let json: any;
  try { json = JSON.parse(readFileSync(path, 'utf8')); } catch (err) { throw new UsageError(`--roi ${path}: not readable GeoJSON (${(err as Error).message})`); }
  const features = json.type === 'FeatureCollection' ? json.features : json.type === 'Feature' ? [json] : [{ type: 'Feature', geometry: json }];
  const rois: RoiInput[] = [];
  for (const [i, f] of (features ?? []).entries()) {
    const g = f?.geometry;
    if (g?.type !== 'Polygon' && g?.type !== 'MultiPolygon') continue;
    rois.push({ id: String(f.id ?? f.properties?.name ?? `roi-${i + 1}`), geometry: g });
  }
  if (rois.length === 0) throw new UsageError(`--roi ${path}: no Polygon or MultiPolygon in it`);
  return rois;
}

/** "read unscaled at 0.499 µm/px (model 0.5, tolerance 2 %)" or "resampled 2.000x by the daemon (linear)". */
export function describeResolution(plan: StartJobResult): string {
  const r = plan.resolution;
  const level = plan.readDownsample !== 1 ? `level downsample ${plan.readDownsample}, ` : '';
  if (!r.resampling) {
    return r.imageMicronsPerPixel !== null && r.modelMicronsPerPixel !== null
      ? `${level}read unscaled at ${+r.imageMicronsPerPixel.toPrecision(4)} µm/px (model ${r.modelMicronsPerPixel} µm/px, tolerance ${Math.round(r.tolerance * 100)} %)`
      : `${level}read unscaled`;
  }
  return `${level}resampled by the daemon to ${r.modelMicronsPerPixel} µm/px (x${r.resampling.scale.toFixed(4)}, ${r.resampling.kernel})`;
}

export interface SegmentSummary {
  image: string;
  model: string;
  /** The model's ONNX file the daemon ran (protocol 2.2 models[].file: the int8 copy on a CPU); absent from older daemons. */
  modelFile?: string;
  status: string;
  cells: number;
  counts: Record<string, number>;
  tiles: number;
  seconds: number;
  tilesPerSecond: number;
  cellsPerSecond: number;
  out: string;
  /** serverInfo.instance of the daemon that ran the job (behind a load balancer: which replica). */
  instance: string | null;
  /** 2 when the first daemon was lost mid-job and the job ran again on another connection. */
  attempts: number;
  roi?: string;
  error?: { code: number; message: string };
}

/** One job of a run: an image, and its ROIs (all of them, or one with --job-per-roi). */
interface SegmentJob { image: string; rois: RoiInput[]; roi?: string; out: string }

interface JobSettings {
  objectType: 'cell' | 'detection';
  model?: string;
  tilesInFlight: number;
  mpp?: number;
  simplify?: number;
  tta?: TtaViews;
  /** --keep-faint: turn the card's faint-cell filter off for these jobs. */
  keepFaint: boolean;
  say(line: string): void;
  /** Progress lines per tile (single job) or only start and end (batch). */
  verbose: boolean;
}

/** File-name-safe form of a ROI id. */
function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 100) || 'roi';
}

export async function segment(argv: string[]): Promise<number> {
  const parsed = parseCommand(SEGMENT, argv);
  if (parsed.help) return 0;
  const { positionals } = parsed;
  const values = parsed.values as Record<string, string | undefined> & { out: string };
  const quiet = parsed.values.quiet === true;
  const jobPerRoi = parsed.values['job-per-roi'] === true;
  const device = (values.device ?? 'auto') as DeviceRequest;
  if (!DEVICE_CHOICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICE_CHOICES.join(', ')}`);
  const objectType = values['object-type'] ?? 'cell';
  if (objectType !== 'cell' && objectType !== 'detection') throw new UsageError('--object-type must be cell or detection');
  if (jobPerRoi && !values.roi) throw new UsageError('--job-per-roi needs --roi ROI.geojson');
  const fullPrecision = parsed.values['full-precision'] === true;
  if (fullPrecision && values.server) throw new UsageError('--full-precision sets up the in-process daemon; for a running one, start it with cellbridge serve --full-precision');
  const inferenceIsolation = isolationFlag(values['inference-isolation']);
  if (inferenceIsolation && values.server) throw new UsageError('--inference-isolation sets up the in-process daemon; for a running one, start it with cellbridge serve --inference-isolation');
  const parallel = intFlag(values.parallel, 'parallel', 1, 256) ?? 1;
  const say = (line: string) => { if (!quiet) process.stderr.write(line + '\n'); };
  const ca = readCa(values.ca);
  const settings: Omit<JobSettings, 'verbose'> = {
    objectType, model: values.model, say,
    tilesInFlight: intFlag(values['tiles-in-flight'], 'tiles-in-flight', 1, 256) ?? 6,
    mpp: values.mpp ? numFlag(values.mpp, 'mpp', 1e-6) : undefined,
    simplify: values.simplify ? numFlag(values.simplify, 'simplify', 0) : undefined,
    tta: ttaFlag(values.tta),
    keepFaint: parsed.values['keep-faint'] === true,
  };

  // Every image is opened before the first job: an unreadable file stops the run before any work.
  const images = positionals.map((p) => resolve(p));
  const slides = new Map<string, SlideReader>();
  for (const image of images) slides.set(image, await SlideReader.open(image));
  const roiFile = values.roi ? readRois(values.roi) : null;
  const jobs = planJobs(images, slides, roiFile, jobPerRoi, resolve(values.out));
  const batch = jobs.length > 1;
  if (batch) say(`${jobs.length} jobs, ${Math.min(parallel, jobs.length)} in flight, results in ${resolve(values.out)}`);

  let daemon: Daemon | null = null;
  let url = values.server;
  if (!url) {
    daemon = await startDaemon({
      host: '127.0.0.1', port: 0, modelsDir: resolve(values.models ?? defaultModelsDir()), defaultModel: values.model,
      device, fullPrecision, inferenceIsolation, allowedOrigins: [], logLevel: quiet ? 'error' : 'warn', limits: { ...DEFAULT_LIMITS }, token: undefined,
    }, createLogger(quiet ? 'error' : 'warn'));
    url = daemon.url;
  }
  const started = performance.now();
  try {
    const results = await runBatch(jobs, {
      url, parallel, connect: { token: values.token ?? process.env.CELLBRIDGE_TOKEN, clientName: 'cellbridge-segment', ca },
      onRetry: (i, attempt, reason) => say(`${jobLabel(jobs[i])}: lost its daemon (${reason}); attempt ${attempt} on another connection`),
    }, (client, job) => runSegmentJob(client, slides.get(job.image)!, job, { ...settings, verbose: !batch }));
    let failed = 0;
    const byInstance: Record<string, number> = {};
    for (const r of results) {
      const job = jobs[r.index];
      const summary: SegmentSummary = r.result ? { ...r.result, instance: r.instance, attempts: r.attempts } : {
        image: job.image, model: settings.model ?? '', status: 'failed', cells: 0, counts: {}, tiles: 0, seconds: 0, tilesPerSecond: 0,
        cellsPerSecond: 0, out: job.out, instance: r.instance, attempts: r.attempts, ...(job.roi !== undefined ? { roi: job.roi } : {}),
        error: { code: (r.error as { code?: number }).code ?? ErrorCodes.InternalError, message: r.error!.message },
      };
      if (summary.status !== 'completed') failed++;
      if (r.instance) byInstance[r.instance] = (byInstance[r.instance] ?? 0) + 1;
      if (!batch && r.error) throw r.error;
      process.stdout.write(JSON.stringify(summary) + '\n');
    }
    if (batch) {
      const seconds = (performance.now() - started) / 1000;
      const retried = results.filter((r) => r.attempts > 1).length;
      process.stdout.write(JSON.stringify({ batch: {
        jobs: jobs.length, completed: jobs.length - failed, failed, retried, parallel, seconds: Math.round(seconds * 1000) / 1000,
        cells: results.reduce((n, r) => n + (r.result?.cells ?? 0), 0), byInstance, out: resolve(values.out),
      } }) + '\n');
      say(`${jobs.length - failed}/${jobs.length} jobs completed in ${seconds.toFixed(1)} s${retried ? `, ${retried} retried on another daemon` : ''}`);
    }
    return failed === 0 ? 0 : 1;
  } finally {
    await daemon?.close(1000);
  }
}

/** One job per image, or per ROI of each image with --job-per-roi; several jobs write into the --out directory. */
function planJobs(images: string[], slides: Map<string, SlideReader>, rois: RoiInput[] | null, perRoi: boolean, out: string): SegmentJob[] {
  const whole = (image: string): RoiInput[] => {
    const { width, height } = slides.get(image)!.info;
    return [{ id: 'image', geometry: { type: 'Polygon', coordinates: [[[0, 0], [width, 0], [width, height], [0, height], [0, 0]]] } }];
  };
  const jobs: SegmentJob[] = [];
  for (const image of images) {
    if (perRoi && rois) for (const roi of rois) jobs.push({ image, rois: [roi], roi: roi.id, out: '' });
    else jobs.push({ image, rois: rois ?? whole(image), out: '' });
  }
  if (jobs.length === 1) { jobs[0].out = out; return jobs; }
  mkdirSync(out, { recursive: true });
  const names = new Set<string>();
  for (const job of jobs) {
    const stem = basename(job.image, extname(job.image));
    const name = `${stem}${job.roi !== undefined ? '.' + safeName(job.roi) : ''}.geojson`;
    if (names.has(name)) throw new UsageError(`two jobs would write ${name} in ${out}: give images (and ROI ids) distinct names`);
    names.add(name);
    job.out = join(out, name);
  }
  return jobs;
}

function jobLabel(job: SegmentJob): string {
  return basename(job.image) + (job.roi !== undefined ? ` [${job.roi}]` : '');
}

/**
 * Runs one job on the given connection, streaming detections to OUT.partial, renamed to OUT once the
 * job completed: a job that fails or loses its daemon leaves no file, so a retry starts clean and the
 * results hold every cell once.
 */
async function runSegmentJob(client: CellBridgeClient, slide: SlideReader, job: SegmentJob, s: JobSettings): Promise<AttemptOutcome<Omit<SegmentSummary, 'instance' | 'attempts'>>> {
  const { width, height } = slide.info;
  const mpp = slide.info.micronsPerPixel;
  const label = jobLabel(job);
  if (s.verbose) s.say(`${basename(job.image)}: ${width}x${height} px, ${mpp ? +mpp.toPrecision(4) + ' µm/px' : 'no pixel size'}`);
  const { path: tmpPath, release } = partialFile(job.out);
  const out = createWriteStream('', { fd: openSync(tmpPath, 'wx', 0o644) });
  out.write('{"type":"FeatureCollection","features":[\n');
  let first = true;
  const started = performance.now();
  let lastSay = 0;
  try {
    const pixelFormat = 'rgb8' as const;
    const outcome = await client.runJob({
      image: { name: basename(job.image), width, height, micronsPerPixel: mpp },
      rois: job.rois,
      model: s.model,
      options: {
        pixelFormat, objectType: s.objectType, maxTilesInFlight: s.tilesInFlight,
        ...(s.mpp !== undefined ? { assumeMicronsPerPixel: s.mpp } : {}),
        ...(s.simplify !== undefined ? { simplifyTolerance: s.simplify } : {}),
        ...(s.tta !== undefined ? { testTimeAugmentation: s.tta } : {}),
        ...(s.keepFaint ? { postprocess: { meanCellprobThreshold: null } } : {}),
      },
    }, async (tile) => {
      // Full resolution (the plan's readDownsample is 1: no levels offered), unresized: the daemon resamples.
      const rgb = await slide.readRegion(tile.x, tile.y, tile.width, tile.height);
      return pixelFormat === 'rgb8' ? rgb : rgbToArgb32(rgb);
    }, {
      onPlan: (plan) => s.say(s.verbose ? `model ${plan.model}: ${plan.tileCount} tiles, ${describeResolution(plan)}${plan.testTimeAugmentation > 1 ? `, ${plan.testTimeAugmentation} views per tile averaged` : ''}`
        : `${label}: ${plan.tileCount} tiles on ${client.initializeResult?.serverInfo.instance ?? 'the daemon'}`),
      onProgress: (p) => {
        if (!s.verbose) return;
        const now = performance.now();
        if (now - lastSay < 1000 && p.tilesDone !== p.tilesTotal) return;
        lastSay = now;
        s.say(`  ${p.tilesDone}/${p.tilesTotal} tiles, ${p.cells} cells${p.etaMs !== null ? `, ${Math.ceil(p.etaMs / 1000)} s left` : ''}`);
      },
      onDetections: (_roi, features) => {
        for (const f of features) { out.write((first ? '' : ',\n') + JSON.stringify(f)); first = false; }
      },
      onFrameRejected: (p) => s.say(`  ${s.verbose ? '' : label + ': '}frame rejected: ${p.message}`),
      retainFeatures: false, // streamed to the file: memory does not grow with the region
    });
    out.write('\n]}\n');
    await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
    const c = outcome.completed;
    const seconds = (performance.now() - started) / 1000;
    if (c.status === 'completed') renameSync(tmpPath, job.out); else rmSync(tmpPath, { force: true });
    if (!s.verbose) s.say(`${label}: ${c.status}, ${c.cells} cells in ${seconds.toFixed(1)} s`);
    const file = client.initializeResult?.models.find((m) => m.name === outcome.plan.model)?.file;
    const summary = {
      image: job.image, model: outcome.plan.model, ...(file ? { modelFile: file } : {}), status: c.status, cells: c.cells, counts: c.counts, tiles: c.tilesDone,
      seconds: Math.round(seconds * 1000) / 1000, tilesPerSecond: c.tilesDone / seconds, cellsPerSecond: c.cells / seconds, out: job.out,
      ...(job.roi !== undefined ? { roi: job.roi } : {}),
      ...(c.error ? { error: c.error } : {}),
    };
    // A daemon that stops cancels its jobs with ShuttingDown: that is the daemon's end, not the job's.
    return c.error?.code === ErrorCodes.ShuttingDown ? { result: summary, retry: c.error.message } : { result: summary };
  } catch (err) {
    out.destroy();
    rmSync(tmpPath, { force: true });
    throw err;
  } finally {
    release();
  }
}

/** Temporary result files of the jobs running now: SIGINT/SIGTERM remove them all before the process ends. */
const livePartials = new Set<string>();
let signalsWatched = false;

/**
 * The file results are written to until the job completes (then renamed over OUT): a fresh name
 * next to OUT (same file system, so the rename is atomic), created exclusively ('wx': an existing
 * file or symlink of that name is never opened or followed). SIGINT/SIGTERM remove every such file
 * of the run before the process ends (status 130/143); `release` takes this one off that list.
 */
function partialFile(outPath: string): { path: string; release: () => void } {
  const path = join(dirname(outPath), `.${basename(outPath)}.${process.pid}-${randomBytes(6).toString('hex')}.partial`);
  livePartials.add(path);
  if (!signalsWatched) {
    signalsWatched = true;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        const names = [...livePartials].map((p) => basename(p).replace(/^\.(.*)\.\d+-[0-9a-f]+\.partial$/, '$1'));
        for (const p of livePartials) rmSync(p, { force: true });
        if (names.length) process.stderr.write(`cellbridge segment: stopped by ${signal}; ${names.join(', ')} not written\n`);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
    }
  }
  return { path, release: () => { livePartials.delete(path); } };
}
