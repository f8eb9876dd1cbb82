/**
 * One segmentation job: asks for tiles with bounded flow control, runs each through the tile
 * engine, streams final detections and progress, and ends exactly once (completed, cancelled or
 * failed). Cancelling drops the job's queued work at once.
 */
import { batchDetections } from './detection-batches';
import { MAX_NOTIFICATION_BYTES } from '../config';
import { setMaxListeners } from 'node:events';
import {
  ErrorCodes, type CompletedParams, type DetectionsParams, type JobStatus, type ProgressParams,
  type RequestTilesParams, type TileFrame, type PixelFormatName, pixelFormatCode,
} from '../../protocol';
import type { RegisteredModel } from '../inference/model-registry';
import type { TileEngine } from '../pipeline/engine';
import type { PostprocessOptions } from '../postprocess';
import type { TtaViews } from '../inference/tta';
import { gridOf, tileOf, type Grid, type GridSpec, type PlannedTile } from '../tiling/planner';
import type { Roi } from '../tiling/roi';
import { toRgb8 } from '../tiling/pixels';
import { resampleRgb } from '../tiling/resample';
import type { FeatureContext } from '../results/features';
import { PoolTaskAborted, PoolTaskTimeout, TaskNotSent, WorkerCrashed } from '../workers/pool';
import type { TileBudget } from './tile-budget';
import type { Logger } from '../util/log';

export interface JobSink {
  requestTiles(p: RequestTilesParams): void;
  progress(p: ProgressParams): void;
  detections(p: DetectionsParams): void;
  completed(p: CompletedParams): void;
}

/** A job's tiles in compact form: the grid and the (i, j) cell of each tile (see planCells). */
export interface CompactPlan { grid: GridSpec; cells: Uint32Array }

export interface JobSpec {
  id: number;
  model: RegisteredModel;
  plan: CompactPlan;
  rois: Roi[];
  pixelFormat: PixelFormatName;
  maxTilesInFlight: number;
  postprocess: PostprocessOptions;
  /** Test-time augmentation views per tile (1 = off). */
  views?: TtaViews;
  context: Omit<FeatureContext, 'tile'>;
  detectionBatchSize: number;
  /** Px a frame may differ from readWidth/readHeight: 1 at a pyramid level (readers round an edge tile's last level pixel differently), else 0. */
  frameSlack?: number;
  tileTimeoutMs: number;
  /** The job fails with Timeout when it has run this long (limits.jobTimeoutMs); 0/undefined = never. */
  jobTimeoutMs?: number;
  /** The connection's shared cap on tiles in flight (limits.maxTilesInFlightPerClient), until post-processing ends. */
  budget?: TileBudget;
}

export class FrameRejection extends Error {
  constructor(readonly code: number, message: string) { super(message); }
}

export class Job {
  status: JobStatus = 'running';
  private nextToRequest = 0;
  /** Asked for, pixels not yet received: tile id → when asked. */
  private readonly awaiting = new Map<number, number>();
  /** Asked for and not yet through inference: the job's flow-control window (maxTilesInFlight). */
  private inFlight = 0;
  /**
   * Tiles of the connection's budget this job holds: asked for and not yet through post-processing.
   * Held past inference on purpose: the budget then bounds the post-processing queue too, whatever
   * the options make a tile cost.
   */
  private budgetHeld = 0;
  private tilesDone = 0;
  private cells = 0;
  private readonly counts: Record<string, number> = {};
  private readonly countsByRoi: Record<string, Record<string, number>> = {};
  private readonly timings = { inferenceMs: 0, postprocessMs: 0, waitingForPixelsMs: 0 };
  private readonly started = performance.now();
  private readonly abort = new AbortController();
  private readonly grid: Grid;
  readonly tileCount: number;
  private timeoutTimer: NodeJS.Timeout | null = null;
  /** Resolves when the job has ended and its in-flight work has drained. */
  readonly finished: Promise<CompletedParams>;
  private resolveFinished!: (c: CompletedParams) => void;
  private running = 0;
  private readonly wake = (): void => { if (this.status === 'running') this.requestMore(); };

  constructor(readonly spec: JobSpec, private readonly engine: TileEngine, private readonly sink: JobSink, private readonly log: Logger) {
    this.grid = gridOf(spec.plan.grid);
    this.tileCount = spec.plan.cells.length / 2;
    this.finished = new Promise((r) => (this.resolveFinished = r));
    // One abort listener per queued tile task: up to maxTilesInFlight of them, not a leak.
    setMaxListeners(0, this.abort.signal);
    for (const roi of spec.rois) this.countsByRoi[roi.id] = {};
  }

  get id(): number { return this.spec.id; }
  get signal(): AbortSignal { return this.abort.signal; }

  /** Tile `id`'s rectangles, computed from the compact plan. */
  tile(id: number): PlannedTile {
    return tileOf(this.spec.plan.grid, this.grid, this.spec.plan.cells, id);
  }

  start(): void {
    if (this.tileCount === 0) { this.complete(); return; }
    this.requestMore();
    const period = Math.max(50, Math.min(1000, this.spec.tileTimeoutMs / 4));
    this.timeoutTimer = setInterval(() => this.checkTimeouts(), period);
    this.timeoutTimer.unref();
  }

  /** Accepts the pixels of an asked-for tile; throws FrameRejection otherwise. */
  acceptFrame(frame: TileFrame): void {
    if (this.status !== 'running') return; // frames already on the wire when the job ended
    if (!(frame.tileId < this.tileCount)) throw new FrameRejection(ErrorCodes.BadTileFrame, `job ${this.id} has no tile ${frame.tileId}`);
    const askedAt = this.awaiting.get(frame.tileId);
    if (askedAt === undefined) throw new FrameRejection(ErrorCodes.BadTileFrame, `tile ${frame.tileId} of job ${this.id} was not asked for (or was already received)`);
    const tile = this.tile(frame.tileId);
    if (frame.format !== pixelFormatCode(this.spec.pixelFormat)) {
      throw new FrameRejection(ErrorCodes.BadTileFrame, `tile ${frame.tileId}: job ${this.id} expects pixel format ${this.spec.pixelFormat}`);
    }
    const slack = this.spec.frameSlack ?? 0;
    if (Math.abs(frame.width - tile.readWidth) > slack || Math.abs(frame.height - tile.readHeight) > slack) {
      throw new FrameRejection(ErrorCodes.BadTileFrame, `tile ${frame.tileId} must be ${tile.readWidth}x${tile.readHeight} px (the region at the plan's readDownsample, not resized), got ${frame.width}x${frame.height}`);
    }
    this.awaiting.delete(frame.tileId);
    this.timings.waitingForPixelsMs += performance.now() - askedAt;
    const rgb = toRgb8(frame.pixels, frame.format, frame.width, frame.height);
    void this.process(tile, rgb, frame.width, frame.height);
  }

  cancel(code: number = ErrorCodes.Cancelled, message = 'cancelled by the client'): void {
    if (this.status !== 'running') return;
    this.status = 'cancelled';
    this.end({ code, message });
  }

  fail(code: number, message: string): void {
    if (this.status !== 'running') return;
    this.status = 'failed';
    this.end({ code, message });
  }

  private async process(tile: PlannedTile, read: Uint8Array, readWidth: number, readHeight: number): Promise<void> {
    this.running++;
    try {
      // The daemon's one resampling (protocol v2): level pixels → the model's resolution.
      const rgb = await resampleRgb(read, readWidth, readHeight, tile.outputWidth, tile.outputHeight);
      if (this.status !== 'running') return;
      const inferred = await this.engine.infer(this.spec.model, rgb, tile.outputWidth, tile.outputHeight, this.signal, this.spec.views ?? 1);
      if (this.status !== 'running') return; // end() already gave the job's window and budget back
      this.inFlight--;
      this.requestMore(); // within the budget, which this tile still holds
      this.timings.inferenceMs += inferred.inferenceMs;
      const result = await this.engine.finish(inferred.maps, this.spec.postprocess, { ...this.spec.context, tile }, this.signal);
      if (this.status !== 'running') return;
      if (this.spec.budget) { this.budgetHeld--; this.spec.budget.release(1); }
      this.timings.postprocessMs += result.postprocessMs;
      for (const [roiId, features] of result.byRoi) {
        // The envelope ({"jsonrpc":…,"params":{"jobId":…,"roiId":…,"features":[]}}) gets 4 KiB of the bound.
        for (const batch of batchDetections(features, this.spec.detectionBatchSize, MAX_NOTIFICATION_BYTES - 4096)) {
          this.sink.detections({ jobId: this.id, roiId, features: batch });
        }
        const roiCounts = this.countsByRoi[roiId];
        for (const f of features) {
          const name = f.properties.classification.name;
          this.counts[name] = (this.counts[name] ?? 0) + 1;
          roiCounts[name] = (roiCounts[name] ?? 0) + 1;
        }
      }
      this.cells += result.cells;
      this.tilesDone++;
      const elapsedMs = performance.now() - this.started;
      const total = this.tileCount;
      this.sink.progress({
        jobId: this.id, tilesDone: this.tilesDone, tilesTotal: total, cells: this.cells,
        elapsedMs: Math.round(elapsedMs), etaMs: Math.round((elapsedMs / this.tilesDone) * (total - this.tilesDone)),
      });
      if (this.tilesDone === total) this.complete();
    } catch (err) {
      if (err instanceof PoolTaskAborted || this.status !== 'running') return;
      this.log.error('tile failed', { job: this.id, tile: tile.id, error: (err as Error).message });
      // A task past the time limit: Timeout. A crashed post-processing worker or a task that could
      // not be sent is a daemon bug (InternalError); inference failures are the model's.
      const code = err instanceof PoolTaskTimeout ? ErrorCodes.Timeout
        : (err instanceof WorkerCrashed || err instanceof TaskNotSent) && err.pool !== 'inference' ? ErrorCodes.InternalError : ErrorCodes.ModelFailed;
      this.fail(code, `tile ${tile.id} failed: ${(err as Error).message}`);
    } finally {
      if (--this.running === 0 && this.status !== 'running') this.resolveFinished(this.summary());
    }
  }

  private requestMore(): void {
    const ids: number[] = [];
    const budget = this.spec.budget;
    while (this.inFlight < this.spec.maxTilesInFlight && this.nextToRequest < this.tileCount) {
      if (budget && !budget.take()) { budget.wait(this.wake); break; }
      if (budget) this.budgetHeld++;
      const id = this.nextToRequest++;
      this.awaiting.set(id, performance.now());
      this.inFlight++;
      ids.push(id);
    }
    if (ids.length > 0) {
      // Each tile's rectangle travels with the request: a client needs no plan of its own.
      const tiles = ids.map((id) => { const { core: _core, ...t } = this.tile(id); return t; });
      this.sink.requestTiles({ jobId: this.id, tileIds: ids, tiles });
    }
  }

  private checkTimeouts(): void {
    const now = performance.now();
    const limit = this.spec.jobTimeoutMs;
    if (limit && now - this.started > limit) {
      this.fail(ErrorCodes.Timeout, `the job ran longer than ${formatDuration(limit)} (jobTimeoutMs); split the region into several jobs`);
      return;
    }
    for (const [tileId, askedAt] of this.awaiting) {
      if (now - askedAt > this.spec.tileTimeoutMs) {
        this.fail(ErrorCodes.Timeout, `tile ${tileId} did not arrive within ${Math.round(this.spec.tileTimeoutMs / 1000)} s`);
        return;
      }
    }
  }

  private complete(): void {
    this.status = 'completed';
    this.end(undefined);
  }

  private summary(error?: { code: number; message: string }): CompletedParams {
    const totalMs = performance.now() - this.started;
    return {
      jobId: this.id,
      status: this.status as CompletedParams['status'],
      ...(error ? { error } : {}),
      tilesDone: this.tilesDone,
      tilesTotal: this.tileCount,
      cells: this.cells,
      counts: this.counts,
      countsByRoi: this.countsByRoi,
      timings: {
        totalMs: Math.round(totalMs),
        inferenceMs: Math.round(this.timings.inferenceMs),
        postprocessMs: Math.round(this.timings.postprocessMs),
        waitingForPixelsMs: Math.round(this.timings.waitingForPixelsMs),
        tilesPerSecond: totalMs > 0 ? this.tilesDone / (totalMs / 1000) : 0,
        cellsPerSecond: totalMs > 0 ? this.cells / (totalMs / 1000) : 0,
      },
    };
  }

  private end(error: { code: number; message: string } | undefined): void {
    if (this.timeoutTimer) clearInterval(this.timeoutTimer);
    this.abort.abort();
    this.awaiting.clear();
    if (this.spec.budget) {
      this.spec.budget.forget(this.wake);
      this.spec.budget.release(this.budgetHeld);
    }
    this.inFlight = 0;
    this.budgetHeld = 0;
    const summary = this.summary(error);
    this.sink.completed(summary);
    this.log.info('job ended', { job: this.id, status: this.status, tiles: summary.tilesDone, cells: summary.cells, ms: summary.timings.totalMs, ...(error ? { error: error.message } : {}) });
    if (this.running === 0) this.resolveFinished(summary);
  }
}

function formatDuration(ms: number): string {
  return ms >= 3_600_000 && ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${Math.round(ms / 1000)} s`;
}
