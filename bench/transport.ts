/**
 * Transport: MB/s of tile frames from a client to the daemon. The daemon runs the synthetic test
 * model (outputs read straight from the pixels; blank pixels give no cells), so inference and
 * post-processing cost next to nothing and the job is bound by frames: encode, send, receive,
 * parse, check, hand to a worker.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CellBridgeClient } from '../bridge/client/client';
import { makeSyntheticModelsDir, syntheticCard } from '../test/helpers/synthetic-model';
import { groovyRuntimes } from '../test/helpers/groovy-runtimes';
import { REPO, r2 } from './common';
import { startBenchDaemon, type BenchDaemon } from './daemon';

export interface TransportResult { client: string; tiles: number; megabytes: number; seconds: number; megabytesPerSecond: number; tilesPerSecond: number }

export const TRANSPORT_TILE = 256;

export async function transportDaemon(): Promise<{ daemon: BenchDaemon; modelsDir: string }> {
  const modelsDir = makeSyntheticModelsDir(undefined, syntheticCard({ input: { ...syntheticCard().input, readSize: TRANSPORT_TILE, modelSize: TRANSPORT_TILE } }));
  const daemon = await startBenchDaemon(['--models', modelsDir, '--device', 'cpu']);
  return { daemon, modelsDir };
}

export async function nodeTransport(url: string, side: number, ca?: string): Promise<TransportResult> {
  const client = await CellBridgeClient.connect(url, { clientName: 'bench-transport', ca });
  try {
    const blank = new Map<number, Uint8Array>();
    let bytes = 0;
    const t0 = performance.now();
    const outcome = await client.runJob({
      image: { name: 'transport', width: side, height: side, micronsPerPixel: 0.5 },
      rois: [{ id: 'all', geometry: { type: 'Polygon', coordinates: [[[0, 0], [side, 0], [side, side], [0, side], [0, 0]]] } }],
      options: { pixelFormat: 'rgb8', maxTilesInFlight: 16 },
    }, async (tile) => {
      const n = tile.readWidth * tile.readHeight * 3;
      let buf = blank.get(n);
      if (!buf) blank.set(n, (buf = new Uint8Array(n)));
      bytes += n;
      return buf;
    });
    const seconds = (performance.now() - t0) / 1000;
    if (outcome.completed.status !== 'completed') throw new Error(`transport job ${outcome.completed.status}: ${outcome.completed.error?.message}`);
    const mb = bytes / 1e6;
    return { client: 'node', tiles: outcome.completed.tilesDone, megabytes: r2(mb), seconds: r2(seconds), megabytesPerSecond: r2(mb / seconds), tilesPerSecond: r2(outcome.completed.tilesDone / seconds) };
  } finally {
    await client.close();
  }
}

const GROOVY_SCRIPT = join(REPO, 'bench', 'groovy', 'Transport.groovy');

/**
 * The Groovy 4 client (qupath-scripts/lib) sending the same frames, on QuPath 0.6's own class path (its
 * Groovy 4.0.26 and Gson, as the scripts' tests use); the reason instead when it cannot run.
 */
export function groovyTransport(url: string, side: number): Promise<TransportResult | { skipped: string }> {
  const qupath = groovyRuntimes()[0];
  if (qupath.skip) return Promise.resolve({ skipped: qupath.skip });
  return new Promise((resolve) => {
    const child = spawn(qupath.java, ['-XX:+UseSerialGC', '-cp', qupath.classPath.join(delimiter), 'groovy.ui.GroovyMain', GROOVY_SCRIPT, REPO, url, String(side)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err) => resolve({ skipped: `java: ${err.message}` }));
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) { resolve({ skipped: `Groovy client failed (exit ${code}): ${(stderr || stdout).trim().split('\n').slice(-3).join(' | ').slice(0, 400)}` }); return; }
      const r = JSON.parse(line.slice(7));
      resolve({ client: 'groovy', tiles: r.tiles, megabytes: r2(r.bytes / 1e6), seconds: r2(r.seconds), megabytesPerSecond: r2(r.bytes / 1e6 / r.seconds), tilesPerSecond: r2(r.tiles / r.seconds) });
    });
  });
}

export async function transportBench(side: number): Promise<TransportResult[] | any[]> {
  const { daemon, modelsDir } = await transportDaemon();
  try {
    await nodeTransport(daemon.url, 1024); // warm-up
    const node = await nodeTransport(daemon.url, side);
    const groovy = await groovyTransport(daemon.url, side);
    return [node, 'skipped' in groovy ? { client: 'groovy', ...groovy } : groovy];
  } finally {
    await daemon.stop();
    rmSync(modelsDir, { recursive: true, force: true });
  }
}
