/**
 * Scaling out (issue 14), on this machine, through real nginx with deploy/nginx/cellbridge.conf (TLS):
 *  - throughput: `cellbridge segment --job-per-roi --parallel 6` over CMU-1-Small-Region cut into 384² regions
 *    (the whole slide, 4 tiles each), with 1 daemon vs 3 daemons behind nginx (same per-daemon settings);
 *  - pixel frames: MB/s of RGB8 tile frames from the Node client straight to a daemon (ws://) vs through
 *    nginx + TLS (wss://), with the synthetic model so that frames are the bottleneck.
 * Runs alternate (direct, proxied, direct, ...) so that the machine's drift hits both; medians are reported.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNginx, makeCerts, startNginx, type RunningNginx } from '../test/helpers/nginx';
import { CLI, SVS, median, note, r2, r3 } from './common';
import { startBenchDaemon, type BenchDaemon } from './daemon';
import { nodeTransport, transportDaemon } from './transport';

/** The slide cut into side² regions on the model's 192 px grid (side a multiple of 192). */
export function gridRegions(width: number, height: number, side = 384): unknown {
  const features = [];
  for (let y = 0; y < height; y += side) {
    for (let x = 0; x < width; x += side) {
      const x1 = Math.min(width, x + side), y1 = Math.min(height, y + side);
      features.push({ type: 'Feature', id: `x${x}y${y}`, properties: {},
        geometry: { type: 'Polygon', coordinates: [[[x, y], [x1, y], [x1, y1], [x, y1], [x, y]]] } });
    }
  }
  return { type: 'FeatureCollection', features };
}

interface BatchRun { seconds: number; jobs: number; tiles: number; cells: number; byInstance: Record<string, number> }

function batch(url: string, ca: string, roiFile: string, out: string, parallel: number): Promise<BatchRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'segment', SVS, '--roi', roiFile, '--job-per-roi', '--parallel', String(parallel),
      '--server', url, '--ca', ca, '--out', out, '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const b = lines.at(-1)?.batch;
      if (code !== 0 || !b) { reject(new Error(`segment batch failed (${code}): ${stderr.slice(-800)}`)); return; }
      rmSync(out, { recursive: true, force: true });
      resolve({ seconds: b.seconds, jobs: b.jobs, cells: b.cells, byInstance: b.byInstance, tiles: lines.reduce((n, l) => n + (l.tiles ?? 0), 0) });
    });
  });
}

export async function scaleBench(repeats: number, daemonArgs: string[]): Promise<Record<string, unknown>> {
  const nginxBin = findNginx();
  if (!nginxBin) return { skipped: 'no nginx binary (Debian: apt-get install nginx)' };
  if (!existsSync(SVS)) return { skipped: `${SVS} is absent` };
  const work = mkdtempSync(join(tmpdir(), 'cellbridge-bench-scale-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const certs = makeCerts(join(work, 'certs'));
    const ca = readFileSync(certs.ca, 'utf8');
    const proxy = async (name: string, daemons: BenchDaemon[]): Promise<RunningNginx> => {
      const n = await startNginx(nginxBin, join(work, name), { upstreams: daemons.map((d) => d.url.replace(/^ws:\/\/|\/$/g, '')), cert: certs.cert, key: certs.key });
      stops.push(() => n.stop());
      return n;
    };

    // Pixel frames: direct vs nginx + TLS, same daemon.
    const side = 4096;
    const t = await transportDaemon();
    stops.push(async () => { await t.daemon.stop(); rmSync(t.modelsDir, { recursive: true, force: true }); });
    const tp = await proxy('nginx-transport', [t.daemon]);
    await nodeTransport(t.daemon.url, 1024);
    await nodeTransport(tp.url, 1024, ca);
    const direct: number[] = [], viaTls: number[] = [];
    for (let i = 0; i < repeats; i++) {
      direct.push((await nodeTransport(t.daemon.url, side)).megabytesPerSecond);
      viaTls.push((await nodeTransport(tp.url, side, ca)).megabytesPerSecond);
    }
    const frames = {
      imageSide: side, pixelFormat: 'rgb8', tileSide: 256, runs: repeats,
      directMBps: median(direct), nginxTlsMBps: median(viaTls), nginxTlsOverDirect: r3(median(viaTls) / median(direct)),
      directRuns: direct, nginxTlsRuns: viaTls,
    };
    note(`pixel frames: direct ${frames.directMBps} MB/s, nginx + TLS ${frames.nginxTlsMBps} MB/s (${frames.nginxTlsOverDirect}x)`);
    await t.daemon.stop();

    // Throughput: 1 daemon vs 3 behind nginx, the same batch.
    const daemons = await Promise.all([1, 2, 3].map((i) => startBenchDaemon([...daemonArgs, '--instance', `bench-${i}`])));
    for (const d of daemons) stops.push(() => d.stop());
    const one = await proxy('nginx-1', daemons.slice(0, 1));
    const three = await proxy('nginx-3', daemons);
    const roiFile = join(work, 'regions.geojson');
    writeFileSync(roiFile, JSON.stringify(gridRegions(2220, 2967)));
    const parallel = 6;
    // Warm-up: every daemon's first job also creates its onnxruntime sessions.
    await batch(three.url, certs.ca, roiFile, join(work, 'warm'), parallel);
    const runs1: BatchRun[] = [], runs3: BatchRun[] = [];
    for (let i = 0; i < repeats; i++) {
      runs1.push(await batch(one.url, certs.ca, roiFile, join(work, 'out1'), parallel));
      runs3.push(await batch(three.url, certs.ca, roiFile, join(work, 'out3'), parallel));
      note(`batch ${i + 1}: 1 daemon ${runs1[i].seconds} s, 3 daemons ${runs3[i].seconds} s`);
    }
    const summary = (runs: BatchRun[]) => {
      const s = median(runs.map((r) => r.seconds));
      return { seconds: s, jobs: runs[0].jobs, tiles: runs[0].tiles, cells: runs[0].cells,
        tilesPerSecond: r2(runs[0].tiles / s), cellsPerSecond: r2(runs[0].cells / s), jobsPerSecond: r2(runs[0].jobs / s),
        runsSeconds: runs.map((r) => r.seconds), jobsPerDaemon: runs.at(-1)!.byInstance };
    };
    const d1 = summary(runs1), d3 = summary(runs3);
    note(`throughput: 1 daemon ${d1.tilesPerSecond} tiles/s, 3 daemons ${d3.tilesPerSecond} tiles/s`);
    return {
      nginx: 'deploy/nginx/cellbridge.conf, TLS 1.3, least_conn', daemonArgs, parallel,
      throughput: { oneDaemon: d1, threeDaemons: d3, threeOverOne: r3(d1.seconds / d3.seconds) },
      frames,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}
