/** What a client session needs from the daemon around it. */
import type { ExecutionProviderInfo, HealthResult, JobStatus } from '../../protocol';
import type { ServerConfig } from '../config';
import type { ModelRegistry } from '../inference/model-registry';
import type { TileEngine } from '../pipeline/engine';
import type { WorkerPool } from '../workers/pool';
import type { Job } from './job';
import type { ClientSession } from './client-session';
import type { PlanResult, PlanTask } from './plan-worker';
import type { TileBudget } from './tile-budget';

export interface DaemonStats {
  clients: number;
  jobs: number;
  queued: { inference: number; postprocess: number; plan: number };
  /** Tiles asked for and not yet through post-processing, all clients (limits.maxTilesInFlightTotal). */
  tilesInFlight: number;
  busy: { inference: number; postprocess: number; plan: number };
  memory: NodeJS.MemoryUsage;
}

export interface DaemonContext {
  readonly config: ServerConfig;
  readonly version: string;
  /** Host name and instance id reported in initialize's serverInfo. */
  readonly identity: { host: string; instance: string };
  readonly registry: ModelRegistry;
  readonly engine: TileEngine;
  /** ROI checks and tile planning, off the event loop (see plan-worker.ts). */
  readonly planner: WorkerPool<PlanTask, PlanResult>;
  readonly provider: ExecutionProviderInfo;
  readonly shuttingDown: boolean;
  nextJobId(): number;
  trackJob(job: Job, session: ClientSession): void;
  /** Final status of a job of this session that ended recently, if any. */
  endedStatus(jobId: number, session: ClientSession): JobStatus | undefined;
  forget(session: ClientSession): void;
  /** `server/stop`: stop the daemon after the answer has gone out. */
  requestStop(reason: string): void;
  /** A pre-authentication connection has initialized: true when it may be served (limits.maxClients). */
  admit(session: ClientSession): boolean;
  /** The daemon-wide cap on tiles in flight (limits.maxTilesInFlightTotal), parent of every client's budget. */
  readonly tileBudget: TileBudget;
  /** `server/health`: 'degraded' when a worker pool cannot run work or no model is ready. */
  health(): HealthResult;
  /** For `debug/stats` (only answered with config.debug). */
  stats(): DaemonStats;
}
