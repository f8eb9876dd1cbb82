/**
 * QuPath's own "Cell detection" (WatershedCellDetection: colour deconvolution, background subtraction,
 * Gaussian smoothing, a threshold on the hematoxylin optical density, watershed; no deep learning) as an
 * evaluation baseline, so that `npm run eval -- --qupath-watershed` scores what a QuPath user gets without
 * Cell Bridge with exactly the metrics and tiles the model is scored on.
 *
 * It runs QuPath's real classes (the headless QuPath 0.6 runtime of ../shared/qupath-headless, or
 * --qupath-headless DIR) in one long-lived JVM: groovy/WatershedWorker.groovy reads one JSON request per
 * line (a raw RGB file, its size and pixel size, the plugin's parameters) and paints the nuclei into a
 * label map, as QuPath exports a label image. No classes: the baseline is scored on the binary metrics.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { Tile } from './dataset';
import { SetupError, type EvalPrediction, type Segmenter } from './segmenter';

const REPO_ROOT = path.resolve(__dirname, '../../..');
const WORKER = path.join(REPO_ROOT, 'bridge', 'eval', 'groovy', 'WatershedWorker.groovy');
export const DEFAULT_QUPATH_HEADLESS = path.resolve(REPO_ROOT, '..', 'shared', 'qupath-headless');

/**
 * Parameters of WatershedCellDetection that the evaluation may change (QuPath's names). Everything else
 * keeps the Cell detection dialog's brightfield defaults (WatershedWorker.groovy), with no cell expansion:
 * only nuclei are compared.
 */
export interface WatershedParams {
  /** Hematoxylin OD threshold (QuPath's default 0.1). */
  threshold?: number;
  /** Resolution the detection runs at, µm per pixel (QuPath's default 0.5). */
  requestedPixelSizeMicrons?: number;
}

/** What the baseline returns: the label map, and how long QuPath's plugin itself took (no file transfer). */
export interface WatershedPrediction extends EvalPrediction {
  detectMs: number;
}

export interface WatershedOptions {
  /** Folder of the headless QuPath runtime (lib/ with QuPath's jars). */
  headless?: string;
  java?: string;
  params?: WatershedParams;
  log?: (line: string) => void;
}

/** Starts the JVM (once) and returns a Segmenter that sends it one tile at a time. */
export async function watershedSegmenter(micronsPerPixel: number, options: WatershedOptions = {}): Promise<Segmenter & { segment(tile: Pick<Tile, 'name' | 'width' | 'height' | 'rgb'>, geojson?: string): Promise<WatershedPrediction> }> {
  const headless = options.headless ?? DEFAULT_QUPATH_HEADLESS;
  const lib = path.join(headless, 'lib');
  if (!existsSync(lib)) {
    throw new SetupError(`--qupath-watershed needs the headless QuPath runtime: ${lib} is missing (choose it with --qupath-headless DIR)`);
  }
  const params = { ...options.params };
  const dir = mkdtempSync(path.join(tmpdir(), 'cellbridge-watershed-'));
  const child: ChildProcessWithoutNullStreams = spawn(options.java ?? 'java', [
    '-Xmx2g', '-Djava.awt.headless=true', `-Dlogback.configurationFile=${path.join(headless, 'logback.xml')}`,
    '-cp', `${lib}/*`, 'groovy.ui.GroovyMain', WORKER,
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderrTail = '';
  child.stderr.on('data', (b: Buffer) => { stderrTail = (stderrTail + b.toString('utf8')).slice(-4000); });
  const lines = createInterface({ input: child.stdout });
  const waiting: Array<{ resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }> = [];
  let exited: Error | null = null;
  lines.on('line', (line) => {
    const w = waiting.shift();
    if (!w) return;
    try {
      w.resolve(JSON.parse(line) as Record<string, unknown>);
    } catch {
      w.reject(new Error(`QuPath watershed worker wrote "${line.slice(0, 200)}"`));
    }
  });
  const failAll = (e: Error) => { exited = e; for (const w of waiting.splice(0)) w.reject(e); };
  child.on('error', (e) => failAll(new SetupError(`cannot start java for --qupath-watershed: ${e.message}`)));
  child.on('exit', (code) => failAll(new Error(`QuPath watershed worker exited (code ${code}): ${stderrTail.trim().split('\n').slice(-5).join(' | ')}`)));
  const next = () => new Promise<Record<string, unknown>>((resolve, reject) => {
    if (exited) reject(exited); else waiting.push({ resolve, reject });
  });

  const cleanup = () => { child.kill(); rmSync(dir, { recursive: true, force: true }); };
  try {
    const ready = await next();
    if (ready.ready !== true) throw new SetupError(`QuPath watershed worker did not start: ${JSON.stringify(ready)}`);
  } catch (e) {
    cleanup();
    throw e instanceof SetupError ? e : new SetupError((e as Error).message);
  }
  options.log?.(`[eval] QuPath Cell detection (WatershedCellDetection) on ${headless}, parameters ${JSON.stringify(params)}`);

  let n = 0;
  return {
    name: `qupath-watershed${params.threshold !== undefined ? ` (threshold ${params.threshold})` : ''}`,
    classNames: [],
    /** With `geojson`, the detections are also written there as QuPath exports them (a JSON array of features). */
    async segment(tile: Pick<Tile, 'name' | 'width' | 'height' | 'rgb'>, geojson?: string): Promise<WatershedPrediction> {
      const raw = path.join(dir, `tile-${n}.rgb`);
      const out = path.join(dir, `tile-${n++}.labels`);
      writeFileSync(raw, tile.rgb);
      const answer = next();
      child.stdin.write(`${JSON.stringify({ raw, out, width: tile.width, height: tile.height, mpp: micronsPerPixel, params, ...(geojson ? { geojson } : {}) })}\n`);
      const a = await answer;
      if (a.ok !== true) throw new Error(`QuPath Cell detection failed on ${tile.name}: ${String(a.error)}`);
      const bytes = readFileSync(out);
      rmSync(raw); rmSync(out);
      if (bytes.length !== 4 * tile.width * tile.height) throw new Error(`QuPath watershed worker wrote ${bytes.length} bytes for a ${tile.width}x${tile.height} tile`);
      const labels = new Int32Array(tile.width * tile.height);
      for (let i = 0; i < labels.length; i++) labels[i] = bytes.readInt32LE(4 * i);
      return { labels, classOfLabel: new Map(), detectMs: Number(a.detectMs) };
    },
    async close() {
      child.stdin.end();
      await new Promise<void>((resolve) => {
        if (exited) { resolve(); return; }
        const t = setTimeout(() => { child.kill(); }, 5000);
        child.once('exit', () => { clearTimeout(t); resolve(); });
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
