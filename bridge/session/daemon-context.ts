/** What a client session needs from the daemon around it. */
import type { ExecutionProviderInfo, JobStatus } from '../../protocol';
import type { ServerConfig } from '../config';
import type { ModelRegistry } from '../inference/model-registry';
import type { TileEngine } from '../pipeline/engine';
import type { Job } from './job';
import type { ClientSession } from './client-session';

export interface DaemonContext {
  readonly config: ServerConfig;
  readonly version: string;
  readonly registry: ModelRegistry;
  readonly engine: TileEngine;
  readonly provider: ExecutionProviderInfo;
  readonly shuttingDown: boolean;
  nextJobId(): number;
  trackJob(job: Job, session: ClientSession): void;
  /** Final status of a job of this session that ended recently, if any. */
  endedStatus(jobId: number, session: ClientSession): JobStatus | undefined;
  forget(session: ClientSession): void;
}
