/**
 * Issue 10: evaluation per whole source image (tiles stitched back), PNG tiles, splits without classes,
 * and the pure parts of the stability benchmark.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { openDataset, readTile, type Tile } from '../bridge/eval/dataset';
import { consepLayout, stitchTiles, tileLayout } from '../bridge/eval/stitch';
import { compareRuns, copyWithPixelSize, matchCells, ringCentroid, type CellPoint } from '../bench/stability';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import sharp from 'sharp';

const REPO = path.resolve(__dirname, '../..');
const DATA = path.resolve(REPO, '../shared/data');
const CLI = path.join(REPO, 'dist/bridge/eval/cli.js');

function tile(name: string, w: number, h: number, ids: number[], classOf: Array<[number, number]> = []): Tile {
  return { name, width: w, height: h, rgb: new Uint8Array(w * h * 3).fill(200), instances: Int32Array.from(ids), classOf: new Map(classOf) };
}

describe('stitching tiles back into source images', () => {
  it('CoNSeP layout from <image>_<k> names: 3x3 grid, bottom row, right column, corner at the 1000-px edge; null when the names do not fit', () => {
    const names = (img: string) => Array.from({ length: 16 }, (_, k) => `${img}_${String(k).padStart(3, '0')}`);
    const l = consepLayout([...names('b'), ...names('a')])!;
    assert.deepEqual(l.images.map((i) => i.name), ['a', 'b']);
    const xy = l.images[0].tiles.map((t) => [t.x, t.y]);
    assert.deepEqual(xy.slice(0, 4), [[0, 0], [256, 0], [512, 0], [0, 256]]);
    assert.deepEqual(xy.slice(8), [[512, 512], [0, 744], [256, 744], [512, 744], [744, 0], [744, 256], [744, 512], [744, 744]]);
    assert.equal(consepLayout(names('a').slice(0, 15)), null, '15 tiles are not a CoNSeP image');
    assert.equal(consepLayout(['plain']), null);
  });

  it('touching tiles: a nucleus cut by the border is joined, two nuclei that only touch it are not', () => {
    // two 4x4 tiles side by side. Left: id 1 rows 0-1 on the border column, id 2 row 3 only.
    // Right: id 5 rows 0-1 (continues id 1), id 6 rows 2-3 (touches id 2 on one row of its two).
    const L = tile('l', 4, 4, [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2], [[1, 3], [2, 2]]);
    const R = tile('r', 4, 4, [5, 5, 0, 0, 5, 5, 0, 0, 6, 6, 0, 0, 6, 6, 0, 0], [[5, 3], [6, 4]]);
    const s = stitchTiles('img', [{ x: 0, y: 0, tile: L }, { x: 4, y: 0, tile: R }]);
    assert.equal(s.width, 8);
    assert.equal(s.seamJoins, 1);
    const ids = new Set(s.instances); ids.delete(0);
    assert.equal(ids.size, 3, 'ids 1+5 joined; 2 and 6 stay apart (contact 1 px of 2)');
    assert.equal(s.instances[2], s.instances[4], 'the joined nucleus has one id on both sides');
    assert.equal(s.classOf.get(s.instances[2]), 3);
  });

  it('overlapping tiles: ids on the same pixel are one nucleus; disagreements counted', () => {
    const A = tile('a', 3, 1, [0, 1, 1]);
    const B = tile('b', 3, 1, [4, 0, 0]); // placed at x = 1: overlaps A's pixels 1..2, disagrees on pixel 2
    const s = stitchTiles('img', [{ x: 0, y: 0, tile: A }, { x: 1, y: 0, tile: B }]);
    assert.deepEqual([...s.instances], [0, 1, 1, 0]);
    assert.equal(s.overlapPixels, 2);
    assert.equal(s.overlapDisagreements, 1);
  });

  it('MoNuSeg test (PNG tiles, 8 px overlaps): every stitched image has exactly the nuclei of source_images.json', async function () {
    const dir = path.join(DATA, 'monuseg/test');
    if (!existsSync(dir)) { console.log(`      ${dir} not found (shared data): skipping`); this.skip(); }
    const ds = openDataset(dir);
    assert.equal(ds.binaryOnly, true);
    assert.equal(ds.classes.size, 0);
    const layout = tileLayout(ds)!;
    assert.equal(layout.source, 'source_images.json');
    assert.equal(layout.images.length, 14);
    const src = JSON.parse(readFileSync(path.join(DATA, 'monuseg/source_images.json'), 'utf8'));
    for (const im of layout.images.slice(0, 3)) {
      const placed = [];
      for (const p of im.tiles) placed.push({ x: p.x, y: p.y, tile: await readTile(ds, p.tile) });
      const s = stitchTiles(im.name, placed);
      const ids = new Set(s.instances); ids.delete(0);
      assert.deepEqual([s.width, s.height], [1000, 1000]);
      assert.equal(ids.size, src[im.name].nuclei, im.name);
      assert.equal(s.overlapDisagreements, 0);
    }
  });
});

describe('CoNSeP test images stitched back', function () {
  const dir = path.join(DATA, 'consep/test');
  before(function () { if (!existsSync(dir)) { console.log(`      ${dir} not found (shared data): skipping`); this.skip(); } });

  it('test_10: 1000x1000, the 24-px overlaps carry the same nuclei and the same pixels (a continuous image, not a mosaic)', async () => {
    const ds = openDataset(dir);
    const im = tileLayout(ds)!.images.find((i) => i.name === 'test_10')!;
    const placed = [];
    for (const p of im.tiles) placed.push({ x: p.x, y: p.y, tile: await readTile(ds, p.tile) });
    const s = stitchTiles(im.name, placed);
    assert.deepEqual([s.width, s.height], [1000, 1000]);
    assert.equal(s.overlapPixels, 16 * 256 * 256 - 1000 * 1000);
    assert.equal(s.overlapDisagreements, 0);
    // colour step across the seams between tiles (x = 255|256 inside the grid; x = 767|768 where the right
    // column's pixels begin: the first tile to cover a pixel keeps it, so x = 744..767 are tiles 2/5/8's own)
    // against the step between two columns inside a tile: a mosaic of unrelated tiles steps 3-5x more.
    const step = (x: number) => {
      let sum = 0;
      for (let y = 0; y < 768; y++) for (let c = 0; c < 3; c++) sum += Math.abs(s.rgb[3 * (y * 1000 + x) + c] - s.rgb[3 * (y * 1000 + x + 1) + c]);
      return sum / (768 * 3);
    };
    assert.ok(step(255) < 2 * step(100), `border 255|256 steps ${step(255).toFixed(1)}, inside ${step(100).toFixed(1)}`);
    assert.ok(step(767) < 2 * step(100), `border 767|768 steps ${step(767).toFixed(1)}, inside ${step(100).toFixed(1)}`);
  });
});

describe('npm run eval on a split without classes (MoNuSeg, PNG)', function () {
  const dir = path.join(DATA, 'monuseg/test');
  before(function () { if (!existsSync(dir)) { console.log(`      ${dir} not found (shared data): skipping`); this.skip(); } });

  it('--oracle on one whole image: binary metrics only, per-tile and per-image PQ exactly 1', () => {
    const r = spawnSync(process.execPath, [CLI, '--oracle', '--data', dir, '--limit', '16', '--iterations', '50'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(j.binaryOnly, true);
    assert.equal(j.tiles, 16);
    assert.equal(j.bPQ, 1);
    assert.equal(j.mPQ, null);
    assert.deepEqual(j.perClass, {});
    assert.equal(j.images.count, 1, 'only the image whose 16 tiles were all evaluated');
    assert.equal(j.images.bPQ, 1);
    assert.equal(j.images.perImage[0].image, 'TCGA-2Z-A9J9-01A-01-TS1');
    assert.match(r.stderr, /binary metrics only/);
  });
});

describe('stability benchmark (its parts)', () => {
  it('copyWithPixelSize: the same pixels, losslessly, in a TIFF that the slide reader reads as X µm/px', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'stability-'));
    try {
      const src = path.join(dir, 'src.png');
      const raw = Buffer.alloc(40 * 30 * 3);
      for (let i = 0; i < raw.length; i++) raw[i] = (i * 37) % 251;
      await sharp(raw, { raw: { width: 40, height: 30, channels: 3 } }).png().toFile(src);
      for (const mpp of [0.499, 0.55]) {
        const out = path.join(dir, `${mpp}.tif`);
        const declared = await copyWithPixelSize(src, mpp, out);
        assert.ok(declared !== null && Math.abs(declared - mpp) < 1e-6, `declared ${declared}`);
        const back = await sharp(out).raw().toBuffer();
        assert.ok(back.equals(raw), 'pixels unchanged');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ringCentroid: area centroid of a closed ring', () => {
    assert.deepEqual(ringCentroid([[0, 0], [4, 0], [4, 2], [0, 2], [0, 0]]), [2, 1]);
  });

  it('matchCells: one-to-one, closest pairs first, within the radius only', () => {
    const a: CellPoint[] = [{ x: 0, y: 0, cls: 'A' }, { x: 10, y: 0, cls: 'A' }, { x: 50, y: 50, cls: 'B' }];
    const b: CellPoint[] = [{ x: 0.5, y: 0, cls: 'A' }, { x: 1.5, y: 0, cls: 'A' }, { x: 11, y: 1, cls: 'B' }, { x: 60, y: 50, cls: 'B' }];
    const m = matchCells(a, b, 2);
    assert.deepEqual(m.map(([i, j]) => [i, j]), [[0, 0], [1, 2]]);
    const c = compareRuns(a, b, 2);
    assert.equal(c.matched, 2);
    assert.equal(c.matchedPctOfReference, 66.667);
    assert.equal(c.matchedPctOfRun, 50);
    assert.equal(c.sameClassPctOfMatched, 50);
    assert.deepEqual(c.perClass.A, { reference: 2, run: 2, changePct: 0 });
    assert.deepEqual(c.perClass.B, { reference: 1, run: 2, changePct: 100 });
  });
});
