/** Starts `cellbridge serve` as a child process and samples its resident memory from /proc. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { CLI } from './common';

export interface BenchDaemon {
  url: string;
  pid: number;
  process: ChildProcess;
  /** Settings the daemon reported (provider, engine). */
  listening: Record<string, unknown>;
  /** Null while the daemon runs; once it has died: how (exit code or signal) and its last log lines. */
  death(): string | null;
  stop(): Promise<void>;
}

export async function startBenchDaemon(args: string[]): Promise<BenchDaemon> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => { stderr.push(l); if (stderr.length > 200) stderr.shift(); });
  let how: string | null = null;
  const exited = new Promise<void>((r) => child.once('exit', (code, signal) => { how = signal ? `signal ${signal}` : `exit ${code}`; r(); }));
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try { const m = JSON.parse(line); if (m.event === 'listening') resolve(m); } catch { /* not JSON */ }
    });
    void exited.then(() => reject(new Error(`daemon exited before listening:\n${stderr.join('\n')}`)));
  });
  return {
    url: listening.url as string, pid: child.pid!, process: child, listening,
    death: () => (how ? `the daemon died (${how}); its last log lines:\n${stderr.slice(-8).join('\n')}` : null),
    async stop() { if (child.exitCode === null) { child.kill('SIGTERM'); await exited; } },
  };
}

/** VmRSS and VmHWM of a process, MB (Linux). */
export function rssOf(pid: number): { rssMB: number; hwmMB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMB: kb('VmRSS') / 1024, hwmMB: kb('VmHWM') / 1024 };
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak seen. */
export function rssSampler(pid: number, everyMs = 50): { stop(): number } {
  let peak = 0;
  const tick = (): void => { try { peak = Math.max(peak, rssOf(pid).rssMB); } catch { /* gone */ } };
  tick();
  const timer = setInterval(tick, everyMs);
  return { stop() { clearInterval(timer); tick(); return peak; } };
}
