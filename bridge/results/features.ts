/**
 * Cells of one tile → QuPath GeoJSON features (pure). Decides which cells the tile reports (centroid
 * in the tile's core) and which ROI each belongs to (the first ROI in `rois` whose polygon holds the centroid; callers order them smallest first).
 */
import { createHash } from 'node:crypto';
import type { DetectionFeature } from '../../protocol';
import type { ClassSpec } from '../inference/model-card';
import type { CellInstance, StageTimings } from '../postprocess';
import type { PlannedTile } from '../tiling/planner';
import { pointInRoi, type Roi } from '../tiling/roi';
import { maxDiameter, ringArea, ringPerimeter, simplifyRing } from './geometry';

export interface FeatureContext {
  tile: PlannedTile;
  rois: Pick<Roi, 'id' | 'polygons' | 'bbox'>[];
  classes: ClassSpec[];
  /** Full-resolution µm/px of the image, or null (measurements then in px). */
  imageMicronsPerPixel: number | null;
  objectType: 'cell' | 'detection';
  /** Full-res px; 0 keeps pixel-edge outlines. */
  simplifyTolerance: number;
  /** µm² (px² without pixel size). */
  minArea: number;
  /** Seeds the stable ids: image name + model. */
  idSeed: string;
}

export interface TileFeatures {
  byRoi: Map<string, DetectionFeature[]>;
  cells: number;
}

/** Decimal places kept in coordinates: 1e-4 px, far below any pixel, and short JSON. */
const round4 = (v: number): number => Math.round(v * 1e4) / 1e4;

export function stableId(seed: string, x: number, y: number): string {
  const h = createHash('sha1').update(`${seed}|${x.toFixed(2)}|${y.toFixed(2)}`).digest();
  h[6] = (h[6] & 0x0f) | 0x50; // version 5 (name-based, SHA-1)
  h[8] = (h[8] & 0x3f) | 0x80; // RFC 4122 variant
  const s = h.subarray(0, 16).toString('hex');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

/**
 * `timings` (benchmarks only): polygon building (outline to image coordinates, orientation,
 * simplification, GeoJSON coordinates) is added to `contours`, the rest to `measurements`.
 */
export function cellsToFeatures(cells: CellInstance[], ctx: FeatureContext, timings?: StageTimings): TileFeatures {
  let t = timings ? performance.now() : 0;
  const lap = (stage: 'contours' | 'measurements'): void => {
    if (!timings) return;
    const now = performance.now();
    timings[stage] += now - t;
    t = now;
  };
  const { tile } = ctx;
  const sx = tile.width / tile.outputWidth, sy = tile.height / tile.outputHeight;
  const [cx0, cy0, cx1, cy1] = tile.core;
  const mpp = ctx.imageMicronsPerPixel;
  const unitArea = mpp ? mpp * mpp : 1, unitLen = mpp ?? 1;
  const areaName = mpp ? 'Nucleus: Area µm^2' : 'Nucleus: Area px^2';
  const perimName = mpp ? 'Nucleus: Perimeter µm' : 'Nucleus: Perimeter px';
  const diamName = mpp ? 'Nucleus: Max diameter µm' : 'Nucleus: Max diameter px';
  const byClass = new Map(ctx.classes.map((c) => [c.index, c]));
  const byRoi = new Map<string, DetectionFeature[]>();
  let count = 0;
  for (const cell of cells) {
    const gx = tile.x + cell.centroidX * sx, gy = tile.y + cell.centroidY * sy;
    if (gx < cx0 || gx >= cx1 || gy < cy0 || gy >= cy1) continue;
    const roi = ctx.rois.find((r) => pointInRoi(gx, gy, r));
    if (!roi) continue;
    const cls = byClass.get(cell.classIndex);
    if (!cls) continue;
    const area = cell.area * sx * sy * unitArea;
    if (area < ctx.minArea) continue;
    lap('measurements');
    const full = new Float64Array(cell.ring.length);
    for (let i = 0; i < full.length; i += 2) {
      full[i] = tile.x + cell.ring[i] * sx;
      full[i + 1] = tile.y + cell.ring[i + 1] * sy;
    }
    let ring = ctx.simplifyTolerance > 0 ? simplifyRing(full, ctx.simplifyTolerance) : full;
    if (ringArea(ring) < 0) ring = reverseRing(ring);
    const coords: number[][] = [];
    for (let i = 0; i < ring.length; i += 2) coords.push([round4(ring[i]), round4(ring[i + 1])]);
    coords.push(coords[0]);
    lap('contours');
    // Perimeter of a pixel-edge staircase overstates a smooth outline by up to 4/π; measure it on
    // the outline simplified to within a pixel, as a pathologist would trace it.
    const smooth = simplifyRing(full, Math.max(sx, sy));
    const perimeter = ringPerimeter(smooth) * unitLen;
    const circularity = Math.min(1, (4 * Math.PI * area) / (perimeter * perimeter || 1));
    const measurements: Record<string, number> = {
      [areaName]: area,
      [perimName]: perimeter,
      'Nucleus: Circularity': circularity,
      [diamName]: maxDiameter(full) * unitLen,
      'Detection probability': cell.detectionProbability,
    };
    for (const c of ctx.classes) measurements[`Prob: ${c.name}`] = cell.classProbabilities[c.index] ?? 0;
    const geometry = { type: 'Polygon' as const, coordinates: [coords] };
    const feature: DetectionFeature = {
      type: 'Feature',
      id: stableId(ctx.idSeed, gx, gy),
      geometry,
      properties: {
        objectType: ctx.objectType,
        classification: { name: cls.name, color: cls.color },
        measurements,
        isLocked: false,
      },
    };
    if (ctx.objectType === 'cell') feature.nucleusGeometry = geometry;
    let list = byRoi.get(roi.id);
    if (!list) byRoi.set(roi.id, (list = []));
    list.push(feature);
    count++;
  }
  lap('measurements');
  return { byRoi, cells: count };
}

function reverseRing(r: Float64Array): Float64Array {
  const out = new Float64Array(r.length);
  const n = r.length / 2;
  for (let i = 0; i < n; i++) { out[2 * i] = r[2 * (n - 1 - i)]; out[2 * i + 1] = r[2 * (n - 1 - i) + 1]; }
  return out;
}
