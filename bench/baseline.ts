/**
 * Cell Bridge against QuPath's own Cell detection (WatershedCellDetection, no deep learning) on the whole of
 * CMU-1-Small-Region, the same pixels, the same 2 cores, alternating rounds after one warm-up of each:
 *  - QuPath: the plugin's own time inside a warm JVM (QuPath 0.6.0's classes from ../shared/qupath-headless,
 *    bridge/eval/watershed-segmenter.ts; dialog defaults, nuclei only, the slide's 0.499 µm/px), not counting
 *    handing it the pixels;
 *  - Cell Bridge: `cellbridge segment` with a daemon in-process, the job's own seconds (reading the slide,
 *    tiling, the model, post-processing, outlines), as bench/precision.ts.
 * Medians, their ratio, the cell counts, and how many cells of each the other finds (centroids within 3 µm).
 *
 *   node dist/bench/baseline.js [--rounds 3] [--geojson BOTH.geojson]
 *   npm run bench -- --only baseline
 * --geojson writes both results of the last round into one FeatureCollection (QuPath's nuclei magenta, Cell
 * Bridge's green), for `cellbridge overlay` (models/README.md, "Against QuPath's own Cell detection").
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { SlideReader } from '../bridge/images/slide-reader';
import { centroids } from '../bridge/eval/metrics';
import { watershedSegmenter } from '../bridge/eval/watershed-segmenter';
import { emit, machine, median, note, r2, r3, SVS } from './common';
import { compareRuns, segmentWithCli, type CellPoint } from './stability';

export async function baselineBench(opts: { rounds?: number; model?: string; geojson?: string } = {}) {
  const rounds = opts.rounds ?? 3;
  const mpp = (await SlideReader.open(SVS)).info.micronsPerPixel;
  if (!mpp) throw new Error(`${SVS} has no pixel size`);
  const { data, info } = await sharp(SVS, { limitInputPixels: false }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const tile = { name: 'CMU-1-Small-Region', width: info.width, height: info.height, rgb: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  const watershed = await watershedSegmenter(mpp, { log: note });
  const dir = mkdtempSync(join(tmpdir(), 'cellbridge-baseline-'));
  const seconds = { qupath: [] as number[], cellbridge: [] as number[] };
  let qupathCells: CellPoint[] = [];
  let bridge: ReturnType<typeof segmentWithCli> | null = null;
  try {
    for (let k = 0; k <= rounds; k++) {
      const w = await watershed.segment(tile, k === rounds && opts.geojson ? join(dir, 'qupath.json') : undefined);
      qupathCells = centroids(w.labels, tile.width).map((c) => ({ x: c.x, y: c.y, cls: 'nucleus' }));
      bridge = segmentWithCli(SVS, join(dir, 'cells.geojson'), opts.model ? ['--model', opts.model] : [], 'baseline');
      if (k === rounds && opts.geojson) writeBoth(join(dir, 'qupath.json'), join(dir, 'cells.geojson'), opts.geojson);
      const label = k === 0 ? 'warm-up' : `round ${k}/${rounds}`;
      note(`baseline ${label}: QuPath Cell detection ${r2(w.detectMs / 1000)} s, ${qupathCells.length} nuclei; Cell Bridge ${bridge.summary.seconds} s, ${bridge.cells.length} cells`);
      if (k > 0) { seconds.qupath.push(r2(w.detectMs / 1000)); seconds.cellbridge.push(bridge.summary.seconds); }
    }
  } finally {
    await watershed.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const q = median(seconds.qupath), c = median(seconds.cellbridge);
  const radiusPx = 3 / mpp;
  // Cell Bridge's cells as the reference: how many of them QuPath finds (and, reversed, how many of QuPath's it finds).
  const asNuclei = bridge!.cells.map((p) => ({ ...p, cls: 'nucleus' }));
  const qupathFinds = compareRuns(asNuclei, qupathCells, radiusPx);
  return {
    image: 'CMU-1-Small-Region.svs', width: tile.width, height: tile.height, micronsPerPixel: mpp, rounds,
    model: bridge!.summary.model,
    seconds: { qupathCellDetection: r2(q), cellBridge: r2(c) }, cellBridgeOverQupath: r3(c / q), perRound: seconds,
    cells: {
      qupathCellDetection: qupathCells.length, cellBridge: bridge!.cells.length, matchRadiusPx: r2(radiusPx),
      matched: qupathFinds.matched,
      cellBridgeCellsQupathFindsPct: qupathFinds.matchedPctOfReference, qupathNucleiCellBridgeFindsPct: qupathFinds.matchedPctOfRun,
    },
  };
}

/** QuPath's exported nuclei and Cell Bridge's cells (nucleus outlines) in one FeatureCollection, one colour each. */
function writeBoth(qupathJson: string, cellsGeojson: string, out: string): void {
  type F = { geometry: unknown; nucleusGeometry?: unknown };
  const as = (name: string, color: number[]) => (f: F) => ({ type: 'Feature', geometry: f.nucleusGeometry ?? f.geometry, properties: { classification: { name, color } } });
  const qupath = (JSON.parse(readFileSync(qupathJson, 'utf8')) as F[]).map(as('QuPath Cell detection (watershed)', [255, 0, 255]));
  const bridge = (JSON.parse(readFileSync(cellsGeojson, 'utf8')) as { features: F[] }).features.map(as('Cell Bridge', [0, 230, 0]));
  writeFileSync(out, JSON.stringify({ type: 'FeatureCollection', features: [...qupath, ...bridge] }));
  note(`baseline: both results in ${out}`);
}

if (require.main === module) {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, model: { type: 'string' }, geojson: { type: 'string' } }, strict: true });
  baselineBench({ rounds: values.rounds ? Number(values.rounds) : undefined, model: values.model, geojson: values.geojson }).then(
    (r) => { emit('baseline', { ...machine(), ...r, command: `node dist/bench/baseline.js ${process.argv.slice(2).join(' ')}`.trim() }); },
    (e: Error) => { process.stderr.write(`baseline: ${e.message}\n`); process.exitCode = 1; },
  );
}
