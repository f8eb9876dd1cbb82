import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import {
  binaryPq, bootstrapIntervals, centroids, classDetectionCounts, classificationF1, datasetMetrics, detectionCounts,
  detectionF1, matchInstances, pairCentroids, mulberry32, percentile, pqFromCounts, rSquared,
  tileStats, type TileStats,
} from '../bridge/eval/metrics';
import { erodeLabels } from '../bridge/eval/oracle';

const EPS = 1e-12;
const map = (rows: number[][]) => Int32Array.from(rows.flat());
const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < EPS, `${what}: ${actual} != ${expected}`);

// Tile 1, 8x4. GT instances 1, 2, 3; predicted instances 5, 6, 7, 8.
const GT1 = map([
  [1, 1, 0, 0, 2, 2, 2, 2],
  [1, 1, 0, 0, 2, 2, 2, 2],
  [0, 0, 0, 0, 0, 0, 0, 0],
  [3, 3, 3, 3, 0, 0, 0, 0],
]);
const PRED1 = map([
  [5, 5, 0, 0, 6, 6, 0, 0],
  [5, 5, 0, 0, 6, 6, 0, 0],
  [0, 0, 0, 0, 0, 0, 0, 8],
  [0, 7, 7, 7, 0, 0, 0, 8],
]);
// By hand:
//   GT1 (4 px) vs P5 (4 px): intersection 4, union 4 -> IoU 1        -> TP
//   GT2 (8 px) vs P6 (4 px): intersection 4, union 8 -> IoU 0.5      -> NOT a match (needs > 0.5): FN 2, FP 6
//   GT3 (4 px) vs P7 (3 px): intersection 3, union 4 -> IoU 0.75     -> TP
//   P8 (2 px) touches no GT                                          -> FP
//   TP = 2, FP = 2, FN = 1, sum IoU = 1.75
//   DQ = 2 / (2 + 0.5*2 + 0.5*1) = 2 / 3.5 = 4/7;  SQ = 1.75 / 2 = 0.875;  PQ = 4/7 * 7/8 = 0.5
// Classes (0 = A, 1 = B): GT 1:A 2:B 3:A; predictions 5:A 6:B 7:B 8:A.
//   class A: GT {1, 3}, pred {5, 8}: TP 1-5 (IoU 1); 3-7 differ in class -> FN 3; FP 8.  TP1 FP1 FN1
//            DQ = 1/(1 + 0.5 + 0.5) = 0.5, SQ = 1, PQ = 0.5.  counts true 2, pred 2
//   class B: GT {2}, pred {6, 7}: 2-6 IoU 0.5 no match.  TP0 FP2 FN1 -> PQ = DQ = SQ = 0. counts true 1, pred 2
const GT1_CLASS = new Map([[1, 0], [2, 1], [3, 0]]);
const PRED1_CLASS = new Map([[5, 0], [6, 1], [7, 1], [8, 0]]);

// Tile 2, 4x2. GT 1 (class B, 4 px), GT 2 (class A, 2 px); prediction 9 (class B, 5 px) covers GT 1 and one more pixel.
const GT2 = map([
  [1, 1, 0, 2],
  [1, 1, 0, 2],
]);
const PRED2 = map([
  [9, 9, 9, 0],
  [9, 9, 0, 0],
]);
// By hand: GT1 vs P9: intersection 4, union 5 -> IoU 0.8 -> TP; GT2 -> FN.
//   binary: TP1 FP0 FN1: DQ = 1/1.5 = 2/3, SQ = 0.8, PQ = 8/15
//   class A: TP0 FP0 FN1 (PQ 0); class B: TP1 (IoU 0.8) FP0 FN0 (PQ 0.8). counts A true 1 pred 0; B true 1 pred 1
const GT2_CLASS = new Map([[1, 1], [2, 0]]);
const PRED2_CLASS = new Map([[9, 1]]);

// Tile 3, 2x2: nothing in GT, nothing predicted (skipped by bPQ; counts 0/0 enter R²).
const EMPTY = new Int32Array(4);

const lookup = (m: Map<number, number>) => (id: number) => m.get(id) ?? -1;

function handTiles(): TileStats[] {
  return [
    tileStats('t1', GT1, lookup(GT1_CLASS), PRED1, lookup(PRED1_CLASS), 2),
    tileStats('t2', GT2, lookup(GT2_CLASS), PRED2, lookup(PRED2_CLASS), 2),
    tileStats('t3', EMPTY, lookup(new Map()), EMPTY, lookup(new Map()), 2),
  ];
}

describe('eval metrics: matching and PQ (hand-made maps)', () => {
  it('matches at IoU > 0.5 only; IoU exactly 0.5 is not a match', () => {
    const m = matchInstances(GT1, PRED1);
    assert.deepEqual(m.tp, [{ gt: 1, pred: 5, iou: 1 }, { gt: 3, pred: 7, iou: 0.75 }]);
    assert.deepEqual(m.fp, [6, 8]);
    assert.deepEqual(m.fn, [2]);
  });

  it('binary PQ/DQ/SQ of tile 1: DQ 4/7, SQ 0.875, PQ 0.5', () => {
    const r = binaryPq(GT1, PRED1);
    assert.deepEqual([r.tp, r.fp, r.fn, r.sumIoU], [2, 2, 1, 1.75]);
    assert.equal(r.DQ, 4 / 7);
    assert.equal(r.SQ, 0.875);
    close(r.PQ, 0.5, 'PQ');
  });

  it('binary PQ of tile 2: DQ 2/3, SQ 0.8, PQ 8/15', () => {
    const r = binaryPq(GT2, PRED2);
    assert.deepEqual([r.tp, r.fp, r.fn], [1, 0, 1]);
    close(r.DQ, 2 / 3, 'DQ');
    close(r.SQ, 0.8, 'SQ');
    close(r.PQ, 8 / 15, 'PQ');
  });

  it('edge cases: nothing at all is undefined; no TP is 0; identical maps are 1', () => {
    const e = pqFromCounts({ tp: 0, fp: 0, fn: 0, sumIoU: 0 });
    assert.ok(Number.isNaN(e.PQ) && Number.isNaN(e.DQ) && Number.isNaN(e.SQ));
    assert.deepEqual(pqFromCounts({ tp: 0, fp: 3, fn: 1, sumIoU: 0 }), { PQ: 0, DQ: 0, SQ: 0 });
    const same = binaryPq(GT1, GT1);
    assert.deepEqual([same.PQ, same.DQ, same.SQ], [1, 1, 1]);
    assert.throws(() => matchInstances(GT1, GT2), /differ in size/);
  });

  it('per-tile class statistics of tile 1', () => {
    const s = tileStats('t1', GT1, lookup(GT1_CLASS), PRED1, lookup(PRED1_CLASS), 2);
    assert.deepEqual(s.binary, { tp: 2, fp: 2, fn: 1, sumIoU: 1.75 });
    assert.deepEqual(s.perClass[0], { tp: 1, fp: 1, fn: 1, sumIoU: 1, trueCount: 2, predCount: 2 });
    assert.deepEqual(s.perClass[1], { tp: 0, fp: 2, fn: 1, sumIoU: 0, trueCount: 1, predCount: 2 });
  });

  it('instances of unknown class (-1) count for the binary metrics only', () => {
    const s = tileStats('t1', GT1, () => -1, PRED1, lookup(PRED1_CLASS), 2);
    assert.deepEqual(s.binary, { tp: 2, fp: 2, fn: 1, sumIoU: 1.75 });
    assert.deepEqual(s.perClass[0], { tp: 0, fp: 2, fn: 0, sumIoU: 0, trueCount: 0, predCount: 2 });
  });
});

describe('eval metrics: data set aggregation', () => {
  it('bPQ is the mean of per-tile PQ, empty tiles skipped', () => {
    const m = datasetMetrics(handTiles(), 2);
    assert.equal(m.bTiles, 2);
    close(m.bPQ, (0.5 + 8 / 15) / 2, 'bPQ'); // 31/60
    close(m.bDQ, (4 / 7 + 2 / 3) / 2, 'bDQ');
    close(m.bSQ, (0.875 + 0.8) / 2, 'bSQ');
  });

  it('per-class PQ sums TP/FP/FN/IoU over tiles before dividing (not a mean of per-tile PQ)', () => {
    const m = datasetMetrics(handTiles(), 2);
    // class A: tile1 TP1 FP1 FN1 IoU1 + tile2 FN1 -> TP1 FP1 FN2: DQ = 1/(1+0.5+1) = 0.4, SQ = 1, PQ = 0.4
    //          (the mean of per-tile PQ would be (0.5 + 0)/2 = 0.25)
    const a = m.perClass[0];
    assert.deepEqual([a.tp, a.fp, a.fn, a.sumIoU], [1, 1, 2, 1]);
    assert.equal(a.DQ, 0.4);
    assert.equal(a.SQ, 1);
    assert.equal(a.PQ, 0.4);
    // class B: tile1 TP0 FP2 FN1 + tile2 TP1 (0.8) -> TP1 FP2 FN1: DQ = 1/2.5 = 0.4, SQ = 0.8, PQ = 0.32
    const b = m.perClass[1];
    assert.deepEqual([b.tp, b.fp, b.fn, b.sumIoU], [1, 2, 1, 0.8]);
    assert.equal(b.DQ, 0.4);
    assert.equal(b.SQ, 0.8);
    close(b.PQ, 0.32, 'PQ_B');
    close(m.mPQ, (0.4 + 0.32) / 2, 'mPQ'); // 0.36
  });

  it('R² of per-tile counts per class', () => {
    const m = datasetMetrics(handTiles(), 2);
    // class A: true [2, 1, 0], pred [2, 0, 0]; mean 1, SS_tot = 1 + 0 + 1 = 2, SS_res = 0 + 1 + 0 = 1 -> R² = 0.5
    assert.equal(m.perClass[0].R2, 0.5);
    // class B: true [1, 1, 0], pred [2, 1, 0]; mean 2/3, SS_tot = 1/9 + 1/9 + 4/9 = 2/3, SS_res = 1 -> R² = 1 - 1.5 = -0.5
    close(m.perClass[1].R2, -0.5, 'R2_B');
  });

  it('R² by hand', () => {
    // true [1, 2, 3, 4], pred [1, 2, 3, 5]: mean 2.5, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5, SS_res = 1 -> 0.8
    close(rSquared([1, 2, 3, 4], [1, 2, 3, 5]), 0.8, 'R2');
    assert.equal(rSquared([1, 2, 3], [1, 2, 3]), 1);
    // constant truth (sklearn force_finite): 1 if perfect, else 0
    assert.equal(rSquared([3, 3], [3, 3]), 1);
    assert.equal(rSquared([3, 3], [3, 4]), 0);
    assert.ok(Number.isNaN(rSquared([], [])));
    // predicting the mean gives 0; worse than the mean is negative
    assert.equal(rSquared([0, 2], [1, 1]), 0);
    assert.equal(rSquared([0, 2], [2, 0]), -3);
  });
});

/** Synthetic per-tile statistics with some spread, from a seeded generator. */
function syntheticTiles(n: number, seed: number): TileStats[] {
  const r = mulberry32(seed);
  const int = (k: number) => Math.floor(r() * k);
  return Array.from({ length: n }, (_, i) => {
    const perClass = [0, 1, 2].map(() => {
      const tp = int(20);
      const fp = int(6);
      const fn = int(6);
      return { tp, fp, fn, sumIoU: tp * (0.6 + 0.3 * r()), trueCount: tp + fn, predCount: tp + fp };
    });
    const binary = {
      tp: perClass.reduce((s, c) => s + c.tp, 0) + int(3),
      fp: perClass.reduce((s, c) => s + c.fp, 0),
      fn: perClass.reduce((s, c) => s + c.fn, 0),
      sumIoU: 0,
    };
    binary.sumIoU = binary.tp * (0.65 + 0.25 * r());
    return { id: `s${i}`, binary, perClass };
  });
}

describe('eval metrics: detection F1 (centroids within a radius)', () => {
  it('centroids are the mean pixel coordinates, in id order', () => {
    assert.deepEqual(centroids(GT1, 8), [{ id: 1, x: 0.5, y: 0.5 }, { id: 2, x: 5.5, y: 0.5 }, { id: 3, x: 1.5, y: 3 }]);
    assert.deepEqual(centroids(EMPTY, 2), []);
  });

  it('pairs by minimum total distance (not greedily), then keeps pairs within the radius', () => {
    // one row: GT at x = 0 and 3, predictions at x = 2 and 5. Greedy would take the closest pair (3, 2: 1 px)
    // and leave 0 and 5 (5 px) apart; the assignment takes (0, 2) and (3, 5), 2 px each.
    const gt = Int32Array.from([1, 0, 0, 2, 0, 0, 0, 0]);
    const pred = Int32Array.from([0, 0, 7, 0, 0, 9, 0, 0]);
    assert.deepEqual(detectionCounts(gt, pred, 8, 2.5), { tp: 2, fp: 0, fn: 0 });
    assert.deepEqual(detectionCounts(gt, pred, 8, 1.5), { tp: 0, fp: 2, fn: 2 });
    assert.deepEqual(detectionCounts(gt, pred, 8, 2), { tp: 2, fp: 0, fn: 0 }, 'a pair exactly at the radius counts');
  });

  it('of the hand-made tile 1: all three nuclei found within 1.5 px; GT 2 (the centroid of its prediction 1 px off) lost at 0.75 px', () => {
    // GT 1 (0.5, 0.5) - P5 (0.5, 0.5): 0; GT 2 (5.5, 0.5) - P6 (4.5, 0.5): 1; GT 3 (1.5, 3) - P7 (2, 3): 0.5; P8 (7, 2.5) left.
    assert.deepEqual(detectionCounts(GT1, PRED1, 8, 1.5), { tp: 3, fp: 1, fn: 0 });
    assert.deepEqual(detectionCounts(GT1, PRED1, 8, 0.75), { tp: 2, fp: 2, fn: 1 });
    assert.deepEqual(detectionCounts(EMPTY, EMPTY, 2, 3), { tp: 0, fp: 0, fn: 0 });
    assert.deepEqual(detectionCounts(GT2, new Int32Array(8), 4, 3), { tp: 0, fp: 0, fn: 2 }, 'nothing predicted: every nucleus missed');
  });

  it('counts the same detections as HoVer-Net\'s pairing (scipy linear_sum_assignment, then the radius) on 200 random scenes', function () {
    if (spawnSync('/usr/bin/python3', ['-c', 'import scipy, numpy']).status !== 0) {
      console.log('      (skipped: /usr/bin/python3 cannot import scipy and numpy; .ci/run installs python3-scipy)');
      this.skip();
    }
    const rand = mulberry32(7);
    const cases = Array.from({ length: 200 }, () => {
      const W = 40, gt = new Int32Array(W * W), pred = new Int32Array(W * W);
      const g: number[][] = [], p: number[][] = [];
      for (const [map, pts] of [[gt, g], [pred, p]] as const) {
        const n = Math.floor(rand() * 30);
        for (let i = 0; i < n; i++) {
          const x = Math.floor(rand() * W), y = Math.floor(rand() * W);
          if (!map[y * W + x]) { map[y * W + x] = pts.length + 1; pts.push([x, y]); }
        }
      }
      const radius = 1 + rand() * 6;
      return { g, p, radius, tp: detectionCounts(gt, pred, W, radius).tp };
    });
    const py = [
      'import json, sys, numpy as np',
      'from scipy.optimize import linear_sum_assignment',
      'out = []',
      'for c in json.load(sys.stdin):',
      '    g = np.array(c["g"], float).reshape(-1, 2); p = np.array(c["p"], float).reshape(-1, 2)',
      '    if len(g) == 0 or len(p) == 0: out.append(0); continue',
      '    d = np.sqrt(((g[:, None, :] - p[None, :, :]) ** 2).sum(-1)); i, j = linear_sum_assignment(d)',
      '    out.append(int((d[i, j] <= c["radius"]).sum()))',
      'print(json.dumps(out))',
    ].join('\n');
    const r = spawnSync('/usr/bin/python3', ['-c', py], { input: JSON.stringify(cases), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const scipyTp = JSON.parse(r.stdout) as number[];
    assert.deepEqual(cases.map((c) => c.tp), scipyTp);
    assert.ok(scipyTp.filter((t) => t > 0).length > 100, 'most scenes have pairs');
  });

  it('F_c per class over the pairs (HoVer-Net weights 2, 2, 1, 1), by hand on tile 1', () => {
    // pairs at 1.5 px: (1, 5) A/A, (2, 6) B/B, (3, 7) true A called B; P8 (A) unpaired.
    //   A: TP 1, FP 0, FN 1, FP_d 1, FN_d 0 -> 2 / (2 + 2 + 1) = 0.4;  B: TP 1, FP 1 -> 2 / (2 + 2) = 0.5
    const m = pairCentroids(GT1, PRED1, 8, 1.5);
    assert.deepEqual(m.pairs, [[1, 5], [2, 6], [3, 7]]);
    const c = classDetectionCounts(m, lookup(GT1_CLASS), lookup(PRED1_CLASS), 2);
    assert.deepEqual(c, [{ tp: 1, fp: 0, fn: 1, fpd: 1, fnd: 0 }, { tp: 1, fp: 1, fn: 0, fpd: 0, fnd: 0 }]);
    close(classificationF1(c[0]), 0.4, 'Fc A');
    close(classificationF1(c[1]), 0.5, 'Fc B');
    // a true nucleus of unknown class (-1) leaves F_c alone; a class that never occurs is undefined
    const unknown = classDetectionCounts(m, (id) => (id === 3 ? -1 : lookup(GT1_CLASS)(id)), lookup(PRED1_CLASS), 2);
    assert.deepEqual(unknown[0], { tp: 1, fp: 0, fn: 0, fpd: 1, fnd: 0 });
    assert.deepEqual(unknown[1], { tp: 1, fp: 0, fn: 0, fpd: 0, fnd: 0 });
    assert.ok(Number.isNaN(classificationF1({ tp: 0, fp: 0, fn: 0, fpd: 0, fnd: 0 })));
    const stats = [tileStats('t1', GT1, lookup(GT1_CLASS), PRED1, lookup(PRED1_CLASS), 2, { width: 8, radius: 1.5 })];
    const dm = datasetMetrics(stats, 2);
    close(dm.perClass[0].Fc, 0.4, 'dataset Fc A');
    close(dm.perClass[1].Fc, 0.5, 'dataset Fc B');
    assert.ok(Number.isNaN(datasetMetrics(handTiles(), 2).perClass[0].Fc), 'without detection counts: undefined');
  });

  it('F_d sums counts over tiles: 2 TP / (2 TP + FP + FN); undefined without any instance', () => {
    const stats = [
      tileStats('t1', GT1, lookup(GT1_CLASS), PRED1, lookup(PRED1_CLASS), 2, { width: 8, radius: 1.5 }),
      tileStats('t2', GT2, lookup(GT2_CLASS), PRED2, lookup(PRED2_CLASS), 2, { width: 4, radius: 1.5 }),
      tileStats('t3', EMPTY, lookup(new Map()), EMPTY, lookup(new Map()), 2, { width: 2, radius: 1.5 }),
    ];
    // t2: GT 1 (0.5, 0.5) - P9 (0.8, 0.4): TP; GT 2 (3, 0.5) FN.  In all: TP 4, FP 1, FN 1.
    const m = datasetMetrics(stats, 2);
    assert.deepEqual(m.detection, { tp: 4, fp: 1, fn: 1 });
    close(m.Fd, 8 / 10, 'Fd');
    close(m.precision, 4 / 5, 'precision');
    close(m.recall, 4 / 5, 'recall');
    assert.ok(Number.isNaN(datasetMetrics(handTiles(), 2).Fd), 'no detection counts asked for: undefined');
    assert.ok(Number.isNaN(detectionF1({ tp: 0, fp: 0, fn: 0 }).F1));
    assert.equal(detectionF1({ tp: 0, fp: 3, fn: 0 }).F1, 0);
    const b = bootstrapIntervals(stats, 2, { iterations: 200, seed: 1 });
    assert.ok(b.Fd[0] <= m.Fd && m.Fd <= b.Fd[1], `Fd ${m.Fd} in ${b.Fd}`);
  });
});

describe('eval metrics: bootstrap intervals', () => {
  it('percentile uses linear interpolation (numpy default)', () => {
    assert.equal(percentile([4, 1, 3, 2], 50), 2.5);
    assert.equal(percentile(Array.from({ length: 101 }, (_, i) => i), 2.5), 2.5);
    assert.equal(percentile([1, NaN, 2], 100), 2);
    assert.ok(Number.isNaN(percentile([NaN], 50)));
  });

  it('is deterministic for a seed and changes with the seed', () => {
    const tiles = syntheticTiles(40, 7);
    const a = bootstrapIntervals(tiles, 3, { iterations: 300, seed: 42 });
    const b = bootstrapIntervals(tiles, 3, { iterations: 300, seed: 42 });
    const c = bootstrapIntervals(tiles, 3, { iterations: 300, seed: 43 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('contains the point estimate of every metric and is ordered', () => {
    const tiles = syntheticTiles(60, 11);
    const m = datasetMetrics(tiles, 3);
    const ci = bootstrapIntervals(tiles, 3, { iterations: 1000, seed: 1 });
    const check = (what: string, v: number, [lo, hi]: [number, number]) => {
      assert.ok(lo <= hi, `${what}: [${lo}, ${hi}] not ordered`);
      assert.ok(lo <= v && v <= hi, `${what}: ${v} outside [${lo}, ${hi}]`);
      assert.ok(hi - lo > 0, `${what}: empty interval`);
    };
    check('bPQ', m.bPQ, ci.bPQ);
    check('bDQ', m.bDQ, ci.bDQ);
    check('bSQ', m.bSQ, ci.bSQ);
    check('mPQ', m.mPQ, ci.mPQ);
    for (let c = 0; c < 3; c++) {
      for (const k of ['PQ', 'DQ', 'SQ', 'R2'] as const) check(`class ${c} ${k}`, m.perClass[c][k], ci.perClass[c][k]);
    }
  });

  it('identical tiles give a zero-width interval at the point estimate', () => {
    const t = handTiles()[0];
    const tiles = [t, t, t, t];
    const m = datasetMetrics(tiles, 2);
    const ci = bootstrapIntervals(tiles, 2, { iterations: 50, seed: 3 });
    assert.deepEqual(ci.bPQ, [m.bPQ, m.bPQ]);
    assert.deepEqual(ci.perClass[0].PQ, [m.perClass[0].PQ, m.perClass[0].PQ]);
  });
});

describe('eval metrics: properties', () => {
  const labelMap = fc.integer({ min: 1, max: 6 }).chain((w) =>
    fc.integer({ min: 1, max: 6 }).chain((h) =>
      fc.tuple(fc.constant(w), fc.constant(h),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: w * h, maxLength: w * h }),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: w * h, maxLength: w * h }))));

  it('TP + FN = #GT, TP + FP = #pred, swapping the maps swaps FP and FN, values in [0, 1]', () => {
    fc.assert(fc.property(labelMap, ([, , g, p]) => {
      const gt = Int32Array.from(g);
      const pred = Int32Array.from(p);
      const m = matchInstances(gt, pred);
      assert.equal(m.tp.length + m.fn.length, m.gtArea.size);
      assert.equal(m.tp.length + m.fp.length, m.predArea.size);
      const s = matchInstances(pred, gt);
      assert.deepEqual(s.fp, m.fn);
      assert.deepEqual(s.fn, m.fp);
      const r = binaryPq(gt, pred);
      if (!Number.isNaN(r.PQ)) assert.ok(r.PQ >= 0 && r.PQ <= 1 && r.PQ <= r.DQ + EPS && r.PQ <= r.SQ + EPS);
      const self = binaryPq(gt, gt);
      if (m.gtArea.size > 0) assert.equal(self.PQ, 1);
    }), { numRuns: 200, seed: 5 });
  });
});

describe('eval oracle: erosion', () => {
  it('erodes by one pixel (4-neighbourhood), not along the image border', () => {
    const e = erodeLabels(map([
      [0, 0, 0, 0, 0],
      [0, 1, 1, 1, 0],
      [0, 1, 1, 1, 0],
      [0, 1, 1, 1, 0],
      [0, 0, 0, 0, 2],
    ]), 5, 5);
    assert.deepEqual(Array.from(e), [
      0, 0, 0, 0, 0,
      0, 0, 0, 0, 0,
      0, 0, 1, 0, 0,
      0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, // the 1-px instance touches background on its left
    ]);
    // pixels outside the image count as the same label: a full-width strip is kept
    assert.deepEqual(Array.from(erodeLabels(map([[1, 1, 1]]), 3, 1)), [1, 1, 1]);
    // two touching instances erode each other
    assert.deepEqual(Array.from(erodeLabels(map([[1, 1, 2, 2]]), 4, 1)), [1, 0, 0, 2]);
  });
});
