/**
 * End to end: `cellbridge segment` over the whole of CMU-1-Small-Region.svs against a daemon in its
 * own process (so its memory is measured alone), the same job `repeats` times in a row after one
 * warm-up run of it (reported apart; its peak RSS counts in peakRssMB).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, SVS, median, r2, note } from './common';
import { rssOf, rssSampler, startBenchDaemon } from './daemon';

export interface E2eRun { seconds: number; tiles: number; cells: number; tilesPerSecond: number; cellsPerSecond: number; peakRssMB: number }

export interface E2eResult {
  daemonArgs: string[];
  engine: unknown;
  runs: E2eRun[];
  /** Median over the runs. */
  seconds: number;
  tilesPerSecond: number;
  cellsPerSecond: number;
  cells: number;
  /** Largest daemon RSS seen over all runs, MB. */
  peakRssMB: number;
  /** Daemon RSS right after start (model loaded, no job yet), MB. */
  idleRssMB: number;
  /** Peak RSS of the last run over the first run's, %, after one warm-up run. */
  rssGrowthPct: number;
  /** The warm-up run (same job, not in the medians): the daemon's first job also sizes V8's heap and the allocators' pools. */
  warmup: E2eRun;
}

function runSegment(url: string, out: string, extra: string[]): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'segment', SVS, '--out', out, '--server', url, '--quiet', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        const s = JSON.parse(line);
        if (code !== 0 || s.status !== 'completed') reject(new Error(`segment ended with ${code}: ${line} ${stderr}`));
        else resolve(s);
      } catch { reject(new Error(`segment printed no summary (exit ${code}): ${stdout} ${stderr}`)); }
    });
  });
}

export async function e2eBench(daemonArgs: string[], repeats: number, segmentArgs: string[] = []): Promise<E2eResult> {
  const daemon = await startBenchDaemon(daemonArgs);
  const out = join(tmpdir(), `cellbridge-bench-${process.pid}.geojson`);
  try {
    const idleRssMB = rssOf(daemon.pid).rssMB;
    const runs: E2eRun[] = [];
    for (let k = 0; k <= repeats; k++) {
      const sampler = rssSampler(daemon.pid);
      // A daemon that died under the job (a native abort, say) shows up as a refused connection: say why.
      const s = await runSegment(daemon.url, out, segmentArgs).catch(async (err: Error) => {
        await new Promise((r) => setTimeout(r, 200));
        const death = daemon.death();
        throw new Error(death ? `${err.message}\n${death}` : err.message);
      });
      const peakRssMB = sampler.stop();
      runs.push({ seconds: s.seconds, tiles: s.tiles, cells: s.cells, tilesPerSecond: r2(s.tilesPerSecond), cellsPerSecond: r2(s.cellsPerSecond), peakRssMB: r2(peakRssMB) });
      note(`e2e ${k === 0 ? 'warm-up run' : `run ${k}/${repeats}`}: ${s.seconds} s, ${s.tiles} tiles, ${s.cells} cells, daemon peak RSS ${peakRssMB.toFixed(0)} MB`);
    }
    const warmup = runs.shift()!;
    return {
      daemonArgs, engine: daemon.listening.engine ?? null, runs,
      seconds: r2(median(runs.map((r) => r.seconds))),
      tilesPerSecond: r2(median(runs.map((r) => r.tilesPerSecond))),
      cellsPerSecond: r2(median(runs.map((r) => r.cellsPerSecond))),
      cells: runs[0].cells,
      peakRssMB: r2(Math.max(warmup.peakRssMB, ...runs.map((r) => r.peakRssMB))),
      idleRssMB: r2(idleRssMB),
      rssGrowthPct: r2(((runs[runs.length - 1].peakRssMB - runs[0].peakRssMB) / runs[0].peakRssMB) * 100),
      warmup,
    };
  } finally {
    rmSync(out, { force: true });
    await daemon.stop();
  }
}
