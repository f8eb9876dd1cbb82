/**
 * `cellbridge segment IMAGE`: segments a slide file through the same protocol QuPath uses, against a
 * running daemon (--server) or one started in-process, writing a GeoJSON FeatureCollection.
 */
import { createWriteStream, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { RoiInput, StartJobResult } from '../../protocol';
import { CellBridgeClient, rgbToArgb32 } from '../client/client';
import { SlideReader } from '../images/slide-reader';
import { DEFAULT_LIMITS } from '../config';
import { startDaemon, type Daemon } from '../server';
import { createLogger } from '../util/log';
import { DEVICE_CHOICES, type DeviceRequest } from '../inference/providers';
import { intFlag, numFlag, parseCommand, UsageError } from './args';
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
  status: string;
  cells: number;
  counts: Record<string, number>;
  tiles: number;
  seconds: number;
  tilesPerSecond: number;
  cellsPerSecond: number;
  out: string;
  error?: { code: number; message: string };
}

export async function segment(argv: string[]): Promise<number> {
  const parsed = parseCommand(SEGMENT, argv);
  if (parsed.help) return 0;
  const { positionals } = parsed;
  const values = parsed.values as Record<string, string | undefined> & { out: string };
  const quiet = parsed.values.quiet === true;
  const device = (values.device ?? 'auto') as DeviceRequest;
  if (!DEVICE_CHOICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICE_CHOICES.join(', ')}`);
  const objectType = values['object-type'] ?? 'cell';
  if (objectType !== 'cell' && objectType !== 'detection') throw new UsageError('--object-type must be cell or detection');
  const imagePath = resolve(positionals[0]);
  const outPath = resolve(values.out);
  const say = (line: string) => { if (!quiet) process.stderr.write(line + '\n'); };

  const slide = await SlideReader.open(imagePath);
  const { width, height } = slide.info;
  const mpp = slide.info.micronsPerPixel;
  say(`${basename(imagePath)}: ${width}x${height} px, ${mpp ? +mpp.toPrecision(4) + ' µm/px' : 'no pixel size'}`);
  const rois = values.roi ? readRois(values.roi) : [{ id: 'image', geometry: { type: 'Polygon' as const, coordinates: [[[0, 0], [width, 0], [width, height], [0, height], [0, 0]]] } }];

  let daemon: Daemon | null = null;
  let url = values.server;
  const token = values.token ?? process.env.CELLBRIDGE_TOKEN;
  if (!url) {
    daemon = await startDaemon({
      host: '127.0.0.1', port: 0, modelsDir: resolve(values.models ?? defaultModelsDir()), defaultModel: values.model,
      device, allowedOrigins: [], logLevel: quiet ? 'error' : 'warn', limits: { ...DEFAULT_LIMITS }, token: undefined,
    }, createLogger(quiet ? 'error' : 'warn'));
    url = daemon.url;
  }
  const client = await CellBridgeClient.connect(url, { token, clientName: 'cellbridge-segment' });
  const tmpPath = `${outPath}.partial`;
  const out = createWriteStream(tmpPath);
  out.write('{"type":"FeatureCollection","features":[\n');
  let first = true;
  const started = performance.now();
  let lastSay = 0;
  try {
    const pixelFormat = 'rgb8' as const;
    const outcome = await client.runJob({
      image: { name: basename(imagePath), width, height, micronsPerPixel: mpp },
      rois,
      model: values.model,
      options: {
        pixelFormat, objectType,
        maxTilesInFlight: intFlag(values['tiles-in-flight'], 'tiles-in-flight', 1, 256) ?? 6,
        ...(values.mpp ? { assumeMicronsPerPixel: numFlag(values.mpp, 'mpp', 1e-6) } : {}),
        ...(values.simplify ? { simplifyTolerance: numFlag(values.simplify, 'simplify', 0) } : {}),
      },
    }, async (tile) => {
      // Full resolution (the plan's readDownsample is 1: no levels offered), unresized: the daemon resamples.
      const rgb = await slide.readRegion(tile.x, tile.y, tile.width, tile.height);
      return pixelFormat === 'rgb8' ? rgb : rgbToArgb32(rgb);
    }, {
      onPlan: (plan) => say(`model ${plan.model}: ${plan.tiles.length} tiles, ${describeResolution(plan)}`),
      onProgress: (p) => {
        const now = performance.now();
        if (now - lastSay < 1000 && p.tilesDone !== p.tilesTotal) return;
        lastSay = now;
        say(`  ${p.tilesDone}/${p.tilesTotal} tiles, ${p.cells} cells${p.etaMs !== null ? `, ${Math.ceil(p.etaMs / 1000)} s left` : ''}`);
      },
      onDetections: (_roi, features) => {
        for (const f of features) { out.write((first ? '' : ',\n') + JSON.stringify(f)); first = false; }
      },
      onFrameRejected: (p) => say(`  frame rejected: ${p.message}`),
      retainFeatures: false, // streamed to the file: memory does not grow with the region
    });
    out.write('\n]}\n');
    await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
    const c = outcome.completed;
    const seconds = (performance.now() - started) / 1000;
    const summary: SegmentSummary = {
      image: imagePath, model: outcome.plan.model, status: c.status, cells: c.cells, counts: c.counts, tiles: c.tilesDone,
      seconds: Math.round(seconds * 1000) / 1000, tilesPerSecond: c.tilesDone / seconds, cellsPerSecond: c.cells / seconds, out: outPath,
      ...(c.error ? { error: c.error } : {}),
    };
    if (c.status === 'completed') renameSync(tmpPath, outPath); else rmSync(tmpPath, { force: true });
    process.stdout.write(JSON.stringify(summary) + '\n');
    return c.status === 'completed' ? 0 : 1;
  } catch (err) {
    out.destroy();
    rmSync(tmpPath, { force: true });
    throw err;
  } finally {
    await client.close();
    await daemon?.close(1000);
  }
}
