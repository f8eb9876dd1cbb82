/**
 * `server/stop` (the QuPath menu's "Stop daemon"): a loopback client that passed initialize (token included)
 * stops the daemon as SIGTERM would (server/shutdown to the others, exit 0); before initialize, or with a wrong
 * token, it cannot.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { forwardedFor, isLoopback } from '../bridge/util/loopback';

/** A tiny JSON-RPC client on ws: request() resolves with the whole answer message. */
async function connect(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(url, { headers });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const notes: any[] = [];
  const waiting = new Map<number, (m: any) => void>();
  ws.on('message', (data) => {
    const m = JSON.parse(String(data));
    if (m.id !== undefined && waiting.has(m.id)) waiting.get(m.id)!(m);
    else notes.push(m);
  });
  let id = 0;
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  return {
    notes, closed,
    request(method: string, params: unknown = {}): Promise<any> {
      const n = ++id;
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: n, method, params }));
      return new Promise((resolve) => waiting.set(n, resolve));
    },
    close() { ws.close(); },
  };
}

const init = (token?: string) => ({ clientInfo: { name: 'test', version: '0' }, protocolVersion: '2.0', ...(token ? { token } : {}) });

describe('server/stop: a loopback client with the right token stops the daemon', function () {
  this.timeout(60_000);
  let daemon: RunningDaemon | undefined;
  afterEach(async () => { await daemon?.stop('SIGKILL'); daemon = undefined; });

  it('needs initialize (so the token) first; then answers, tells the other clients and exits 0', async () => {
    daemon = await startDaemon({ modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu', '--token', 'stop-secret-123'] });
    const exited = new Promise<number | null>((resolve) => daemon!.process.once('exit', (code) => resolve(code)));
    const early = await connect(daemon.url);
    const refused = await early.request('server/stop');
    assert.equal(refused.error?.code, -32002, 'NotInitialized before initialize');
    const wrong = await early.request('initialize', init('wrong-token'));
    assert.equal(wrong.error?.code, -32004);
    const other = await connect(daemon.url);
    assert.ok((await other.request('initialize', init('stop-secret-123'))).result);
    const stopper = await connect(daemon.url);
    assert.ok((await stopper.request('initialize', init('stop-secret-123'))).result);
    const t0 = Date.now();
    const answer = await stopper.request('server/stop');
    assert.deepEqual(answer.result, { stopping: true });
    assert.equal(await exited, 0, 'the daemon exits with status 0');
    assert.ok(Date.now() - t0 < 15_000);
    assert.equal(await other.closed, 1001, 'the other client is closed with 1001 (going away)');
    assert.ok(other.notes.some((n) => n.method === 'server/shutdown'), 'and was told first');
    assert.ok(daemon.stderr.some((l) => l.includes('stop requested by a client')), daemon.stderr.join('\n'));
  });

  it('a loopback peer that is a proxy (X-Forwarded-For) cannot stop it; the forwarded address is logged', async () => {
    // deploy/nginx on the daemon's host: every client behind it reaches the daemon from 127.0.0.1.
    daemon = await startDaemon({ modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu', '--token', 'stop-secret-123'] });
    const viaProxy = await connect(daemon.url, { 'X-Forwarded-For': '203.0.113.7' });
    assert.ok((await viaProxy.request('initialize', init('stop-secret-123'))).result);
    const refused = await viaProxy.request('server/stop');
    assert.equal(refused.error?.code, -32004);
    assert.match(refused.error.message, /came through a proxy/);
    const logged = daemon.stderr.map((l) => { try { return JSON.parse(l); } catch { return {}; } });
    assert.ok(logged.some((e) => e.event === 'client connected' && e.forwardedFor === '203.0.113.7' && /127\.0\.0\.1/.test(e.remote)),
      daemon.stderr.join('\n'));
    assert.ok(logged.some((e) => e.event === 'server/stop refused' && e.reason === 'came through a proxy'));
    // The daemon still runs: a direct loopback client is answered.
    const direct = await connect(daemon.url);
    assert.ok((await direct.request('initialize', init('stop-secret-123'))).result);
    viaProxy.close(); direct.close();
  });

  it('forwardedFor reads X-Forwarded-For, then Forwarded, then X-Real-IP; nothing for a direct connection', () => {
    assert.equal(forwardedFor({ 'x-forwarded-for': '203.0.113.7, 10.0.0.2', forwarded: 'for=1.2.3.4' }), '203.0.113.7, 10.0.0.2');
    assert.equal(forwardedFor({ forwarded: 'for=192.0.2.60;proto=https' }), 'for=192.0.2.60;proto=https');
    assert.equal(forwardedFor({ 'x-real-ip': '198.51.100.1' }), '198.51.100.1');
    assert.equal(forwardedFor({ host: 'x', 'x-forwarded-for': '  ' }), undefined);
    assert.equal(forwardedFor({ 'x-forwarded-for': 'a'.repeat(500) })!.length, 200);
  });

  it('loopback means 127.0.0.0/8, ::1, localhost (IPv4-mapped too); nothing else', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.ok(isLoopback(a), a);
    for (const a of ['10.0.0.5', '192.168.1.2', '::ffff:10.0.0.5', '0.0.0.0', '', 'example.org']) assert.ok(!isLoopback(a), a);
  });
});
