/** Shared helpers of the benchmarks: paths, the default model, real tiles of CMU-1, output. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { ModelRegistry, type RegisteredModel } from '../bridge/inference/model-registry';
import type { ModelCard } from '../bridge/inference/model-card';
import { SlideReader } from '../bridge/images/slide-reader';
import { planTiles, type PlannedTile } from '../bridge/tiling/planner';
import { resampleRgb } from '../bridge/tiling/resample';
import { chooseResolution } from '../bridge/tiling/resolution';
import { parseRoi, type Roi } from '../bridge/tiling/roi';

export const REPO = join(__dirname, '..', '..');
export const CLI = join(REPO, 'dist', 'bridge', 'cli.js');
export const SVS = join(REPO, '..', 'shared', 'data', 'wsi', 'CMU-1-Small-Region.svs');
export const RESULTS_DIR = join(REPO, 'bench', 'results');
export const FIXTURES_DIR = join(REPO, 'bench', 'fixtures');

export type ReadyModel = RegisteredModel & { card: ModelCard; onnxPath: string };

export function defaultModel(modelsDir = join(REPO, 'models')): ReadyModel {
  const reg = new ModelRegistry(modelsDir);
  const m = reg.defaultModel ? reg.get(reg.defaultModel) : undefined;
  if (!m || !m.card || !m.onnxPath) throw new Error(`no ready default model in ${modelsDir}: ${m?.error ?? 'none'}`);
  return m as ReadyModel;
}

export interface SlideTile { tile: PlannedTile; rgb: Uint8Array }

export interface SlidePlan { slide: SlideReader; tiles: PlannedTile[]; roi: Roi; downsample: number }

/** The daemon's tile plan for the whole slide (same grid rule as job/start). */
export async function planSlide(card: ModelCard, path = SVS): Promise<SlidePlan> {
  const slide = await SlideReader.open(path);
  const { width, height, micronsPerPixel } = slide.info;
  const target = micronsPerPixel && card.input.micronsPerPixel ? card.input.micronsPerPixel / micronsPerPixel : 1;
  const { downsample } = chooseResolution(target);
  const roi = parseRoi('image', { type: 'Polygon', coordinates: [[[0, 0], [width, 0], [width, height], [0, height], [0, 0]]] });
  const tiles = planTiles({ imageWidth: width, imageHeight: height, downsample, tileSize: card.input.readSize, overlap: card.tiling.overlap }, [roi]);
  return { slide, tiles, roi, downsample };
}

/** `count` full-size tiles spread evenly over the slide, with their pixels. */
export async function sampleTiles(plan: SlidePlan, count: number): Promise<SlideTile[]> {
  const full = plan.tiles.filter((t) => t.outputWidth === Math.max(...plan.tiles.map((u) => u.outputWidth))
    && t.outputHeight === Math.max(...plan.tiles.map((u) => u.outputHeight)));
  const picked: PlannedTile[] = [];
  for (let k = 0; k < count; k++) picked.push(full[Math.floor(((k + 0.5) * full.length) / count)]);
  const out: SlideTile[] = [];
  for (const tile of picked) {
    const read = await plan.slide.readRegion(tile.x, tile.y, tile.width, tile.height);
    out.push({ tile, rgb: await resampleRgb(read, tile.readWidth, tile.readHeight, tile.outputWidth, tile.outputHeight) });
  }
  return out;
}

export function machine(): Record<string, unknown> {
  let ortVersion = 'unknown';
  try { ortVersion = JSON.parse(readFileSync(join(REPO, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version; } catch { /* absent */ }
  return {
    cores: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', memoryGB: Math.round(totalmem() / 2 ** 30),
    node: process.version, onnxruntime: ortVersion,
  };
}

/** Prints one result as a JSON line and (unless `write` is false) keeps it in bench/results/NAME.json. */
export function emit(name: string, result: Record<string, unknown>, options: { write?: boolean } = {}): Record<string, unknown> {
  const obj = { benchmark: name, ...result };
  process.stdout.write(JSON.stringify(obj) + '\n');
  if (options.write === false) return obj;
  if (!existsSync(RESULTS_DIR)) mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, `${name}.json`), JSON.stringify(obj, null, 2) + '\n');
  return obj;
}

export function note(line: string): void { process.stderr.write(`[bench] ${line}\n`); }

export function median(v: number[]): number {
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const r2 = (v: number): number => Math.round(v * 100) / 100;
export const r3 = (v: number): number => Math.round(v * 1000) / 1000;
