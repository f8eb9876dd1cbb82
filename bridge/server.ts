/**
 * The daemon: loads models, picks the execution provider, starts the tile engine and serves
 * WebSocket clients. `startDaemon` resolves once it listens; `close` shuts it down gracefully.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import * as ort from 'onnxruntime-node';
import type { ExecutionProviderInfo, JobStatus } from '../protocol';
import type { ServerConfig } from './config';
import { ModelRegistry } from './inference/model-registry';
import { selectProvider, summariseError, type ProbeModel } from './inference/providers';
import { TileEngine } from './pipeline/engine';
import { ClientSession } from './session/client-session';
import type { DaemonContext } from './session/daemon-context';
import { createLogger, type Logger } from './util/log';

export const VERSION: string = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')).version;

export interface Daemon {
  url: string;
  port: number;
  host: string;
  provider: ExecutionProviderInfo;
  registry: ModelRegistry;
  engine: TileEngine;
  /** Stops accepting, tells clients, lets jobs end within graceMs (cancelling the rest), then closes. */
  close(graceMs?: number, reason?: string): Promise<void>;
  readonly clients: number;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function probeOf(registry: ModelRegistry): ProbeModel | null {
  const m = registry.list().find((r) => r.status === 'ready' && r.card && r.onnxPath);
  if (!m || !m.card || !m.onnxPath) return null;
  const i = m.card.input;
  const size = i.modelSize;
  return { path: m.onnxPath, inputName: i.name, dims: i.layout === 'NCHW' ? [1, i.channels, size, size] : [1, size, size, i.channels] };
}

/** Loads every ready model once with the chosen provider, so a corrupt file is reported now, not mid-job. */
async function verifyModels(registry: ModelRegistry, provider: string, log: Logger): Promise<void> {
  for (const m of registry.list()) {
    if (m.status !== 'ready' || !m.onnxPath || !m.card) continue;
    try {
      const s = await ort.InferenceSession.create(m.onnxPath, { executionProviders: [provider] });
      const missing = [m.card.input.name].filter((n) => !s.inputNames.includes(n))
        .concat([m.card.outputs.flows.name, m.card.outputs.type.name, ...(m.card.outputs.cellProbability ? [m.card.outputs.cellProbability.name] : [])].filter((n) => !s.outputNames.includes(n)));
      await s.release();
      if (missing.length > 0) throw new Error(`the ONNX file has no input/output named ${missing.join(', ')} (it has inputs ${s.inputNames.join(', ')}; outputs ${s.outputNames.join(', ')})`);
    } catch (err) {
      const reason = `model file could not be loaded: ${summariseError(err)}`;
      registry.markFailed(m.name, reason);
      log.error('model failed', { model: m.name, reason });
    }
  }
}

export async function startDaemon(config: ServerConfig, log: Logger = createLogger(config.logLevel)): Promise<Daemon> {
  if (!isLoopback(config.host) && !config.token) {
    throw new Error(`refusing to listen on ${config.host} without a token: anyone on the network could use the daemon. Set --token or CELLBRIDGE_TOKEN, or use --host 127.0.0.1.`);
  }
  const registry = new ModelRegistry(config.modelsDir, config.defaultModel);
  for (const m of registry.list()) if (m.status === 'failed') log.error('model failed', { model: m.name, reason: m.error });
  const choice = await selectProvider(config.device, probeOf(registry));
  for (const s of choice.skipped) log.warn('execution provider skipped', s);
  log.info('execution provider', { provider: choice.name });
  await verifyModels(registry, choice.name, log);
  const engine = new TileEngine({
    provider: choice.name, inferenceWorkers: config.inferenceWorkers,
    postprocessWorkers: config.postprocessWorkers, intraOpThreads: config.intraOpThreads,
  });
  engine.inference.on('crash', (err: Error) => log.error('inference worker crashed; replaced', { error: err.message }));
  engine.postprocess.on('crash', (err: Error) => log.error('post-processing worker crashed; replaced', { error: err.message }));

  const sessions = new Set<ClientSession>();
  const running = new Set<import('./session/job').Job>();
  const ended = new Map<number, { status: JobStatus; session: ClientSession }>();
  let jobCounter = 0;
  let shuttingDown = false;
  const provider: ExecutionProviderInfo = { name: choice.name, ...(choice.deviceName ? { deviceName: choice.deviceName } : {}), skipped: choice.skipped };

  const context: DaemonContext = {
    config, version: VERSION, registry, engine, provider,
    get shuttingDown() { return shuttingDown; },
    nextJobId: () => ++jobCounter,
    trackJob(job, session) {
      running.add(job);
      void job.finished.then((summary) => {
        running.delete(job);
        ended.set(job.id, { status: summary.status, session });
        if (ended.size > 10_000) ended.delete(ended.keys().next().value as number);
      });
    },
    endedStatus(jobId, session) {
      const e = ended.get(jobId);
      return e && e.session === session ? e.status : undefined;
    },
    forget(session) { sessions.delete(session); },
  };

  const http = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('Cell Bridge speaks JSON-RPC over WebSocket: connect with ws://\n');
  });
  const wss = new WebSocketServer({
    server: http,
    maxPayload: config.limits.maxMessageBytes,
    perMessageDeflate: false,
    verifyClient: (info: { origin: string; req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
      const origin = info.req.headers.origin;
      if (origin !== undefined && !config.allowedOrigins.includes(origin)) {
        log.warn('connection refused', { reason: 'origin not allowed', origin });
        done(false, 403, 'Origin not allowed');
        return;
      }
      const auth = info.req.headers.authorization;
      if (config.token && auth !== undefined && auth !== `Bearer ${config.token}`) {
        log.warn('connection refused', { reason: 'wrong token header' });
        done(false, 401, 'Unauthorized');
        return;
      }
      if (shuttingDown) { done(false, 503, 'Shutting down'); return; }
      if (sessions.size >= config.limits.maxClients) { done(false, 503, 'Too many clients'); return; }
      done(true);
    },
  });
  let clientCounter = 0;
  wss.on('connection', (socket: WebSocket, req: IncomingMessage) => {
    const authorized = !!config.token && req.headers.authorization === `Bearer ${config.token}`;
    const clientLog = log.child({ conn: ++clientCounter, remote: req.socket.remoteAddress });
    clientLog.info('client connected');
    sessions.add(new ClientSession(socket, context, clientLog, authorized));
  });
  wss.on('error', (err) => log.error('websocket server error', { error: err.message }));

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => { http.off('error', reject); resolve(); });
  });
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const hostForUrl = config.host.includes(':') && !config.host.startsWith('[') ? `[${config.host}]` : config.host;
  const url = `ws://${hostForUrl}:${port}/`;
  log.info('listening', { url, provider: choice.name, models: registry.list().map((m) => `${m.name}:${m.status}`) });

  let closing: Promise<void> | null = null;
  return {
    url, port, host: config.host, provider, registry, engine,
    get clients() { return sessions.size; },
    close(graceMs = 10_000, reason = 'server stopping') {
      if (closing) return closing;
      shuttingDown = true;
      closing = (async () => {
        log.info('shutting down', { reason, jobs: running.size, graceMs });
        wss.close();
        for (const s of sessions) s.announceShutdown(reason, graceMs);
        const drained = Promise.all([...running].map((j) => j.finished));
        await Promise.race([drained, new Promise((r) => setTimeout(r, graceMs).unref())]);
        for (const s of sessions) s.cancelAll(reason);
        await Promise.race([Promise.all([...running].map((j) => j.finished)), new Promise((r) => setTimeout(r, 2000).unref())]);
        for (const s of sessions) s.close(1001, 'server stopping');
        await new Promise<void>((r) => http.close(() => r()));
        await engine.close();
        log.info('stopped');
      })();
      return closing;
    },
  };
}
