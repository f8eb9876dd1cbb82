/**
 * Structured logs: one JSON object per line on stderr, filtered by level (--log-level). Every event
 * of a connection carries `conn` (and `client` once initialized, `remote` address); job events carry `job`.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
/** Longer string fields (client-supplied text, stacks) are cut: one event stays one readable line. */
const MAX_FIELD = 4000;
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(level: LogLevel = 'info', base: Record<string, unknown> = {}, sink: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const emit = (lvl: LogLevel, event: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < ORDER[level]) return;
    const entry = { time: new Date().toISOString(), level: lvl, event, ...base, ...fields };
    let line: string;
    try {
      line = JSON.stringify(entry, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : typeof v === 'string' && v.length > MAX_FIELD ? v.slice(0, MAX_FIELD) + '…' : v));
    } catch (err) {
      // A field that cannot be serialised (a cycle) must not take the daemon down: log without the fields.
      line = JSON.stringify({ time: entry.time, level: lvl, event, ...base, logError: (err as Error).message });
    }
    try { sink(line); } catch { /* a broken log stream is not the daemon's problem */ }
  };
  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (f) => createLogger(level, { ...base, ...f }, sink),
  };
}

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && v in ORDER;
}
