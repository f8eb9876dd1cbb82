/**
 * Engine configurations on this machine: for each (inference sessions x intra-op threads,
 * post-processing workers), one whole-slide job end to end and the model alone with the same
 * inference settings. Picks the configuration with the best end-to-end throughput.
 */
import { availableParallelism } from 'node:os';
import type { ReadyModel, SlideTile } from './common';
import { note, r3 } from './common';
import { modelOnly } from './model';
import { e2eBench } from './e2e';

export interface EngineConfig { inferenceWorkers: number; threads: number; postprocessWorkers: number }

export function candidateConfigs(cores = availableParallelism()): EngineConfig[] {
  const c: EngineConfig[] = [
    { inferenceWorkers: 1, threads: cores, postprocessWorkers: Math.max(1, cores - 1) },
    { inferenceWorkers: 1, threads: Math.max(1, cores - 1), postprocessWorkers: 1 },
    { inferenceWorkers: 1, threads: cores, postprocessWorkers: cores },
  ];
  if (cores >= 2) c.push({ inferenceWorkers: 2, threads: Math.max(1, Math.floor(cores / 2)), postprocessWorkers: Math.max(1, cores - 1) });
  const seen = new Set<string>();
  return c.filter((x) => { const k = JSON.stringify(x); if (seen.has(k)) return false; seen.add(k); return true; });
}

export const configArgs = (c: EngineConfig): string[] => [
  '--device', 'cpu', '--inference-workers', String(c.inferenceWorkers), '--threads', String(c.threads), '--postprocess-workers', String(c.postprocessWorkers),
];

export async function configsBench(model: ReadyModel, tiles: SlideTile[], modelRuns: number) {
  const rows = [];
  for (const c of candidateConfigs()) {
    const m = await modelOnly(model, tiles, 'cpu', { sessions: c.inferenceWorkers, threads: c.threads }, modelRuns);
    const e = await e2eBench(configArgs(c), 1);
    const row = { ...c, modelTilesPerSecond: m.tilesPerSecond, e2eTilesPerSecond: e.tilesPerSecond, cellsPerSecond: e.cellsPerSecond, e2eOverModel: r3(e.tilesPerSecond / m.tilesPerSecond), peakRssMB: e.peakRssMB };
    note(`config ${JSON.stringify(c)}: model ${m.tilesPerSecond} tiles/s, e2e ${e.tilesPerSecond} tiles/s`);
    rows.push(row);
  }
  const best = rows.reduce((a, b) => (b.e2eTilesPerSecond > a.e2eTilesPerSecond ? b : a));
  return { rows, best };
}
