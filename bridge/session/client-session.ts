/**
 * One WebSocket connection: the JSON-RPC handlers (initialize, models/list, job/start, job/cancel),
 * binary tile frames, and clean-up when the client leaves (its jobs are cancelled and freed).
 */
import type WebSocket from 'ws';
import { createMessageConnection, ResponseError, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  CompletedNotification, DetectionsNotification, ErrorCodes, FrameError, FrameRejectedNotification,
  isCompatibleProtocol, PROTOCOL_VERSION, ProgressNotification, RequestTilesNotification, ShutdownNotification,
  decodeTileFrame, type InitializeResult, type StartJobResult, type CancelJobResult, type ModelInfo,
} from '../../protocol';
import { WebSocketMessageReader, WebSocketMessageWriter } from '../transport/ws-transport';
import { checkJobId, checkStartJob, invalid } from './validate';
import { FrameRejection, Job } from './job';
import { parseRoi, RoiError, type Roi } from '../tiling/roi';
import { planTiles } from '../tiling/planner';
import type { Logger } from '../util/log';
import type { DaemonContext } from './daemon-context';
import type { PostprocessOptions } from '../postprocess';

export class ClientSession {
  private readonly connection: MessageConnection;
  private initialized = false;
  private readonly jobs = new Map<number, Job>();
  private closed = false;
  private readonly initTimer: NodeJS.Timeout;

  constructor(
    private readonly socket: WebSocket,
    private readonly daemon: DaemonContext,
    private log: Logger,
    /** The upgrade already carried the right token. */
    private authorized: boolean,
  ) {
    const reader = new WebSocketMessageReader(socket, (data) => this.onBinary(data));
    const writer = new WebSocketMessageWriter(socket);
    this.connection = createMessageConnection(reader, writer, {
      error: (m) => log.debug('jsonrpc', { message: m }), warn: (m) => log.debug('jsonrpc', { message: m }),
      info: () => undefined, log: () => undefined,
    });
    this.register();
    this.connection.listen();
    socket.on('close', () => this.dispose('client disconnected'));
    this.initTimer = setTimeout(() => {
      if (!this.initialized) this.socket.close(1008, 'initialize was not sent in time');
    }, daemon.config.limits.initializeTimeoutMs);
    this.initTimer.unref();
  }

  get jobCount(): number { return this.jobs.size; }

  private guard<P, R>(handler: (params: P) => R | Promise<R>): (params: P) => Promise<R> {
    return async (params: P) => {
      if (!this.initialized) throw new ResponseError(ErrorCodes.NotInitialized, 'Not initialized: send "initialize" first');
      if (this.daemon.shuttingDown) throw new ResponseError(ErrorCodes.ShuttingDown, 'The daemon is shutting down');
      return handler(params);
    };
  }

  private register(): void {
    const c = this.connection;
    c.onRequest('initialize', (params: unknown) => this.initialize(params));
    c.onRequest('models/list', this.guard(() => this.modelInfos()));
    c.onRequest('job/start', this.guard((params: unknown) => this.startJob(params)));
    c.onRequest('job/cancel', this.guard((params: unknown) => this.cancelJob(params)));
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
      status: m.status,
      ...(m.error ? { error: m.error } : {}),
    }));
  }

  private initialize(params: unknown): InitializeResult {
    if (this.initialized) throw new ResponseError(ErrorCodes.AlreadyInitialized, 'Already initialized: send "initialize" once per connection');
    const p = params as Record<string, unknown> | undefined;
    if (typeof p !== 'object' || p === null) throw invalid('initialize takes {clientInfo, protocolVersion, token?}');
    const clientInfo = p.clientInfo as Record<string, unknown> | undefined;
    if (typeof clientInfo !== 'object' || clientInfo === null || typeof clientInfo.name !== 'string') throw invalid('"clientInfo.name" must be a string');
    if (typeof p.protocolVersion !== 'string') throw invalid('"protocolVersion" must be a string like "1.0"');
    if (!isCompatibleProtocol(p.protocolVersion)) {
      throw new ResponseError(ErrorCodes.VersionMismatch, `Protocol version mismatch: the client speaks ${p.protocolVersion}, this daemon speaks ${PROTOCOL_VERSION}. Update the client scripts or the daemon so that the major versions match.`);
    }
    const token = this.daemon.config.token;
    if (token && !this.authorized) {
      if (p.token !== token) {
        setTimeout(() => this.socket.close(1008, 'unauthorized'), 50).unref();
        throw new ResponseError(ErrorCodes.Unauthorized, p.token === undefined
          ? 'Unauthorized: this daemon requires a token (set it in the client settings, e.g. CELLBRIDGE_TOKEN)'
          : 'Unauthorized: the token is wrong');
      }
      this.authorized = true;
    }
    this.initialized = true;
    clearTimeout(this.initTimer);
    this.log = this.log.child({ client: `${clientInfo.name}${typeof clientInfo.version === 'string' ? '/' + clientInfo.version : ''}` });
    this.log.info('client initialized');
    const l = this.daemon.config.limits;
    return {
      serverInfo: { name: 'cellbridge', version: this.daemon.version },
      protocolVersion: PROTOCOL_VERSION,
      models: this.modelInfos(),
      defaultModel: this.daemon.registry.defaultModel,
      executionProvider: this.daemon.provider,
      limits: {
        maxMessageBytes: l.maxMessageBytes, maxTilesInFlight: l.maxTilesInFlight, maxJobsPerClient: l.maxJobsPerClient,
        maxRoiAreaPixels: l.maxRoiAreaPixels, tileTimeoutMs: l.tileTimeoutMs,
      },
    };
  }

  private startJob(params: unknown): StartJobResult {
    const p = checkStartJob(params);
    const limits = this.daemon.config.limits;
    const modelName = p.model ?? this.daemon.registry.defaultModel;
    const model = modelName ? this.daemon.registry.get(modelName) : undefined;
    if (!model) {
      const names = this.daemon.registry.list().map((m) => m.name).join(', ') || 'none';
      throw new ResponseError(ErrorCodes.UnknownModel, `Unknown model "${modelName ?? ''}". Models on this daemon: ${names}`);
    }
    if (model.status !== 'ready' || !model.card) throw new ResponseError(ErrorCodes.ModelFailed, `Model "${model.name}" cannot be used: ${model.error}`);
    if (this.jobs.size >= limits.maxJobsPerClient) {
      throw new ResponseError(ErrorCodes.LimitExceeded, `Limit exceeded: at most ${limits.maxJobsPerClient} jobs per connection run at once`);
    }
    if (p.rois.length > limits.maxRoisPerJob) throw new ResponseError(ErrorCodes.LimitExceeded, `Limit exceeded: at most ${limits.maxRoisPerJob} ROIs per job`);
    const card = model.card;
    const opts = p.options ?? {};
    let imageMpp = p.image.micronsPerPixel ?? opts.assumeMicronsPerPixel ?? null;
    let downsample = 1;
    if (card.input.micronsPerPixel !== null) {
      if (imageMpp === null) {
        throw new ResponseError(ErrorCodes.MissingPixelSize, `The image has no pixel size, and model "${model.name}" works at ${card.input.micronsPerPixel} µm/px. Set the pixel size in QuPath (Image tab) or pass options.assumeMicronsPerPixel (e.g. 0.5 for 20x, 0.25 for 40x).`);
      }
      downsample = card.input.micronsPerPixel / imageMpp;
      if (!(downsample >= 0.05 && downsample <= 64)) {
        throw new ResponseError(ErrorCodes.InvalidParams, `Invalid params: pixel size ${imageMpp} µm/px is implausible for model ${model.name} (${card.input.micronsPerPixel} µm/px)`);
      }
    }
    const rois: Roi[] = [];
    let area = 0;
    for (const r of p.rois) {
      let roi: Roi;
      try {
        roi = parseRoi(r.id, r.geometry, limits.maxRoiVertices);
      } catch (err) {
        if (err instanceof RoiError) throw new ResponseError(err.empty ? ErrorCodes.EmptyRoi : ErrorCodes.InvalidRoi, err.message);
        throw err;
      }
      const [x0, y0, x1, y1] = roi.bbox;
      if (x1 <= 0 || y1 <= 0 || x0 >= p.image.width || y0 >= p.image.height) {
        throw new ResponseError(ErrorCodes.EmptyRoi, `ROI "${r.id}" lies wholly outside the ${p.image.width}x${p.image.height} image`);
      }
      area += roi.area;
      rois.push(roi);
    }
    if (area > limits.maxRoiAreaPixels) {
      throw new ResponseError(ErrorCodes.LimitExceeded, `Limit exceeded: the ROIs cover ${Math.round(area)} px², the daemon accepts at most ${limits.maxRoiAreaPixels} px² per job`);
    }
    const tiles = planTiles({
      imageWidth: p.image.width, imageHeight: p.image.height, downsample,
      tileSize: card.input.readSize, overlap: card.tiling.overlap,
    }, rois);
    const maxTilesInFlight = Math.min(opts.maxTilesInFlight ?? 4, limits.maxTilesInFlight);
    const pixelFormat = opts.pixelFormat ?? 'argb32';
    const postprocess: PostprocessOptions = { ...card.postprocess, ...(opts.postprocess ?? {}) };
    const jobId = this.daemon.nextJobId();
    const job = new Job({
      id: jobId, model, tiles, rois, pixelFormat, maxTilesInFlight, postprocess,
      context: {
        rois: rois.map((r) => ({ id: r.id, polygons: r.polygons, bbox: r.bbox })),
        classes: card.classes,
        imageMicronsPerPixel: imageMpp,
        objectType: opts.objectType ?? 'cell',
        simplifyTolerance: opts.simplifyTolerance ?? 0,
        minArea: opts.minAreaMicrons ?? 0,
        idSeed: `${p.image.name ?? ''}|${model.name}`,
      },
      detectionBatchSize: opts.detectionBatchSize ?? 500,
      tileTimeoutMs: limits.tileTimeoutMs,
    }, this.daemon.engine, {
      requestTiles: (m) => this.notify(RequestTilesNotification.method, m),
      progress: (m) => this.notify(ProgressNotification.method, m),
      detections: (m) => this.notify(DetectionsNotification.method, m),
      completed: (m) => { this.notify(CompletedNotification.method, m); this.jobs.delete(jobId); },
    }, this.log.child({ job: jobId }));
    this.jobs.set(jobId, job);
    this.daemon.trackJob(job, this);
    this.log.info('job started', { job: jobId, model: model.name, tiles: tiles.length, rois: rois.length, downsample });
    // The plan (this request's response) must reach the client before the first tile request.
    setImmediate(() => job.start());
    return { jobId, model: model.name, downsample, pixelFormat, maxTilesInFlight, tiles: tiles.map(({ core: _core, ...t }) => t) };
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
    this.log.warn('frame rejected', { job: jobId, tile: tileId, message });
    this.notify(FrameRejectedNotification.method, { jobId, tileId, code, message });
  }

  private notify(method: string, params: unknown): void {
    if (this.closed) return;
    void this.connection.sendNotification(method, params).catch(() => undefined);
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

  private dispose(why: string): void {
    if (this.closed) return;
    for (const job of this.jobs.values()) job.cancel(ErrorCodes.Cancelled, why);
    this.closed = true;
    clearTimeout(this.initTimer);
    this.jobs.clear();
    this.connection.dispose();
    this.daemon.forget(this);
    this.log.info('client left', { why });
  }
}
