/**
 * Test-time augmentation (bridge/inference/tta.ts): the views' pixels, the maps brought back to the
 * tile's frame (flow vectors included), and on a real model and a real CoNSeP tile: with all 8 views
 * the segmentation of a mirrored tile is the mirrored segmentation.
 */
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { VIEWS, addViewMaps, emptyMapsLike, scaleMaps, viewRgb, type View } from '../bridge/inference/tta';
import type { TileMaps } from '../bridge/postprocess/types';
import { checkStartJob } from '../bridge/session/validate';
import { parseArgs } from '../bridge/eval/cli';
import { validateCard } from '../bridge/inference/card-validate';
import { syntheticCard } from './helpers/synthetic-model';
import { openDataset, readTile } from '../bridge/eval/dataset';
import { modelSegmenter } from '../bridge/eval/segmenter';

const REPO = path.resolve(__dirname, '../..');
const CONSEP = path.resolve(REPO, '../shared/data/consep/test');

/** 3 wide, 2 high, one byte per pixel (R = G = B): rows [1 2 3] [4 5 6]. */
function tiny(): Uint8Array {
  const v = [1, 2, 3, 4, 5, 6];
  return Uint8Array.from(v.flatMap((x) => [x, x, x]));
}
const gray = (rgb: Uint8Array): number[] => Array.from(rgb.filter((_, i) => i % 3 === 0));

/** What an exactly equivariant model would output for a view, written out independently of tta.ts. */
function forwardMaps(m: TileMaps, view: View): TileMaps {
  const w = m.width, h = m.height;
  const vw = view.transpose ? h : w, vh = view.transpose ? w : h;
  const out = emptyMapsLike(m, vw, vh);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      // position: transpose, then mirror
      let [rr, cc] = view.transpose ? [c, r] : [r, c];
      if (view.flipX) cc = vw - 1 - cc;
      if (view.flipY) rr = vh - 1 - rr;
      const s = r * w + c, t = rr * vw + cc;
      // vector: (dy, dx) -> transposed (dx, dy) -> mirrored components negated
      let [dy, dx] = view.transpose ? [m.dx[s], m.dy[s]] : [m.dy[s], m.dx[s]];
      if (view.flipX) dx = -dx;
      if (view.flipY) dy = -dy;
      out.dy[t] = dy; out.dx[t] = dx;
      out.cellprob![t] = m.cellprob![s];
      for (let k = 0; k < m.typeChannels; k++) out.typeLogits[k * w * h + t] = m.typeLogits[k * w * h + s];
    }
  }
  return out;
}

describe('test-time augmentation: views and their maps', () => {
  it('views: 1, 2, 4 and 8 distinct views, the first the tile itself; 2 and 4 keep the shape', () => {
    for (const n of [1, 2, 4, 8] as const) {
      const vs = VIEWS[n];
      assert.equal(vs.length, n);
      assert.deepEqual(vs[0], { transpose: false, flipX: false, flipY: false });
      assert.equal(new Set(vs.map((v) => JSON.stringify(v))).size, n);
      if (n < 8) assert.ok(vs.every((v) => !v.transpose));
    }
  });

  it('viewRgb: mirrored, rotated and transposed pixels of a 3x2 tile', () => {
    const rgb = tiny();
    const look = (view: View) => { const v = viewRgb(rgb, 3, 2, view); return [v.width, v.height, gray(v.rgb)]; };
    assert.deepEqual(look({ transpose: false, flipX: false, flipY: false }), [3, 2, [1, 2, 3, 4, 5, 6]]);
    assert.deepEqual(look({ transpose: false, flipX: true, flipY: false }), [3, 2, [3, 2, 1, 6, 5, 4]]);
    assert.deepEqual(look({ transpose: false, flipX: false, flipY: true }), [3, 2, [4, 5, 6, 1, 2, 3]]);
    assert.deepEqual(look({ transpose: false, flipX: true, flipY: true }), [3, 2, [6, 5, 4, 3, 2, 1]]);
    assert.deepEqual(look({ transpose: true, flipX: false, flipY: false }), [2, 3, [1, 4, 2, 5, 3, 6]]);
    assert.deepEqual(look({ transpose: true, flipX: true, flipY: false }), [2, 3, [4, 1, 5, 2, 6, 3]]);
  });

  it('an exactly equivariant model averaged over 8 views gives back its own maps (flow vectors turned back)', () => {
    const w = 5, h = 3, C = 3;
    let seed = 7;
    const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 - 0.5; };
    const m: TileMaps = {
      width: w, height: h, dy: Float32Array.from({ length: w * h }, rnd), dx: Float32Array.from({ length: w * h }, rnd),
      cellprob: Float32Array.from({ length: w * h }, rnd), cellprobKind: 'logit',
      typeLogits: Float32Array.from({ length: C * w * h }, rnd), typeChannels: C, typeKind: 'logits',
    };
    for (const n of [2, 4, 8] as const) {
      const sum = emptyMapsLike(m, w, h);
      for (const view of VIEWS[n]) addViewMaps(sum, forwardMaps(m, view), view);
      scaleMaps(sum, n);
      for (const k of ['dy', 'dx', 'cellprob', 'typeLogits'] as const) {
        const a = sum[k]!, b = m[k]!;
        for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-6, `${n} views: ${k}[${i}] ${a[i]} vs ${b[i]}`);
      }
    }
    // A view's maps of the wrong shape are refused, not silently misplaced.
    assert.throws(() => addViewMaps(emptyMapsLike(m, w, h), emptyMapsLike(m, w, h), { transpose: true, flipX: false, flipY: false }), /do not fit/);
  });

  it('job option testTimeAugmentation: 1, 2, 4, 8 accepted; anything else is -32602 naming the field', () => {
    const base = { image: { width: 100, height: 100, micronsPerPixel: 0.5 }, rois: [{ id: 'a', geometry: { type: 'Polygon', coordinates: [[[0, 0], [50, 0], [50, 50], [0, 0]]] } }] };
    for (const v of [1, 2, 4, 8]) assert.equal(checkStartJob({ ...base, options: { testTimeAugmentation: v } }).options.testTimeAugmentation, v);
    for (const v of [3, 0, 16, '8', null, 2.5]) {
      assert.throws(() => checkStartJob({ ...base, options: { testTimeAugmentation: v } }),
        (e: { code: number; message: string }) => e.code === -32602 && /options\.testTimeAugmentation/.test(e.message));
    }
    assert.equal(parseArgs(['--tta', '4']).views, 4);
    // the card's default is checked the same way when the daemon loads a model
    const card = (tta: unknown) => ({ ...syntheticCard(), input: { ...syntheticCard().input, testTimeAugmentation: tta } });
    assert.equal(validateCard(card(8), 'card.json').input.testTimeAugmentation, 8);
    assert.throws(() => validateCard(card(3), 'card.json'), /input\.testTimeAugmentation must be 1, 2, 4 or 8/);
    assert.throws(() => parseArgs(['--tta', '3']), /--tta must be 1, 2, 4 or 8/);
  });
});

describe('test-time augmentation on a real model and a real tile', function () {
  this.timeout(120_000);
  before(function () {
    if (!existsSync(CONSEP)) {
      console.log(`      CoNSeP test split not found at ${CONSEP} (read-only shared data, not part of the repo): skipping`);
      this.skip();
    }
  });

  type Tile = Awaited<ReturnType<typeof readTile>>;
  const centroids = (labels: Int32Array, W: number, mirror: boolean): Map<string, number> => {
    const acc = new Map<number, [number, number, number]>();
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i];
      if (!l) continue;
      const a = acc.get(l) ?? [0, 0, 0];
      a[0] += mirror ? W - 1 - (i % W) : i % W; a[1] += Math.floor(i / W); a[2]++;
      acc.set(l, a);
    }
    const out = new Map<string, number>();
    for (const [, [x, y, n]] of acc) out.set(`${Math.round(x / n)},${Math.round(y / n)}`, n);
    return out;
  };
  /** Cells of the tile and of its left-right mirror image, and how many are the same cell (centroid pixel and area). */
  const agreement = async (tile: Tile, views: 1 | 8) => {
    const W = tile.width, H = tile.height;
    const mirrored = { ...tile, rgb: viewRgb(tile.rgb, W, H, { transpose: false, flipX: true, flipY: false }).rgb };
    const seg = await modelSegmenter(path.join(REPO, 'models'), 'cellbridge-he-v2', 0.25, { device: 'cpu', intraOpThreads: 1, postprocessWorkers: 1, views });
    try {
      const a = centroids((await seg.segment(tile)).labels, W, false);
      const b = centroids((await seg.segment(mirrored)).labels, W, true);
      let same = 0;
      for (const [k, area] of a) if (b.get(k) === area) same++;
      return { cells: a.size, mirroredCells: b.size, same };
    } finally {
      await seg.close();
    }
  };

  it('8 views: the mirrored tile gives the mirrored cells (the averaged model is mirror-equivariant); 1 view does not guarantee it', async () => {
    const ds = openDataset(CONSEP);
    const tile = await readTile(ds, ds.tiles[5]);
    const eight = await agreement(tile, 8);
    assert.ok(eight.cells > 20, `${eight.cells} cells in a CoNSeP tile`);
    assert.equal(eight.mirroredCells, eight.cells);
    // Same centroid pixel and the same area: the same cell.
    assert.ok(eight.same >= 0.98 * eight.cells, `8 views: ${eight.same}/${eight.cells} cells identical when mirrored`);
    const one = await agreement(tile, 1);
    console.log(`      mirrored tile, cells identical in area and centroid: 1 view ${one.same}/${one.cells}, 8 views ${eight.same}/${eight.cells}`);
  });

  it('8 views of a non-square tile (its transposed views have another shape): still mirror-equivariant', async () => {
    const ds = openDataset(CONSEP);
    const full = await readTile(ds, ds.tiles[5]);
    const rows = 160;
    assert.ok(full.height > rows && full.width !== rows);
    const tile = { ...full, rgb: full.rgb.slice(0, full.width * rows * 3), height: rows };
    const eight = await agreement(tile, 8);
    assert.ok(eight.cells > 10, `${eight.cells} cells in a ${tile.width}x${rows} crop`);
    assert.equal(eight.mirroredCells, eight.cells);
    assert.ok(eight.same >= 0.98 * eight.cells, `8 views: ${eight.same}/${eight.cells} cells identical when mirrored`);
  });
});
