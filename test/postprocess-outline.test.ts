import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { readNpy } from '../bridge/inference/npy';
import {
  keepLargestParts, outlineFactor, postprocessTile, refineLabels, ringArea,
  type PostprocessOptions, type TileMaps,
} from '../bridge/postprocess';
import { validateCard } from '../bridge/inference/card-validate';
import { resizePlane } from '../bridge/inference/preprocess';

const FIX = path.join(__dirname, '..', '..', 'test', 'fixtures', 'postprocess');

const OPTS: PostprocessOptions = {
  mode: 'cellpose', niter: 200, flowScale: 5, cellprobThreshold: 0, seedMinCount: 10, claimMinCount: 2,
  growIterations: 5, minSize: 8, fillHoles: true, maxSizeFraction: 0.4,
};

/** One round cell of radius r at (c, c) in a W x W tile: inward flows, cellprob = 2 (r - distance). */
function roundCell(W: number, r: number): TileMaps {
  const n = W * W, c = W / 2;
  const dy = new Float32Array(n), dx = new Float32Array(n), cellprob = new Float32Array(n);
  const typeLogits = new Float32Array(2 * n);
  for (let y = 0; y < W; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x, py = y + 0.5 - c, px = x + 0.5 - c, d = Math.hypot(py, px) || 1;
      dy[i] = (-5 * py) / d; dx[i] = (-5 * px) / d;
      cellprob[i] = 2 * (r - Math.hypot(py, px));
      typeLogits[i] = cellprob[i] > 0 ? -3 : 3;
      typeLogits[n + i] = -typeLogits[i];
    }
  }
  return { width: W, height: W, dy, dx, cellprob, typeLogits, typeChannels: 2, typeKind: 'logits' };
}

describe('outlines on the slide grid (postprocess/outline.ts)', () => {
  it('outlineFactor: the nearest whole read/model ratio from 1.5 up, at most 4', () => {
    assert.deepEqual([1, 1.02, 1.49, 1.5, 1.98, 2, 2.6, 3.4, 4, 8].map(outlineFactor), [1, 1, 1, 2, 2, 2, 3, 3, 4, 4]);
  });

  it('the upsampling refineLabels uses (resizePlane, no antialias) matches PyTorch interpolate(scale_factor=2, bilinear, align_corners=False)', () => {
    // torch: F.interpolate(torch.tensor([[[[0., 4.], [8., 12.]]]]), scale_factor=2, mode='bilinear', align_corners=False)
    const got = [...resizePlane(new Float32Array([0, 4, 8, 12]), 2, 2, 4, 4, false)];
    assert.deepEqual(got, [0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12]);
  });

  it('refineLabels equals the Python reference (refine_outlines) on a real model tile', () => {
    const cp = readNpy(path.join(FIX, 'outline_cellprob.npy'));
    const lab = readNpy(path.join(FIX, 'outline_labels.npy'));
    const want = readNpy(path.join(FIX, 'outline_fine.npy'));
    const [H, W] = lab.shape;
    assert.deepEqual(want.shape, [2 * H, 2 * W]);
    const fine = refineLabels(new Int32Array(lab.data as Int32Array), W, H, cp.data as Float32Array, 'logit', 2, -0.25);
    keepLargestParts(fine, 2 * W, 2 * H);
    let differ = 0, fg = 0;
    for (let i = 0; i < fine.length; i++) {
      if (fine[i] !== (want.data as Int32Array)[i]) differ++;
      if (fine[i] > 0) fg++;
    }
    assert.ok(fg > 15_000, `a real tile has many cell pixels (${fg})`);
    // float32 bilinear in a different order may flip a pixel lying exactly on the threshold
    assert.ok(differ <= 5, `${differ} of ${fine.length} fine pixels differ from the reference`);
  });

  it('postprocessTile with factor 2: the outline follows the cellprob contour in half-pixel steps', () => {
    const maps = roundCell(32, 6.3);
    const coarse = postprocessTile(maps, { ...OPTS, outlineThreshold: 0 }, undefined, 1);
    const fine = postprocessTile(maps, { ...OPTS, outlineThreshold: 0 }, undefined, 2);
    assert.equal(coarse.fine, undefined);
    assert.ok(fine.fine);
    assert.equal(fine.fine.factor, 2);
    assert.equal(fine.fine.labels.length, 64 * 64);
    assert.equal(coarse.cells.length, 1);
    assert.equal(fine.cells.length, 1);
    const exact = Math.PI * 6.3 * 6.3;
    const [a, b] = [coarse.cells[0], fine.cells[0]];
    // same cell, class and centroid; finer outline, area closer to the true disc
    assert.equal(a.classIndex, b.classIndex);
    assert.equal(a.centroidX, b.centroidX);
    assert.ok(Math.abs(b.area - exact) <= Math.abs(a.area - exact), `fine area ${b.area} vs coarse ${a.area}, disc ${exact.toFixed(1)}`);
    assert.ok(Math.abs(b.area - exact) / exact < 0.03, `fine area ${b.area} within 3 % of ${exact.toFixed(1)}`);
    assert.ok([...b.ring].every((v) => Math.abs(v * 2 - Math.round(v * 2)) < 1e-9), 'vertices on the half-pixel grid');
    assert.ok([...b.ring].some((v) => !Number.isInteger(v)), 'some vertices between model pixels');
    assert.ok(Math.abs(ringArea(b.ring) - b.area) < 1e-9, 'ring and area agree');
    assert.equal(b.ring.length > a.ring.length, true);
  });

  it('no refinement without outlineThreshold, without cellprob, or at factor 1', () => {
    const maps = roundCell(32, 6.3);
    assert.equal(postprocessTile(maps, OPTS, undefined, 2).fine, undefined);
    assert.equal(postprocessTile(maps, { ...OPTS, outlineThreshold: null }, undefined, 2).fine, undefined);
    assert.equal(postprocessTile({ ...maps, cellprob: undefined }, { ...OPTS, outlineThreshold: 0 }, undefined, 2).fine, undefined);
    const plain = postprocessTile(maps, OPTS, undefined, 2);
    assert.ok([...plain.cells[0].ring].every(Number.isInteger));
  });

  it('the card check: outlineThreshold is a number or null and needs a cellProbability output', () => {
    const card = JSON.parse(require('node:fs').readFileSync(path.join(__dirname, '..', '..', 'models', 'cellbridge-he-v2', 'card.json'), 'utf8'));
    assert.equal(typeof validateCard({ ...card, postprocess: { ...card.postprocess, outlineThreshold: null } }, 'x').name, 'string');
    assert.equal(typeof validateCard({ ...card, postprocess: { ...card.postprocess, outlineThreshold: -0.25 } }, 'x').name, 'string');
    assert.throws(() => validateCard({ ...card, postprocess: { ...card.postprocess, outlineThreshold: 'low' } }, 'x'), /outlineThreshold must be a number or null/);
    const { cellProbability: _, ...outputs } = card.outputs;
    assert.throws(() => validateCard({ ...card, outputs, postprocess: { ...card.postprocess, outlineThreshold: 0 } }, 'x'), /outlineThreshold needs outputs.cellProbability/);
  });

  it('the card check: meanCellprobThreshold (faint-cell filter) is a number or null and needs a cellProbability output', () => {
    const card = JSON.parse(require('node:fs').readFileSync(path.join(__dirname, '..', '..', 'models', 'cellbridge-he-v2', 'card.json'), 'utf8'));
    for (const v of [null, 0.9, -1]) assert.equal(validateCard({ ...card, postprocess: { ...card.postprocess, meanCellprobThreshold: v } }, 'x').name, card.name);
    assert.throws(() => validateCard({ ...card, postprocess: { ...card.postprocess, meanCellprobThreshold: '0.9' } }, 'x'), /meanCellprobThreshold must be a number or null/);
    const { cellProbability: _, ...outputs } = card.outputs;
    assert.throws(() => validateCard({ ...card, outputs, postprocess: { ...card.postprocess, outlineThreshold: null, meanCellprobThreshold: 0.9 } }, 'x'), /meanCellprobThreshold needs outputs.cellProbability/);
  });
});
