/**
 * The same cells on every path (issue 12): under the REAL QuPath 0.6.0 classes (../shared/qupath-headless),
 * Detect cells on a TIFF of a CMU-1 region, opened as QuPath opens it, with one selected annotation,
 * and `cellbridge segment` on the same TIFF and annotation, against one daemon with the default model:
 *  - at 0.499 µm/px (within the 2 % tolerance: nobody resamples), and
 *  - at 0.45 µm/px (the daemon alone resamples, by 0.9),
 * must give the same cells: ≥ 99.5 % matched within 1 px, with the same classes.
 * Skipped with a message when shared/ or java is absent. The time ratio is a benchmark: bench/qupath.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { cliCommand, matchCells, qupathHeadlessMissing, runHeadless, writeCmuRegionTiff, type HeadlessResult } from '../bench/qupath-headless';

const REGION = { left: 500, top: 900, width: 900, height: 900 };
const RING = [[60, 50], [840, 90], [860, 820], [430, 860], [50, 780], [60, 50]];

describe('QuPath (real 0.6.0 classes) and cellbridge segment give the same cells', function () {
  this.timeout(600_000);
  const missing = qupathHeadlessMissing();
  let daemon: RunningDaemon | undefined;
  let work = '';
  let results: HeadlessResult[] = [];
  const cliOut = (mpp: number) => join(work, `cli-${mpp}.geojson`);

  before(async function () {
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), 'cellbridge-parity-'));
    daemon = await startDaemon({ args: ['--device', 'cpu'] });
    const roiFile = join(work, 'roi.geojson');
    writeFileSync(roiFile, JSON.stringify({ type: 'Feature', id: 'annotation', geometry: { type: 'Polygon', coordinates: [RING] }, properties: {} }));
    const images = [];
    for (const mpp of [0.499, 0.45]) {
      const tiff = join(work, `cmu-${mpp}.tif`);
      await writeCmuRegionTiff(tiff, REGION, mpp);
      images.push({ path: tiff, mpp, cli: cliCommand(tiff, roiFile, daemon.url, cliOut(mpp)) });
    }
    results = await runHeadless({ server: daemon.url, ring: RING, runs: 1, images }, work);
  });

  after(async () => {
    await daemon?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const [i, mpp, what] of [[0, 0.499, 'read unscaled (2 % tolerance)'], [1, 0.45, 'resampled by the daemon alone']] as const) {
    it(`at ${mpp} µm/px, ${what}: ≥ 99.5 % of cells matched within 1 px, same classes`, () => {
      const r = results[i];
      assert.equal(r.server, 'ImageJServer', 'opened by QuPath\'s own TIFF reader');
      assert.ok(Math.abs(r.mpp - mpp) < 1e-9, `QuPath's pixel size ${r.mpp}`);
      const summary = JSON.parse(r.cliOut[0]);
      assert.equal(summary.status, 'completed');
      const features = JSON.parse(readFileSync(cliOut(mpp), 'utf8')).features;
      const m = matchCells(r.cells, features, 1);
      console.log(`      ${mpp} µm/px: QuPath ${m.qupath} cells, CLI ${m.cli}; ${m.matched} matched within 1 px (max ${m.maxDistance.toFixed(3)} px), ${m.sameClass} with the same class; QuPath ${Math.round(r.qupathMs[0])} ms, CLI ${Math.round(r.cliMs[0])} ms`);
      assert.ok(m.cli > 200, `only ${m.cli} cells`);
      assert.ok(m.matched >= 0.995 * Math.max(m.qupath, m.cli), `${m.matched} of ${m.qupath} / ${m.cli} matched`);
      assert.equal(m.sameClass, m.matched, 'every matched cell has the same class');
    });
  }
});
