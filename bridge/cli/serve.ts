/** `cellbridge serve`: run the daemon until SIGINT/SIGTERM. */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { DEFAULT_LIMITS, DEFAULT_PORT, type ServerConfig } from '../config';
import { DEVICE_CHOICES, type DeviceRequest } from '../inference/providers';
import { startDaemon } from '../server';
import { createLogger, isLogLevel } from '../util/log';
import { intFlag, UsageError } from './args';
import { defaultModelsDir } from './paths';

export const SERVE_USAGE = `cellbridge serve [--host 127.0.0.1] [--port 8765] [--models DIR] [--model NAME] [--device auto|cpu|webgpu|cuda]
                [--token SECRET] [--allow-origin ORIGIN]... [--log-level debug|info|warn|error]
                [--inference-workers N] [--postprocess-workers N] [--threads N]
                [--max-message-mb N] [--max-tiles-in-flight N] [--max-jobs-per-client N] [--tile-timeout-s N]
                [--shutdown-grace-s N]`;

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig & { shutdownGraceMs: number } {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' }, port: { type: 'string' }, models: { type: 'string' }, model: { type: 'string' },
      device: { type: 'string' }, token: { type: 'string' }, 'allow-origin': { type: 'string', multiple: true },
      'log-level': { type: 'string' }, 'inference-workers': { type: 'string' }, 'postprocess-workers': { type: 'string' },
      threads: { type: 'string' }, 'max-message-mb': { type: 'string' }, 'max-tiles-in-flight': { type: 'string' },
      'max-jobs-per-client': { type: 'string' }, 'tile-timeout-s': { type: 'string' }, 'shutdown-grace-s': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const device = (values.device ?? env.CELLBRIDGE_DEVICE ?? 'auto') as DeviceRequest;
  if (!DEVICE_CHOICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICE_CHOICES.join(', ')}, got "${device}"`);
  const logLevel = values['log-level'] ?? env.CELLBRIDGE_LOG_LEVEL ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be debug, info, warn, error or silent`);
  const limits = { ...DEFAULT_LIMITS };
  const mb = intFlag(values['max-message-mb'], 'max-message-mb', 1, 99);
  if (mb !== undefined) limits.maxMessageBytes = mb * 1024 * 1024;
  limits.maxTilesInFlight = intFlag(values['max-tiles-in-flight'], 'max-tiles-in-flight', 1, 256) ?? limits.maxTilesInFlight;
  limits.maxJobsPerClient = intFlag(values['max-jobs-per-client'], 'max-jobs-per-client', 1, 1000) ?? limits.maxJobsPerClient;
  const tileTimeout = intFlag(values['tile-timeout-s'], 'tile-timeout-s', 1, 86_400);
  if (tileTimeout !== undefined) limits.tileTimeoutMs = tileTimeout * 1000;
  return {
    host: values.host ?? env.CELLBRIDGE_HOST ?? '127.0.0.1',
    port: intFlag(values.port ?? env.CELLBRIDGE_PORT, 'port', 0, 65535) ?? DEFAULT_PORT,
    modelsDir: resolve(values.models ?? env.CELLBRIDGE_MODELS ?? defaultModelsDir()),
    defaultModel: values.model ?? env.CELLBRIDGE_MODEL,
    device,
    token: values.token ?? (env.CELLBRIDGE_TOKEN || undefined),
    allowedOrigins: values['allow-origin'] ?? (env.CELLBRIDGE_ALLOW_ORIGIN ? env.CELLBRIDGE_ALLOW_ORIGIN.split(',') : []),
    logLevel,
    inferenceWorkers: intFlag(values['inference-workers'], 'inference-workers', 1, 64),
    postprocessWorkers: intFlag(values['postprocess-workers'], 'postprocess-workers', 1, 256),
    intraOpThreads: intFlag(values.threads, 'threads', 1, 256),
    limits,
    shutdownGraceMs: (intFlag(values['shutdown-grace-s'], 'shutdown-grace-s', 0, 3600) ?? 10) * 1000,
  };
}

export async function serve(argv: string[]): Promise<void> {
  const config = parseServeArgs(argv);
  const log = createLogger(config.logLevel);
  const daemon = await startDaemon(config, log);
  process.stdout.write(JSON.stringify({
    event: 'listening', url: daemon.url, port: daemon.port,
    provider: daemon.provider.name, skipped: daemon.provider.skipped,
    models: daemon.registry.list().map((m) => ({ name: m.name, status: m.status, ...(m.error ? { error: m.error } : {}) })),
    defaultModel: daemon.registry.defaultModel,
  }) + '\n');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void daemon.close(config.shutdownGraceMs, `received ${signal}`).then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
