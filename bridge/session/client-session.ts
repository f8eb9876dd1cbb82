/**
 * One WebSocket connection: the JSON-RPC handlers (initialize, models/list, job/start, job/cancel),
 * binary tile frames, and clean-up when the client leaves (its jobs are cancelled and freed).
 *
 * Limits enforced here (see bridge/config.ts): jobs per client, ROIs/vertices/area/tiles per job,
 * planned tiles per client, tiles in flight per job and per client, initialize/idle timeouts,
 * unresponsive peers (ping), pre-authentication limits (small messages, one wrong token closes).
 */
import { runFileName } from '../inference/model-registry';
import { viewsFor } from '../inference/tta';
import { setMaxListeners } from 'node:events';
import type WebSocket from 'ws';
import { createMessageConnection, ResponseError, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  CompletedNotification, DetectionsNotification, ErrorCodes, FrameError, FrameRejectedNotification,
  isCompatibleProtocol, PROTOCOL_VERSION, ProgressNotification, RequestTilesNotification, ShutdownNotification,
  decodeTileFrame, type InitializeResult, type StartJobResult, type CancelJobResult, type ModelInfo, type TilePlan,
} from '../../protocol';
import { WebSocketMessageReader, WebSocketMessageWriter } from '../transport/ws-transport';
import { checkJobId, checkStartJob, invalid } from './validate';
import { FrameRejection, Job } from './job';
import type { PlanResult } from './plan-worker';
import { TileBudget } from './tile-budget';
import { tokenMatches } from './auth';
import { isLoopback } from '../util/loopback';
import { PoolTaskAborted, PoolTaskTimeout, tagOwner, WorkerCrashed } from '../workers/pool';
import { setMaxPayload } from '../transport/ws-transport';
import type { Logger } from '../util/log';
import type { DaemonContext } from './daemon-context';
import { MAX_NOTIFICATION_BYTES } from '../config';
import type { PostprocessOptions } from '../postprocess';
import { chooseResolution, PIXEL_SIZE_TOLERANCE } from '../tiling/resolution';
import { RESAMPLING_KERNEL } from '../tiling/resample';

/** LimitExceeded, naming the limit in the message and in `data`. */
export function limitExceeded(limit: string, value: number, message: string): ResponseError<{ limit: string; value: number }> {
  return new ResponseError(ErrorCodes.LimitExceeded, `Limit exceeded: ${message} (${limit} = ${value})`, { limit, value });
}

const KNOWN_CODES = new Set<number>(Object.values(ErrorCodes));

/** Warnings about one client's bad frames and messages are logged this many times, then counted. */
const WARN_BUDGET = 20;

export class ClientSession {
  private readonly connection: MessageConnection;
  private initialized = false;
  /** A wrong or missing token was given: nothing more from this connection is read or answered. */
  private refused = false;
  private readonly jobs = new Map<number, Job>();
  /** job/start requests being planned: they count against maxJobsPerClient. */
  private pendingStarts = 0;
  private closed = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastActivity = Date.now();
  private alive = true;
  /** Aborted when the client leaves: drops its queued planning work. */
  private readonly lifetime = new AbortController();
  private readonly budget: TileBudget;
  private readonly counters = { rejectedFrames: 0, protocolErrors: 0, internalErrors: 0 };
  private warnings = 0;
  readonly owner: string;

  constructor(
    private readonly socket: WebSocket,
    private readonly daemon: DaemonContext,
    private log: Logger,
    /** The upgrade already carried the right token. */
    private authorized: boolean,
    readonly id: number,
    /** The peer's address (server/stop is for loopback peers only). */
    private readonly remote?: string,
    /** The upgrade carried X-Forwarded-For / Forwarded / X-Real-IP: the loopback peer may be a proxy. */
    private readonly proxied = false,
  ) {
    const limits = daemon.config.limits;
    this.owner = `client-${id}`;
    tagOwner(this.lifetime.signal, this.owner);
    setMaxListeners(0, this.lifetime.signal); // one listener per queued job/start
    this.budget = new TileBudget(limits.maxTilesInFlightPerClient, daemon.tileBudget);
    // Before authentication only small messages are read (limits.maxPreAuthMessageBytes, the
    // server's default); an Authorization header with the right token lifts that at once.
    if (authorized) setMaxPayload(socket, limits.maxMessageBytes);
    const onOverflow = (bytes: number) => this.log.warn('client not reading; closing', { bufferedBytes: bytes, limit: limits.maxSendBufferBytes });
    const reader = new WebSocketMessageReader(socket, (data) => this.onBinary(data), {
      onOverflow,
      isClosed: () => this.refused,
      onActivity: () => { this.lastActivity = Date.now(); this.alive = true; },
      onInternalError: (err, where) => this.internalError(err, where),
      onProtocolError: (code, message) => { this.counters.protocolErrors++; this.warn('bad message', { code, message }); },
      maxBufferedBytes: limits.maxSendBufferBytes,
    });
    const writer = new WebSocketMessageWriter(socket, { maxBufferedBytes: limits.maxSendBufferBytes, onOverflow });
    this.connection = createMessageConnection(reader, writer, {
      error: (m) => log.debug('jsonrpc', { message: m }), warn: (m) => log.debug('jsonrpc', { message: m }),
      info: () => undefined, log: () => undefined,
    });
    this.register();
    this.connection.listen();
    socket.on('close', (code: number, reason: Buffer) => this.dispose(`client disconnected (${code}${reason.length ? ' ' + reason.toString().slice(0, 100) : ''})`));
    socket.on('error', (err: Error) => log.debug('socket error', { error: err.message }));
    socket.on('pong', () => { this.alive = true; });
    this.every(limits.initializeTimeoutMs, () => {
      if (!this.initialized) this.closeWith(1008, 'initialize was not sent in time', 'initialize timeout');
    }, true);
    if (limits.pingIntervalMs > 0) {
      this.every(limits.pingIntervalMs, () => {
        if (!this.alive) { this.log.warn('client unresponsive: no pong', { afterMs: limits.pingIntervalMs }); this.socket.terminate(); return; }
        this.alive = false;
        try { this.socket.ping(); } catch { /* closing */ }
      });
    }
    if (limits.idleTimeoutMs > 0) {
      this.every(Math.max(100, Math.min(60_000, limits.idleTimeoutMs / 4)), () => {
        if (this.jobs.size === 0 && this.pendingStarts === 0 && Date.now() - this.lastActivity > limits.idleTimeoutMs) {
          this.closeWith(1000, `idle for ${Math.round(limits.idleTimeoutMs / 1000)} s`, 'idle timeout');
        }
      });
    }
  }

  get jobCount(): number { return this.jobs.size; }

  /** The peer's address ('' when unknown): pre-authentication eviction groups by it. */
  get peerAddress(): string { return this.remote ?? ''; }

  /** Not yet authenticated: no `initialize` yet and no valid token header. Counts against limits.maxPreAuthConnections. */
  get preAuth(): boolean { return !this.initialized && !this.authorized && !this.closed; }

  /** Planned tiles of this connection's running jobs (limits.maxPlannedTilesPerClient). */
  private plannedTiles(): number {
    let n = 0;
    for (const job of this.jobs.values()) n += job.tileCount;
    return n;
  }

  private every(ms: number, fn: () => void, once = false): void {
    const t = once ? setTimeout(fn, ms) : setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private warn(event: string, fields: Record<string, unknown>): void {
    if (this.warnings++ < WARN_BUDGET) this.log.warn(event, fields);
    else this.log.debug(event, fields);
  }

  private closeWith(code: number, reason: string, event: string): void {
    this.log.info('closing connection', { reason: event });
    this.socket.close(code, reason);
  }

  private internalError(err: unknown, where: string): void {
    this.counters.internalErrors++;
    this.log.error('internal error', { where, error: (err as Error)?.stack ?? String(err) });
    if (where === 'binary frame') this.notify(FrameRejectedNotification.method, { jobId: null, tileId: null, code: ErrorCodes.InternalError, message: `Internal error: ${(err as Error)?.message ?? err}` });
    if (this.counters.internalErrors > 100) this.closeWith(1011, 'too many internal errors', 'internal errors');
  }

  private guard<P, R>(handler: (params: P) => R | Promise<R>, duringShutdown = false): (params: P) => Promise<R> {
    return async (params: P) => {
      if (!this.initialized) throw new ResponseError(ErrorCodes.NotInitialized, 'Not initialized: send "initialize" first');
      if (this.daemon.shuttingDown && !duringShutdown) throw new ResponseError(ErrorCodes.ShuttingDown, 'The daemon is shutting down');
      return handler(params);
    };
  }

  private register(): void {
    const c = this.connection;
    c.onRequest('initialize', (params: unknown) => this.initialize(params));
    c.onRequest('models/list', this.guard(() => this.modelInfos(), true));
    c.onRequest('job/start', this.guard((params: unknown) => this.startJob(params)));
    c.onRequest('job/cancel', this.guard((params: unknown) => this.cancelJob(params), true));
    c.onRequest('server/stop', this.guard(() => this.stopServer(), true));
    c.onRequest('server/health', this.guard(() => this.daemon.health(), true));
    if (this.daemon.config.debug) {
      // Test and debugging aid (CELLBRIDGE_DEBUG=1): counts of live objects and the process's memory.
      c.onRequest('debug/stats', this.guard(() => {
        const gc = (globalThis as { gc?: () => void }).gc;
        if (gc) gc();
        return this.daemon.stats();
      }, true));
    }
  }

  /** server/stop: loopback peers only; the guard already required initialize (and so the token, when there is one). */
  private stopServer(): { stopping: true } {
    const remote = this.remote ?? '';
    if (!isLoopback(remote)) {
      this.log.warn('server/stop refused', { remote });
      throw new ResponseError(ErrorCodes.Unauthorized, 'Unauthorized: only a client on the same computer (loopback) may stop the daemon');
    }
    if (this.proxied) {
      // A proxy on the same computer (deploy/nginx on the host) is a loopback peer for every client behind it.
      this.log.warn('server/stop refused', { remote, reason: 'came through a proxy' });
      throw new ResponseError(ErrorCodes.Unauthorized,
        'Unauthorized: this connection came through a proxy; only a client on the daemon\'s own computer, connecting directly, may stop it');
    }
    this.log.info('stop requested by a client');
    this.daemon.requestStop('stop requested by a client (server/stop)');
    return { stopping: true };
  }

  private modelInfos(): ModelInfo[] {
    return this.daemon.registry.list().map((m) => ({
      name: m.name,
      version: m.card?.version ?? '',
      description: m.card?.description ?? '',
      micronsPerPixel: m.card?.input.micronsPerPixel ?? null,
      tileSize: m.card?.input.readSize ?? 0,
      tileOverlap: m.card?.tiling.overlap ?? 0,
      classes: m.card?.classes.map((k) => ({ index: k.index, name: k.name, color: k.color })) ?? [],
      file: runFileName(m), // undefined (left out of the JSON) for a failed model
      status: m.status,
      ...(m.error ? { error: m.error } : {}),
    }));
  }

  private initialize(params: unknown): InitializeResult | Promise<never> {
    // Requests already queued behind a refused initialize are neither checked nor answered: one
    // token guess per connection.
    if (this.refused) return new Promise<never>(() => undefined);
    if (this.initialized) throw new ResponseError(ErrorCodes.AlreadyInitialized, 'Already initialized: send "initialize" once per connection');
    const p = params as Record<string, unknown> | undefined;
    if (typeof p !== 'object' || p === null) throw invalid('initialize takes {clientInfo, protocolVersion, token?}');
    const clientInfo = p.clientInfo as Record<string, unknown> | undefined;
    if (typeof clientInfo !== 'object' || clientInfo === null || typeof clientInfo.name !== 'string') throw invalid('"clientInfo.name" must be a string');
    if (typeof p.protocolVersion !== 'string') throw invalid('"protocolVersion" must be a string like "1.0"');
    const token = this.daemon.config.token;
    if (token && !this.authorized) {
      if (!tokenMatches(p.token, token)) {
        this.log.warn('connection refused', { reason: p.token === undefined ? 'no token' : 'wrong token' });
        this.refused = true;
        // Closed once this answer is on its way; nothing else from the peer is read meanwhile.
        setImmediate(() => this.socket.close(1008, 'unauthorized: missing or wrong token'));
        setTimeout(() => this.socket.terminate(), 2000).unref();
        throw new ResponseError(ErrorCodes.Unauthorized, p.token === undefined
          ? 'Unauthorized: this daemon requires a token (set it in the client settings, e.g. CELLBRIDGE_TOKEN)'
          : 'Unauthorized: the token is wrong');
      }
      this.authorized = true;
    }
    if (!isCompatibleProtocol(p.protocolVersion)) {
      const v1 = /^1\./.test(p.protocolVersion);
      throw new ResponseError(ErrorCodes.VersionMismatch, `Protocol version mismatch: the client speaks ${String(p.protocolVersion).slice(0, 20)}, this daemon speaks ${PROTOCOL_VERSION}. ${v1
        ? 'Since 2.0 the daemon alone resizes pixels to the model\'s resolution (clients send them unresized): install the QuPath scripts (qupath-scripts/) of this Cell Bridge version.'
        : 'Update the client scripts or the daemon so that the major versions match.'}`);
    }
    if (!this.authorized && !this.daemon.admit(this)) {
      setImmediate(() => this.socket.close(1008, 'too many clients'));
      throw limitExceeded('maxClients', this.daemon.config.limits.maxClients, 'the daemon serves no more clients at once; try again later');
    }
    this.initialized = true;
    setMaxPayload(this.socket, this.daemon.config.limits.maxMessageBytes);
    const name = clientInfo.name.slice(0, 100);
    const version = typeof clientInfo.version === 'string' ? '/' + clientInfo.version.slice(0, 50) : '';
    this.log = this.log.child({ client: `${name}${version}` });
    this.log.info('client initialized');
    const l = this.daemon.config.limits;
    return {
      serverInfo: { name: 'cellbridge', version: this.daemon.version, ...this.daemon.identity },
      protocolVersion: PROTOCOL_VERSION,
      models: this.modelInfos(),
      defaultModel: this.daemon.registry.defaultModel,
      executionProvider: this.daemon.provider,
      limits: {
        maxMessageBytes: l.maxMessageBytes, maxTilesInFlight: l.maxTilesInFlight, maxJobsPerClient: l.maxJobsPerClient,
        maxRoiAreaPixels: l.maxRoiAreaPixels, tileTimeoutMs: l.tileTimeoutMs,
        maxTilesInFlightPerClient: l.maxTilesInFlightPerClient, maxNotificationBytes: MAX_NOTIFICATION_BYTES,
        maxPlanTilesInline: l.maxPlanTilesInline, maxPlannedTilesPerClient: l.maxPlannedTilesPerClient, jobTimeoutMs: l.jobTimeoutMs,
      },
    };
  }

  private async startJob(params: unknown): Promise<StartJobResult> {
    const limits = this.daemon.config.limits;
    const p = checkStartJob(params, limits.maxRoiVertices);
    const modelName = p.model ?? this.daemon.registry.defaultModel;
    const model = modelName ? this.daemon.registry.get(modelName) : undefined;
    if (!model) {
      const names = this.daemon.registry.list().map((m) => m.name).join(', ') || 'none';
      throw new ResponseError(ErrorCodes.UnknownModel, `Unknown model "${(modelName ?? '').slice(0, 200)}". Models on this daemon: ${names}`);
    }
    if (model.status !== 'ready' || !model.card) throw new ResponseError(ErrorCodes.ModelFailed, `Model "${model.name}" cannot be used: ${model.error}`);
    if (this.jobs.size + this.pendingStarts >= limits.maxJobsPerClient) {
      throw limitExceeded('maxJobsPerClient', limits.maxJobsPerClient, `at most ${limits.maxJobsPerClient} jobs per connection run at once; wait for one to complete`);
    }
    if (p.rois.length > limits.maxRoisPerJob) throw limitExceeded('maxRoisPerJob', limits.maxRoisPerJob, `${p.rois.length} ROIs in one job`);
    if (p.vertices > limits.maxRoiVertices) {
      throw limitExceeded('maxRoiVertices', limits.maxRoiVertices, `the ROIs have ${p.vertices} vertices; simplify the annotations or split the job`);
    }
    const tilesLeft = limits.maxPlannedTilesPerClient - this.plannedTiles();
    if (tilesLeft <= 0) {
      throw limitExceeded('maxPlannedTilesPerClient', limits.maxPlannedTilesPerClient, 'this connection\'s running jobs already hold as many planned tiles as it may have; wait for a job to end');
    }
    const card = model.card;
    const opts = p.options;
    const imageMpp = p.image.micronsPerPixel ?? opts.assumeMicronsPerPixel ?? null;
    const modelMpp = card.input.micronsPerPixel;
    let target = 1;
    if (modelMpp !== null) {
      if (imageMpp === null) {
        throw new ResponseError(ErrorCodes.MissingPixelSize, `The image has no pixel size, and model "${model.name}" works at ${modelMpp} µm/px. Set the pixel size in QuPath (Image tab) or pass options.assumeMicronsPerPixel (e.g. 0.5 for 20x, 0.25 for 40x).`);
      }
      target = modelMpp / imageMpp;
      if (!(target >= 0.05 && target <= 64)) {
        throw new ResponseError(ErrorCodes.InvalidParams, `Invalid params: pixel size ${imageMpp} µm/px is implausible for model ${model.name} (${modelMpp} µm/px)`);
      }
    }
    // The one resolution decision: which level the client reads, and whether the daemon resamples.
    const choice = chooseResolution(target, p.image.downsamples ?? [1], PIXEL_SIZE_TOLERANCE, modelMpp === null ? null : imageMpp);
    const downsample = choice.downsample;
    let planned: PlanResult;
    const grid = { imageWidth: p.image.width, imageHeight: p.image.height, downsample, tileSize: card.input.readSize, overlap: card.tiling.overlap, align: choice.align };
    const clientCapped = tilesLeft < limits.maxTilesPerJob;
    this.pendingStarts++;
    try {
      planned = await this.daemon.planner.run({
        rois: p.rois, grid,
        maxRoiVertices: limits.maxRoiVertices, maxRoiAreaPixels: limits.maxRoiAreaPixels,
        maxTilesPerJob: Math.min(limits.maxTilesPerJob, tilesLeft),
        ...(clientCapped ? { tileLimitName: 'maxPlannedTilesPerClient', jobTileLimit: limits.maxTilesPerJob } : {}),
      }, [], this.lifetime.signal);
    } catch (err) {
      if (this.closed || err instanceof PoolTaskAborted) throw new ResponseError(ErrorCodes.Cancelled, 'The connection is closing');
      if (this.daemon.shuttingDown) throw new ResponseError(ErrorCodes.ShuttingDown, 'The daemon is shutting down');
      if (err instanceof PoolTaskTimeout) {
        throw limitExceeded('planTimeoutMs', limits.planTimeoutMs, 'checking the ROIs and planning the tiles took too long; simplify the annotations or split the job');
      }
      if (err instanceof WorkerCrashed) {
        // The planning worker's heap is capped (resourceLimits): running out of it is the usual cause.
        throw limitExceeded('planMemoryMb', limits.planMemoryMb, 'checking the ROIs and planning the tiles needed too much memory; simplify the annotations or split the job');
      }
      const { code, data } = err as { code?: unknown; data?: { limit?: unknown } };
      if (code === ErrorCodes.LimitExceeded && data?.limit === 'maxPlannedTilesPerClient') {
        throw limitExceeded('maxPlannedTilesPerClient', limits.maxPlannedTilesPerClient, `the job needs more than the ${tilesLeft} tiles left to this connection (its running jobs hold the rest); wait for a job to end`);
      }
      const message = (err as Error).message ?? String(err);
      if (typeof code === 'number' && KNOWN_CODES.has(code)) throw new ResponseError(code, message, data);
      throw new ResponseError(ErrorCodes.InvalidRoi, `The ROIs could not be read: ${message}`);
    } finally {
      this.pendingStarts--;
    }
    if (this.closed) throw new ResponseError(ErrorCodes.Cancelled, 'The connection is closing');
    if (this.daemon.shuttingDown) throw new ResponseError(ErrorCodes.ShuttingDown, 'The daemon is shutting down');
    const { rois, cells } = planned;
    const tileCount = cells.length / 2;
    // Other jobs of this connection may have been planned meanwhile.
    if (this.plannedTiles() + tileCount > limits.maxPlannedTilesPerClient) {
      throw limitExceeded('maxPlannedTilesPerClient', limits.maxPlannedTilesPerClient, `the job needs ${tileCount} tiles and this connection's running jobs hold ${this.plannedTiles()}; wait for a job to end`);
    }
    const maxTilesInFlight = Math.min(opts.maxTilesInFlight ?? 4, limits.maxTilesInFlight);
    const pixelFormat = opts.pixelFormat ?? 'argb32';
    // Both objects hold known keys only (the card is validated, the overrides are built by validate.ts).
    const postprocess: PostprocessOptions = { ...card.postprocess, ...(opts.postprocess ?? {}) };
    const views = viewsFor(card.input, opts.testTimeAugmentation);
    const jobId = this.daemon.nextJobId();
    const job = new Job({
      id: jobId, model, plan: { grid, cells }, rois, pixelFormat, maxTilesInFlight, postprocess,
      views,
      context: {
        // Smallest first: a cell inside nested ROIs belongs to the innermost one.
        rois: [...rois].sort((a, b) => a.area - b.area).map((r) => ({ id: r.id, polygons: r.polygons, bbox: r.bbox })),
        classes: card.classes,
        imageMicronsPerPixel: imageMpp,
        objectType: opts.objectType ?? 'cell',
        simplifyTolerance: opts.simplifyTolerance ?? 0,
        minArea: opts.minAreaMicrons ?? 0,
        idSeed: `${p.image.name ?? ''}|${model.name}`,
      },
      detectionBatchSize: opts.detectionBatchSize ?? 500,
      frameSlack: choice.align > 1 ? 1 : 0,
      tileTimeoutMs: limits.tileTimeoutMs,
      jobTimeoutMs: limits.jobTimeoutMs,
      budget: this.budget,
    }, this.daemon.engine, {
      requestTiles: (m) => this.notify(RequestTilesNotification.method, m),
      progress: (m) => this.notify(ProgressNotification.method, m),
      detections: (m) => this.notify(DetectionsNotification.method, m),
      completed: (m) => { this.notify(CompletedNotification.method, m); this.jobs.delete(jobId); },
    }, this.log.child({ job: jobId }));
    // The pools share workers round-robin between clients, not first come first served.
    tagOwner(job.signal, this.owner);
    this.jobs.set(jobId, job);
    this.daemon.trackJob(job, this);
    this.log.info('job started', { job: jobId, model: model.name, tiles: tileCount, rois: rois.length, downsample, readDownsample: choice.readDownsample, resampled: choice.resampled });
    // The plan (this request's response) must reach the client before the first tile request.
    setImmediate(() => job.start());
    // Large plans are not listed: each tile's rectangle comes with its job/requestTiles.
    let tiles: TilePlan[] | undefined;
    if (tileCount <= limits.maxPlanTilesInline) {
      tiles = [];
      for (let id = 0; id < tileCount; id++) { const { core: _core, ...t } = job.tile(id); tiles.push(t); }
    }
    return {
      jobId, model: model.name, downsample, readDownsample: choice.readDownsample, readLevel: choice.level,
      resolution: {
        imageMicronsPerPixel: imageMpp, modelMicronsPerPixel: modelMpp, effectiveMicronsPerPixel: choice.effectiveMicronsPerPixel,
        tolerance: PIXEL_SIZE_TOLERANCE,
        resampling: choice.resampled ? { kernel: RESAMPLING_KERNEL, scale: choice.align / downsample } : null,
      },
      pixelFormat, maxTilesInFlight, testTimeAugmentation: views, tileCount, ...(tiles ? { tiles } : {}),
    };
  }

  private cancelJob(params: unknown): CancelJobResult {
    const jobId = checkJobId(params);
    const job = this.jobs.get(jobId);
    if (!job) {
      const ended = this.daemon.endedStatus(jobId, this);
      if (ended) return { jobId, status: ended };
      throw new ResponseError(ErrorCodes.UnknownJob, `Unknown job ${jobId} on this connection`);
    }
    job.cancel();
    return { jobId, status: job.status };
  }

  private onBinary(data: Buffer): void {
    let frame;
    try {
      frame = decodeTileFrame(data);
    } catch (err) {
      if (err instanceof FrameError) { this.rejectFrame(null, null, ErrorCodes.BadTileFrame, err.message); return; }
      throw err;
    }
    if (!this.initialized) { this.rejectFrame(frame.jobId, frame.tileId, ErrorCodes.NotInitialized, 'Not initialized: send "initialize" first'); return; }
    const job = this.jobs.get(frame.jobId);
    if (!job) {
      // Frames for a job that just ended were already on the wire: not an error worth a message.
      if (this.daemon.endedStatus(frame.jobId, this)) return;
      this.rejectFrame(frame.jobId, frame.tileId, ErrorCodes.UnknownJob, `Unknown job ${frame.jobId} on this connection`);
      return;
    }
    try {
      job.acceptFrame(frame);
    } catch (err) {
      if (err instanceof FrameRejection) this.rejectFrame(frame.jobId, frame.tileId, err.code, err.message);
      else throw err;
    }
  }

  private rejectFrame(jobId: number | null, tileId: number | null, code: number, message: string): void {
    this.counters.rejectedFrames++;
    this.warn('frame rejected', { job: jobId, tile: tileId, code, message });
    this.notify(FrameRejectedNotification.method, { jobId, tileId, code, message });
  }

  private notify(method: string, params: unknown): void {
    if (this.closed) return;
    try {
      void this.connection.sendNotification(method, params).catch(() => undefined);
    } catch {
      // The connection closed under us (sendNotification throws synchronously then): nothing to tell.
    }
  }

  /** The daemon is stopping: running jobs may finish within graceMs. */
  announceShutdown(reason: string, graceMs: number): void {
    this.notify(ShutdownNotification.method, { reason, graceMs });
  }

  cancelAll(reason: string): void {
    for (const job of [...this.jobs.values()]) job.cancel(ErrorCodes.ShuttingDown, `The daemon is shutting down: ${reason}`);
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }

  /** Closes a pre-authentication connection to make room: its messages are no longer read. */
  evict(code: number, reason: string): void {
    this.refused = true;
    this.log.warn('connection closed', { reason });
    this.dispose(reason);
    this.socket.close(code, reason);
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  /** Drops the connection without the closing handshake (a peer that does not answer it). */
  terminate(): void {
    this.socket.terminate();
  }

  private dispose(why: string): void {
    if (this.closed) return;
    this.closed = true; // first: the cancelled jobs' job/completed has nowhere to go
    for (const job of this.jobs.values()) job.cancel(ErrorCodes.Cancelled, why);
    this.lifetime.abort();
    for (const t of this.timers) clearTimeout(t);
    this.jobs.clear();
    this.connection.dispose();
    this.daemon.forget(this);
    this.log.info('client left', { why, ...this.counters });
  }
}
