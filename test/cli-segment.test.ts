/** `cellbridge segment` on real slides (a generated model; the real one has its own tests). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, REPO_ROOT, SHARED_DATA } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { ringCentroid } from './helpers/geojson-centroid';

const run = promisify(execFile);
const WSI = join(SHARED_DATA, 'wsi');

async function cellbridge(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('cellbridge segment on real slides', function () {
  let models: string;
  let tmp: string;
  before(function () {
    if (!existsSync(join(WSI, 'CMU-1-Small-Region.svs'))) {
      console.log(`      (skipped: ${join(WSI, 'CMU-1-Small-Region.svs')} is absent; the shared test data is not on this machine)`);
      this.skip();
    }
    models = makeSyntheticModelsDir();
    tmp = mkdtempSync(join(tmpdir(), 'cellbridge-segment-'));
  });

  it('segments a region of CMU-1-Small-Region.svs (Aperio, 0.499 µm/px) touching the image corner: valid features inside the image', async () => {
    const roi = join(tmp, 'roi.geojson');
    // A region reaching the right and bottom edges of the 2220 x 2967 slide, with a hole.
    writeFileSync(roi, JSON.stringify({ type: 'FeatureCollection', features: [{ type: 'Feature', id: 'corner', properties: {}, geometry: {
      type: 'Polygon', coordinates: [[[1500, 2300], [2220, 2300], [2220, 2967], [1500, 2967], [1500, 2300]], [[1700, 2500], [1800, 2500], [1800, 2600], [1700, 2600], [1700, 2500]]],
    } }] }));
    const out = join(tmp, 'cells.geojson');
    const r = await cellbridge(['segment', join(WSI, 'CMU-1-Small-Region.svs'), '--roi', roi, '--models', models, '--model', 'synthetic', '--device', 'cpu', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const summary = JSON.parse(lines[lines.length - 1]);
    assert.equal(summary.status, 'completed');
    assert.match(r.stderr, /2220x2967 px, 0\.499 µm\/px/);
    const fc = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(fc.type, 'FeatureCollection');
    assert.equal(fc.features.length, summary.cells);
    assert.ok(summary.cells > 100, `${summary.cells} cells`);
    assert.equal(Object.values(summary.counts as Record<string, number>).reduce((a, b) => a + b, 0), summary.cells);
    const ids = new Set<string>();
    for (const f of fc.features) {
      assert.equal(f.type, 'Feature');
      assert.equal(f.geometry.type, 'Polygon');
      assert.ok(['Alpha', 'Beta'].includes(f.properties.classification.name));
      assert.ok(f.properties.measurements['Nucleus: Area µm^2'] > 0);
      ids.add(f.id);
      const ring = f.geometry.coordinates[0];
      assert.deepEqual(ring[0], ring[ring.length - 1], 'ring closed');
      for (const [x, y] of ring) assert.ok(x >= 1400 && x <= 2220 && y >= 2200 && y <= 2967, `vertex ${x},${y} outside the image or far from the ROI`);
    }
    assert.equal(ids.size, fc.features.length, 'ids are unique');
  });

  it('reads the pixel size of OME-TIFF and pyramidal TIFF too', async () => {
    for (const [file, expect] of [['CMU-1-Small-Region_pyramid.ome.tif', /0\.499 µm\/px/], ['CMU-1-Small-Region_pyramid_generic.tif', /0\.499 µm\/px/]] as const) {
      const roi = join(tmp, 'small.geojson');
      writeFileSync(roi, JSON.stringify({ type: 'Polygon', coordinates: [[[100, 100], [300, 100], [300, 300], [100, 300], [100, 100]]] }));
      const r = await cellbridge(['segment', join(WSI, file), '--roi', roi, '--models', models, '--device', 'cpu', '--out', join(tmp, `${file}.geojson`)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, expect);
    }
  });

  it('a JPEG 2000 slide it cannot decode: clear error, exit 1, no output file, no stack trace', async () => {
    const out = join(tmp, 'jp2k.geojson');
    const r = await cellbridge(['segment', join(WSI, 'TCGA-CR-7395-01A-01-TS1.svs'), '--models', models, '--device', 'cpu', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /JPEG 2000/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.ok(!existsSync(out));
  });

  it('a file that is no image, a missing file and bad flags: clear errors', async () => {
    const txt = join(tmp, 'notes.txt');
    writeFileSync(txt, 'not an image');
    const a = await cellbridge(['segment', txt, '--models', models, '--out', join(tmp, 'x.geojson')]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /not an image this build can read/);
    const b = await cellbridge(['segment', join(tmp, 'missing.svs'), '--out', join(tmp, 'y.geojson')]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /no such file/);
    const c = await cellbridge(['segment', txt]);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--out OUT.geojson is required/);
  });

  it('--tta 8: the daemon runs 8 views per tile and says so in the plan; --tta 3 is a usage error', async () => {
    const roi = join(tmp, 'tta.geojson');
    writeFileSync(roi, JSON.stringify({ type: 'Polygon', coordinates: [[[800, 1200], [1000, 1200], [1000, 1400], [800, 1400], [800, 1200]]] }));
    const r = await cellbridge(['segment', join(WSI, 'CMU-1-Small-Region.svs'), '--roi', roi, '--models', models, '--model', 'synthetic', '--device', 'cpu', '--tta', '8', '--out', join(tmp, 'tta.geojson.out')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /8 views per tile averaged/);
    assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!).status, 'completed');
    const bad = await cellbridge(['segment', join(WSI, 'CMU-1-Small-Region.svs'), '--tta', '3', '--out', join(tmp, 'bad.geojson')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--tta must be 1, 2, 4 or 8/);
  });

  it('--quiet: only the JSON summary on stdout, nothing on stderr (no progress, no provider warnings), with --device auto', async () => {
    const roi = join(tmp, 'small.geojson');
    writeFileSync(roi, JSON.stringify({ type: 'Polygon', coordinates: [[[800, 1200], [1000, 1200], [1000, 1400], [800, 1400], [800, 1200]]] }));
    const r = await cellbridge(['segment', join(WSI, 'CMU-1-Small-Region.svs'), '--roi', roi, '--models', models, '--model', 'synthetic', '--quiet', '--out', join(tmp, 'quiet.geojson')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.trim().split('\n').length, 1);
    assert.equal(JSON.parse(r.stdout).status, 'completed');
  });

  it('--keep-faint: the real v2 model keeps the faint cells its card drops, and the other cells stay where they were', async function () {
    // CMU-1's granular layer and dermis: the 320² window where 2.3.0's faint-cell filter drops the most cells
    // (45 of ~180; models/README "A faint-cell filter").
    const roi = join(tmp, 'faint.geojson');
    writeFileSync(roi, JSON.stringify({ type: 'Polygon', coordinates: [[[960, 1600], [1280, 1600], [1280, 1920], [960, 1920], [960, 1600]]] }));
    const cells: Record<string, [number, number][]> = {};
    for (const [name, flags] of [['filtered', []], ['kept', ['--keep-faint']]] as const) {
      const out = join(tmp, `faint-${name}.geojson`);
      const r = await cellbridge(['segment', join(WSI, 'CMU-1-Small-Region.svs'), '--roi', roi, '--device', 'cpu', '--quiet', ...flags, '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      const fc = JSON.parse(readFileSync(out, 'utf8')) as { features: { geometry: { coordinates: number[][][] } }[] };
      cells[name] = fc.features.map((f) => ringCentroid(f.geometry.coordinates[0]));
    }
    const { filtered, kept } = cells;
    assert.ok(filtered.length > 100, `${filtered.length} cells with the filter`);
    assert.ok(kept.length >= filtered.length + 25, `--keep-faint: ${kept.length} against ${filtered.length}`);
    const near = filtered.filter(([x, y]) => kept.some(([u, v]) => (x - u) ** 2 + (y - v) ** 2 <= 1));
    assert.ok(near.length >= 0.98 * filtered.length, `${near.length} of ${filtered.length} filtered cells also in the --keep-faint run`);
  });

  it('a 40x image with the real v2 model: outlines on the 2x finer grid (outlineThreshold), same cells as without it', async function () {
    const tile = join(SHARED_DATA, 'consep', 'test', 'images', 'test_1_005.jpg');
    if (!existsSync(tile)) this.skip();
    // Two copies of the bundled v2 card, one with outline refinement and one without.
    const v2 = join(REPO_ROOT, 'models', 'cellbridge-he-v2');
    const card = JSON.parse(readFileSync(join(v2, 'card.json'), 'utf8'));
    const dir = join(tmp, 'outline-models');
    for (const [name, thr] of [['fine', -0.25], ['plain', null]] as const) {
      mkdirSync(join(dir, name), { recursive: true });
      for (const f of [card.file, card.cpuFile].filter(Boolean)) symlinkSync(join(v2, f), join(dir, name, f));
      writeFileSync(join(dir, name, 'card.json'), JSON.stringify({ ...card, name, postprocess: { ...card.postprocess, outlineThreshold: thr } }));
    }
    const runs: Record<string, { features: { id: string; geometry: { coordinates: number[][][] }; properties: { classification: { name: string }; measurements: Record<string, number> } }[] }> = {};
    for (const name of ['fine', 'plain']) {
      const out = join(tmp, `outline-${name}.geojson`);
      // The CoNSeP tile is 256 x 256 px at 40x: --mpp 0.25 makes the daemon resample it 2x for the 0.5 µm/px model.
      const r = await cellbridge(['segment', tile, '--mpp', '0.25', '--models', dir, '--model', name, '--device', 'cpu', '--quiet', '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      runs[name] = JSON.parse(readFileSync(out, 'utf8'));
    }
    const fine = runs.fine.features, plain = runs.plain.features;
    assert.ok(plain.length > 20, `${plain.length} cells`);
    assert.equal(fine.length, plain.length, 'the same cells');
    // Area centroid of a closed ring (shoelace): robust to how many vertices the outline has.
    const centre = (ring: number[][]): number[] => {
      let a = 0, cx = 0, cy = 0;
      for (let i = 0; i + 1 < ring.length; i++) {
        const [x0, y0] = ring[i], [x1, y1] = ring[i + 1], c = x0 * y1 - x1 * y0;
        a += c; cx += (x0 + x1) * c; cy += (y0 + y1) * c;
      }
      return [cx / (3 * a), cy / (3 * a)];
    };
    let odd = 0, changed = 0;
    for (const [i, f] of fine.entries()) {
      // Same cells in the same order (ids differ: they are seeded with the model's name).
      const p = plain[i];
      const [a, b] = [centre(f.geometry.coordinates[0]), centre(p.geometry.coordinates[0])];
      assert.ok(Math.hypot(a[0] - b[0], a[1] - b[1]) < 1.5, `cell ${i}: ${a} vs ${b}`);
      assert.equal(f.properties.classification.name, p.properties.classification.name);
      for (const [x, y] of p.geometry.coordinates[0]) assert.ok(x % 2 === 0 && y % 2 === 0, `model-grid vertex ${x},${y} on the 2-px staircase`);
      for (const [x, y] of f.geometry.coordinates[0]) {
        assert.ok(Number.isInteger(x) && Number.isInteger(y), `fine vertex ${x},${y} on the slide's pixel grid`);
        if (x % 2 !== 0 || y % 2 !== 0) odd++;
      }
      if (f.properties.measurements['Nucleus: Area µm^2'] !== p.properties.measurements['Nucleus: Area µm^2']) changed++;
    }
    assert.ok(odd > fine.length, `${odd} vertices between model pixels`);
    assert.ok(changed > fine.length / 2, `${changed} of ${fine.length} areas follow the finer outline`);
  });
});
