/**
 * Guards for the speed work of issue #6 (no timing is asserted: benchmarks print numbers, tests check
 * that the fast paths compute exactly what the plain ones do).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followFlows, newStageTimings, postprocessTile, type PostprocessOptions, type TileMaps } from '../bridge/postprocess';
import { cellsToFeatures, type FeatureContext } from '../bridge/results/features';
import { loadFixture, postprocBench, saveFixtures } from '../bench/postproc';
import type { ReadyModel } from '../bench/common';
import type { PlannedTile } from '../bridge/tiling/planner';
import { parseRoi } from '../bridge/tiling/roi';
import { prepareInput } from '../bridge/inference/preprocess';
import type { InputSpec } from '../bridge/inference/model-card';
import { mulberry32 } from '../bridge/eval/metrics';

const OPTS: PostprocessOptions = {
  mode: 'cellpose', niter: 200, flowScale: 5, cellprobThreshold: 0, seedMinCount: 10, claimMinCount: 2,
  growIterations: 5, minSize: 10, fillHoles: true, maxSizeFraction: 0.4,
};

const rng = mulberry32;

/** Blobs with flows towards their centres plus noise; some blobs sit on the right and bottom edges. */
function blobs(W: number, H: number, seed: number): TileMaps {
  const rand = rng(seed);
  const n = W * H;
  const dy = new Float32Array(n), dx = new Float32Array(n), cellprob = new Float32Array(n).fill(-4);
  const C = 3;
  const typeLogits = new Float32Array(C * n);
  const centres = [[H - 1, W - 1], [H / 2, W / 3], [2, W - 3], [H - 2, 4], [H / 3, (2 * W) / 3]];
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      const i = r * W + c;
      typeLogits[i] = 1;
      for (const [cy, cx] of centres) {
        const d = Math.hypot(r - cy, c - cx);
        if (d < 7) {
          dy[i] = (5 * (cy - r)) / (d || 1) + (rand() - 0.5) * 2;
          dx[i] = (5 * (cx - c)) / (d || 1) + (rand() - 0.5) * 2;
          cellprob[i] = 3;
          typeLogits[i] = -1;
          typeLogits[(1 + (i % 2)) * n + i] = 2;
        }
      }
    }
  }
  return { width: W, height: H, dy, dx, cellprob, cellprobKind: 'logit', typeLogits, typeChannels: C, typeKind: 'logits' };
}

/** Cellpose steps2D + map_coordinates, one pixel and one step at a time (the reference the fast path must equal). */
function plainFollow(maps: TileMaps, fg: Uint8Array, niter: number, s: number): Float32Array {
  const { width: W, height: H } = maps;
  const py = new Float32Array(W * H), px = new Float32Array(W * H);
  for (let i = 0; i < W * H; i++) if (fg[i]) { py[i] = maps.dy[i] / s; px[i] = maps.dx[i] / s; }
  const at = (a: Float32Array, y: number, x: number) => a[Math.min(H - 1, y) * W + Math.min(W - 1, x)];
  const pos = new Float32Array(2 * W * H);
  for (let i = 0; i < W * H; i++) {
    let y = Math.floor(i / W), x = i % W;
    if (fg[i]) {
      for (let t = 0; t < niter; t++) {
        const yf = Math.floor(y), xf = Math.floor(x), fy = y - yf, fx = x - xf;
        const w = [(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx];
        const vy = at(py, yf, xf) * w[0] + at(py, yf, xf + 1) * w[1] + at(py, yf + 1, xf) * w[2] + at(py, yf + 1, xf + 1) * w[3];
        const vx = at(px, yf, xf) * w[0] + at(px, yf, xf + 1) * w[1] + at(px, yf + 1, xf) * w[2] + at(px, yf + 1, xf + 1) * w[3];
        y = Math.min(H - 1, Math.max(0, y + vy));
        x = Math.min(W - 1, Math.max(0, x + vx));
      }
    }
    pos[2 * i] = y; pos[2 * i + 1] = x;
  }
  return pos;
}

describe('speed paths compute what the plain code computes', () => {
  it('followFlows (cellpose, lockstep trajectories on the padded field) is bit-identical on odd sizes and edge blobs', () => {
    for (const [W, H, seed] of [[37, 23, 1], [40, 31, 2], [5, 3, 3], [1, 9, 4], [64, 64, 5]]) {
      const maps = blobs(W, H, seed);
      const fg = new Uint8Array(W * H);
      let nfg = 0;
      for (let i = 0; i < W * H; i++) if (maps.cellprob![i] > 0) { fg[i] = 1; nfg++; }
      // Twice: the second call reuses the worker's scratch buffers, from a larger tile for some sizes.
      for (let k = 0; k < 2; k++) {
        const fast = followFlows(maps.dy, maps.dx, fg, W, H, OPTS);
        assert.deepEqual(Array.from(fast), Array.from(plainFollow(maps, fg, 200, 5)), `${W}x${H} (${nfg} foreground px)`);
      }
    }
  });

  it('stage timers do not change post-processing or features', () => {
    const maps = blobs(64, 48, 7);
    const tile: PlannedTile = { id: 0, x: 100, y: 50, width: 64, height: 48, readWidth: 64, readHeight: 48, outputWidth: 64, outputHeight: 48, core: [100, 50, 164, 98] };
    const ctx: FeatureContext = {
      tile, rois: [parseRoi('r', { type: 'Polygon', coordinates: [[[0, 0], [500, 0], [500, 500], [0, 500], [0, 0]]] })],
      classes: [{ index: 1, name: 'A', color: [1, 2, 3] }, { index: 2, name: 'B', color: [4, 5, 6] }],
      imageMicronsPerPixel: 0.5, objectType: 'cell', simplifyTolerance: 0, minArea: 0, idSeed: 't',
    };
    const timings = newStageTimings();
    const a = postprocessTile(maps, OPTS);
    const b = postprocessTile(maps, OPTS, timings);
    assert.deepEqual(Array.from(b.labels), Array.from(a.labels));
    assert.ok(a.cells.length >= 3);
    const fa = cellsToFeatures(a.cells, ctx);
    const fb = cellsToFeatures(b.cells, ctx, timings);
    assert.deepEqual([...fb.byRoi], [...fa.byRoi]);
    for (const [k, v] of Object.entries(timings)) assert.ok(Number.isFinite(v) && v >= 0, `${k}: ${v}`);
  });

  it('bench fixtures round-trip and the post-processing benchmark runs on them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cellbridge-bench-'));
    try {
      const maps = blobs(48, 40, 9);
      const model = { card: { classes: [{ index: 1, name: 'A', color: [1, 2, 3] }, { index: 2, name: 'B', color: [4, 5, 6] }], postprocess: OPTS, outputs: { cellProbability: { kind: 'logit' }, type: { kind: 'logits' } } } } as unknown as ReadyModel;
      const [file] = saveFixtures([maps], dir);
      const back = loadFixture(file, model);
      assert.deepEqual(Array.from(back.dy), Array.from(maps.dy));
      assert.deepEqual(Array.from(back.typeLogits), Array.from(maps.typeLogits));
      assert.equal(back.typeChannels, 3);
      const tile: PlannedTile = { id: 0, x: 0, y: 0, width: 48, height: 40, readWidth: 48, readHeight: 40, outputWidth: 48, outputHeight: 40, core: [0, 0, 48, 40] };
      const roi = parseRoi('r', { type: 'Polygon', coordinates: [[[0, 0], [48, 0], [48, 40], [0, 40], [0, 0]]] });
      const r = postprocBench(model, [back], [tile], roi, 0.5, 1);
      assert.equal(r.tiles, 1);
      assert.ok(r.cellsPerTile >= 3);
      assert.deepEqual(Object.keys(r.stagesMs).sort(), ['cluster', 'contours', 'flowError', 'flows', 'masks', 'measurements']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prepareInput (one-pass RGB8 → normalised NCHW) equals planes + padding + normalisation, value for value', () => {
    const spec: InputSpec = {
      name: 'image', layout: 'NCHW', channels: 3, micronsPerPixel: 0.5, readSize: 64, modelSize: 64, dynamicSize: true, multipleOf: 16,
      resize: 'bilinear', normalization: { kind: 'meanstd', scale: 1 / 255, mean: [0.83, 0.71, 0.85], std: [0.15, 0.2, 0.13] }, padValue: 255,
    };
    const rand = rng(3);
    for (const [w, h] of [[64, 64], [50, 37], [1, 1]]) {
      const rgb = new Uint8Array(w * h * 3).map(() => Math.floor(rand() * 256));
      const got = prepareInput(rgb, w, h, spec);
      const pw = Math.max(16, Math.ceil(w / 16) * 16), ph = Math.max(16, Math.ceil(h / 16) * 16);
      assert.deepEqual(got.dims, [1, 3, ph, pw]);
      const want = new Float32Array(3 * pw * ph);
      for (let c = 0; c < 3; c++) {
        const n = spec.normalization as { scale: number; mean: number[]; std: number[] };
        const plane = new Float32Array(pw * ph).fill(spec.padValue);
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) plane[y * pw + x] = rgb[3 * (y * w + x) + c];
        const inv = 1 / n.std[c];
        for (let i = 0; i < plane.length; i++) want[c * pw * ph + i] = (plane[i] * n.scale - n.mean[c]) * inv;
      }
      assert.deepEqual(Array.from(got.data), Array.from(want), `${w}x${h}`);
    }
  });
});
