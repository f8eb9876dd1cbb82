/**
 * Tile planning on one grid anchored at the image origin (pure).
 *
 * Grid in full-resolution px, aligned to the read level's downsample k (1 at full resolution), so
 * that every tile starts on a whole level pixel: stride S = k * round((tileSize - overlap) * d / k),
 * tile extent T = k * round(tileSize * d / k), half-overlap h = k * floor((T - S) / 2k). Tile (i, j) covers
 * [i*S - h, i*S - h + T) x [j*S - h, j*S - h + T) clipped to the image, and its core is
 * [i*S, (i+1)*S) x [j*S, (j+1)*S) clipped to the image. Cores partition the image, so every cell
 * centroid falls in exactly one core: that tile alone reports the cell, and it saw the cell whole
 * when the cell reaches less than h past its core.
 */
import type { TilePlan } from '../../protocol';
import type { Roi } from './roi';
import { bboxIntersects, pointInRoi } from './roi';

export interface GridSpec {
  imageWidth: number;
  imageHeight: number;
  /** Full-res px per model px. */
  downsample: number;
  /** Model px. */
  tileSize: number;
  overlap: number;
  /** Downsample of the pyramid level the client reads (a whole number; default 1 = full resolution). */
  align?: number;
}

export interface PlannedTile extends TilePlan {
  /** Core rectangle [x0, y0, x1, y1) in full-res px. */
  core: [number, number, number, number];
}

export interface Grid { stride: number; extent: number; half: number; cols: number; rows: number }

export function gridOf(spec: GridSpec): Grid {
  const k = spec.align ?? 1;
  let extent = k * Math.max(1, Math.round((spec.tileSize * spec.downsample) / k));
  // Rounding the extent up to whole (level) pixels can make a tile one model px larger than the model reads when the
  // daemon enlarges (downsample < 1: a 0.25 µm/px model on a 0.499 µm/px slide gave 513 px): one step back then.
  while (extent > k && roundHalfUp(extent / spec.downsample) > spec.tileSize) extent -= k;
  const stride = k * Math.max(1, Math.round(((spec.tileSize - spec.overlap) * spec.downsample) / k));
  const half = k * Math.floor((extent - stride) / (2 * k));
  return { stride, extent, half, cols: Math.ceil(spec.imageWidth / stride), rows: Math.ceil(spec.imageHeight / stride) };
}

/** Round half up, the rule the protocol states for outputWidth/outputHeight. */
export const roundHalfUp = (v: number): number => Math.floor(v + 0.5);

export function tileAt(spec: GridSpec, g: Grid, i: number, j: number, id: number): PlannedTile {
  const x0 = Math.max(0, i * g.stride - g.half);
  const y0 = Math.max(0, j * g.stride - g.half);
  const x1 = Math.min(spec.imageWidth, i * g.stride - g.half + g.extent);
  const y1 = Math.min(spec.imageHeight, j * g.stride - g.half + g.extent);
  const width = x1 - x0, height = y1 - y0;
  const k = spec.align ?? 1;
  return {
    id, x: x0, y: y0, width, height,
    readWidth: Math.max(1, roundHalfUp(width / k)),
    readHeight: Math.max(1, roundHalfUp(height / k)),
    outputWidth: Math.max(1, roundHalfUp(width / spec.downsample)),
    outputHeight: Math.max(1, roundHalfUp(height / spec.downsample)),
    core: [i * g.stride, j * g.stride, Math.min(spec.imageWidth, (i + 1) * g.stride), Math.min(spec.imageHeight, (j + 1) * g.stride)],
  };
}

/** The ROIs' joint bounding box clipped to the image (a loop: no argument-count limit on huge ROI lists). */
export function unionBbox(spec: Pick<GridSpec, 'imageWidth' | 'imageHeight'>, rois: Pick<Roi, 'bbox'>[]): [number, number, number, number] {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const r of rois) {
    if (r.bbox[0] < x0) x0 = r.bbox[0];
    if (r.bbox[1] < y0) y0 = r.bbox[1];
    if (r.bbox[2] > x1) x1 = r.bbox[2];
    if (r.bbox[3] > y1) y1 = r.bbox[3];
  }
  return [Math.max(0, x0), Math.max(0, y0), Math.min(spec.imageWidth, x1), Math.min(spec.imageHeight, y1)];
}

/**
 * The compact plan: the grid cells (i, j) of the tiles whose core meets some ROI, row by row, as
 * [i0, j0, i1, j1, ...] (tile id = pair index). 8 bytes per tile instead of an object each; a tile's
 * rectangle is computed when needed (`tileOf`). Stops once more than `maxTiles` tiles are found
 * (the returned array then holds maxTiles + 1 of them).
 */
export function planCells(spec: GridSpec, rois: Roi[], maxTiles = Infinity): Uint32Array {
  const g = gridOf(spec);
  const [bx0, by0, bx1, by1] = unionBbox(spec, rois);
  if (!(bx1 > bx0 && by1 > by0)) return new Uint32Array(0);
  const cellRange = (b: readonly number[]) => [
    Math.max(0, Math.floor(Math.max(0, b[0]) / g.stride)), Math.min(g.cols - 1, Math.floor((Math.min(spec.imageWidth, b[2]) - 1e-9) / g.stride)),
    Math.max(0, Math.floor(Math.max(0, b[1]) / g.stride)), Math.min(g.rows - 1, Math.floor((Math.min(spec.imageHeight, b[3]) - 1e-9) / g.stride)),
  ];
  const [i0, i1, j0, j1] = cellRange([bx0, by0, bx1, by1]);
  const cols = i1 - i0 + 1;
  // One bit per grid cell of the joint bounding box; each ROI marks the cells its own bounding box
  // covers and its outline meets: cost ~ the ROIs' own cells, not cells x ROIs.
  const marked = new Uint8Array(cols * (j1 - j0 + 1));
  let n = 0;
  for (const r of rois) {
    const [ri0, ri1, rj0, rj1] = cellRange(r.bbox);
    for (let j = rj0; j <= rj1; j++) {
      for (let i = ri0; i <= ri1; i++) {
        const k = (j - j0) * cols + (i - i0);
        if (marked[k]) continue;
        const cx0 = i * g.stride, cy0 = j * g.stride;
        const cx1 = Math.min(spec.imageWidth, cx0 + g.stride), cy1 = Math.min(spec.imageHeight, cy0 + g.stride);
        if (!bboxIntersects(r, cx0, cy0, cx1, cy1) || !coreMeetsRoi(r, cx0, cy0, cx1, cy1)) continue;
        marked[k] = 1;
        if (++n > maxTiles) return cellsOf(marked, cols, i0, j0, n);
      }
    }
  }
  return cellsOf(marked, cols, i0, j0, n);
}

/** The marked cells as [i, j] pairs, row by row. */
function cellsOf(marked: Uint8Array, cols: number, i0: number, j0: number, n: number): Uint32Array {
  const out = new Uint32Array(2 * n);
  let t = 0;
  for (let k = 0; k < marked.length && t < n; k++) {
    if (!marked[k]) continue;
    out[2 * t] = i0 + (k % cols); out[2 * t + 1] = j0 + Math.floor(k / cols);
    t++;
  }
  return out;
}

/** Tile `id` of a compact plan (see planCells). */
export function tileOf(spec: GridSpec, g: Grid, cells: Uint32Array, id: number): PlannedTile {
  return tileAt(spec, g, cells[2 * id], cells[2 * id + 1], id);
}

/** Tiles whose core meets some ROI, row by row. */
export function planTiles(spec: GridSpec, rois: Roi[]): PlannedTile[] {
  const g = gridOf(spec);
  const cells = planCells(spec, rois);
  return Array.from({ length: cells.length / 2 }, (_, id) => tileOf(spec, g, cells, id));
}

/**
 * Skips cores wholly outside an ROI's polygon (e.g. the empty corners of a round annotation):
 * the core meets the ROI when a vertex of the ROI lies in it, a sample point of the core lies in the
 * ROI, or an ROI edge crosses it. Sampling the core's corners and centre plus edge clipping is exact
 * for polygons, since a polygon meeting a rectangle either has a vertex inside, contains a corner,
 * or has an edge crossing the rectangle.
 */
function coreMeetsRoi(r: Roi, x0: number, y0: number, x1: number, y1: number): boolean {
  const pts = [[x0, y0], [x1, y0], [x0, y1], [x1, y1], [(x0 + x1) / 2, (y0 + y1) / 2]];
  if (pts.some(([x, y]) => pointInRoi(x, y, r))) return true;
  for (const rings of r.polygons) {
    for (const ring of rings) {
      const n = ring.length / 2;
      for (let a = 0, b = n - 1; a < n; b = a++) {
        if (segmentMeetsRect(ring[2 * b], ring[2 * b + 1], ring[2 * a], ring[2 * a + 1], x0, y0, x1, y1)) return true;
      }
    }
  }
  return false;
}

/** Liang-Barsky clipping: does segment p→q meet the closed rectangle? */
function segmentMeetsRect(px: number, py: number, qx: number, qy: number, x0: number, y0: number, x1: number, y1: number): boolean {
  let t0 = 0, t1 = 1;
  const dx = qx - px, dy = qy - py;
  const checks: [number, number][] = [[-dx, px - x0], [dx, x1 - px], [-dy, py - y0], [dy, y1 - py]];
  for (const [p, q] of checks) {
    if (p === 0) { if (q < 0) return false; continue; }
    const t = q / p;
    if (p < 0) { if (t > t1) return false; if (t > t0) t0 = t; } else { if (t < t0) return false; if (t < t1) t1 = t; }
  }
  return true;
}
