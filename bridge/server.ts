/**
 * The daemon: loads models, picks the execution provider, starts the tile engine and serves
 * WebSocket clients. `startDaemon` resolves once it listens; `close` shuts it down gracefully.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import * as ort from './inference/ort';
import type { ExecutionProviderInfo, HealthResult, JobStatus } from '../protocol';
import { maxTcpConnections, type ServerConfig } from './config';
import { ModelRegistry } from './inference/model-registry';
import { selectProvider, summariseError, type ProbeModel } from './inference/providers';
import { loadableRunFile } from './inference/model-file';
import { TileEngine } from './pipeline/engine';
import { IsolatedChecks } from './inference/isolated-checks';
import { ClientSession } from './session/client-session';
import type { DaemonContext } from './session/daemon-context';
import { createLogger, type Logger } from './util/log';
import { WorkerPool } from './workers/pool';
import type { PlanResult, PlanTask } from './session/plan-worker';
import { bearerToken, tokenMatches } from './session/auth';
import { forwardedFor, isLoopback } from './util/loopback';

export { isLoopback };
import { TileBudget } from './session/tile-budget';
import { preAuthVictims } from './session/preauth-eviction';

export const VERSION: string = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')).version;

export interface Daemon {
  url: string;
  port: number;
  host: string;
  /** serverInfo.instance: which daemon this is, behind a load balancer. */
  instance: string;
  provider: ExecutionProviderInfo;
  registry: ModelRegistry;
  engine: TileEngine;
  /**
   * Stops accepting, tells clients (server/shutdown), lets jobs end within graceMs, cancels the
   * rest (ShuttingDown), closes the connections and the workers. Bounded: resolves within about
   * graceMs + 4 s whatever the clients do. Calling it again ends the grace period at once.
   */
  close(graceMs?: number, reason?: string): Promise<void>;
  readonly clients: number;
}


/** The model whose test inference picks the provider: the default one (what users run), else the first ready. */
export function probeOf(registry: ModelRegistry): ProbeModel | null {
  const ready = registry.list().filter((r) => r.status === 'ready' && r.card && r.onnxPath);
  const m = ready.find((r) => r.name === registry.defaultModel) ?? ready[0];
  if (!m || !m.card || !m.onnxPath) return null;
  const i = m.card.input;
  const size = i.modelSize;
  return { path: m.onnxPath, inputName: i.name, dims: i.layout === 'NCHW' ? [1, i.channels, size, size] : [1, size, size, i.channels] };
}

/**
 * Loads every ready model once with the chosen provider, so a corrupt file is reported now, not mid-job.
 * A `cpuFile` that does not load is only a lost speed-up: the model runs its `file` instead, with a warning.
 */
async function verifyModels(registry: ModelRegistry, provider: string, log: Logger, checks: IsolatedChecks): Promise<void> {
  for (const m of registry.list()) {
    if (m.status !== 'ready' || !m.onnxPath || !m.card) continue;
    try {
      const file = await loadableRunFile(m, provider, (reason) =>
        log.warn('model cpuFile could not be loaded; running its full-precision file', { model: m.name, reason }), checks.checkFile);
      if (file !== m.onnxPath) registry.useFullPrecision(m.name);
    } catch (err) {
      const reason = `model file could not be loaded: ${summariseError(err)}`;
      registry.markFailed(m.name, reason);
      log.error('model failed', { model: m.name, reason });
    }
  }
}

/**
 * Picks the execution provider by probing with a ready model. A probe that fails because the model
 * file itself is broken (it does not load even on the CPU) marks that model failed and probes with
 * the next one: a corrupt model must not stop the daemon, nor pass for a provider problem.
 */
async function chooseProvider(config: ServerConfig, registry: ModelRegistry, log: Logger, checks: IsolatedChecks) {
  for (;;) {
    const probe = probeOf(registry);
    try {
      return await selectProvider(config.device, probe, { probe: checks.probe });
    } catch (err) {
      if (!probe) throw err;
      const m = registry.list().find((r) => r.onnxPath === probe.path)!;
      try {
        const s = await ort.InferenceSession.create(probe.path, { executionProviders: ['cpu'] });
        await s.release();
      } catch (loadErr) {
        const reason = `model file could not be loaded: ${summariseError(loadErr)}`;
        registry.markFailed(m.name, reason);
        log.error('model failed', { model: m.name, reason });
        continue;
      }
      throw err;
    }
  }
}

export async function startDaemon(config: ServerConfig, log: Logger = createLogger(config.logLevel)): Promise<Daemon> {
  if (!isLoopback(config.host) && !config.token) {
    throw new Error(`refusing to listen on ${config.host} without a token: anyone on the network could use the daemon. Set --token or CELLBRIDGE_TOKEN, or use --host 127.0.0.1.`);
  }
  const registry = new ModelRegistry(config.modelsDir, config.defaultModel);
  for (const m of registry.list()) if (m.status === 'failed') log.error('model failed', { model: m.name, reason: m.error });
  // The test inferences run in a child process: a provider that aborts is skipped, not fatal.
  const checks = new IsolatedChecks();
  let choice: Awaited<ReturnType<typeof chooseProvider>>;
  try {
    choice = await chooseProvider(config, registry, log, checks);
    for (const s of choice.skipped) log.warn('execution provider skipped', s);
    log.info('execution provider', { provider: choice.name, deviceName: choice.deviceName });
    registry.useProvider(choice.name, config.fullPrecision);
    await verifyModels(registry, choice.name, log, checks);
  } finally {
    await checks.close();
  }
  const engine = new TileEngine({
    provider: choice.name, inferenceWorkers: config.inferenceWorkers,
    postprocessWorkers: config.postprocessWorkers, intraOpThreads: config.intraOpThreads,
    taskTimeoutMs: config.limits.taskTimeoutMs, inferenceIsolation: config.inferenceIsolation,
  });
  if (config.inferenceWorkers !== undefined && config.inferenceWorkers > engine.settings.inferenceWorkers) {
    log.warn('inference workers capped', {
      provider: choice.name, isolation: engine.settings.inferenceIsolation, asked: config.inferenceWorkers,
      running: engine.settings.inferenceWorkers, why: 'two WebGPU sessions in one process abort it',
    });
  }
  engine.inference.on('crash', (err: Error) => log.error('inference worker crashed; replaced', { error: err.message }));
  engine.postprocess.on('crash', (err: Error) => log.error('post-processing worker crashed; replaced', { error: err.message }));
  const planner = new WorkerPool<PlanTask, PlanResult>(join(__dirname, 'session/plan-worker.js'), {
    name: 'planning', size: 1, taskTimeoutMs: config.limits.planTimeoutMs,
    // A plan that needs more heap ends that worker (it is replaced), not the daemon.
    resourceLimits: { maxOldGenerationSizeMb: config.limits.planMemoryMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, config.limits.planMemoryMb / 8)) },
  });
  planner.on('crash', (err: Error) => log.warn('planning worker stopped; replaced', { error: err.message }));

  const sessions = new Set<ClientSession>();
  /** Sessions admitted as clients (initialized, or authorized by header): limits.maxClients. */
  const admitted = new Set<ClientSession>();
  const tileBudget = new TileBudget(config.limits.maxTilesInFlightTotal);
  const running = new Set<import('./session/job').Job>();
  /** Recently ended jobs (for late frames and job/cancel): keyed by job id, holding the session's id, not the session. */
  const ended = new Map<number, { status: JobStatus; session: number }>();
  let jobCounter = 0;
  let shuttingDown = false;
  const provider: ExecutionProviderInfo = { name: choice.name, ...(choice.deviceName ? { deviceName: choice.deviceName } : {}), skipped: choice.skipped };

  // The instance id names the port, known only once listening; no client is served before that.
  const identity = { host: hostname(), instance: config.instanceId ?? '' };
  const context: DaemonContext = {
    config, version: VERSION, identity, registry, engine, planner, provider,
    get shuttingDown() { return shuttingDown; },
    nextJobId: () => ++jobCounter,
    trackJob(job, session) {
      running.add(job);
      void job.finished.then((summary) => {
        running.delete(job);
        ended.set(job.id, { status: summary.status, session: session.id });
        if (ended.size > 10_000) ended.delete(ended.keys().next().value as number);
      });
    },
    endedStatus(jobId, session) {
      const e = ended.get(jobId);
      return e && e.session === session.id ? e.status : undefined;
    },
    forget(session) { sessions.delete(session); admitted.delete(session); },
    admit(session) {
      if (admitted.size >= config.limits.maxClients) return false;
      admitted.add(session);
      return true;
    },
    tileBudget,
    health(): HealthResult {
      const pools = [engine.inference.health(), engine.postprocess.health(), planner.health()];
      const problems = pools.filter((p) => !p.ok).map((p) => p.problem!);
      if (!registry.list().some((m) => m.status === 'ready')) problems.push('no model is ready');
      if (shuttingDown) problems.push('the daemon is shutting down');
      return { status: problems.length ? 'degraded' : 'ok', problems, pools, clients: admitted.size, jobs: running.size };
    },
    requestStop(reason) {
      // after the answer has been written
      setTimeout(() => {
        if (config.onStopRequest) config.onStopRequest(reason);
        else void daemon.close(10_000, reason);
      }, 50).unref();
    },
    stats() {
      return {
        clients: sessions.size, jobs: running.size,
        queued: { inference: engine.inference.queued, postprocess: engine.postprocess.queued, plan: planner.queued },
        tilesInFlight: tileBudget.inUse,
        busy: { inference: engine.inference.busy, postprocess: engine.postprocess.busy, plan: planner.busy },
        memory: process.memoryUsage(),
      };
    },
  };

  // Slow or idle HTTP clients that never upgrade do not hold sockets for long (checked every second).
  const http = createServer({ headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000 }, (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('Cell Bridge speaks JSON-RPC over WebSocket: connect with ws://\n');
  });
  // TCP connections past this are closed as they are accepted: sockets are bounded whatever the peers send.
  http.maxConnections = maxTcpConnections(config.limits);
  // A socket that sends nothing at all is not covered by headersTimeout: idle 5 s before its upgrade,
  // it is closed (ws clears the timeout when it takes the socket over).
  http.on('connection', (socket) => { socket.setTimeout(5_000, () => socket.destroy()); });
  const wss = new WebSocketServer({
    server: http,
    // Until a connection authenticates, messages are small; ClientSession raises this per connection.
    maxPayload: Math.min(config.limits.maxPreAuthMessageBytes, config.limits.maxMessageBytes),
    perMessageDeflate: false,
    verifyClient: (info: { origin: string; req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
      // Browsers always send Origin (web pages cannot suppress it); native clients (QuPath, Node) do not.
      // A page the user opens must not drive the daemon: cross-site WebSocket hijacking.
      const origin = info.req.headers.origin ?? info.req.headers['sec-websocket-origin'];
      const remote = info.req.socket.remoteAddress;
      const via = forwardedFor(info.req.headers);
      if (origin !== undefined && !config.allowedOrigins.includes(String(origin))) {
        log.warn('connection refused', { reason: 'origin not allowed', origin: String(origin).slice(0, 200), remote, forwardedFor: via });
        done(false, 403, 'Origin not allowed (start the daemon with --allow-origin to allow it)');
        return;
      }
      const auth = info.req.headers.authorization;
      if (config.token && auth !== undefined && !tokenMatches(bearerToken(auth), config.token)) {
        log.warn('connection refused', { reason: 'wrong token header', remote, forwardedFor: via });
        done(false, 401, 'Unauthorized');
        return;
      }
      if (shuttingDown) { done(false, 503, 'Shutting down'); return; }
      const headerAuthorized = !!config.token && auth !== undefined;
      if (headerAuthorized ? admitted.size >= config.limits.maxClients : admitted.size + preAuthCount() >= config.limits.maxClients + config.limits.maxPreAuthConnections) {
        log.warn('connection refused', { reason: 'too many clients', limit: config.limits.maxClients, remote, forwardedFor: via });
        done(false, 503, 'Too many clients');
        return;
      }
      done(true);
    },
  });
  let clientCounter = 0;
  const preAuthCount = () => { let n = 0; for (const s of sessions) if (s.preAuth) n++; return n; };
  wss.on('connection', (socket: WebSocket, req: IncomingMessage) => {
    const authorized = !!config.token && tokenMatches(bearerToken(req.headers.authorization), config.token);
    const conn = ++clientCounter;
    // Behind a reverse proxy (deploy/nginx) the peer is the proxy: log whom it forwarded for as well.
    const via = forwardedFor(req.headers);
    const clientLog = log.child({ conn, remote: req.socket.remoteAddress, ...(via !== undefined ? { forwardedFor: via } : {}) });
    if (!authorized) {
      // The pre-authentication quota is small and never refuses: the oldest waiting connection of the
      // most crowded address makes room, so sockets that never initialize cannot keep real clients out.
      const waiting = [...sessions].filter((s) => s.preAuth).map((s) => ({ session: s, address: s.peerAddress }));
      for (const v of preAuthVictims(waiting, req.socket.remoteAddress ?? '', config.limits.maxPreAuthConnections)) {
        v.session.evict(1008, 'too many connections waiting to initialize');
      }
    }
    clientLog.info('client connected');
    const session = new ClientSession(socket, context, clientLog, authorized, conn, req.socket.remoteAddress, via !== undefined);
    sessions.add(session);
    if (authorized) admitted.add(session);
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
  if (!identity.instance) identity.instance = `${identity.host}:${port}/${process.pid}`;
  log.info('listening', { url, instance: identity.instance, provider: choice.name, inference: { workers: engine.settings.inferenceWorkers, isolation: engine.settings.inferenceIsolation }, models: registry.list().map((m) => `${m.name}:${m.status}`) });

  let closing: Promise<void> | null = null;
  let endGrace: () => void = () => undefined;
  // Not unref'd: the process must live until the shutdown has run to its end.
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  const daemon: Daemon = {
    url, port, host: config.host, instance: identity.instance, provider, registry, engine,
    get clients() { return sessions.size; },
    close(graceMs = 10_000, reason = 'server stopping') {
      if (closing) { endGrace(); return closing; }
      shuttingDown = true;
      closing = (async () => {
        log.info('shutting down', { reason, jobs: running.size, clients: sessions.size, graceMs });
        // Stop accepting: no new connections; new job/start requests get ShuttingDown.
        const httpClosed = new Promise<void>((r) => http.close(() => r()));
        for (const s of sessions) s.announceShutdown(reason, graceMs);
        const grace = new Promise<void>((r) => { endGrace = r; setTimeout(r, graceMs); });
        await Promise.race([Promise.all([...running].map((j) => j.finished)), grace]);
        for (const s of sessions) s.cancelAll(reason);
        // Cancelled jobs end at once; running worker tasks are not waited for long.
        await Promise.race([Promise.all([...running].map((j) => j.finished)), sleep(1000)]);
        for (const s of sessions) s.close(1001, 'server stopping');
        for (let t = 0; t < 20 && sessions.size > 0; t++) await sleep(50);
        for (const s of [...sessions]) s.terminate();
        http.closeAllConnections();
        wss.close();
        await Promise.race([httpClosed, sleep(1000)]);
        await Promise.race([Promise.all([engine.close(), planner.close()]), sleep(1000)]);
        log.info('stopped', { jobsLeft: running.size });
      })();
      return closing;
    },
  };
  return daemon;
}
