/** Starts the real daemon (`node dist/bridge/cli.js serve`) as a child process for tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const REPO_ROOT = join(__dirname, '..', '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'bridge', 'cli.js');
export const SHARED_DATA = join(REPO_ROOT, '..', 'shared', 'data');

export interface RunningDaemon {
  url: string;
  port: number;
  process: ChildProcess;
  /** Everything the daemon wrote to stderr (JSON log lines). */
  stderr: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `cli`: another build's cli.js (bench/attacks.ts measures main's daemon with it). `detached`: the daemon
 * leads its own process group (a terminal's Ctrl-C reaches the group: kill(-pid)).
 */
export async function startDaemon(opts: { modelsDir?: string; args?: string[]; env?: NodeJS.ProcessEnv; cli?: string; detached?: boolean } = {}): Promise<RunningDaemon> {
  const args = [opts.cli ?? CLI, 'serve', '--port', '0', '--log-level', 'info', ...(opts.modelsDir ? ['--models', opts.modelsDir] : []), ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env }, detached: opts.detached });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = await new Promise<{ url: string; port: number }>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.event === 'listening') resolve({ url: msg.url, port: msg.port });
      } catch { /* not JSON */ }
    });
    void exited.then((code) => reject(new Error(`daemon exited with ${code} before listening:\n${stderr.join('\n')}`)));
  });
  return {
    ...listening,
    process: child,
    stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}
