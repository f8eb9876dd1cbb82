/**
 * protocol/README.md checked against the daemon: the §2 tile-plan example is what the daemon plans
 * for that request; job/detections batches stay under the bound the spec states; and a client
 * written in Python from the spec alone (test/python/client_from_spec.py, stdlib + websockets)
 * gets exactly the cells `cellbridge segment` gets on a region of CMU-1.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import WebSocket from 'ws';
import { MAX_NOTIFICATION_BYTES } from '../bridge/config';
import { batchDetections } from '../bridge/session/detection-batches';
import { CLI, REPO_ROOT, SHARED_DATA, startDaemon, type RunningDaemon } from './helpers/daemon';

const SPEC = readFileSync(join(REPO_ROOT, 'protocol', 'README.md'), 'utf8');
const CMU1 = join(SHARED_DATA, 'wsi', 'CMU-1-Small-Region.svs');

/** The JSON code blocks of a section of the spec, parsed. */
function jsonBlocks(heading: string): unknown[] {
  const start = SPEC.indexOf(heading);
  assert.ok(start >= 0, heading);
  const end = SPEC.indexOf('\n### ', start + heading.length);
  const section = SPEC.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]));
}

/** One JSON-RPC exchange over a raw WebSocket: sends the messages, returns the responses by id. */
async function exchange(url: string, messages: object[]): Promise<Map<number, { result?: unknown; error?: unknown }>> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const responses = new Map<number, { result?: unknown; error?: unknown }>();
  const ids = messages.map((m) => (m as { id: number }).id);
  const done = new Promise<void>((resolve) => ws.on('message', (data, binary) => {
    if (binary) return;
    const m = JSON.parse(data.toString());
    if (typeof m.id === 'number') responses.set(m.id, m);
    if (ids.every((id) => responses.has(id))) resolve();
  }));
  for (const m of messages) ws.send(JSON.stringify(m));
  await done;
  ws.close();
  return responses;
}

describe('protocol/README.md against the daemon', function () {
  this.timeout(180_000);
  let daemon: RunningDaemon;
  before(async () => { daemon = await startDaemon({ args: ['--device', 'cpu', '--log-level', 'warn'] }); });
  after(async () => { await daemon?.stop(); });

  it('§2: the tile plan in the job/start example is what the daemon plans for that request', async () => {
    const [request, result] = jsonBlocks('### `job/start`') as [{ params: object }, { result: { jobId: number } }];
    const r = await exchange(daemon.url, [
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientInfo: { name: 'spec-test' }, protocolVersion: '2.0' } },
      { jsonrpc: '2.0', id: 2, method: 'job/start', params: request.params },
    ]);
    const plan = r.get(2)!.result as { jobId: number };
    assert.ok(plan, JSON.stringify(r.get(2)));
    assert.deepEqual({ ...plan, jobId: 0 }, { ...result.result, jobId: 0 }, `the daemon plans:\n${JSON.stringify(plan)}`);
  });

  it('§2: initialize reports the limits the spec lists, the per-client tile budget and the message bound included', async () => {
    const r = await exchange(daemon.url, [{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientInfo: { name: 'spec-test' }, protocolVersion: '2.0' } }]);
    const limits = (r.get(1)!.result as { limits: Record<string, number> }).limits;
    const [, example] = jsonBlocks('### `initialize`') as [unknown, { result: { limits: Record<string, number> } }];
    assert.deepEqual(Object.keys(limits).sort(), Object.keys(example.result.limits).sort());
    assert.equal(limits.maxTilesInFlightPerClient, 32);
    assert.equal(limits.maxNotificationBytes, MAX_NOTIFICATION_BYTES);
    assert.ok(MAX_NOTIFICATION_BYTES < 2 ** 20, 'under Python websockets\' default max_size');
  });

  it('§2: a missing clientInfo.name or rois[].id is -32602 naming the field', async () => {
    const r = await exchange(daemon.url, [
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientInfo: {}, protocolVersion: '2.0' } },
      { jsonrpc: '2.0', id: 2, method: 'initialize', params: { clientInfo: { name: 'x' }, protocolVersion: '2.0' } },
      { jsonrpc: '2.0', id: 3, method: 'job/start', params: { image: { width: 100, height: 100, micronsPerPixel: 0.5 }, rois: [{ geometry: { type: 'Polygon', coordinates: [[[0, 0], [50, 0], [50, 50], [0, 0]]] } }] } },
    ]);
    for (const [id, field] of [[1, /clientInfo/], [3, /rois\[0\]\.id/]] as const) {
      const e = r.get(id)!.error as { code: number; message: string };
      assert.equal(e.code, -32602);
      assert.match(e.message, field);
    }
  });
});

describe('job/detections batches (bounded bytes)', () => {
  it('split by count and by UTF-8 bytes; a feature larger than the bound goes alone', () => {
    const f = (n: number) => ({ s: 'µ'.repeat(n) }); // 'µ' is 2 bytes in UTF-8
    const feats = [f(100), f(100), f(100), f(1000), f(10)];
    const sizes = feats.map((x) => Buffer.byteLength(JSON.stringify(x)) + 1);
    const byBytes = batchDetections(feats, 500, sizes[0] * 2);
    assert.deepEqual(byBytes.map((b) => b.length), [2, 1, 1, 1]);
    for (const b of byBytes) assert.ok(b.length === 1 || b.reduce((n, x) => n + Buffer.byteLength(JSON.stringify(x)) + 1, 0) <= sizes[0] * 2);
    assert.deepEqual(batchDetections(feats, 2, 1e9).map((b) => b.length), [2, 2, 1]);
    assert.deepEqual(batchDetections([], 2, 10), []);
  });
});

describe('a Python client written from protocol/README.md alone', function () {
  this.timeout(300_000);
  let tmp: string;
  before(function () {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import websockets'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      console.log('      (skipped: /usr/bin/python3 cannot import websockets; install Debian\'s python3-websockets, as .ci/run does)');
      this.skip();
    }
    if (!existsSync(CMU1)) {
      console.log(`      (skipped: ${CMU1} is absent; the shared test data is not on this machine)`);
      this.skip();
    }
    tmp = mkdtempSync(join(tmpdir(), 'cellbridge-python-'));
  });
  after(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

  it('segments a 400 x 400 region of CMU-1 at 0.5 µm/px: the same cells as `cellbridge segment`, every message under 1 MiB', async () => {
    // The region as a PNG for the CLI and as raw RGB for the Python client (no image library there).
    const region = sharp(CMU1, { limitInputPixels: false }).extract({ left: 800, top: 1200, width: 400, height: 400 }).removeAlpha();
    await region.clone().png().toFile(join(tmp, 'region.png'));
    const raw = await region.clone().raw().toBuffer();
    writeFileSync(join(tmp, 'region.rgb'), raw);

    const cli = spawnSync(process.execPath, [CLI, 'segment', join(tmp, 'region.png'), '--mpp', '0.5', '--device', 'cpu', '--quiet', '--out', join(tmp, 'cli.geojson')], { encoding: 'utf8', timeout: 240_000 });
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(cli.stderr, '', '--quiet prints nothing on stderr (no provider warnings)');
    const summary = JSON.parse(cli.stdout.trim().split('\n').pop()!);

    const daemon = await startDaemon({ args: ['--device', 'cpu', '--log-level', 'warn'] });
    try {
      const py = spawnSync('/usr/bin/python3', [join(REPO_ROOT, 'test', 'python', 'client_from_spec.py'), daemon.url, join(tmp, 'region.rgb'), '400', '400', 'region.png', '0.5', join(tmp, 'py.json')], { encoding: 'utf8', timeout: 240_000 });
      assert.equal(py.status, 0, py.stderr);
    } finally { await daemon.stop(); }
    const out = JSON.parse(readFileSync(join(tmp, 'py.json'), 'utf8'));
    assert.equal(out.completed.status, 'completed');
    assert.equal(out.plan.downsample, 1);
    const fromCli = JSON.parse(readFileSync(join(tmp, 'cli.geojson'), 'utf8')).features as { id: string }[];
    const byId = (fs: { id: string }[]) => [...fs].sort((a, b) => a.id.localeCompare(b.id));
    assert.ok(fromCli.length > 150, `${fromCli.length} cells`);
    assert.equal(out.features.length, fromCli.length);
    assert.deepEqual(byId(out.features), byId(fromCli), 'same ids, outlines, classes and measurements');
    assert.deepEqual(out.completed.counts, summary.counts);
    assert.ok(out.largestMessageBytes < out.limits.maxNotificationBytes + 4096);
    // §2 job/cancel: the order the spec states.
    assert.deepEqual(out.cancelOrder, [{ completed: 'cancelled' }, { response: { jobId: out.plan.jobId + 1, status: 'cancelled' } }]);
  });
});
