/** Daemon settings with their defaults; every limit is documented in README.md ("Security, limits and faults"). */
import type { DeviceRequest } from './inference/providers';
import type { LogLevel } from './util/log';
import type { WorkerIsolation } from './workers/pool';

export interface ServerLimitsConfig {
  /** Largest WebSocket message (text or binary), bytes; larger ones close the connection (1009). */
  maxMessageBytes: number;
  /** Upper bound for one job's maxTilesInFlight (a larger request is clamped). */
  maxTilesInFlight: number;
  /** Tiles one connection may have asked for and not yet through inference, over all its jobs. */
  maxTilesInFlightPerClient: number;
  maxJobsPerClient: number;
  /** Total ROI area of one job, full-resolution px². */
  maxRoiAreaPixels: number;
  maxRoisPerJob: number;
  /** Vertices over all ROIs of one job. */
  maxRoiVertices: number;
  /** Planned tiles of one job. */
  maxTilesPerJob: number;
  /** Checking the ROIs and planning the tiles of one job must end within this time (runs in a worker). */
  planTimeoutMs: number;
  /** A requested tile must arrive within this time, or the job fails with Timeout. */
  tileTimeoutMs: number;
  /** A connection that has not sent `initialize` within this time is closed. */
  initializeTimeoutMs: number;
  /** A connection with no running job that sends nothing for this long is closed; 0 = never. */
  idleTimeoutMs: number;
  /** WebSocket ping period; a peer that misses a pong for one period is dropped; 0 = no pings. */
  pingIntervalMs: number;
  /** Bytes queued for a client that does not read; above this the connection is closed. */
  maxSendBufferBytes: number;
  /** Initialized (or header-authenticated) connections. */
  maxClients: number;
  /**
   * Connections that have not initialized yet (pre-authentication): a separate small quota, so that
   * sockets that never initialize cannot take the places of real clients. When it is full, the
   * oldest such connection is closed (1008) to make room for the new one.
   */
  maxPreAuthConnections: number;
  /** Largest message before `initialize` succeeds (pre-authentication), bytes; larger ones close the connection (1009). */
  maxPreAuthMessageBytes: number;
  /** Tiles in flight (asked for and not yet through post-processing) over all connections. */
  maxTilesInFlightTotal: number;
  /** Planned tiles over the running jobs of one connection. */
  maxPlannedTilesPerClient: number;
  /** job/start lists the tiles in its answer up to this many; larger plans send each tile's rectangle in job/requestTiles only. */
  maxPlanTilesInline: number;
  /** A job running longer than this fails with Timeout, however steadily its tiles arrive. */
  jobTimeoutMs: number;
  /** One inference or post-processing task running longer than this has its worker replaced; the job fails. */
  taskTimeoutMs: number;
  /** Heap of the planning worker (MB): a plan that needs more fails with LimitExceeded (planMemoryMb). */
  planMemoryMb: number;
}

export interface ServerConfig {
  host: string;
  port: number;
  modelsDir: string;
  defaultModel?: string;
  device: DeviceRequest;
  token?: string;
  allowedOrigins: string[];
  logLevel: LogLevel;
  inferenceWorkers?: number;
  /** Inference workers as threads or child processes (default per provider: engineDefaults). */
  inferenceIsolation?: WorkerIsolation;
  postprocessWorkers?: number;
  intraOpThreads?: number;
  /** Run each model's card `file` on the CPU too, not its int8 `cpuFile` (slower; for comparisons). */
  fullPrecision?: boolean;
  limits: ServerLimitsConfig;
  /** Instance id reported in initialize (serverInfo.instance); default: host name, port and process id. */
  instanceId?: string;
  /** Test and debugging aid: answer the `debug/stats` request (CELLBRIDGE_DEBUG=1). Off by default. */
  debug?: boolean;
  /**
   * What `server/stop` does (set by `cellbridge serve`: the same as SIGTERM, then exit). Without it the
   * daemon closes in place (an in-process daemon: tests, `cellbridge segment`).
   */
  onStopRequest?: (reason: string) => void;
}

export const DEFAULT_LIMITS: ServerLimitsConfig = {
  maxMessageBytes: 32 * 1024 * 1024,
  maxTilesInFlight: 16,
  maxTilesInFlightPerClient: 32,
  maxJobsPerClient: 4,
  maxRoiAreaPixels: 4_000_000_000,
  maxRoisPerJob: 10_000,
  maxRoiVertices: 200_000,
  maxTilesPerJob: 250_000,
  planTimeoutMs: 30_000,
  tileTimeoutMs: 120_000,
  initializeTimeoutMs: 10_000,
  idleTimeoutMs: 3_600_000,
  pingIntervalMs: 30_000,
  maxSendBufferBytes: 64 * 1024 * 1024,
  maxClients: 64,
  maxPreAuthConnections: 8,
  maxPreAuthMessageBytes: 64 * 1024,
  maxTilesInFlightTotal: 128,
  maxPlannedTilesPerClient: 250_000,
  // ~130 bytes of JSON per tile: 5,000 keep the job/start result under 1 MiB (Python websockets' default max_size).
  maxPlanTilesInline: 5_000,
  jobTimeoutMs: 86_400_000,
  taskTimeoutMs: 120_000,
  planMemoryMb: 256,
};

/** TCP connections the daemon keeps open at most (clients, pre-authentication sockets and slack for refusals). */
export function maxTcpConnections(l: ServerLimitsConfig): number {
  return l.maxClients + l.maxPreAuthConnections + 16;
}

export const DEFAULT_PORT = 8765;

/**
 * Every notification the server sends (job/detections is the only large one) stays under this many
 * bytes, below Python websockets' default max_size of 1 MiB. Reported in initialize's limits.
 */
export const MAX_NOTIFICATION_BYTES = 1_000_000;
