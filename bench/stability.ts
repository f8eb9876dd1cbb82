/**
 * Stability of the results under the pixel size a slide declares (issue 10): the same CMU-1 pixels,
 * written losslessly to a tiled TIFF whose resolution tags say X µm/px, segmented by `cellbridge segment`
 * (the daemon then resamples to the model's 0.5 µm/px, or not: its rule decides) for X = 0.5 (reference),
 * 0.499 (the slide's own value), 0.45 and 0.55. (`segment --mpp` only applies to images without a pixel
 * size, so the copies carry the value as a real file would.) Per run against the reference:
 * cells matched one-to-one by centroid within 2 slide pixels, the share of each side matched, the share of
 * matched pairs with the same class, and the total and per-class count changes.
 *
 *   node dist/bench/stability.js [--model NAME] [--slide FILE] [--mpp 0.499,0.45,0.55] [--reference 0.5] [--radius 2]
 *   npm run bench -- --only stability            (the default model)
 *
 * Prints one JSON object (and bench/results/stability-MODEL.json). Bars of issue 10: 0.499 vs 0.5 ≥ 97 %
 * matched, every class with ≥ 100 cells within ±5 %; 0.45 and 0.55: total within ±10 %.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { SlideReader } from '../bridge/images/slide-reader';
import { CLI, emit, machine, note, r3, SVS } from './common';
import { ringCentroid } from '../test/helpers/geojson-centroid';

export { ringCentroid };

export interface CellPoint { x: number; y: number; cls: string }

/** Cells of a `cellbridge segment` GeoJSON: nucleus centroid and class name. */
export function cellsOf(geojson: { features: Array<{ geometry: any; nucleusGeometry?: any; properties?: any }> }): CellPoint[] {
  return geojson.features.map((f) => {
    const g = f.nucleusGeometry ?? f.geometry;
    const ring = g.type === 'MultiPolygon' ? g.coordinates[0][0] : g.coordinates[0];
    const [x, y] = ringCentroid(ring);
    return { x, y, cls: f.properties?.classification?.name ?? 'Unclassified' };
  });
}

/** One-to-one matching by centroid distance ≤ radius, closest pairs first. */
export function matchCells(a: readonly CellPoint[], b: readonly CellPoint[], radius: number): Array<[number, number, number]> {
  const cell = Math.max(radius, 1e-6);
  const grid = new Map<string, number[]>();
  b.forEach((p, j) => {
    const k = `${Math.floor(p.x / cell)},${Math.floor(p.y / cell)}`;
    if (!grid.has(k)) grid.set(k, []);
    grid.get(k)!.push(j);
  });
  const pairs: Array<[number, number, number]> = [];
  a.forEach((p, i) => {
    const gx = Math.floor(p.x / cell), gy = Math.floor(p.y / cell);
    for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) {
      for (const j of grid.get(`${gx + dx},${gy + dy}`) ?? []) {
        const d = Math.hypot(p.x - b[j].x, p.y - b[j].y);
        if (d <= radius) pairs.push([i, j, d]);
      }
    }
  });
  pairs.sort((u, v) => u[2] - v[2] || u[0] - v[0] || u[1] - v[1]);
  const usedA = new Set<number>(), usedB = new Set<number>();
  const out: Array<[number, number, number]> = [];
  for (const p of pairs) {
    if (usedA.has(p[0]) || usedB.has(p[1])) continue;
    usedA.add(p[0]); usedB.add(p[1]); out.push(p);
  }
  return out;
}

const countBy = (cells: readonly CellPoint[]) => {
  const m: Record<string, number> = {};
  for (const c of cells) m[c.cls] = (m[c.cls] ?? 0) + 1;
  return m;
};

/** Compare a run with the reference run. */
export function compareRuns(ref: readonly CellPoint[], run: readonly CellPoint[], radius: number) {
  const pairs = matchCells(ref, run, radius);
  const sameClass = pairs.filter(([i, j]) => ref[i].cls === run[j].cls).length;
  const rc = countBy(ref), c = countBy(run);
  const perClass: Record<string, { reference: number; run: number; changePct: number | null }> = {};
  for (const k of [...new Set([...Object.keys(rc), ...Object.keys(c)])].sort()) {
    const r = rc[k] ?? 0, n = c[k] ?? 0;
    perClass[k] = { reference: r, run: n, changePct: r ? r3((100 * (n - r)) / r) : null };
  }
  return {
    reference: ref.length, cells: run.length,
    totalChangePct: ref.length ? r3((100 * (run.length - ref.length)) / ref.length) : null,
    matched: pairs.length,
    matchedPctOfReference: ref.length ? r3((100 * pairs.length) / ref.length) : null,
    matchedPctOfRun: run.length ? r3((100 * pairs.length) / run.length) : null,
    sameClassPctOfMatched: pairs.length ? r3((100 * sameClass) / pairs.length) : null,
    meanDistancePx: pairs.length ? r3(pairs.reduce((s, p) => s + p[2], 0) / pairs.length) : null,
    perClass,
  };
}

/**
 * `cellbridge segment IMAGE --out OUT --device cpu --quiet EXTRA` with a daemon in-process, as a user runs it:
 * its JSON summary and the cells it wrote; throws with the end of stderr when it fails.
 */
export function segmentWithCli(image: string, out: string, extra: string[], what: string): { summary: Record<string, any>; cells: CellPoint[] } {
  const r = spawnSync(process.execPath, [CLI, 'segment', image, '--out', out, '--device', 'cpu', '--quiet', ...extra], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`cellbridge segment ${what} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { summary: JSON.parse(r.stdout.trim().split('\n').pop()!), cells: cellsOf(JSON.parse(readFileSync(out, 'utf8'))) };
}

export interface SegmentRun { seconds: number; cells: CellPoint[]; model: string }

/**
 * The whole slide with each variant's extra `cellbridge segment` arguments, the variants alternating
 * for `rounds` rounds after one warm-up run of each (so that a machine's drift hits them alike): each
 * variant's job seconds per round (warm-up left out) and its last run. `what` names the benchmark in
 * the progress lines.
 */
export function alternatingSegmentRuns<K extends string>(what: string, variants: Record<K, string[]>, rounds: number): { seconds: Record<K, number[]>; last: Record<K, SegmentRun> } {
  const names = Object.keys(variants) as K[];
  const dir = mkdtempSync(join(tmpdir(), `cellbridge-${what}-`));
  const seconds = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  const last = {} as Record<K, SegmentRun>;
  try {
    for (let k = 0; k <= rounds; k++) {
      for (const name of names) {
        const { summary, cells } = segmentWithCli(SVS, join(dir, `${name}.geojson`), variants[name], `${what} ${name}`);
        note(`${what} ${name} ${k === 0 ? 'warm-up' : `round ${k}/${rounds}`}: ${summary.seconds} s, ${cells.length} cells`);
        if (k > 0) seconds[name].push(summary.seconds);
        last[name] = { seconds: summary.seconds, cells, model: summary.model };
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { seconds, last };
}

/** A lossless tiled TIFF copy of the slide's full-resolution pixels that declares `mpp` µm/px. */
export async function copyWithPixelSize(slide: string, mpp: number, out: string): Promise<number | null> {
  // sharp's xres/yres are pixels per mm; with resolutionUnit 'cm' the tags hold pixels per cm.
  await sharp(slide, { limitInputPixels: false })
    .tiff({ tile: true, tileWidth: 256, tileHeight: 256, compression: 'deflate', xres: 1000 / mpp, yres: 1000 / mpp, resolutionUnit: 'cm' })
    .toFile(out);
  return (await SlideReader.open(out)).info.micronsPerPixel;
}

/** Segment the slide at each pixel size with the CLI (a daemon in-process per run, as a user runs it). */
export async function stabilityBench(opts: { model?: string; slide?: string; mpps?: number[]; reference?: number; radius?: number } = {}) {
  const slide = opts.slide ?? SVS;
  const reference = opts.reference ?? 0.5;
  const mpps = opts.mpps ?? [0.499, 0.45, 0.55];
  const radius = opts.radius ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'cellbridge-stability-'));
  const runs: Record<string, { cells: CellPoint[]; seconds: number; model: string; declared: number | null }> = {};
  try {
    for (const mpp of [reference, ...mpps]) {
      const out = join(dir, `${mpp}.geojson`);
      const copy = join(dir, `${mpp}.tif`);
      const declared = await copyWithPixelSize(slide, mpp, copy);
      if (declared === null || Math.abs(declared - mpp) > 1e-6) throw new Error(`the copy declares ${declared} µm/px, not ${mpp}`);
      const t = performance.now();
      const { summary, cells } = segmentWithCli(copy, out, opts.model ? ['--model', opts.model] : [], `--mpp ${mpp}`);
      const seconds = (performance.now() - t) / 1000;
      runs[String(mpp)] = { cells, seconds: r3(seconds), model: summary.model, declared };
      rmSync(copy);
      note(`--mpp ${mpp}: ${runs[String(mpp)].cells.length} cells in ${seconds.toFixed(1)} s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const ref = runs[String(reference)];
  const comparisons = mpps.map((mpp) => ({ mpp, declaredMicronsPerPixel: runs[String(mpp)].declared, secondsRun: runs[String(mpp)].seconds, ...compareRuns(ref.cells, runs[String(mpp)].cells, radius) }));
  const near = comparisons.find((c) => c.mpp === 0.499);
  const bars = {
    near0499MatchedPct: near ? Math.min(near.matchedPctOfReference ?? 0, near.matchedPctOfRun ?? 0) : null,
    near0499WorstClassChangePct: near ? Math.max(0, ...Object.values(near.perClass).filter((p) => p.reference >= 100).map((p) => Math.abs(p.changePct ?? 0))) : null,
    farWorstTotalChangePct: Math.max(0, ...comparisons.filter((c) => c.mpp !== 0.499).map((c) => Math.abs(c.totalChangePct ?? 0))),
  };
  return {
    model: ref.model, slide: basename(slide), reference, radiusPx: radius, referenceSeconds: ref.seconds, referenceCells: ref.cells.length,
    comparisons, bars,
    pass: { near0499Matched97: bars.near0499MatchedPct !== null && bars.near0499MatchedPct >= 97,
      near0499ClassesWithin5: bars.near0499WorstClassChangePct !== null && bars.near0499WorstClassChangePct <= 5,
      farTotalWithin10: bars.farWorstTotalChangePct <= 10 },
  };
}

if (require.main === module) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, slide: { type: 'string' }, mpp: { type: 'string' }, reference: { type: 'string' }, radius: { type: 'string' } }, strict: true });
  stabilityBench({
    model: values.model, slide: values.slide,
    mpps: values.mpp ? values.mpp.split(',').map(Number) : undefined,
    reference: values.reference ? Number(values.reference) : undefined,
    radius: values.radius ? Number(values.radius) : undefined,
  }).then(
    (r) => { emit(`stability-${r.model}`, { ...machine(), ...r, command: `node dist/bench/stability.js ${process.argv.slice(2).join(' ')}`.trim() }); },
    (e: Error) => { process.stderr.write(`stability: ${e.message}\n`); process.exitCode = 1; },
  );
}
