/**
 * ROI geometry: validation of client polygons and the point-in-ROI test (holes respected).
 * Pure; coordinates are full-resolution pixels.
 */
import { findSelfIntersection } from './self-intersection';

/** A polygon as flat rings [x0,y0,x1,y1,...] (not repeating the first point): rings[0] outer, the rest holes. */
export type FlatPolygon = Float64Array[];

export interface Roi {
  id: string;
  polygons: FlatPolygon[];
  bbox: [number, number, number, number];
  /** Area in full-res px² (outer minus holes). */
  area: number;
}

export class RoiError extends Error {
  constructor(message: string, readonly empty = false) { super(message); }
}

export function ringSignedArea(r: Float64Array): number {
  let a = 0;
  const n = r.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) a += r[2 * j] * r[2 * i + 1] - r[2 * i] * r[2 * j + 1];
  return a / 2;
}

function parseRing(raw: unknown, label: string): Float64Array {
  if (!Array.isArray(raw)) throw new RoiError(`${label} is not an array of [x, y] positions`);
  const pts: number[] = [];
  for (const [k, p] of raw.entries()) {
    if (!Array.isArray(p) || p.length < 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number' || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) {
      throw new RoiError(`${label} position ${k} is not a pair of finite numbers`);
    }
    pts.push(p[0], p[1]);
  }
  // Accept open or closed rings; drop the closing point and consecutive duplicates.
  const out: number[] = [];
  for (let i = 0; i < pts.length; i += 2) {
    const n = out.length;
    if (n >= 2 && out[n - 2] === pts[i] && out[n - 1] === pts[i + 1]) continue;
    out.push(pts[i], pts[i + 1]);
  }
  if (out.length >= 4 && out[0] === out[out.length - 2] && out[1] === out[out.length - 1]) out.splice(out.length - 2, 2);
  if (out.length < 6) throw new RoiError(`${label} has fewer than 3 distinct points`);
  return Float64Array.from(out);
}

/** Validates a GeoJSON Polygon/MultiPolygon and returns it normalised. Throws RoiError with a human message. */
export function parseRoi(id: string, geometry: unknown, maxVertices = 1_000_000): Roi {
  const g = geometry as { type?: unknown; coordinates?: unknown };
  if (typeof g !== 'object' || g === null) throw new RoiError(`ROI "${id}": geometry is missing`);
  let polys: unknown[];
  if (g.type === 'Polygon') polys = [g.coordinates];
  else if (g.type === 'MultiPolygon') {
    if (!Array.isArray(g.coordinates)) throw new RoiError(`ROI "${id}": MultiPolygon coordinates must be an array`);
    polys = g.coordinates;
  } else throw new RoiError(`ROI "${id}": geometry type must be Polygon or MultiPolygon, got ${JSON.stringify(g.type)}`);
  if (polys.length === 0) throw new RoiError(`ROI "${id}" has no polygon`, true);
  const polygons: FlatPolygon[] = [];
  let area = 0, vertices = 0;
  const bbox: [number, number, number, number] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [pi, p] of polys.entries()) {
    if (!Array.isArray(p) || p.length === 0) throw new RoiError(`ROI "${id}" polygon ${pi} has no rings`);
    const rings = p.map((r, ri) => parseRing(r, `ROI "${id}" polygon ${pi} ring ${ri}`));
    for (const r of rings) vertices += r.length / 2;
    if (vertices > maxVertices) throw new RoiError(`ROI "${id}" has more than ${maxVertices} vertices`);
    const crossing = findSelfIntersection(rings);
    if (crossing) {
      const [x, y] = crossing;
      throw new RoiError(`ROI "${id}" polygon ${pi} intersects itself (near x=${x.toFixed(1)}, y=${y.toFixed(1)}); fix the annotation's outline`);
    }
    let a = Math.abs(ringSignedArea(rings[0]));
    for (const h of rings.slice(1)) a -= Math.abs(ringSignedArea(h));
    area += Math.max(0, a);
    for (let i = 0; i < rings[0].length; i += 2) {
      bbox[0] = Math.min(bbox[0], rings[0][i]); bbox[1] = Math.min(bbox[1], rings[0][i + 1]);
      bbox[2] = Math.max(bbox[2], rings[0][i]); bbox[3] = Math.max(bbox[3], rings[0][i + 1]);
    }
    polygons.push(rings);
  }
  if (!(area > 0)) throw new RoiError(`ROI "${id}" has zero area`, true);
  return { id, polygons, bbox, area };
}

function inRing(x: number, y: number, r: Float64Array): boolean {
  let inside = false;
  const n = r.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = r[2 * i], yi = r[2 * i + 1], xj = r[2 * j], yj = r[2 * j + 1];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Even-odd rule over a polygon's rings: inside the outer ring and outside every hole. */
export function pointInRoi(x: number, y: number, roi: Pick<Roi, 'polygons' | 'bbox'>): boolean {
  const b = roi.bbox;
  if (x < b[0] || y < b[1] || x > b[2] || y > b[3]) return false;
  for (const rings of roi.polygons) {
    if (!inRing(x, y, rings[0])) continue;
    let inHole = false;
    for (let h = 1; h < rings.length && !inHole; h++) inHole = inRing(x, y, rings[h]);
    if (!inHole) return true;
  }
  return false;
}

/** Whether the ROI's bounding box meets the rectangle [x0,x1) x [y0,y1). Cheap planning test. */
export function bboxIntersects(roi: Pick<Roi, 'bbox'>, x0: number, y0: number, x1: number, y1: number): boolean {
  const b = roi.bbox;
  return b[0] < x1 && b[2] > x0 && b[1] < y1 && b[3] > y0;
}
