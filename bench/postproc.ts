/**
 * Post-processing only: ms per tile for each stage on recorded model outputs of real tissue
 * (CMU-1 tiles run through the default model; re-recorded by every run into bench/fixtures/ as .npy,
 * git-ignored: they belong to the model that made them).
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy, writeNpy } from '../bridge/inference/npy';
import type { TileOutputMaps } from '../bridge/inference/preprocess';
import { newStageTimings, postprocessTile, type PostprocessOptions, type StageTimings } from '../bridge/postprocess';
import { cellsToFeatures, type FeatureContext } from '../bridge/results/features';
import type { PlannedTile } from '../bridge/tiling/planner';
import type { Roi } from '../bridge/tiling/roi';
import { FIXTURES_DIR, median, r2, type ReadyModel } from './common';

/** Writes one tile's maps as bench/fixtures/tile-K.npy: float32 [2 + 1 + C, H, W] = dy, dx, cellprob, type logits. */
export function saveFixtures(maps: TileOutputMaps[], dir = FIXTURES_DIR): string[] {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (/^tile-\d+\.npy$/.test(f)) rmSync(join(dir, f));
  return maps.map((m, k) => {
    const n = m.width * m.height;
    const data = new Float32Array((3 + m.typeChannels) * n);
    data.set(m.dy, 0); data.set(m.dx, n); if (m.cellprob) data.set(m.cellprob, 2 * n); data.set(m.typeLogits, 3 * n);
    const path = join(dir, `tile-${k}.npy`);
    writeNpy(path, data, [3 + m.typeChannels, m.height, m.width]);
    return path;
  });
}

export function loadFixture(path: string, model: ReadyModel): TileOutputMaps {
  const a = readNpy(path);
  const [c, H, W] = a.shape;
  const d = a.data as Float32Array;
  const n = H * W;
  return {
    width: W, height: H, dy: d.slice(0, n), dx: d.slice(n, 2 * n), cellprob: d.slice(2 * n, 3 * n),
    cellprobKind: model.card.outputs.cellProbability?.kind, typeLogits: d.slice(3 * n, c * n), typeChannels: c - 3,
    typeKind: model.card.outputs.type.kind,
  };
}

/** Pixels whose cell probability is above the threshold: what flow following will follow. */
export function foregroundPixels(m: TileOutputMaps, threshold: number): number {
  let n = 0;
  const cp = m.cellprob;
  if (cp) for (let i = 0; i < cp.length; i++) if (cp[i] > threshold) n++;
  return n;
}

export interface PostprocResult {
  tiles: number;
  repeats: number;
  cellsPerTile: number;
  foregroundFraction: number;
  /** ms per tile, per stage (stage timers on). */
  stagesMs: Record<keyof StageTimings, number>;
  /** ms per tile of the whole worker task (postprocessTile + cellsToFeatures, timers off), mean over tiles and repeats. */
  totalMs: number;
  /** CPU ms per tile of the same (process CPU time: robust to other load on the machine). */
  cpuMs: number;
}

/**
 * `outlineFactor` 2: the same tiles as if read from a 40x slide for the 20x model (outlines refined on
 * the 2x grid when the card sets postprocess.outlineThreshold): the cost of that refinement.
 */
export function postprocBench(model: ReadyModel, maps: TileOutputMaps[], tiles: PlannedTile[], roi: Roi, imageMpp: number | null, repeats: number,
  opts: PostprocessOptions = model.card.postprocess, outlineFactor = 1): PostprocResult {
  const ctxOf = (tile: PlannedTile): FeatureContext => ({
    tile, rois: [roi], classes: model.card.classes, imageMicronsPerPixel: imageMpp, objectType: 'cell',
    simplifyTolerance: 0, minArea: 0, idSeed: 'bench',
  });
  // Warm-up (JIT) on every tile.
  for (let k = 0; k < maps.length; k++) cellsToFeatures(postprocessTile(maps[k], opts, undefined, outlineFactor).cells, ctxOf(tiles[k]));
  const timings = newStageTimings();
  let cells = 0, fg = 0, px = 0;
  for (let r = 0; r < repeats; r++) {
    for (let k = 0; k < maps.length; k++) {
      const res = postprocessTile(maps[k], opts, timings, outlineFactor);
      cellsToFeatures(res.cells, ctxOf(tiles[k]), timings);
      if (r === 0) {
        cells += res.cells.length;
        fg += foregroundPixels(maps[k], opts.cellprobThreshold);
        px += maps[k].width * maps[k].height;
      }
    }
  }
  const per: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let r = 0; r < repeats; r++) {
    for (let k = 0; k < maps.length; k++) {
      const t0 = performance.now();
      cellsToFeatures(postprocessTile(maps[k], opts, undefined, outlineFactor).cells, ctxOf(tiles[k]));
      per.push(performance.now() - t0);
    }
  }
  const runs = repeats * maps.length;
  const cpu = process.cpuUsage(cpu0);
  const stagesMs = Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, r2(v / runs)])) as PostprocResult['stagesMs'];
  return { tiles: maps.length, repeats, cellsPerTile: r2(cells / maps.length), foregroundFraction: r2(fg / px), stagesMs, totalMs: r2(per.reduce((a, b) => a + b, 0) / per.length), cpuMs: r2((cpu.user + cpu.system) / 1000 / runs) };
}
