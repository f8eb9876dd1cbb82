/**
 * Evaluation metrics for instance segmentation + classification of nuclei. Pure functions, no I/O.
 *
 * CONVENTIONS (exactly what is computed)
 *
 * Matching (per tile). Predicted and ground-truth (GT) instance maps are Int32Array label maps of the
 * same size, 0 = background, every other value one instance. A GT instance g and a predicted instance
 * p are a true positive (TP) pair when IoU(g, p) = |g ∩ p| / |g ∪ p| > 0.5 (strictly). Because the
 * instances of one map are disjoint, at most one partner can exceed 0.5, so this matching is unique
 * and needs no assignment step (HoVer-Net `get_fast_pq` with match_iou = 0.5). Unmatched predictions
 * are false positives (FP), unmatched GT instances false negatives (FN).
 *
 * Panoptic quality (seed paper appendix S5 / HoVer-Net):
 *   DQ = TP / (TP + 0.5 FP + 0.5 FN),   SQ = sum of IoU over TP pairs / TP,   PQ = DQ * SQ.
 * Computed exactly (no +1e-6 in the denominators as in HoVer-Net's code). When TP = 0 but FP + FN > 0,
 * DQ = SQ = PQ = 0 (the value HoVer-Net's epsilon gives). When TP = FP = FN = 0 the quantities are
 * undefined (NaN).
 *
 * bPQ (binary PQ, class ignored): PQ of every tile on its own, then the mean over tiles (HoVer-Net's
 * convention for bPQ). Tiles with neither GT nor predicted instances are skipped (undefined PQ), not
 * counted as 0 and not as 1. bDQ and bSQ are reported the same way (per-tile means, skipped alike).
 *
 * Per-class PQ/DQ/SQ ("multi-class PQ" of PanNuke / CoNIC): for class c, GT is restricted to class-c
 * instances and predictions to instances predicted as class c; TP/FP/FN and the sum of IoU are
 * summed over ALL tiles of the dataset, and DQ/SQ/PQ are computed once from those sums. Because the
 * IoU of a pair depends only on the two masks, this equals: TP_c = matched pairs whose GT and
 * prediction are both class c, FP_c = class-c predictions not in such a pair, FN_c = class-c GT
 * instances not in such a pair. mPQ = mean over the evaluated classes of per-class PQ (classes whose
 * PQ is undefined — no GT and no prediction of that class anywhere — are left out of the mean).
 * Instances whose class is unknown (class index -1) count for the binary metrics only.
 *
 * R² of counts (CoNIC): for class c, x_t = number of GT class-c instances in tile t, y_t = number of
 * predicted class-c instances; R² = 1 - SS_res / SS_tot with SS_res = Σ (x_t - y_t)²,
 * SS_tot = Σ (x_t - mean(x))² (sklearn `r2_score(true, pred)`). If SS_tot = 0 the result is 1 when
 * SS_res = 0 and 0 otherwise (sklearn's force_finite). Undefined (NaN) with no tiles.
 *
 * Detection F1 (F_d of HoVer-Net, Graham et al. 2019; its `pair_coordinates` + `run_nuclei_type_stat`): each
 * instance is reduced to its centroid (mean pixel coordinate); GT and predicted centroids of a tile are paired
 * by a minimum-total-distance assignment over all of them (Hungarian algorithm, as scipy's linear_sum_assignment)
 * and a pair within `radius` pixels (12 px at 40x = 3 µm, HoVer-Net's) is a detection TP; the rest are FP / FN.
 * F_d = 2 TP / (2 TP + FP + FN) over TP/FP/FN summed over all tiles; precision and recall alike. Unlike DQ it
 * does not ask for the outline to overlap by IoU > 0.5: it tells "found the nucleus" from "drew it well".
 * Classification F1 per class t (F_c, HoVer-Net's `_f1_type` with weights 2, 2, 1, 1), over the same pairs: among
 * paired nuclei whose true or predicted class is t, TP_t = both t, FP_t = predicted t only, FN_t = true t only;
 * FP_d / FN_d = unpaired predictions / true nuclei of class t; F_c = 2 TP_t / (2 TP_t + 2 FP_t + 2 FN_t + FP_d + FN_d),
 * counts summed over tiles. Pairs with a true nucleus of unknown class do not enter F_c.
 *
 * Bootstrap CIs: tiles are resampled with replacement (same number of tiles) `iterations` times
 * (default 1000) with a seeded PRNG (mulberry32), every metric is recomputed on each resample with
 * the conventions above, and the interval is the [2.5, 97.5] percentiles (linear interpolation,
 * numpy's default) of the finite replicate values.
 */
// munkres ships CommonJS, but its types are declared as an ES module's, so only the types come by import.
const { munkres } = require('munkres') as typeof import('munkres', { with: { 'resolution-mode': 'import' } });

/** Matching of one tile. */
export interface TpPair {
  gt: number;
  pred: number;
  iou: number;
}

export interface TileMatch {
  tp: TpPair[];
  /** Predicted instance ids without a match. */
  fp: number[];
  /** GT instance ids without a match. */
  fn: number[];
  /** Pixel area of every GT / predicted instance (by id). */
  gtArea: Map<number, number>;
  predArea: Map<number, number>;
}

/** Match predicted to GT instances at IoU > 0.5. Ids are returned in ascending order. */
export function matchInstances(gt: Int32Array, pred: Int32Array): TileMatch {
  if (gt.length !== pred.length) throw new Error(`label maps differ in size: GT ${gt.length} vs prediction ${pred.length} pixels`);
  const gtArea = new Map<number, number>();
  const predArea = new Map<number, number>();
  // Intersections keyed by compact indices: gIndex * nPred + pIndex is exact below 2^53.
  const gIndex = new Map<number, number>();
  const pIndex = new Map<number, number>();
  const gIds: number[] = [];
  const pIds: number[] = [];
  for (let i = 0; i < gt.length; i++) {
    const g = gt[i];
    if (g !== 0) {
      gtArea.set(g, (gtArea.get(g) ?? 0) + 1);
      if (!gIndex.has(g)) { gIndex.set(g, gIds.length); gIds.push(g); }
    }
    const p = pred[i];
    if (p !== 0) {
      predArea.set(p, (predArea.get(p) ?? 0) + 1);
      if (!pIndex.has(p)) { pIndex.set(p, pIds.length); pIds.push(p); }
    }
  }
  const nP = pIds.length;
  const inter = new Map<number, number>();
  for (let i = 0; i < gt.length; i++) {
    const g = gt[i];
    const p = pred[i];
    if (g === 0 || p === 0) continue;
    const key = gIndex.get(g)! * nP + pIndex.get(p)!;
    inter.set(key, (inter.get(key) ?? 0) + 1);
  }
  const tp: TpPair[] = [];
  const gMatched = new Set<number>();
  const pMatched = new Set<number>();
  for (const [key, n] of inter) {
    const g = gIds[Math.floor(key / nP)];
    const p = pIds[key % nP];
    const union = gtArea.get(g)! + predArea.get(p)! - n;
    const iou = n / union;
    if (iou > 0.5) {
      // Cannot happen for disjoint instances; guards against malformed input.
      if (gMatched.has(g) || pMatched.has(p)) throw new Error(`non-unique match at IoU > 0.5 (GT ${g}, prediction ${p})`);
      tp.push({ gt: g, pred: p, iou });
      gMatched.add(g);
      pMatched.add(p);
    }
  }
  tp.sort((a, b) => a.gt - b.gt);
  const fp = pIds.filter((p) => !pMatched.has(p)).sort((a, b) => a - b);
  const fn = gIds.filter((g) => !gMatched.has(g)).sort((a, b) => a - b);
  return { tp, fp, fn, gtArea, predArea };
}

/** Sufficient statistics for PQ. */
export interface PqCounts {
  tp: number;
  fp: number;
  fn: number;
  /** Sum of IoU over the TP pairs. */
  sumIoU: number;
}

export interface Pq {
  PQ: number;
  DQ: number;
  SQ: number;
}

export function pqFromCounts(c: PqCounts): Pq {
  const { tp, fp, fn, sumIoU } = c;
  if (tp === 0 && fp === 0 && fn === 0) return { PQ: NaN, DQ: NaN, SQ: NaN };
  if (tp === 0) return { PQ: 0, DQ: 0, SQ: 0 };
  const DQ = tp / (tp + 0.5 * fp + 0.5 * fn);
  const SQ = sumIoU / tp;
  return { PQ: DQ * SQ, DQ, SQ };
}

/** Detection counts of one tile (F_d, see CONVENTIONS). */
export interface DetectionCounts {
  tp: number;
  fp: number;
  fn: number;
}

/** Centroid (mean pixel x, y) of every instance of a label map of the given width, in ascending id order. */
export function centroids(labels: Int32Array, width: number): Array<{ id: number; x: number; y: number }> {
  const acc = new Map<number, [number, number, number]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === 0) continue;
    const a = acc.get(l);
    const x = i % width, y = (i - x) / width;
    if (a) { a[0] += x; a[1] += y; a[2]++; } else acc.set(l, [x, y, 1]);
  }
  return [...acc.entries()].sort((a, b) => a[0] - b[0]).map(([id, [sx, sy, n]]) => ({ id, x: sx / n, y: sy / n }));
}

/** Classification counts of one class over centroid pairs (F_c, see CONVENTIONS). */
export interface ClassDetectionCounts {
  tp: number;
  fp: number;
  fn: number;
  /** Unpaired predictions / true nuclei of the class. */
  fpd: number;
  fnd: number;
}

export interface CentroidPairing {
  /** [GT id, predicted id] of every pair within the radius. */
  pairs: Array<[number, number]>;
  gtIds: number[];
  predIds: number[];
}

/** Pair GT and predicted centroids: minimum total distance over all of them, then pairs within `radius` (HoVer-Net's pair_coordinates). */
export function pairCentroids(gt: Int32Array, pred: Int32Array, width: number, radius: number): CentroidPairing {
  const g = centroids(gt, width);
  const p = centroids(pred, width);
  const pairs: Array<[number, number]> = [];
  if (g.length > 0 && p.length > 0) {
    const cost = g.map((a) => p.map((b) => Math.hypot(a.x - b.x, a.y - b.y)));
    for (const [i, j] of munkres(cost)) if (cost[i][j] <= radius) pairs.push([g[i].id, p[j].id]);
  }
  return { pairs, gtIds: g.map((c) => c.id), predIds: p.map((c) => c.id) };
}

/** Detection TP / FP / FN of a pairing: pairs, unpaired predictions, unpaired true nuclei. */
function pairingCounts(m: CentroidPairing): DetectionCounts {
  return { tp: m.pairs.length, fp: m.predIds.length - m.pairs.length, fn: m.gtIds.length - m.pairs.length };
}

/** Detection TP / FP / FN of one tile (F_d). */
export function detectionCounts(gt: Int32Array, pred: Int32Array, width: number, radius: number): DetectionCounts {
  return pairingCounts(pairCentroids(gt, pred, width, radius));
}

/** A class index of the class list (0..nClasses-1), not -1 (unknown) or anything else. */
const validClass = (c: number, nClasses: number): boolean => Number.isInteger(c) && c >= 0 && c < nClasses;

/** Per-class classification counts over a pairing; class index -1 = unknown. */
export function classDetectionCounts(
  m: CentroidPairing, gtClass: (id: number) => number, predClass: (id: number) => number, nClasses: number,
): ClassDetectionCounts[] {
  const out = Array.from({ length: nClasses }, () => ({ tp: 0, fp: 0, fn: 0, fpd: 0, fnd: 0 }));
  const valid = (c: number) => validClass(c, nClasses);
  const pairedGt = new Set<number>(), pairedPred = new Set<number>();
  for (const [g, p] of m.pairs) {
    pairedGt.add(g); pairedPred.add(p);
    const cg = gtClass(g), cp = predClass(p);
    if (!valid(cg)) continue;
    if (cg === cp) out[cg].tp++;
    else { out[cg].fn++; if (valid(cp)) out[cp].fp++; }
  }
  for (const g of m.gtIds) { const c = gtClass(g); if (!pairedGt.has(g) && valid(c)) out[c].fnd++; }
  for (const p of m.predIds) { const c = predClass(p); if (!pairedPred.has(p) && valid(c)) out[c].fpd++; }
  return out;
}

/** HoVer-Net's classification F1 of one class (weights 2, 2, 1, 1); NaN when the class never occurs. */
export function classificationF1(c: ClassDetectionCounts): number {
  const d = 2 * c.tp + 2 * c.fp + 2 * c.fn + c.fpd + c.fnd;
  return d > 0 ? (2 * c.tp) / d : NaN;
}

/** F1, precision and recall of summed detection counts (NaN when undefined). */
export function detectionF1(c: DetectionCounts): { F1: number; precision: number; recall: number } {
  return {
    F1: c.tp + c.fp + c.fn > 0 ? (2 * c.tp) / (2 * c.tp + c.fp + c.fn) : NaN,
    precision: c.tp + c.fp > 0 ? c.tp / (c.tp + c.fp) : NaN,
    recall: c.tp + c.fn > 0 ? c.tp / (c.tp + c.fn) : NaN,
  };
}

/** Binary PQ of one tile (classes ignored). */
export function binaryPq(gt: Int32Array, pred: Int32Array): Pq & PqCounts {
  const m = matchInstances(gt, pred);
  const counts = { tp: m.tp.length, fp: m.fp.length, fn: m.fn.length, sumIoU: sum(m.tp.map((t) => t.iou)) };
  return { ...counts, ...pqFromCounts(counts) };
}

/** What one tile contributes to every metric; the bootstrap resamples these. */
export interface TileStats {
  id: string;
  binary: PqCounts;
  /** Indexed like the class list: PQ counts of class c and the instance counts for R². */
  perClass: Array<PqCounts & { trueCount: number; predCount: number }>;
  /** Centroid detection counts (F_d) and, indexed like the class list, classification counts (F_c), when asked for. */
  detection?: DetectionCounts & { perClass: ClassDetectionCounts[] };
}

/**
 * Statistics of one tile. `gtClass(id)` / `predClass(id)` give the class index (0..nClasses-1) of an
 * instance, or -1 when unknown (then it counts for the binary metrics only).
 */
export function tileStats(
  id: string,
  gt: Int32Array,
  gtClass: (instance: number) => number,
  pred: Int32Array,
  predClass: (instance: number) => number,
  nClasses: number,
  detection?: { width: number; radius: number },
): TileStats {
  const m = matchInstances(gt, pred);
  const perClass = Array.from({ length: nClasses }, () => ({ tp: 0, fp: 0, fn: 0, sumIoU: 0, trueCount: 0, predCount: 0 }));
  const valid = (c: number) => validClass(c, nClasses);
  for (const g of m.gtArea.keys()) { const c = gtClass(g); if (valid(c)) perClass[c].trueCount++; }
  for (const p of m.predArea.keys()) { const c = predClass(p); if (valid(c)) perClass[c].predCount++; }
  let sumIoU = 0;
  for (const t of m.tp) {
    sumIoU += t.iou;
    const cg = gtClass(t.gt);
    const cp = predClass(t.pred);
    if (valid(cg) && cg === cp) { perClass[cg].tp++; perClass[cg].sumIoU += t.iou; }
  }
  for (const s of perClass) { s.fn = s.trueCount - s.tp; s.fp = s.predCount - s.tp; }
  return {
    id, binary: { tp: m.tp.length, fp: m.fp.length, fn: m.fn.length, sumIoU }, perClass,
    ...(detection ? { detection: detectionStats(pairCentroids(gt, pred, detection.width, detection.radius), gtClass, predClass, nClasses) } : {}),
  };
}

function detectionStats(
  m: CentroidPairing, gtClass: (id: number) => number, predClass: (id: number) => number, nClasses: number,
): DetectionCounts & { perClass: ClassDetectionCounts[] } {
  return { ...pairingCounts(m), perClass: classDetectionCounts(m, gtClass, predClass, nClasses) };
}

/** Coefficient of determination of predicted vs true values (sklearn r2_score, force_finite). */
export function rSquared(trueValues: ArrayLike<number>, predValues: ArrayLike<number>): number {
  const n = trueValues.length;
  if (n !== predValues.length) throw new Error('rSquared: arrays differ in length');
  if (n === 0) return NaN;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += trueValues[i];
  mean /= n;
  let ssRes = 0;
  let ssTot = 0;
  for (let i = 0; i < n; i++) {
    ssRes += (trueValues[i] - predValues[i]) ** 2;
    ssTot += (trueValues[i] - mean) ** 2;
  }
  if (ssTot === 0) return ssRes === 0 ? 1 : 0;
  return 1 - ssRes / ssTot;
}

export interface ClassMetrics extends Pq, PqCounts {
  R2: number;
  /** Classification F1 over centroid pairs (HoVer-Net's F_c); NaN without detection counts. */
  Fc: number;
  trueCount: number;
  predCount: number;
}

export interface DatasetMetrics {
  /** Mean over tiles of per-tile binary PQ / DQ / SQ (empty tiles skipped). */
  bPQ: number;
  bDQ: number;
  bSQ: number;
  /** Tiles that entered the bPQ mean. */
  bTiles: number;
  mPQ: number;
  perClass: ClassMetrics[];
  /** Detection F1 (F_d) over the tiles that carry detection counts; NaN without any. */
  Fd: number;
  precision: number;
  recall: number;
  detection: DetectionCounts;
}

/** Point estimates over the given tiles (`order` picks tiles, with repeats, for the bootstrap). */
export function datasetMetrics(tiles: readonly TileStats[], nClasses: number, order?: ArrayLike<number>): DatasetMetrics {
  const n = order ? order.length : tiles.length;
  const at = (i: number) => tiles[order ? order[i] : i];
  let bPQ = 0, bDQ = 0, bSQ = 0, bTiles = 0;
  const acc = Array.from({ length: nClasses }, () => ({ tp: 0, fp: 0, fn: 0, sumIoU: 0, trueCount: 0, predCount: 0 }));
  const trueCounts = Array.from({ length: nClasses }, () => new Float64Array(n));
  const predCounts = Array.from({ length: nClasses }, () => new Float64Array(n));
  const det = { tp: 0, fp: 0, fn: 0 };
  const fc = Array.from({ length: nClasses }, () => ({ tp: 0, fp: 0, fn: 0, fpd: 0, fnd: 0 }));
  for (let i = 0; i < n; i++) {
    const t = at(i);
    if (t.detection) {
      det.tp += t.detection.tp; det.fp += t.detection.fp; det.fn += t.detection.fn;
      t.detection.perClass.forEach((d, c) => { const a = fc[c]; a.tp += d.tp; a.fp += d.fp; a.fn += d.fn; a.fpd += d.fpd; a.fnd += d.fnd; });
    }
    const b = pqFromCounts(t.binary);
    if (!Number.isNaN(b.PQ)) { bPQ += b.PQ; bDQ += b.DQ; bSQ += b.SQ; bTiles++; }
    for (let c = 0; c < nClasses; c++) {
      const s = t.perClass[c];
      const a = acc[c];
      a.tp += s.tp; a.fp += s.fp; a.fn += s.fn; a.sumIoU += s.sumIoU; a.trueCount += s.trueCount; a.predCount += s.predCount;
      trueCounts[c][i] = s.trueCount;
      predCounts[c][i] = s.predCount;
    }
  }
  const perClass: ClassMetrics[] = acc.map((a, c) => ({ ...a, ...pqFromCounts(a), R2: rSquared(trueCounts[c], predCounts[c]), Fc: classificationF1(fc[c]) }));
  const defined = perClass.map((m) => m.PQ).filter((v) => !Number.isNaN(v));
  return {
    bPQ: bTiles ? bPQ / bTiles : NaN,
    bDQ: bTiles ? bDQ / bTiles : NaN,
    bSQ: bTiles ? bSQ / bTiles : NaN,
    bTiles,
    mPQ: defined.length ? sum(defined) / defined.length : NaN,
    perClass,
    ...(() => { const f = detectionF1(det); return { Fd: f.F1, precision: f.precision, recall: f.recall }; })(),
    detection: det,
  };
}

/** mulberry32: small, fast, seeded 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Percentile (0..100) of the finite values, linear interpolation between order statistics (numpy default). */
export function percentile(values: ArrayLike<number>, p: number): number {
  const s = Array.from(values).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const h = (s.length - 1) * (p / 100);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

export type Interval = [number, number];

export interface ClassIntervals {
  Fc: Interval;
  PQ: Interval;
  DQ: Interval;
  SQ: Interval;
  R2: Interval;
}

export interface BootstrapIntervals {
  bPQ: Interval;
  bDQ: Interval;
  bSQ: Interval;
  mPQ: Interval;
  Fd: Interval;
  perClass: ClassIntervals[];
}

export interface BootstrapOptions {
  iterations?: number;
  seed?: number;
  /** Central coverage in percent (95 → [2.5, 97.5]). */
  level?: number;
}

export const BOOTSTRAP_DEFAULTS = { iterations: 1000, seed: 20261127, level: 95 } as const;

/** Percentile bootstrap intervals of every metric, resampling tiles with replacement. Deterministic for a seed. */
export function bootstrapIntervals(tiles: readonly TileStats[], nClasses: number, options: BootstrapOptions = {}): BootstrapIntervals {
  const iterations = options.iterations ?? BOOTSTRAP_DEFAULTS.iterations;
  const seed = options.seed ?? BOOTSTRAP_DEFAULTS.seed;
  const level = options.level ?? BOOTSTRAP_DEFAULTS.level;
  const lo = (100 - level) / 2;
  const hi = 100 - lo;
  const rand = mulberry32(seed);
  const n = tiles.length;
  const bPQ = new Float64Array(iterations), bDQ = new Float64Array(iterations), bSQ = new Float64Array(iterations);
  const mPQ = new Float64Array(iterations), Fd = new Float64Array(iterations);
  const cls = Array.from({ length: nClasses }, () => ({
    PQ: new Float64Array(iterations), DQ: new Float64Array(iterations), SQ: new Float64Array(iterations), R2: new Float64Array(iterations),
    Fc: new Float64Array(iterations),
  }));
  const order = new Int32Array(n);
  for (let b = 0; b < iterations; b++) {
    for (let i = 0; i < n; i++) order[i] = Math.floor(rand() * n);
    const m = datasetMetrics(tiles, nClasses, order);
    bPQ[b] = m.bPQ; bDQ[b] = m.bDQ; bSQ[b] = m.bSQ; mPQ[b] = m.mPQ; Fd[b] = m.Fd;
    for (let c = 0; c < nClasses; c++) {
      const pc = m.perClass[c];
      cls[c].PQ[b] = pc.PQ; cls[c].DQ[b] = pc.DQ; cls[c].SQ[b] = pc.SQ; cls[c].R2[b] = pc.R2; cls[c].Fc[b] = pc.Fc;
    }
  }
  const ci = (v: Float64Array): Interval => [percentile(v, lo), percentile(v, hi)];
  return {
    bPQ: ci(bPQ), bDQ: ci(bDQ), bSQ: ci(bSQ), mPQ: ci(mPQ), Fd: ci(Fd),
    perClass: cls.map((c) => ({ PQ: ci(c.PQ), DQ: ci(c.DQ), SQ: ci(c.SQ), R2: ci(c.R2), Fc: ci(c.Fc) })),
  };
}

function sum(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}
