/**
 * A Node client of the protocol (used by `cellbridge segment`, tests and benchmarks). It speaks
 * exactly what protocol/README.md specifies, over a real WebSocket.
 */
import WebSocket from 'ws';
import { rootCertificates as tlsRootCertificates } from 'node:tls';
import { createMessageConnection, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  CancelJobRequest, CompletedNotification, DetectionsNotification, FrameRejectedNotification, InitializeRequest,
  PROTOCOL_VERSION, ProgressNotification, RequestTilesNotification, StartJobRequest, encodeTileFrame, pixelFormatCode,
  type CompletedParams, type DetectionFeature, type FrameRejectedParams, type InitializeResult, type ProgressParams,
  type RequestTilesParams, type StartJobParams, type StartJobResult, type TilePlan, ShutdownNotification, type ShutdownParams,
} from '../../protocol';
import { WebSocketMessageReader, WebSocketMessageWriter } from '../transport/ws-transport';

export interface ConnectOptions {
  token?: string;
  headers?: Record<string, string>;
  clientName?: string;
  /**
   * For wss:// behind a proxy whose certificate a private CA signed: the CA's PEM certificate(s), trusted
   * in addition to the system's roots. The host name is still checked against the certificate.
   */
  ca?: string | Buffer;
}

/** Supplies a tile's pixels in the job's pixel format: the region at the plan's readDownsample, readWidth x readHeight, never resized. */
export type PixelSource = (tile: TilePlan) => Promise<Uint8Array>;

export interface JobCallbacks {
  onPlan?(plan: StartJobResult): void;
  onProgress?(p: ProgressParams): void;
  onDetections?(roiId: string, features: DetectionFeature[]): void;
  onFrameRejected?(p: FrameRejectedParams): void;
  /**
   * false: detections go to onDetections only and JobOutcome.features stays empty, so a client that
   * streams them (cellbridge segment) holds no more than one batch whatever the region's size.
   */
  retainFeatures?: boolean;
}

export interface JobOutcome {
  plan: StartJobResult;
  completed: CompletedParams;
  /** Detections per ROI id, in arrival order. */
  features: Map<string, DetectionFeature[]>;
}

interface RunningJob {
  plan: StartJobResult;
  source: PixelSource;
  callbacks: JobCallbacks;
  features: Map<string, DetectionFeature[]>;
  resolve(o: JobOutcome): void;
  reject(e: Error): void;
  /** The plan's tiles by id, when the plan lists them. */
  byId?: Map<number, TilePlan>;
  /** Tile requests that arrived before job/start's answer was processed. */
}

export class CellBridgeClient {
  private readonly jobs = new Map<number, RunningJob>();
  private readonly early = new Map<number, { tiles: (TilePlan | number)[][]; events: (() => void)[] }>();
  initializeResult: InitializeResult | null = null;
  private closedError: Error | null = null;
  /** Set when the daemon announced that it stops (server/shutdown): start no more jobs here. */
  stopping: ShutdownParams | null = null;

  private constructor(readonly socket: WebSocket, readonly connection: MessageConnection) {
    connection.onNotification(RequestTilesNotification, (p) => {
      const tiles = requestedTiles(p);
      const job = this.jobs.get(p.jobId);
      if (job) this.sendTiles(job, tiles);
      else this.earlyFor(p.jobId).tiles.push(tiles);
    });
    connection.onNotification(ProgressNotification, (p) => this.withJob(p.jobId, (j) => j.callbacks.onProgress?.(p)));
    connection.onNotification(DetectionsNotification, (p) => this.withJob(p.jobId, (j) => {
      if (j.callbacks.retainFeatures === false) { j.callbacks.onDetections?.(p.roiId, p.features); return; }
      let list = j.features.get(p.roiId);
      if (!list) j.features.set(p.roiId, (list = []));
      list.push(...p.features);
      j.callbacks.onDetections?.(p.roiId, p.features);
    }));
    connection.onNotification(CompletedNotification, (p) => this.withJob(p.jobId, (j) => {
      this.jobs.delete(p.jobId);
      j.resolve({ plan: j.plan, completed: p, features: j.features });
    }));
    connection.onNotification(ShutdownNotification, (p) => { this.stopping = p; });
    connection.onNotification(FrameRejectedNotification, (p) => {
      const j = p.jobId !== null ? this.jobs.get(p.jobId) : undefined;
      j?.callbacks.onFrameRejected?.(p);
    });
    socket.on('close', (code, reason) => {
      this.closedError = new Error(`connection closed (${code}${reason.length ? ': ' + reason.toString() : ''})`);
      for (const j of this.jobs.values()) j.reject(this.closedError);
      this.jobs.clear();
      connection.dispose();
    });
  }

  static async connect(url: string, options: ConnectOptions = {}): Promise<CellBridgeClient> {
    const headers = { ...(options.headers ?? {}) };
    if (!/^wss?:\/\//i.test(url)) throw new Error(`the server address must start with ws:// or wss://, got "${url}"`);
    const tls = options.ca !== undefined ? { ca: [...tlsRootCertificates, options.ca] } : {};
    const socket = new WebSocket(url, { headers, perMessageDeflate: false, ...tls });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', (err) => reject(new Error(`cannot connect to the Cell Bridge daemon at ${url}: ${err.message}. ${connectHint(err)}`)));
      socket.once('unexpected-response', (_req, res) => reject(new Error(`the daemon at ${url} refused the connection: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`)));
    });
    const connection = createMessageConnection(new WebSocketMessageReader(socket, () => undefined), new WebSocketMessageWriter(socket));
    connection.listen();
    const client = new CellBridgeClient(socket, connection);
    client.initializeResult = await connection.sendRequest(InitializeRequest, {
      clientInfo: { name: options.clientName ?? 'cellbridge-node', version: '0.1.0' },
      protocolVersion: PROTOCOL_VERSION,
      ...(options.token ? { token: options.token } : {}),
    });
    return client;
  }

  /** Starts a job and resolves when it ends (any status); rejects if the connection drops. */
  async runJob(params: StartJobParams, source: PixelSource, callbacks: JobCallbacks = {}): Promise<JobOutcome> {
    if (this.closedError) throw this.closedError;
    const plan = await this.connection.sendRequest(StartJobRequest, params);
    callbacks.onPlan?.(plan);
    return new Promise<JobOutcome>((resolve, reject) => {
      const job: RunningJob = { plan, source, callbacks, features: new Map(), resolve, reject, ...(plan.tiles ? { byId: new Map(plan.tiles.map((t) => [t.id, t])) } : {}) };
      this.jobs.set(plan.jobId, job);
      const early = this.early.get(plan.jobId);
      this.early.delete(plan.jobId);
      for (const tiles of early?.tiles ?? []) this.sendTiles(job, tiles);
      for (const ev of early?.events ?? []) ev();
    });
  }

  /** Open, and its daemon not stopping: a new job may start on this connection. */
  get usable(): boolean {
    return this.closedError === null && this.stopping === null && this.socket.readyState === WebSocket.OPEN;
  }

  cancel(jobId: number) {
    return this.connection.sendRequest(CancelJobRequest, { jobId });
  }

  sendRequest(method: string, params?: unknown): Promise<unknown> {
    return this.connection.sendRequest(method, params);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.readyState === WebSocket.CLOSED) { resolve(); return; }
      this.socket.once('close', () => resolve());
      this.socket.close(1000, 'done');
    });
  }

  private earlyFor(jobId: number) {
    let e = this.early.get(jobId);
    if (!e) this.early.set(jobId, (e = { tiles: [], events: [] }));
    return e;
  }

  private withJob(jobId: number, fn: (j: RunningJob) => void): void {
    const j = this.jobs.get(jobId);
    if (j) fn(j);
    else this.earlyFor(jobId).events.push(() => { const again = this.jobs.get(jobId); if (again) fn(again); });
  }

  /** Tiles by rectangle (protocol 1.1) or by id, looked up in the plan (a 1.0 daemon). */
  private sendTiles(job: RunningJob, requested: (TilePlan | number)[]): void {
    const format = pixelFormatCode(job.plan.pixelFormat);
    for (const r of requested) {
      const tile = typeof r === 'number' ? job.byId?.get(r) : r;
      if (!tile) continue;
      const id = tile.id;
      job.source(tile).then((pixels) => {
        if (this.socket.readyState !== WebSocket.OPEN) return;
        this.socket.send(encodeTileFrame({ format, jobId: job.plan.jobId, tileId: id, width: tile.readWidth, height: tile.readHeight }, pixels));
      }).catch((err: Error) => {
        void this.cancel(job.plan.jobId).catch(() => undefined);
        job.reject(err);
        this.jobs.delete(job.plan.jobId);
      });
    }
  }
}

/** The rectangles of a job/requestTiles (1.1), or its bare ids (1.0). */
function requestedTiles(p: RequestTilesParams): (TilePlan | number)[] {
  return Array.isArray(p.tiles) && p.tiles.length === p.tileIds.length ? p.tiles : p.tileIds;
}

/** What to do about a failed connection: a certificate problem wants the CA, anything else a running daemon. */
function connectHint(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return 'The server\'s TLS certificate is not trusted: give its CA certificate (cellbridge --ca CA.pem, QuPath caCertificate=).';
  }
  return 'Start it with: npx cellbridge serve';
}

/** Packs RGB8 as big-endian ARGB32 ints (what QuPath's getRGB gives), for clients that send argb32. */
export function rgbToArgb32(rgb: Uint8Array): Uint8Array {
  const n = rgb.length / 3;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) { out[4 * i] = 255; out[4 * i + 1] = rgb[3 * i]; out[4 * i + 2] = rgb[3 * i + 1]; out[4 * i + 3] = rgb[3 * i + 2]; }
  return out;
}
