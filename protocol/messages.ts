/**
 * Every message of protocol v2: parameter and result types, and the vscode-jsonrpc
 * RequestType/NotificationType objects that name them. Transport-free: a client in any language
 * implements the same JSON shapes (see protocol/README.md).
 */
import { RequestType, NotificationType } from 'vscode-jsonrpc';
import type { Feature, MultiPolygon, Polygon } from 'geojson';
import type { PixelFormatName } from './frames';

// ---------------------------------------------------------------------------------------------
// initialize

export interface InitializeParams {
  clientInfo: { name: string; version?: string };
  /** The client's protocol version, "MAJOR.MINOR"; MAJOR must equal the server's. */
  protocolVersion: string;
  /** Required when the server was started with a token (or send it as the `Authorization: Bearer` header). */
  token?: string;
}

export interface ClassInfo {
  /** Channel index of this class in the model's type output. */
  index: number;
  name: string;
  /** sRGB 0..255 */
  color: [number, number, number];
}

export interface ModelInfo {
  name: string;
  version: string;
  description: string;
  /** µm/px at which the model reads the slide; null when it ignores physical size. */
  micronsPerPixel: number | null;
  /** Edge (px, at the model's resolution) of the tiles the daemon plans. */
  tileSize: number;
  /** Overlap between tiles (px, at the model's resolution). */
  tileOverlap: number;
  classes: ClassInfo[];
  /**
   * The ONNX file the daemon runs for this model with its execution provider, e.g. "model-int8.onnx"
   * (an int8 copy on the CPU) or "model.onnx". Absent for failed models. Since 2.2; optional.
   */
  file?: string;
  /** 'failed' models are listed with the reason so that a client can tell the user. */
  status: 'ready' | 'failed';
  error?: string;
}

export interface ExecutionProviderInfo {
  /** Active provider: 'cpu', 'webgpu' or 'cuda'. */
  name: string;
  /** Adapter or device name where the provider reports one. */
  deviceName?: string;
  /** Providers tried before the active one, and why each was not used. */
  skipped: { provider: string; reason: string }[];
}

export interface ServerLimits {
  /** Largest WebSocket message (text or binary) the server accepts, bytes. */
  maxMessageBytes: number;
  /** Upper bound for a job's maxTilesInFlight. */
  maxTilesInFlight: number;
  /** Jobs one connection may run at once. */
  maxJobsPerClient: number;
  /** Largest total ROI area of one job, full-resolution pixels. */
  maxRoiAreaPixels: number;
  /** A requested tile must arrive within this many ms, or the job fails with Timeout. */
  tileTimeoutMs: number;
  /** Tiles asked for and not yet through post-processing, over all jobs of one connection. */
  maxTilesInFlightPerClient: number;
  /** Every notification the server sends (job/detections batches included) is smaller than this, bytes. */
  maxNotificationBytes: number;
  /** job/start lists the tiles in its result (`tiles`) only for plans of at most this many tiles. Since 1.1. */
  maxPlanTilesInline?: number;
  /** Planned tiles over the running jobs of one connection. Since 1.1. */
  maxPlannedTilesPerClient?: number;
  /** A job running longer than this many ms fails with Timeout. Since 1.1. */
  jobTimeoutMs?: number;
}

/**
 * Which daemon answered. Behind a load balancer several daemons serve one address: `instance` tells an
 * operator which replica a connection (and every job on it) reached.
 */
export interface ServerInfo {
  name: string;
  version: string;
  /** Host name of the machine (the container's name under Docker Compose). */
  host?: string;
  /** This daemon's instance id: `--instance`/CELLBRIDGE_INSTANCE, else host name, port and process id. Unique per running daemon. */
  instance?: string;
}

export interface InitializeResult {
  serverInfo: ServerInfo;
  protocolVersion: string;
  models: ModelInfo[];
  /** Name of the model used when job/start names none. */
  defaultModel: string | null;
  executionProvider: ExecutionProviderInfo;
  limits: ServerLimits;
}

export const InitializeRequest = new RequestType<InitializeParams, InitializeResult, void>('initialize');

// ---------------------------------------------------------------------------------------------
// models/list

export const ListModelsRequest = new RequestType<Record<string, never> | undefined, ModelInfo[], void>('models/list');

// ---------------------------------------------------------------------------------------------
// job/start

export interface ImageInfo {
  /** Shown in logs and used to derive stable detection ids; e.g. the QuPath image name. */
  name?: string;
  /** Full-resolution size in pixels. */
  width: number;
  height: number;
  /** Full-resolution pixel size (µm/px); null when the image has none. */
  micronsPerPixel: number | null;
  /**
   * (v2) Downsample factors of the pyramid levels the client can read without resizing, full-res px
   * per level px (QuPath: server.getPreferredDownsamples()). Level 0 (1) is always readable; the
   * daemon picks one level per job (StartJobResult.readDownsample). Default [1].
   */
  downsamples?: number[];
}

export interface RoiInput {
  /** Client-chosen id, echoed on every detection batch (e.g. the annotation's UUID). */
  id: string;
  /** Full-resolution pixel coordinates; holes allowed; rings closed or not. */
  geometry: Polygon | MultiPolygon;
}

export interface JobOptions {
  /** Pixel format of the tile frames the client will send. Default 'argb32'. */
  pixelFormat?: PixelFormatName;
  /** QuPath object type of the detections. Default 'cell'. */
  objectType?: 'cell' | 'detection';
  /** Tiles requested ahead of processing (1..limits.maxTilesInFlight). Default 4. */
  maxTilesInFlight?: number;
  /** Used when image.micronsPerPixel is null and the model needs a pixel size. */
  assumeMicronsPerPixel?: number;
  /** Douglas-Peucker tolerance for outlines, full-resolution px; 0 keeps exact pixel-edge outlines. Default 0. */
  simplifyTolerance?: number;
  /** Drop cells smaller than this area in µm² (px² when there is no pixel size). Default 0. */
  minAreaMicrons?: number;
  /** Cells per job/detections notification. Default 500. */
  detectionBatchSize?: number;
  /** Overrides of the model card's post-processing defaults. */
  postprocess?: Partial<PostprocessOverrides>;
  /**
   * (2.1) Test-time augmentation: the model sees each tile in this many views (1 = as read, 2 = also
   * rotated 180°, 4 = every mirroring, 8 = mirrorings and transposes) and their outputs are averaged.
   * More accurate, that many times the inference time. Default: the model card's
   * `input.testTimeAugmentation`, else 1.
   */
  testTimeAugmentation?: 1 | 2 | 4 | 8;
}

export interface PostprocessOverrides {
  mode: 'cellpose' | 'seed';
  niter: number;
  flowScale: number;
  cellprobThreshold: number;
  seedMinCount: number;
  claimMinCount: number;
  growIterations: number;
  minSize: number;
  fillHoles: boolean;
  flowThreshold: number;
  maxSizeFraction: number;
  /** (2.3) Drop cells whose mean cell probability is below this (model units; null = keep all). */
  meanCellprobThreshold: number | null;
}

export interface StartJobParams {
  image: ImageInfo;
  rois: RoiInput[];
  /** Model name from initialize's models; default: the server's default model. */
  model?: string;
  options?: JobOptions;
}

/**
 * One region the client must read and send. The region is in full-resolution pixels and always
 * lies inside the image. Read it at the job's `readDownsample` (a pyramid level: no resizing) and
 * send exactly readWidth x readHeight pixels (QuPath: RegionRequest.createInstance(path,
 * readDownsample, x, y, width, height)). The daemon resamples them to outputWidth x outputHeight,
 * the model's resolution.
 */
export interface TilePlan {
  id: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** (v2) Size of the frame the client sends: the region at readDownsample = round(width / k), k = round(readDownsample). */
  readWidth: number;
  readHeight: number;
  /** Size at the model's resolution (what the model sees after the daemon's resampling). */
  outputWidth: number;
  outputHeight: number;
}

/** (v2) How the daemon turns the pixels it receives into the model's input. */
export interface ResolutionInfo {
  /** The image's full-resolution µm/px as used (image.micronsPerPixel or options.assumeMicronsPerPixel); null without one. */
  imageMicronsPerPixel: number | null;
  /** The model's µm/px (null: the model ignores physical size). */
  modelMicronsPerPixel: number | null;
  /** µm per pixel the model actually sees: within `tolerance` of the model's, or exactly the model's. */
  effectiveMicronsPerPixel: number | null;
  /** Relative pixel-size difference read unscaled (0.02 = 2 %). */
  tolerance: number;
  /** null: tiles go to the model as read (no resampling); else the kernel the daemon resamples with. */
  resampling: null | { kernel: 'linear'; scale: number };
}

export interface StartJobResult {
  jobId: number;
  model: string;
  /** Full-resolution px per model px (1 when the model has no µm/px; a level's downsample when read unscaled). */
  downsample: number;
  /** (v2) The pyramid level to read: its downsample exactly as given in image.downsamples (1 = full resolution). */
  readDownsample: number;
  /** (v2) Its index in image.downsamples (0 when the client gave none). */
  readLevel: number;
  /** (v2) The resolution decision (tolerance rule, resampling kernel). */
  resolution: ResolutionInfo;
  pixelFormat: PixelFormatName;
  maxTilesInFlight: number;
  /** (2.1) Views of each tile the model sees and averages (options.testTimeAugmentation, else the card's, else 1). */
  testTimeAugmentation: 1 | 2 | 4 | 8;
  /** Number of tiles of the job (ids 0 .. tileCount-1). Since 1.1. */
  tileCount: number;
  /**
   * Every tile of the job, in the order the server will most likely ask for them: present only when
   * tileCount <= limits.maxPlanTilesInline (default 5,000: under 1 MiB of JSON). Larger plans are not sent up front;
   * each tile's rectangle comes with the job/requestTiles that asks for it.
   */
  tiles?: TilePlan[];
}

export const StartJobRequest = new RequestType<StartJobParams, StartJobResult, void>('job/start');

// ---------------------------------------------------------------------------------------------
// job/cancel

export interface CancelJobParams { jobId: number }
export interface CancelJobResult { jobId: number; status: JobStatus }
export const CancelJobRequest = new RequestType<CancelJobParams, CancelJobResult, void>('job/cancel');

// ---------------------------------------------------------------------------------------------
// server/health (since 1.1)

/** One worker pool. */
export interface PoolHealthInfo {
  /** 'inference', 'post-processing' or 'planning'. */
  name: string;
  size: number;
  /** Workers that have loaded their script. */
  ready: number;
  busy: number;
  queued: number;
  /** Age of the longest-running task, ms (0 when idle). */
  longestTaskMs: number;
  /** Workers replaced (crash or time limit) in the last minute. */
  replacedLastMinute: number;
  /** False when the pool cannot run work now; `problem` says why. */
  ok: boolean;
  problem?: string;
}

export interface HealthResult {
  /** 'degraded' when a worker pool cannot run work now (every worker stuck, crash loop, not starting) or no model is ready. */
  status: 'ok' | 'degraded';
  problems: string[];
  pools: PoolHealthInfo[];
  clients: number;
  jobs: number;
}
export const HealthRequest = new RequestType<Record<string, never> | undefined, HealthResult, void>('server/health');

// ---------------------------------------------------------------------------------------------
// server → client notifications

/**
 * Send these tiles now (each once, as binary frames). Flow control: only asked-for tiles are accepted.
 * `tiles[k]` is the rectangle of `tileIds[k]` (since 1.1): a client can read tiles from these alone.
 */
export interface RequestTilesParams { jobId: number; tileIds: number[]; tiles: TilePlan[] }
export const RequestTilesNotification = new NotificationType<RequestTilesParams>('job/requestTiles');

export interface ProgressParams {
  jobId: number;
  tilesDone: number;
  tilesTotal: number;
  /** Detections sent so far. */
  cells: number;
  elapsedMs: number;
  /** Estimate from the tiles done so far; null until one is done. */
  etaMs: number | null;
}
export const ProgressNotification = new NotificationType<ProgressParams>('job/progress');

/** QuPath GeoJSON features (see README: properties.objectType, classification, measurements). */
export type DetectionFeature = Feature<Polygon, DetectionProperties> & { nucleusGeometry?: Polygon };

export interface DetectionProperties {
  objectType: 'cell' | 'detection';
  classification: { name: string; color: [number, number, number] };
  measurements: Record<string, number>;
  isLocked: false;
}

export interface DetectionsParams {
  jobId: number;
  roiId: string;
  features: DetectionFeature[];
}
export const DetectionsNotification = new NotificationType<DetectionsParams>('job/detections');

export type JobStatus = 'running' | 'completed' | 'cancelled' | 'failed';

export interface JobTimings {
  totalMs: number;
  /** Summed over tiles (stages overlap, so these can add up to more than totalMs). */
  inferenceMs: number;
  postprocessMs: number;
  /** Time between asking for a tile and receiving it, summed. */
  waitingForPixelsMs: number;
  tilesPerSecond: number;
  cellsPerSecond: number;
}

export interface CompletedParams {
  jobId: number;
  status: Exclude<JobStatus, 'running'>;
  /** Present when status is 'failed' or 'cancelled'. */
  error?: { code: number; message: string };
  tilesDone: number;
  tilesTotal: number;
  /** Detections sent in total. */
  cells: number;
  /** Cells per class name over all ROIs. */
  counts: Record<string, number>;
  /** Cells per class name per ROI id. */
  countsByRoi: Record<string, Record<string, number>>;
  timings: JobTimings;
}
export const CompletedNotification = new NotificationType<CompletedParams>('job/completed');

/** A binary frame was not accepted; the job goes on. A rejected tile stays asked for (the server does not ask again): the client may send a corrected frame. */
export interface FrameRejectedParams { jobId: number | null; tileId: number | null; code: number; message: string }
export const FrameRejectedNotification = new NotificationType<FrameRejectedParams>('frame/rejected');

/** The server is stopping; running jobs end with status 'cancelled' (code ShuttingDown) within graceMs. */
export interface ShutdownParams { reason: string; graceMs: number }
export const ShutdownNotification = new NotificationType<ShutdownParams>('server/shutdown');

/**
 * Asks the daemon to stop (the QuPath menu's "Stop daemon"). Only from a loopback address not behind a proxy
 * (no X-Forwarded-For / Forwarded / X-Real-IP on the upgrade), on an initialized
 * connection (so with the right token when the daemon has one); others get Unauthorized. The answer comes
 * first, then the daemon stops as on SIGTERM (server/shutdown to every client, grace period, exit).
 */
export interface StopServerResult { stopping: true }
export const StopServerRequest = new RequestType<Record<string, never> | undefined, StopServerResult, void>('server/stop');
