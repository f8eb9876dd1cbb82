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
  const extent = k * Math.max(1, Math.round((spec.tileSize * spec.downsample) / k));
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

/** Tiles whose core meets some ROI, row by row. */
export function planTiles(spec: GridSpec, rois: Roi[]): PlannedTile[] {
  const g = gridOf(spec);
  const tiles: PlannedTile[] = [];
  const bx0 = Math.max(0, Math.min(...rois.map((r) => r.bbox[0])));
  const by0 = Math.max(0, Math.min(...rois.map((r) => r.bbox[1])));
  const bx1 = Math.min(spec.imageWidth, Math.max(...rois.map((r) => r.bbox[2])));
  const by1 = Math.min(spec.imageHeight, Math.max(...rois.map((r) => r.bbox[3])));
  if (!(bx1 > bx0 && by1 > by0)) return tiles;
  const i0 = Math.floor(bx0 / g.stride), i1 = Math.min(g.cols - 1, Math.floor((bx1 - 1e-9) / g.stride));
  const j0 = Math.floor(by0 / g.stride), j1 = Math.min(g.rows - 1, Math.floor((by1 - 1e-9) / g.stride));
  for (let j = j0; j <= j1; j++) {
    for (let i = i0; i <= i1; i++) {
      const cx0 = i * g.stride, cy0 = j * g.stride;
      const cx1 = Math.min(spec.imageWidth, cx0 + g.stride), cy1 = Math.min(spec.imageHeight, cy0 + g.stride);
      if (!rois.some((r) => bboxIntersects(r, cx0, cy0, cx1, cy1) && coreMeetsRoi(r, cx0, cy0, cx1, cy1))) continue;
      tiles.push(tileAt(spec, g, i, j, tiles.length));
    }
  }
  return tiles;
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
