/**
 * The QuPath path and the CLI path on the same annotation, under the real QuPath 0.6.0 classes
 * (../shared/qupath-headless): a TIFF cut from CMU-1 opened as QuPath opens it, Detect cells run as
 * QuPath runs a script, `cellbridge segment` on the same TIFF and ROI, both against one daemon.
 * Used by test/qupath-parity.test.ts (same cells) and `node dist/bench/qupath.js` (time ratio).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { ringCentroid } from '../test/helpers/geojson-centroid';
import { matchCells as matchCentroids } from './stability';

export const REPO = join(__dirname, '..', '..');
export const QUPATH_HEADLESS = join(REPO, '..', 'shared', 'qupath-headless');
export const CMU1_SVS = join(REPO, '..', 'shared', 'data', 'wsi', 'CMU-1-Small-Region.svs');
const CLI = join(REPO, 'dist', 'bridge', 'cli.js');
const DRIVER = join(REPO, 'test', 'groovy', 'HeadlessDetect.groovy');

/** Why the QuPath-path checks cannot run here, or null when they can. */
export function qupathHeadlessMissing(): string | null {
  if (!existsSync(join(QUPATH_HEADLESS, 'run-groovy.sh'))) return `${QUPATH_HEADLESS} (real QuPath 0.6.0 classes) is absent`;
  if (!existsSync(CMU1_SVS)) return `${CMU1_SVS} is absent`;
  if (spawnSync('java', ['-version']).status !== 0) return 'no java (17+) on the PATH';
  return null;
}

/** A lossless TIFF of a CMU-1 region whose resolution tags say `mpp` (read by QuPath and by the CLI alike). */
export async function writeCmuRegionTiff(path: string, region: { left: number; top: number; width: number; height: number }, mpp: number): Promise<void> {
  await sharp(CMU1_SVS, { limitInputPixels: false }).extract(region).removeAlpha()
    .tiff({ compression: 'deflate', xres: 1000 / mpp, yres: 1000 / mpp }).toFile(path);
}

export interface HeadlessImage { path: string; mpp: number; cli: string[] | null }
export interface HeadlessResult {
  path: string; mpp: number; server: string; downsamples: number[];
  qupathMs: number[]; cliMs: number[]; cliOut: string[];
  cells: { cls: string; x: number; y: number; area: number }[];
}

/** The `cellbridge segment` command line for one TIFF and ROI file. */
export function cliCommand(tiff: string, roiFile: string, server: string, out: string): string[] {
  return [process.execPath, CLI, 'segment', tiff, '--roi', roiFile, '--server', server, '--out', out, '--quiet'];
}

/**
 * Runs Detect_cells.groovy `runs` times per image in one JVM (as in one QuPath session), each run
 * followed by the image's CLI command when given; resolves with cells and times.
 */
export function runHeadless(spec: { server: string; ring: number[][]; runs: number; images: HeadlessImage[] }, workDir: string, timeoutMs = 600_000): Promise<HeadlessResult[]> {
  const specFile = join(workDir, 'headless-spec.json'), outFile = join(workDir, 'headless-out.json');
  writeFileSync(specFile, JSON.stringify({ repo: REPO, ...spec }));
  return new Promise((resolve, reject) => {
    const child = spawn(join(QUPATH_HEADLESS, 'run-groovy.sh'), ['-cp', QUPATH_HEADLESS, DRIVER, specFile, outFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, JAVA_OPTS: '-Xmx2g -XX:+UseSerialGC' },
    });
    let log = '';
    child.stdout!.on('data', (d) => { log += d; });
    child.stderr!.on('data', (d) => { log += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 || !existsSync(outFile)) { reject(new Error(`the headless QuPath run exited with ${code}:\n${log.slice(-6000)}`)); return; }
      resolve(JSON.parse(readFileSync(outFile, 'utf8')));
    });
  });
}

export interface CellMatch { qupath: number; cli: number; matched: number; sameClass: number; maxDistance: number }

/** One-to-one matching of QuPath's cells to the CLI's features by centroid within `tolerance` px (nearest first). */
export function matchCells(qupath: HeadlessResult['cells'], cliFeatures: any[], tolerance = 1): CellMatch {
  const cli = cliFeatures.map((f) => { const [x, y] = ringCentroid(f.geometry.coordinates[0]); return { x, y, cls: f.properties.classification.name as string }; });
  const pairs = matchCentroids(qupath, cli, tolerance);
  return {
    qupath: qupath.length, cli: cli.length, matched: pairs.length,
    sameClass: pairs.filter(([qi, ci]) => qupath[qi].cls === cli[ci].cls).length,
    maxDistance: pairs.reduce((m, p) => Math.max(m, p[2]), 0),
  };
}

export const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
