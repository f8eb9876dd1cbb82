/** `cellbridge serve`: run the daemon until SIGINT/SIGTERM. */
import { resolve } from 'node:path';
import { DEFAULT_LIMITS, DEFAULT_PORT, type ServerConfig } from '../config';
import { DEVICE_CHOICES, describeChoice, type DeviceRequest } from '../inference/providers';
import { runFileName } from '../inference/model-registry';
import { isLoopback, startDaemon, type Daemon } from '../server';
import { createLogger, isLogLevel, type Logger } from '../util/log';
import { intFlag, isolationFlag, parseCommand, UsageError } from './args';
import { SERVE, type OptionSpec } from './specs';
import { defaultModelsDir } from './paths';

/** Integer limit flags, from the option table: flag name → [config key, min, max, multiplier from the flag's unit]. */
const LIMIT_FLAGS: Record<string, NonNullable<OptionSpec['limit']>> = Object.fromEntries(SERVE.options.filter((o) => o.limit).map((o) => [o.name, o.limit!]));

export type ServeConfig = ServerConfig & { shutdownGraceMs: number };

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const parsed = parseCommand(SERVE, argv);
  if (parsed.help) throw new UsageError('--help is answered before parsing', SERVE);
  const values = parsed.values as Record<string, string | undefined>;
  const origins = parsed.values['allow-origin'] as string[] | undefined;
  const device = (values.device ?? env.CELLBRIDGE_DEVICE ?? 'auto') as DeviceRequest;
  if (!DEVICE_CHOICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICE_CHOICES.join(', ')}, got "${device}"`);
  const logLevel = values['log-level'] ?? env.CELLBRIDGE_LOG_LEVEL ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be debug, info, warn, error or silent`);
  const limits = { ...DEFAULT_LIMITS };
  for (const [flag, [key, min, max, unit]] of Object.entries(LIMIT_FLAGS)) {
    const n = intFlag(values[flag], flag, min, max);
    if (n !== undefined) limits[key] = n * unit;
  }
  const token = values.token ?? (env.CELLBRIDGE_TOKEN || undefined);
  return {
    host: values.host ?? env.CELLBRIDGE_HOST ?? '127.0.0.1',
    port: intFlag(values.port ?? env.CELLBRIDGE_PORT, 'port', 0, 65535) ?? DEFAULT_PORT,
    modelsDir: resolve(values.models ?? env.CELLBRIDGE_MODELS ?? defaultModelsDir()),
    defaultModel: values.model ?? env.CELLBRIDGE_MODEL,
    device,
    token,
    allowedOrigins: origins ?? (env.CELLBRIDGE_ALLOW_ORIGIN ? env.CELLBRIDGE_ALLOW_ORIGIN.split(',').map((s) => s.trim()).filter(Boolean) : []),
    logLevel,
    inferenceWorkers: intFlag(values['inference-workers'], 'inference-workers', 1, 64),
    inferenceIsolation: isolationFlag(values['inference-isolation'] ?? env.CELLBRIDGE_INFERENCE_ISOLATION),
    postprocessWorkers: intFlag(values['postprocess-workers'], 'postprocess-workers', 1, 256),
    intraOpThreads: intFlag(values.threads, 'threads', 1, 256),
    fullPrecision: parsed.values['full-precision'] === true || env.CELLBRIDGE_FULL_PRECISION === '1',
    limits,
    debug: env.CELLBRIDGE_DEBUG === '1',
    instanceId: (values.instance ?? env.CELLBRIDGE_INSTANCE ?? '').slice(0, 200) || undefined,
    shutdownGraceMs: (intFlag(values['shutdown-grace-s'] ?? env.CELLBRIDGE_SHUTDOWN_GRACE_S, 'shutdown-grace-s', 0, 3600) ?? 10) * 1000,
  };
}

/** Last-resort handlers: log what escaped, keep serving the other clients. */
function installSafetyNets(log: Logger): void {
  // A parent that went away must not crash the daemon through EPIPE on its log stream.
  process.stderr.on('error', () => undefined);
  process.stdout.on('error', () => undefined);
  process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { error: (reason as Error)?.stack ?? String(reason) }));
  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: err?.stack ?? String(err) }));
}

export async function serve(argv: string[]): Promise<void> {
  const config = parseServeArgs(argv);
  const log = createLogger(config.logLevel);
  if (config.token !== undefined && config.token.length < 16 && !isLoopback(config.host)) {
    log.warn('short token', { hint: 'use a long random token (e.g. openssl rand -hex 32) when the daemon is reachable from the network' });
  }
  installSafetyNets(log);
  // Signal handlers first: a signal that arrives during start-up, or right after the 'listening'
  // line, must still end the process cleanly with status 0.
  let daemon: Daemon | null = null;
  let stopping = false;
  const stop = (signal: string) => {
    if (!daemon) { log.info('stopped during start-up', { signal }); process.exit(0); }
    if (stopping) {
      // A second signal: no more grace, cancel now.
      log.warn('second signal: cancelling jobs now', { signal });
      void daemon.close();
      return;
    }
    stopping = true;
    // Whatever happens below, the process ends within the bound (grace + 5 s), with status 0.
    setTimeout(() => { log.error('shutdown took too long; exiting', { graceMs: config.shutdownGraceMs }); process.exit(0); }, config.shutdownGraceMs + 5000).unref();
    void daemon.close(config.shutdownGraceMs, `received ${signal}`).then(() => process.exit(0), (err: Error) => {
      log.error('shutdown failed', { error: err.message });
      process.exit(0);
    });
  };
  config.onStopRequest = (reason) => stop(reason);
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  daemon = await startDaemon(config, log);
  process.stdout.write(JSON.stringify({
    event: 'listening', url: daemon.url, port: daemon.port, instance: daemon.instance,
    provider: daemon.provider.name, deviceName: daemon.provider.deviceName, skipped: daemon.provider.skipped,
    models: daemon.registry.list().map((m) => ({
      name: m.name, status: m.status, file: runFileName(m), ...(m.error ? { error: m.error } : {}),
    })),
    defaultModel: daemon.registry.defaultModel,
  }) + '\n');
  if (config.logLevel !== 'silent') process.stderr.write(`cellbridge: listening on ${daemon.url}, execution provider ${describeChoice(daemon.provider)}\n`);
}
