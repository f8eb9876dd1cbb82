/** What a client session needs from the daemon around it. */
import type { ExecutionProviderInfo, JobStatus } from '../../protocol';
import type { ServerConfig } from '../config';
import type { ModelRegistry } from '../inference/model-registry';
import type { TileEngine } from '../pipeline/engine';
import type { WorkerPool } from '../workers/pool';
import type { Job } from './job';
import type { ClientSession } from './client-session';
import type { PlanResult, PlanTask } from './plan-worker';

export interface DaemonStats {
  clients: number;
  jobs: number;
  queued: { inference: number; postprocess: number; plan: number };
  busy: { inference: number; postprocess: number; plan: number };
  memory: NodeJS.MemoryUsage;
}

export interface DaemonContext {
  readonly config: ServerConfig;
  readonly version: string;
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
  /** For `debug/stats` (only answered with config.debug). */
  stats(): DaemonStats;
}
