/** Daemon settings with their defaults; every limit is documented in README.md. */
import type { DeviceRequest } from './inference/providers';
import type { LogLevel } from './util/log';

export interface ServerLimitsConfig {
  maxMessageBytes: number;
  maxTilesInFlight: number;
  maxJobsPerClient: number;
  maxRoiAreaPixels: number;
  maxRoisPerJob: number;
  maxRoiVertices: number;
  tileTimeoutMs: number;
  /** A connection that has not sent `initialize` within this time is closed. */
  initializeTimeoutMs: number;
  maxClients: number;
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
  postprocessWorkers?: number;
  intraOpThreads?: number;
  limits: ServerLimitsConfig;
}

export const DEFAULT_LIMITS: ServerLimitsConfig = {
  maxMessageBytes: 32 * 1024 * 1024,
  maxTilesInFlight: 16,
  maxJobsPerClient: 4,
  maxRoiAreaPixels: 4_000_000_000,
  maxRoisPerJob: 10_000,
  maxRoiVertices: 1_000_000,
  tileTimeoutMs: 120_000,
  initializeTimeoutMs: 30_000,
  maxClients: 64,
};

export const DEFAULT_PORT = 8765;
