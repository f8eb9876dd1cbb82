/**
 * Label-map clean-up. Label maps are Int32Array, row-major [H][W], 0 = background.
 * All functions work in place on `labels`.
 */
import { scratchInt32 } from './scratch';

/** Maps the labels present to 1..N keeping their order (like np.unique(return_inverse)); returns N. */
export function renumber(labels: Int32Array): number {
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  if (max === 0) return 0;
  const map = new Int32Array(max + 1);
  for (let i = 0; i < labels.length; i++) map[labels[i]] = 1;
  let n = 0;
  for (let l = 1; l <= max; l++) if (map[l]) map[l] = ++n;
  map[0] = 0;
  for (let i = 0; i < labels.length; i++) labels[i] = map[labels[i]];
  return n;
}

/** Sets to 0 every pixel whose label l has drop[l] set (labels are not renumbered). */
export function clearLabels(labels: Int32Array, drop: Uint8Array): void {
  for (let i = 0; i < labels.length; i++) if (drop[labels[i]]) labels[i] = 0;
}

export function maxLabel(labels: Int32Array): number {
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  return max;
}

/** Zeroes instances with fewer than `minSize` pixels; returns how many were removed. No renumbering. */
export function removeSmall(labels: Int32Array, minSize: number): number {
  if (minSize <= 0) return 0;
  const max = maxLabel(labels);
  const counts = new Int32Array(max + 1);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  let removed = 0;
  for (let l = 1; l <= max; l++) {
    if (counts[l] > 0 && counts[l] < minSize) { counts[l] = -1; removed++; }
  }
  if (removed) for (let i = 0; i < labels.length; i++) if (counts[labels[i]] === -1) labels[i] = 0;
  return removed;
}

/**
 * Fills holes per instance, in label order: pixels inside the instance's bounding box that are not
 * 4-connected to the box border through non-instance pixels become the instance (scipy
 * binary_fill_holes' default cross structure; the instance wall is therefore 8-connected: a diagonal
 * gap does not let a hole leak out). Enclosed pixels of OTHER instances are absorbed as well, as in the
 * reference code; a fully enclosed instance disappears. Returns the number of pixels changed.
 */
export function fillHoles(labels: Int32Array, W: number, H: number): number {
  return sequentialCleanup(labels, W, H, 0, true, false);
}

/**
 * The references' fill_holes_and_remove_small_masks: one pass over the labels in order, using the
 * bounding boxes found before the pass; an instance with fewer than `minSize` pixels (counted when it
 * is reached) is removed, otherwise its holes are filled (when `fill`) and it takes the next free
 * label. Order matters when instances enclose each other, hence the single sequential pass.
 * Returns N (labels end up 1..N).
 */
export function removeSmallAndFillHoles(
  labels: Int32Array,
  W: number,
  H: number,
  minSize: number,
  fill: boolean,
): number {
  sequentialCleanup(labels, W, H, minSize, fill, true);
  return renumber(labels);
}

function sequentialCleanup(
  labels: Int32Array,
  W: number,
  H: number,
  minSize: number,
  fill: boolean,
  relabel: boolean,
): number {
  const max = maxLabel(labels);
  if (max === 0) return 0;
  const minC = new Int32Array(max + 1).fill(W);
  const minR = new Int32Array(max + 1).fill(H);
  const maxC = new Int32Array(max + 1).fill(-1);
  const maxR = new Int32Array(max + 1).fill(-1);
  for (let r = 0, i = 0; r < H; r++) {
    for (let c = 0; c < W; c++, i++) {
      const l = labels[i];
      if (l === 0) continue;
      if (c < minC[l]) minC[l] = c;
      if (c > maxC[l]) maxC[l] = c;
      if (r < minR[l]) minR[l] = r;
      if (r > maxR[l]) maxR[l] = r;
    }
  }
  // outside[i] === stamp marks pixels reached from the box border for the current instance.
  const outside = scratchInt32('masks.outside', W * H);
  const queue = scratchInt32('masks.queue', W * H, false);
  let changed = 0;
  let j = 0;
  for (let l = 1; l <= max; l++) {
    if (maxC[l] < 0) continue;
    const c0 = minC[l], c1 = maxC[l], r0 = minR[l], r1 = maxR[l];
    let npix = 0;
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) if (labels[r * W + c] === l) npix++;
    if (minSize > 0 && npix < minSize) {
      for (let r = r0; r <= r1; r++) {
        for (let c = c0; c <= c1; c++) if (labels[r * W + c] === l) { labels[r * W + c] = 0; changed++; }
      }
      continue;
    }
    const target = relabel ? j + 1 : l;
    j++;
    if (fill) {
      let qh = 0, qt = 0;
      const push = (i: number) => {
        if (outside[i] !== l && labels[i] !== l) { outside[i] = l; queue[qt++] = i; }
      };
      for (let c = c0; c <= c1; c++) { push(r0 * W + c); push(r1 * W + c); }
      for (let r = r0; r <= r1; r++) { push(r * W + c0); push(r * W + c1); }
      while (qh < qt) {
        const i = queue[qh++];
        const r = (i / W) | 0;
        const c = i - r * W;
        if (c > c0) push(i - 1);
        if (c < c1) push(i + 1);
        if (r > r0) push(i - W);
        if (r < r1) push(i + W);
      }
      for (let r = r0; r <= r1; r++) {
        for (let c = c0; c <= c1; c++) {
          const i = r * W + c;
          if (labels[i] === l) labels[i] = target;
          else if (outside[i] !== l) { labels[i] = target; changed++; }
        }
      }
    } else if (target !== l) {
      for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) if (labels[r * W + c] === l) labels[r * W + c] = target;
    }
  }
  return changed;
}

export interface Components {
  /** Component id per pixel (1..count), 0 for background. */
  comp: Int32Array;
  count: number;
  /** Indexed by component id. */
  size: Int32Array;
  owner: Int32Array;
  /** Raster index of the component's first pixel (topmost, then leftmost). */
  first: Int32Array;
}

/** 4-connected components of equal-label pixels. */
export function components4(labels: Int32Array, W: number, H: number): Components {
  const n = W * H;
  const comp = new Int32Array(n);
  const queue = new Int32Array(n);
  let count = 0;
  // Upper bound n components; trimmed views below.
  const size = new Int32Array(n + 1);
  const owner = new Int32Array(n + 1);
  const first = new Int32Array(n + 1);
  for (let s = 0; s < n; s++) {
    const l = labels[s];
    if (l === 0 || comp[s] !== 0) continue;
    const id = ++count;
    owner[id] = l;
    first[id] = s;
    let qh = 0, qt = 0;
    comp[s] = id;
    queue[qt++] = s;
    while (qh < qt) {
      const i = queue[qh++];
      const r = (i / W) | 0;
      const c = i - r * W;
      if (c > 0 && comp[i - 1] === 0 && labels[i - 1] === l) { comp[i - 1] = id; queue[qt++] = i - 1; }
      if (c < W - 1 && comp[i + 1] === 0 && labels[i + 1] === l) { comp[i + 1] = id; queue[qt++] = i + 1; }
      if (r > 0 && comp[i - W] === 0 && labels[i - W] === l) { comp[i - W] = id; queue[qt++] = i - W; }
      if (r < H - 1 && comp[i + W] === 0 && labels[i + W] === l) { comp[i + W] = id; queue[qt++] = i + W; }
    }
    size[id] = qt;
  }
  return {
    comp,
    count,
    size: size.subarray(0, count + 1),
    owner: owner.subarray(0, count + 1),
    first: first.subarray(0, count + 1),
  };
}

/**
 * For each label, the id of its largest 4-connected component (ties: the first in raster order),
 * indexed by label (0 where absent).
 */
export function largestParts(cc: Components, nLabels: number): Int32Array {
  const best = new Int32Array(nLabels + 1);
  for (let id = 1; id <= cc.count; id++) {
    const l = cc.owner[id];
    if (best[l] === 0 || cc.size[id] > cc.size[best[l]]) best[l] = id;
  }
  return best;
}

/**
 * Keeps only the largest 4-connected part of every instance (pixels touching only diagonally are
 * separate parts), so that the label map, the measurements and the single outer ring of a cell
 * describe the same pixels. Returns the number of pixels removed. No renumbering.
 */
export function keepLargestParts(labels: Int32Array, W: number, H: number): number {
  const cc = components4(labels, W, H);
  const best = largestParts(cc, maxLabel(labels));
  let removed = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l !== 0 && cc.comp[i] !== best[l]) { labels[i] = 0; removed++; }
  }
  return removed;
}
