/** Parameter checks for requests: each failure names the field, for the user to read. */
import { ResponseError } from 'vscode-jsonrpc';
import type { MultiPolygon, Polygon, Position } from 'geojson';
import { ErrorCodes, type JobOptions, type PostprocessOverrides, type RoiInput, type StartJobParams } from '../../protocol';
import { isTtaViews } from '../inference/tta';

export function invalid(message: string): ResponseError<void> {
  return new ResponseError(ErrorCodes.InvalidParams, `Invalid params: ${message}`);
}

/** A geometry that is not a usable polygon: InvalidRoi, like the checks of the planning worker. */
function badRoi(message: string): ResponseError<void> {
  return new ResponseError(ErrorCodes.InvalidRoi, `Invalid ROI: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const positiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 2 ** 31;
const positiveNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const finiteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const numIn = (v: unknown, lo: number, hi: number): v is number => finiteNum(v) && v >= lo && v <= hi;
const intIn = (v: unknown, lo: number, hi: number): v is number => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;

/** A property of the object itself, never one inherited from Object.prototype ("constructor", "toString", …). */
function own(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** What checkStartJob returns: fresh objects holding only known fields, ROIs as {id, geometry} with plain number arrays. */
export interface CheckedStartJob extends StartJobParams {
  options: JobOptions;
  /** Positions over all ROIs (closing points included), counted while copying. */
  vertices: number;
}

/**
 * Checks job/start's params and copies what the daemon uses into fresh objects: only known keys
 * (looked up with Object.hasOwn), ROI geometries as arrays of [x, y] number pairs of exactly the
 * GeoJSON depth (InvalidRoi otherwise). Nothing else a client sent (extra properties, prototype keys, deep nesting) goes
 * further: not to the planning worker, not into a post-processing task.
 */
export function checkStartJob(p: unknown, maxVertices = Infinity): CheckedStartJob {
  if (!isObject(p)) throw invalid('job/start takes an object {image, rois, model?, options?}');
  const image = own(p, 'image');
  if (!isObject(image)) throw invalid('"image" must be an object {width, height, micronsPerPixel}');
  const width = own(image, 'width'), height = own(image, 'height'), mpp = own(image, 'micronsPerPixel'), name = own(image, 'name');
  if (!positiveInt(width)) throw invalid('"image.width" must be a positive integer');
  if (!positiveInt(height)) throw invalid('"image.height" must be a positive integer');
  if (!(mpp === null || mpp === undefined || positiveNum(mpp))) throw invalid('"image.micronsPerPixel" must be a positive number or null');
  const downsamples = own(image, 'downsamples');
  if (downsamples !== undefined && !(Array.isArray(downsamples) && downsamples.length >= 1 && downsamples.length <= 64
    && downsamples.every((d) => positiveNum(d) && d >= 1 && d <= 1e6))) {
    throw invalid('"image.downsamples" must be an array of 1..64 numbers >= 1 (the pyramid levels\' downsamples, full resolution = 1)');
  }
  if (name !== undefined && (typeof name !== 'string' || name.length > 1000)) throw invalid('"image.name" must be a string of at most 1000 characters');
  const rawRois = own(p, 'rois');
  if (!Array.isArray(rawRois)) throw invalid('"rois" must be an array of {id, geometry}');
  if (rawRois.length === 0) throw invalid('"rois" is empty: give at least one region');
  const ids = new Set<string>();
  const rois: RoiInput[] = [];
  const count = { vertices: 0, max: maxVertices };
  for (let i = 0; i < rawRois.length; i++) {
    const r: unknown = rawRois[i];
    if (!isObject(r)) throw invalid(`"rois[${i}]" must be an object {id, geometry}`);
    const id = own(r, 'id');
    if (typeof id !== 'string' || id.length === 0 || id.length > 200) throw invalid(`"rois[${i}].id" must be a non-empty string of at most 200 characters`);
    if (ids.has(id)) throw invalid(`"rois[${i}].id" ${JSON.stringify(id)} is used twice`);
    ids.add(id);
    rois.push({ id, geometry: copyGeometry(own(r, 'geometry'), `rois[${i}].geometry`, count) });
  }
  const model = own(p, 'model');
  if (model !== undefined && typeof model !== 'string') throw invalid('"model" must be a string');
  const options = own(p, 'options');
  if (options !== undefined && !isObject(options)) throw invalid('"options" must be an object');
  return {
    image: { ...(name !== undefined ? { name: name as string } : {}), width, height, micronsPerPixel: (mpp as number | null | undefined) ?? null,
      ...(downsamples !== undefined ? { downsamples: [...(downsamples as number[])] } : {}) },
    rois,
    ...(model !== undefined ? { model: model as string } : {}),
    options: checkOptions(options ?? {}),
    vertices: count.vertices,
  };
}

/**
 * A GeoJSON Polygon/MultiPolygon rebuilt from its positions: rings are arrays of [x, y] pairs of
 * numbers (a third coordinate is dropped). Depth is fixed by the type, so nesting deeper than
 * GeoJSON's is refused before it is walked. Counting stops at `count.max` positions (LimitExceeded
 * is the caller's to raise: the copy ends early, the count says by how much it was over).
 */
function copyGeometry(g: unknown, label: string, count: { vertices: number; max: number }): Polygon | MultiPolygon {
  if (!isObject(g)) throw invalid(`"${label}" must be a GeoJSON Polygon or MultiPolygon`);
  const type = own(g, 'type');
  const coordinates = own(g, 'coordinates');
  if (type !== 'Polygon' && type !== 'MultiPolygon') {
    throw badRoi(`"${label}" must be a GeoJSON Polygon or MultiPolygon, ${type === undefined ? 'it has no "type"' : `not ${JSON.stringify(String(type)).slice(0, 40)}`}`);
  }
  if (!Array.isArray(coordinates)) throw badRoi(`"${label}.coordinates" must be an array`);
  const polygon = (rings: unknown, where: string): Position[][] => {
    if (!Array.isArray(rings)) throw badRoi(`"${where}" must be an array of rings`);
    return rings.map((ring: unknown, k) => {
      if (!Array.isArray(ring)) throw badRoi(`"${where}[${k}]" must be an array of [x, y] positions`);
      count.vertices += ring.length;
      if (count.vertices > count.max) return [];
      return ring.map((pos: unknown, n) => {
        if (!Array.isArray(pos) || pos.length < 2 || typeof pos[0] !== 'number' || typeof pos[1] !== 'number') {
          throw badRoi(`"${where}[${k}][${n}]" is not a pair of finite numbers [x, y]`);
        }
        return [pos[0], pos[1]];
      });
    });
  };
  if (type === 'Polygon') return { type, coordinates: polygon(coordinates, `${label}.coordinates`) };
  return { type, coordinates: coordinates.map((c: unknown, k) => polygon(c, `${label}.coordinates[${k}]`)) };
}

/** Ranges that keep one tile's post-processing within a few times the defaults' CPU cost. */
const POSTPROCESS_KEYS: { [K in keyof PostprocessOverrides]: [check: (v: unknown) => boolean, range: string] } = {
  mode: [(v) => v === 'cellpose' || v === 'seed', '"cellpose" or "seed"'],
  niter: [(v) => intIn(v, 0, 1000), 'an integer 0..1000'],
  flowScale: [(v) => numIn(v, 0.1, 100), 'a number 0.1..100'],
  cellprobThreshold: [(v) => numIn(v, -50, 50), 'a number -50..50'],
  seedMinCount: [(v) => numIn(v, 1, 10_000), 'a number 1..10000'],
  claimMinCount: [(v) => numIn(v, 0, 10_000), 'a number 0..10000'],
  growIterations: [(v) => intIn(v, 0, 20), 'an integer 0..20'],
  minSize: [(v) => numIn(v, 0, 1_000_000), 'a number 0..1000000'],
  fillHoles: [(v) => typeof v === 'boolean', 'true or false'],
  flowThreshold: [(v) => numIn(v, 0, 100), 'a number 0..100'],
  maxSizeFraction: [(v) => finiteNum(v) && v > 0 && v <= 1, 'a number > 0 and <= 1'],
  meanCellprobThreshold: [(v) => v === null || numIn(v, -50, 50), 'a number -50..50, or null (keep faint cells)'],
};

function checkOptions(o: Record<string, unknown>): JobOptions {
  const out: JobOptions = {};
  const pixelFormat = own(o, 'pixelFormat'), objectType = own(o, 'objectType'), maxTilesInFlight = own(o, 'maxTilesInFlight');
  const assumeMpp = own(o, 'assumeMicronsPerPixel'), simplify = own(o, 'simplifyTolerance'), minArea = own(o, 'minAreaMicrons');
  const batch = own(o, 'detectionBatchSize'), post = own(o, 'postprocess'), tta = own(o, 'testTimeAugmentation');
  if (tta !== undefined) {
    if (!isTtaViews(tta)) throw invalid(`"options.testTimeAugmentation" must be 1, 2, 4 or 8 (views of each tile), got ${JSON.stringify(tta)?.slice(0, 40)}`);
    out.testTimeAugmentation = tta;
  }
  if (pixelFormat !== undefined) {
    if (pixelFormat !== 'rgb8' && pixelFormat !== 'argb32') throw invalid('"options.pixelFormat" must be "rgb8" or "argb32"');
    out.pixelFormat = pixelFormat;
  }
  if (objectType !== undefined) {
    if (objectType !== 'cell' && objectType !== 'detection') throw invalid('"options.objectType" must be "cell" or "detection"');
    out.objectType = objectType;
  }
  if (maxTilesInFlight !== undefined) {
    if (!positiveInt(maxTilesInFlight)) throw invalid('"options.maxTilesInFlight" must be a positive integer');
    out.maxTilesInFlight = maxTilesInFlight;
  }
  if (assumeMpp !== undefined) {
    if (!numIn(assumeMpp, 1e-4, 1e4)) throw invalid('"options.assumeMicronsPerPixel" must be a number 0.0001..10000');
    out.assumeMicronsPerPixel = assumeMpp;
  }
  if (simplify !== undefined) {
    if (!numIn(simplify, 0, 1000)) throw invalid('"options.simplifyTolerance" must be a number 0..1000');
    out.simplifyTolerance = simplify;
  }
  if (minArea !== undefined) {
    if (!numIn(minArea, 0, 1e9)) throw invalid('"options.minAreaMicrons" must be a number 0..1e9');
    out.minAreaMicrons = minArea;
  }
  if (batch !== undefined) {
    if (!intIn(batch, 1, 100_000)) throw invalid('"options.detectionBatchSize" must be an integer 1..100000');
    out.detectionBatchSize = batch;
  }
  if (post !== undefined) {
    if (!isObject(post)) throw invalid('"options.postprocess" must be an object');
    const overrides: Partial<PostprocessOverrides> = {};
    for (const k of Object.keys(post)) {
      if (!Object.hasOwn(POSTPROCESS_KEYS, k)) throw invalid(`"options.postprocess.${k.slice(0, 40)}" is not a post-processing setting (known: ${Object.keys(POSTPROCESS_KEYS).join(', ')})`);
      const [check, range] = POSTPROCESS_KEYS[k as keyof PostprocessOverrides];
      const v = post[k];
      if (!check(v)) throw invalid(`"options.postprocess.${k}" must be ${range}, got ${JSON.stringify(v)?.slice(0, 40)}`);
      (overrides as Record<string, unknown>)[k] = v;
    }
    out.postprocess = overrides;
  }
  return out;
}

export function checkJobId(p: unknown): number {
  if (!isObject(p) || !(Number.isInteger(p.jobId) && (p.jobId as number) >= 0)) throw invalid('"jobId" must be a non-negative integer');
  return p.jobId as number;
}
