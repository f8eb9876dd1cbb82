/**
 * Real nginx for tests and benchmarks: deploy/nginx/cellbridge.conf with loopback daemons and a
 * certificate from deploy/make-certs.sh substituted, run as the current user from its own temp prefix
 * (config, pid, logs, temp paths): no system configuration is read or written.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './daemon';

export const NGINX_TEMPLATE = join(REPO_ROOT, 'deploy', 'nginx', 'cellbridge.conf');
export const MAKE_CERTS = join(REPO_ROOT, 'deploy', 'make-certs.sh');

/** The nginx binary, or null (Debian: apt-get install nginx; .ci/run does). */
export function findNginx(): string | null {
  for (const p of [process.env.NGINX ?? '', '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (p && existsSync(p)) return p;
  }
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : null;
}

/** A private CA and a server certificate for localhost and 127.0.0.1, made by deploy/make-certs.sh. */
export function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const r = spawnSync('sh', [MAKE_CERTS, '-o', dir, 'localhost', '127.0.0.1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`deploy/make-certs.sh failed (${r.status}): ${r.stderr}`);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

/** deploy/nginx/cellbridge.conf with the lines marked "test:" replaced; throws when a mark is missing. */
export function renderNginxConf(template: string, o: { port: number; upstreams: string[]; cert: string; key: string }): string {
  const marks = {
    'upstream servers': o.upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=10s;`).join('\n'),
    listen: `    listen 127.0.0.1:${o.port} ssl;`,
    certificate: `    ssl_certificate     ${o.cert};`,
    key: `    ssl_certificate_key ${o.key};`,
  };
  const lines = template.split('\n');
  const out: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const m = /#\s*test:\s*(.+)$/.exec(lines[i]);
    const mark = m?.[1].trim() as keyof typeof marks | undefined;
    if (!mark || !(mark in marks)) { out.push(lines[i]); continue; }
    seen.add(mark);
    out.push(marks[mark]);
    // The upstream block's other "server" lines belong to the template's example daemons.
    if (mark === 'upstream servers') while (/^\s*server\s/.test(lines[i + 1] ?? '')) i++;
  }
  for (const mark of Object.keys(marks)) if (!seen.has(mark)) throw new Error(`${NGINX_TEMPLATE}: no line marked "# test: ${mark}"`);
  return out.join('\n');
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export interface RunningNginx { url: string; port: number; process: ChildProcess; errorLog(): string; stop(): Promise<void> }

export async function startNginx(binary: string, prefix: string, o: { upstreams: string[]; cert: string; key: string }): Promise<RunningNginx> {
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  const port = await freePort();
  writeFileSync(join(prefix, 'cellbridge.conf'), renderNginxConf(readFileSync(NGINX_TEMPLATE, 'utf8'), { ...o, port }));
  // As root, nginx would switch its workers to "nobody", who cannot enter the private temp prefix.
  const user = process.getuid?.() === 0 ? `user ${userInfo().username};\n` : '';
  writeFileSync(join(prefix, 'nginx.conf'), `${user}worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${join(prefix, 'tmp', 'body')};
    proxy_temp_path ${join(prefix, 'tmp', 'proxy')};
    fastcgi_temp_path ${join(prefix, 'tmp', 'fastcgi')};
    uwsgi_temp_path ${join(prefix, 'tmp', 'uwsgi')};
    scgi_temp_path ${join(prefix, 'tmp', 'scgi')};
    include ${join(prefix, 'cellbridge.conf')};
}
`);
  const args = ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')];
  const check = spawnSync(binary, [...args, '-t'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t rejected the configuration:\n${check.stderr}`);
  const child = spawn(binary, [...args, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const errorLog = () => { try { return stderr + readFileSync(join(prefix, 'error.log'), 'utf8'); } catch { return stderr; } };
  // Listening once a TCP connection is accepted (bounded: 10 s).
  for (let t = 0; ; t++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${errorLog()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) break;
    if (t > 100) { child.kill('SIGKILL'); throw new Error(`nginx did not listen on ${port} within 10 s:\n${errorLog()}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `wss://127.0.0.1:${port}/`, port, process: child, errorLog,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM'); // fast shutdown: open WebSockets would hold a graceful one (SIGQUIT) open
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
