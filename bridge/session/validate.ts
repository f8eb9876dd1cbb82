/** Parameter checks for requests: each failure names the field, for the user to read. */
import { ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes, type JobOptions, type PostprocessOverrides, type StartJobParams } from '../../protocol';

export function invalid(message: string): ResponseError<void> {
  return new ResponseError(ErrorCodes.InvalidParams, `Invalid params: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const positiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 2 ** 31;
const positiveNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const finiteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function checkStartJob(p: unknown): StartJobParams {
  if (!isObject(p)) throw invalid('job/start takes an object {image, rois, model?, options?}');
  const image = p.image;
  if (!isObject(image)) throw invalid('"image" must be an object {width, height, micronsPerPixel}');
  if (!positiveInt(image.width)) throw invalid('"image.width" must be a positive integer');
  if (!positiveInt(image.height)) throw invalid('"image.height" must be a positive integer');
  if (!(image.micronsPerPixel === null || image.micronsPerPixel === undefined || positiveNum(image.micronsPerPixel))) {
    throw invalid('"image.micronsPerPixel" must be a positive number or null');
  }
  if (image.downsamples !== undefined && !(Array.isArray(image.downsamples) && image.downsamples.length >= 1 && image.downsamples.length <= 64
    && image.downsamples.every((d) => positiveNum(d) && d >= 1 && d <= 1e6))) {
    throw invalid('"image.downsamples" must be an array of 1..64 numbers >= 1 (the pyramid levels\' downsamples, full resolution = 1)');
  }
  if (image.name !== undefined && (typeof image.name !== 'string' || image.name.length > 1000)) throw invalid('"image.name" must be a string of at most 1000 characters');
  if (!Array.isArray(p.rois)) throw invalid('"rois" must be an array of {id, geometry}');
  if (p.rois.length === 0) throw invalid('"rois" is empty: give at least one region');
  const ids = new Set<string>();
  for (const [i, r] of p.rois.entries()) {
    if (!isObject(r)) throw invalid(`"rois[${i}]" must be an object {id, geometry}`);
    if (typeof r.id !== 'string' || r.id.length === 0 || r.id.length > 200) throw invalid(`"rois[${i}].id" must be a non-empty string`);
    if (ids.has(r.id)) throw invalid(`"rois[${i}].id" ${JSON.stringify(r.id)} is used twice`);
    ids.add(r.id);
    if (!isObject(r.geometry)) throw invalid(`"rois[${i}].geometry" must be a GeoJSON Polygon or MultiPolygon`);
  }
  if (p.model !== undefined && typeof p.model !== 'string') throw invalid('"model" must be a string');
  if (p.options !== undefined && !isObject(p.options)) throw invalid('"options" must be an object');
  checkOptions((p.options ?? {}) as Record<string, unknown>);
  return {
    image: { name: image.name as string | undefined, width: image.width, height: image.height, micronsPerPixel: (image.micronsPerPixel as number | null | undefined) ?? null,
      ...(image.downsamples !== undefined ? { downsamples: image.downsamples as number[] } : {}) },
    rois: p.rois as StartJobParams['rois'],
    model: p.model as string | undefined,
    options: (p.options ?? {}) as JobOptions,
  };
}

const POSTPROCESS_KEYS: Record<keyof PostprocessOverrides, (v: unknown) => boolean> = {
  mode: (v) => v === 'cellpose' || v === 'seed',
  niter: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 2000,
  flowScale: positiveNum,
  cellprobThreshold: finiteNum,
  seedMinCount: (v) => finiteNum(v) && v >= 0,
  claimMinCount: (v) => finiteNum(v) && v >= 0,
  growIterations: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 20,
  minSize: (v) => finiteNum(v) && v >= 0,
  fillHoles: (v) => typeof v === 'boolean',
  flowThreshold: (v) => finiteNum(v) && v >= 0,
  maxSizeFraction: (v) => finiteNum(v) && v > 0 && v <= 1,
};

function checkOptions(o: Record<string, unknown>): void {
  if (o.pixelFormat !== undefined && o.pixelFormat !== 'rgb8' && o.pixelFormat !== 'argb32') throw invalid('"options.pixelFormat" must be "rgb8" or "argb32"');
  if (o.objectType !== undefined && o.objectType !== 'cell' && o.objectType !== 'detection') throw invalid('"options.objectType" must be "cell" or "detection"');
  if (o.maxTilesInFlight !== undefined && !positiveInt(o.maxTilesInFlight)) throw invalid('"options.maxTilesInFlight" must be a positive integer');
  if (o.assumeMicronsPerPixel !== undefined && !positiveNum(o.assumeMicronsPerPixel)) throw invalid('"options.assumeMicronsPerPixel" must be a positive number');
  if (o.simplifyTolerance !== undefined && !(finiteNum(o.simplifyTolerance) && o.simplifyTolerance >= 0)) throw invalid('"options.simplifyTolerance" must be a number >= 0');
  if (o.minAreaMicrons !== undefined && !(finiteNum(o.minAreaMicrons) && o.minAreaMicrons >= 0)) throw invalid('"options.minAreaMicrons" must be a number >= 0');
  if (o.detectionBatchSize !== undefined && !(positiveInt(o.detectionBatchSize) && o.detectionBatchSize <= 100_000)) throw invalid('"options.detectionBatchSize" must be an integer 1..100000');
  if (o.postprocess !== undefined) {
    if (!isObject(o.postprocess)) throw invalid('"options.postprocess" must be an object');
    for (const [k, v] of Object.entries(o.postprocess)) {
      const check = POSTPROCESS_KEYS[k as keyof PostprocessOverrides];
      if (!check) throw invalid(`"options.postprocess.${k}" is not a post-processing setting (known: ${Object.keys(POSTPROCESS_KEYS).join(', ')})`);
      if (!check(v)) throw invalid(`"options.postprocess.${k}" has an invalid value ${JSON.stringify(v)}`);
    }
  }
}

export function checkJobId(p: unknown): number {
  if (!isObject(p) || !(Number.isInteger(p.jobId) && (p.jobId as number) >= 0)) throw invalid('"jobId" must be a non-negative integer');
  return p.jobId as number;
}
