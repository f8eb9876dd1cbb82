/**
 * Hardening, round 2 (issue #11): every attack of the issue against the real daemon on loopback,
 * with a well-behaved client working alongside that must keep getting exactly the cells of a run in
 * isolation, and the daemon's RSS under 1 GB throughout. The attacks themselves live in
 * test/helpers/attacks.ts (bench/attacks.ts runs them against any build for before/after figures).
 * Also: the plan's Math.min over huge ROI lists, a property-based fuzz of job/start params with
 * prototype keys and deep nesting, `cellbridge health` reporting a wedged pool, no telemetry files.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ErrorCodes } from '../protocol';
import { plan } from '../bridge/session/plan-worker';
import { preAuthVictims } from '../bridge/session/preauth-eviction';
import { DEFAULT_LIMITS, MAX_NOTIFICATION_BYTES } from '../bridge/config';
import { TaskNotSent, WorkerPool } from '../bridge/workers/pool';
import { CLI, startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { gridScene } from './helpers/synthetic-scene';
import { cellKeys, RawPeer, runSceneJob, sceneJob, sleep, square } from './hardening-helpers.test';
import {
  attackBacklog, attackBigFrames, attackBigPlan, attackDeepRoi, attackDribble, attackHeavyOptions, attackIdleSockets, attackKinks,
  attackPrototypeOptions, attackRawTcp, attackTokenGuesses, measure, withDeep, type AttackReport,
  wrapCrop,
} from './helpers/attacks';

const RSS_LIMIT_MB = 1024;
const TOKEN = 'hardening-token-0123456789abcdef';

function assertServed(r: AttackReport): void {
  console.log(`      ${r.attack}: ${JSON.stringify(r.attacker)}; good client ${r.goodJobs} jobs, slowest ${r.goodMaxMs} ms; peak RSS ${r.peakRssMb} MiB`);
  assert.ok(r.goodJobs >= 1, `${r.attack}: the well-behaved client completed no job`);
  assert.ok(r.goodIdentical, `${r.attack}: the well-behaved client got other cells than in isolation`);
  assert.ok(Number.isFinite(r.goodMaxMs), `${r.attack}: a well-behaved job did not end`);
  assert.ok(r.peakRssMb < RSS_LIMIT_MB, `${r.attack}: peak RSS ${r.peakRssMb} MiB`);
}

function health(port: number, token?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'health', '--server', `ws://127.0.0.1:${port}/`, ...(token ? ['--token', token] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('hardening round 2: no request may wedge, stall or bloat the daemon', function () {
  let daemon: RunningDaemon;
  let home: string;
  const scene = gridScene(320, 320, 31);
  let reference: string[];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'cellbridge-home-'));
    daemon = await startDaemon({
      modelsDir: makeSyntheticModelsDir(),
      args: ['--device', 'cpu', '--log-level', 'warn', '--postprocess-workers', '2', '--plan-timeout-s', '10'],
      env: { CELLBRIDGE_DEBUG: '1', HOME: home },
    });
    reference = cellKeys(await runSceneJob(daemon.url, scene));
    assert.ok(reference.length > 50);
  });
  after(async () => { await daemon?.stop(); });

  afterEach(() => {
    const bugs = daemon.stderr.filter((l) => /"event":"(uncaught exception|unhandled rejection|internal error)"/.test(l));
    assert.deepEqual(bugs, [], 'no exception escaped a handler');
  });

  it('prototype keys in options (with an uncloneable 10,000-deep value) get -32602; post-processing keeps working', async () => {
    const r = await measure('prototype-options', daemon, scene, reference, () => attackPrototypeOptions(daemon.url, scene));
    assertServed(r);
    for (const [key, code] of Object.entries(r.attacker.codes as Record<string, unknown>)) assert.equal(code, ErrorCodes.InvalidParams, key);
    assert.equal(r.attacker.tilesSent, 0, 'no such job started');
    const p = await RawPeer.open(daemon.url);
    await p.initialize();
    assert.equal((await p.request('h', 'server/health')).result.status, 'ok');
    await p.close();
  });

  it('an ROI with a 10,000-deep extra property never reaches the planning worker; other clients plan at once', async () => {
    const r = await measure('deep-roi', daemon, scene, reference, () => attackDeepRoi(daemon.url, scene));
    assertServed(r);
    assert.equal(r.attacker.code, 'result', 'the extra property is dropped, the ROI itself is fine');
    assert.ok((r.attacker.attackerMs as number) < 3000 && (r.attacker.otherJobStartMs as number) < 3000, JSON.stringify(r.attacker));
    assert.equal(r.attacker.otherOk, true);
  });

  it('heavy options and tiles sent as fast as asked: the post-processing backlog stays within the tile budget', async () => {
    const r = await measure('backlog', daemon, scene, reference, () => attackBacklog(daemon.url, scene, 5, daemon.url));
    assertServed(r);
    assert.equal(r.attacker.jobs, 4);
    // Each connection's budget (32) holds a tile until its post-processing ends: the attacker's and the good client's.
    assert.ok((r.attacker.peakPostprocessBacklog as number) <= 2 * 32, `backlog ${r.attacker.peakPostprocessBacklog}`);
    assert.ok((r.attacker.peakTilesInFlight as number) <= 128);
  });

  it('a self-intersecting ROI of 20,000 vertices is refused at once (-32011), in little memory', async () => {
    const r = await measure('kinks', daemon, scene, reference, () => attackKinks(daemon.url, scene, 20_000));
    assertServed(r);
    assert.equal(r.attacker.code, ErrorCodes.InvalidRoi);
    assert.match(String(r.attacker.message), /intersects itself/);
    assert.ok((r.attacker.ms as number) < 3000, `${r.attacker.ms} ms`);
  });

  it('80 sockets that never initialize do not keep a real client out', async () => {
    const r = await measure('idle-sockets', daemon, scene, reference, () => attackIdleSockets(daemon.url, 80));
    assertServed(r);
    assert.equal(r.attacker.freshClient, 'ok');
    assert.ok((r.attacker.stillOpenWhenFreshCame as number) <= 8, 'at most maxPreAuthConnections wait');
  });

  it('a flood of idle sockets from one address evicts its own: a client elsewhere, not yet initialized, keeps its socket', async () => {
    // Loopback has the whole of 127.0.0.0/8: the flood comes from 127.0.0.2, the slow client from 127.0.0.1.
    const slow = await RawPeer.open(daemon.url, { localAddress: '127.0.0.1' });
    const flood: RawPeer[] = [];
    for (let i = 0; i < 40; i++) flood.push(await RawPeer.open(daemon.url, { localAddress: '127.0.0.2' }));
    await sleep(200);
    const floodOpen = flood.filter((p) => !p.closed).length;
    assert.equal(slow.closed, null, 'the slow client was not evicted');
    assert.ok(floodOpen <= 7, `${floodOpen} flood sockets still open (quota 8, one is the slow client's)`);
    slow.send({ jsonrpc: '2.0', id: 'i', method: 'initialize', params: { clientInfo: { name: 'slow', version: '0' }, protocolVersion: '2.0' } });
    assert.ok(await slow.until(() => slow.responses.has('"i"')));
    assert.ok(slow.responses.get('"i"').result, JSON.stringify(slow.responses.get('"i"')));
    await Promise.all([slow, ...flood].map((p) => p.close()));
  });

  it('32 MiB frames before authentication are refused at their header (1009), nothing is buffered', async () => {
    const r = await measure('big-frames', daemon, scene, reference, () => attackBigFrames(daemon.url, 24, 32 * 1024 * 1024));
    assertServed(r);
    // 1009 at the frame's header; 1008 for those evicted first (only 8 wait for initialize at once).
    assert.ok((r.attacker.closeCodes as number[]).includes(1009) && (r.attacker.closeCodes as number[]).every((c) => c === 1009 || c === 1008), JSON.stringify(r.attacker));
    assert.equal(r.attacker.closedWithin3s, r.attacker.sockets);
  });

  it('300 raw TCP connections: the daemon keeps at most maxClients + maxPreAuthConnections + 16', async () => {
    const r = await measure('raw-tcp', daemon, scene, reference, () => attackRawTcp(daemon.port, 300, 1500));
    assertServed(r);
    assert.ok((r.attacker.open as number) <= 64 + 8 + 16, JSON.stringify(r.attacker));
  });

  it('a 249,000-tile plan is answered compactly without stalling others; the per-client planned-tile cap holds', async () => {
    const r = await measure('big-plan', daemon, scene, reference, () => attackBigPlan(daemon.url, scene));
    assertServed(r);
    assert.ok((r.attacker.tiles as number) > 240_000, JSON.stringify(r.attacker));
    assert.ok((r.attacker.responseKb as number) < 16, 'the plan is not listed');
    assert.ok((r.attacker.otherMaxPingMs as number) < 1000, JSON.stringify(r.attacker));
    assert.equal(r.attacker.secondJob, `${ErrorCodes.LimitExceeded} maxPlannedTilesPerClient`);
  });

  it('the largest plan listed inline (maxPlanTilesInline, 6-digit coordinates) stays under maxNotificationBytes (1 MiB clients)', async () => {
    // 6,500² px at the corner of a 150,000² px slide: ~69 x 69 tiles of 128 px at stride 96.
    const r = await attackBigPlan(daemon.url, scene, 6_500, 150_000);
    console.log(`      inline plan: ${r.tiles} tiles, ${r.responseBytes} bytes`);
    const tiles = r.tiles as number;
    assert.ok(tiles > 4_500 && tiles <= DEFAULT_LIMITS.maxPlanTilesInline, JSON.stringify(r));
    assert.equal(r.listed, tiles, 'every tile is listed');
    assert.ok((r.responseBytes as number) < MAX_NOTIFICATION_BYTES, JSON.stringify(r));
  });

  it('options that multiply the CPU cost of a tile are out of range (-32602)', async () => {
    const r = await measure('heavy-options', daemon, scene, reference, () => attackHeavyOptions(daemon.url, scene));
    assertServed(r);
    assert.deepEqual(r.attacker.niter2000seed0, { error: ErrorCodes.InvalidParams });
    assert.deepEqual(r.attacker.flowScale1e308, { error: ErrorCodes.InvalidParams });
  });

  it('fuzz: job/start params with prototype keys and deep nesting are answered with a result or a client error, never -32603', async () => {
    const protoKeys = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', '__lookupSetter__'];
    const paths = ['', 'image', 'rois.0', 'rois.0.geometry', 'options', 'options.postprocess'];
    const value = fc.oneof(
      fc.constantFrom<unknown>(1, -1, 0, 1e308, 'x', '', null, true, [], {}, '@DEEP@'),
      fc.anything({ maxDepth: 2, maxKeys: 3 }),
    );
    const mutation = fc.record({ path: fc.constantFrom(...paths), key: fc.oneof(fc.constantFrom(...protoKeys), fc.constantFrom('width', 'id', 'geometry', 'coordinates', 'niter', 'pixelFormat', 'postprocess', 'type')), value });
    const request = fc.record({ mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }), depth: fc.constantFrom(10, 1000, 10_000), kind: fc.constantFrom<'array' | 'object'>('array', 'object') });
    const p = await RawPeer.open(daemon.url);
    await p.initialize();
    const allowed = new Set<number>([ErrorCodes.InvalidParams, ErrorCodes.InvalidRoi, ErrorCodes.EmptyRoi, ErrorCodes.UnknownModel, ErrorCodes.LimitExceeded, ErrorCodes.MissingPixelSize]);
    let n = 0, results = 0;
    const codes: Record<number, number> = {};
    await fc.assert(fc.asyncProperty(request, async ({ mutations, depth, kind }) => {
      const job: any = sceneJob(scene);
      let deep = false;
      for (const m of mutations) {
        let target = job;
        for (const part of m.path.split('.').filter(Boolean)) target = target?.[part];
        if (typeof target !== 'object' || target === null) continue;
        if (m.value === '@DEEP@') { if (deep) continue; deep = true; }
        // defineProperty: an own key even for "__proto__", exactly what JSON.parse makes of the text.
        Object.defineProperty(target, m.key, { value: m.value, enumerable: true, configurable: true, writable: true });
      }
      const id = `f${n++}`;
      p.send(withDeep({ jsonrpc: '2.0', id, method: 'job/start', params: job }, depth, kind));
      assert.ok(await p.until(() => p.responses.has(JSON.stringify(id)), 15_000), `no answer to ${id}`);
      const r = p.responses.get(JSON.stringify(id));
      if (r.result) {
        results++;
        await p.request(`${id}-cancel`, 'job/cancel', { jobId: r.result.jobId });
        return;
      }
      codes[r.error.code] = (codes[r.error.code] ?? 0) + 1;
      assert.ok(allowed.has(r.error.code), `${JSON.stringify(mutations).slice(0, 300)} → ${JSON.stringify(r.error).slice(0, 300)}`);
      assert.doesNotMatch(r.error.message, /Cannot read|is not a function|Maximum call stack|Internal/);
    }), { numRuns: 300, seed: 20261202, endOnFailure: true });
    console.log(`      ${n} requests: ${results} results, errors by code ${JSON.stringify(codes)}`);
    await p.close();
  });

  it('writes no onnxruntime telemetry (no ~/.cache/Microsoft/DeveloperTools/.onnxruntime, no /tmp/mat-debug-PID.log)', () => {
    assert.ok(!existsSync(join(home, '.cache', 'Microsoft')), 'no telemetry folder in the daemon\'s HOME');
    assert.ok(!existsSync(join(tmpdir(), `mat-debug-${daemon.process.pid}.log`)) && !existsSync(`/tmp/mat-debug-${daemon.process.pid}.log`));
  });
});

describe('hardening round 2: wedged workers, token guesses, endless jobs', function () {
  let daemon: RunningDaemon, dribbled: RunningDaemon;
  const scene = gridScene(320, 320, 31);
  let reference: string[];

  before(async () => {
    const models = makeSyntheticModelsDir();
    // Reference cells from a daemon without fault injection.
    const plain = await startDaemon({ modelsDir: models, args: ['--device', 'cpu', '--log-level', 'warn'] });
    try { reference = cellKeys(await runSceneJob(plain.url, scene)); } finally { await plain.stop(); }
    daemon = await startDaemon({
      modelsDir: models,
      args: ['--device', 'cpu', '--log-level', 'warn', '--token', TOKEN, '--postprocess-workers', '1', '--task-timeout-s', '10'],
      env: { CELLBRIDGE_TEST_HANG_ON_TILE: '1' },
    });
    dribbled = await startDaemon({ modelsDir: models, args: ['--device', 'cpu', '--log-level', 'warn', '--token', TOKEN, '--job-timeout-s', '3'] });
  });
  after(async () => { await daemon?.stop(); await dribbled?.stop(); });

  it('a wedged post-processing worker: health says "degraded" (exit 1), the worker is replaced, its job fails with a clear error', async () => {
    const first = runSceneJob(daemon.url, scene, {}, { token: TOKEN }); // its first tile wedges the only worker
    const p = await RawPeer.open(daemon.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    await p.initialize();
    let h: any;
    for (let i = 0; i < 100; i++) {
      h = (await p.request(`h${i}`, 'server/health')).result;
      if (h.status === 'degraded') break;
      await sleep(100);
    }
    assert.equal(h.status, 'degraded', JSON.stringify(h));
    assert.match(h.problems.join(), /post-processing/);
    const cli = await health(daemon.port, TOKEN);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.equal(JSON.parse(cli.stdout).status, 'degraded');
    const failed = await first;
    assert.equal(failed.completed.status, 'failed');
    assert.equal(failed.completed.error?.code, ErrorCodes.Timeout);
    assert.match(failed.completed.error!.message, /post-processing task ran longer than 10 s/);
    // Replaced: the next job gets exactly the reference cells, and health is ok again.
    assert.deepEqual(cellKeys(await runSceneJob(daemon.url, scene, {}, { token: TOKEN })), reference);
    assert.equal((await p.request('h-after', 'server/health')).result.status, 'ok');
    assert.equal((await health(daemon.port, TOKEN)).code, 0);
    await p.close();
  });

  it('one wrong token closes the connection: 200 pipelined guesses get one answer', async () => {
    const r = await measure('token-guesses', daemon, scene, reference, () => attackTokenGuesses(daemon.url, 200), { token: TOKEN });
    assertServed(r);
    assert.equal(r.attacker.answered, 1);
    assert.equal(r.attacker.closed, 1008);
  });

  it('a job kept alive by one tile at a time ends at the job time limit (Timeout)', async () => {
    const r = await measure('dribble', dribbled, scene, reference, () => attackDribble(dribbled.url, scene, 300, 8000, TOKEN), { token: TOKEN });
    assertServed(r);
    assert.equal(r.attacker.status, 'failed');
    assert.equal(r.attacker.code, ErrorCodes.Timeout);
    assert.ok((r.attacker.endedWithinMs as number) < 5000, JSON.stringify(r.attacker));
  });
});

describe('hardening round 2: the planning worker\'s heap (--plan-memory-mb)', function () {
  this.timeout(120_000);
  let daemon: RunningDaemon;
  const scene = gridScene(320, 320, 31);
  after(async () => { await daemon?.stop(); });

  it('a plan that needs more than the heap gets -32016 (limit planMemoryMb); the worker is replaced and the next job runs', async () => {
    daemon = await startDaemon({ modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu', '--log-level', 'warn', '--plan-memory-mb', '32', '--max-roi-vertices', '2000000'] });
    const p = await RawPeer.open(daemon.url);
    p.send({ jsonrpc: '2.0', id: 'i', method: 'initialize', params: { clientInfo: { name: 'heap', version: '0' }, protocolVersion: '2.0' } });
    assert.ok(await p.until(() => p.responses.has('"i"')));
    // A circle of 1,000,000 vertices (maxRoiVertices raised for it): its coordinate arrays
    // alone take more than 32 MB of the worker's heap.
    const side = 60_000, n = 1_000_000;
    const ring: number[][] = [];
    const r2 = (v: number) => Math.round(v * 100) / 100; // ~22 bytes a vertex: 22 MB, under the 32 MiB message limit
    for (let i = 0; i < n; i++) ring.push([r2(30_000 + 29_000 * Math.cos((2 * Math.PI * i) / n)), r2(30_000 + 29_000 * Math.sin((2 * Math.PI * i) / n))]);
    ring.push(ring[0]);
    p.send({ jsonrpc: '2.0', id: 'big', method: 'job/start', params: sceneJob(scene, { image: { name: 'huge', width: side, height: side, micronsPerPixel: 0.5 }, rois: [{ id: 'circle', geometry: { type: 'Polygon', coordinates: [ring] } }] }) });
    assert.ok(await p.until(() => p.responses.has('"big"'), 90_000), 'answered');
    const err = p.responses.get('"big"').error;
    assert.equal(err?.code, ErrorCodes.LimitExceeded, JSON.stringify(p.responses.get('"big"')));
    assert.equal(err.data?.limit, 'planMemoryMb');
    assert.match(err.message, /too much memory/);
    p.ws.close();
    const outcome = await runSceneJob(daemon.url, scene);
    assert.ok(cellKeys(outcome).length > 50, 'a normal job after it gets its cells');
  });
});

describe('hardening round 2: worker pool and planner units', function () {
  it('a task that cannot be sent to a worker fails alone (TaskNotSent); the worker takes the next task', async () => {
    const pool = new WorkerPool<unknown, unknown>(join(__dirname, '..', 'bridge', 'session', 'plan-worker.js'), { name: 'test', size: 1, taskTimeoutMs: 5000 });
    try {
      let deep: unknown = 1;
      for (let i = 0; i < 20_000; i++) deep = [deep]; // structured clone gives up on this depth
      await assert.rejects(pool.run({ rois: deep }), (e: Error) => e instanceof TaskNotSent && /could not be sent/.test(e.message));
      const ok = await pool.run({ rois: [{ id: 'a', geometry: { type: 'Polygon', coordinates: [[[0, 0], [10, 0], [10, 10], [0, 10]]] } }], grid: { imageWidth: 100, imageHeight: 100, downsample: 1, tileSize: 64, overlap: 16 }, maxRoiVertices: 100, maxRoiAreaPixels: 1e6, maxTilesPerJob: 100 });
      assert.equal((ok as { cells: Uint32Array }).cells.length / 2, 1);
      assert.equal(pool.health().ok, true);
    } finally { await pool.close(); }
  });

  it('pre-authentication eviction: the oldest socket of the most crowded address; oldest first from one address', () => {
    const w = (address: string, id: number) => ({ address, id });
    const ids = (v: { id: number }[]) => v.map((x) => x.id);
    // Quota 4, four waiting: one must go. 10.0.0.9 holds three, the newcomer is elsewhere.
    assert.deepEqual(ids(preAuthVictims([w('10.0.0.1', 1), w('10.0.0.9', 2), w('10.0.0.9', 3), w('10.0.0.9', 4)], '10.0.0.5', 4)), [2]);
    // The newcomer counts for its address: a flooder arriving again evicts its own oldest.
    assert.deepEqual(ids(preAuthVictims([w('10.0.0.1', 1), w('10.0.0.9', 2), w('10.0.0.1', 3), w('10.0.0.9', 4)], '10.0.0.9', 4)), [2]);
    // One address (behind a proxy): plain oldest first, as many as needed.
    assert.deepEqual(ids(preAuthVictims([1, 2, 3, 4, 5].map((i) => w('127.0.0.1', i)), '127.0.0.1', 3)), [1, 2, 3]);
    // Under the quota: nobody.
    assert.deepEqual(preAuthVictims([w('a', 1)], 'b', 8), []);
  });

  it('plans 120,000 ROIs without spreading them into Math.min (stack overflow)', () => {
    const rois = Array.from({ length: 120_000 }, (_, k) => {
      const x = (k % 400) * 10, y = Math.floor(k / 400) * 10;
      return { id: `r${k}`, geometry: { type: 'Polygon' as const, coordinates: [[[x, y], [x + 5, y], [x + 5, y + 5], [x, y + 5], [x, y]]] } };
    });
    const result = plan({ rois, grid: { imageWidth: 4000, imageHeight: 4000, downsample: 1, tileSize: 128, overlap: 32 }, maxRoiVertices: 1e7, maxRoiAreaPixels: 1e9, maxTilesPerJob: 1e6 });
    assert.equal(result.rois.length, 120_000);
    assert.ok(result.cells.length / 2 > 1000);
  });
});

describe('hardening round 2: cellbridge segment\'s temporary file', function () {
  let dir: string, models: string, small: string, large: string, home: string;
  const scene = gridScene(320, 320, 31);
  const png = async (path: string, side: number) => sharp(Buffer.from(wrapCrop(scene, 0, 0, side, side)), { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 1 }).toFile(path);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cellbridge-segment-tmp-'));
    home = mkdtempSync(join(tmpdir(), 'cellbridge-home-'));
    models = makeSyntheticModelsDir();
    small = join(dir, 'small.png');
    large = join(dir, 'large.png');
    await png(small, 320);
    await png(large, 3000);
  });

  function segment(image: string, out: string): { child: ReturnType<typeof spawn>; stderr: () => string; exited: Promise<number | null> } {
    const child = spawn(process.execPath, [CLI, 'segment', image, '--out', out, '--models', models, '--model', 'synthetic', '--device', 'cpu', '--mpp', '0.5'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: home } });
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    child.stdout!.resume();
    return { child, stderr: () => err, exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)))) };
  }

  it('never opens a fixed OUT.partial (a planted symlink is not followed) and leaves no temporary file', async () => {
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious');
    const out = join(dir, 'cells.geojson');
    symlinkSync(victim, `${out}.partial`);
    const r = segment(small, out);
    assert.equal(await r.exited, 0, r.stderr());
    assert.equal(readFileSync(victim, 'utf8'), 'precious');
    assert.equal(JSON.parse(readFileSync(out, 'utf8')).type, 'FeatureCollection');
    assert.deepEqual(readdirSync(dir).filter((f) => /\.partial$/.test(f)), ['cells.geojson.partial'], 'only the planted symlink');
  });

  it('SIGTERM mid-job removes the temporary file and writes no output (exit 143); no telemetry in HOME', async () => {
    const out = join(dir, 'large.geojson');
    const r = segment(large, out);
    const t0 = Date.now();
    while (!/\d+ tiles[ ,]/.test(r.stderr()) && Date.now() - t0 < 20_000) await sleep(50);
    await sleep(300);
    assert.ok(readdirSync(dir).some((f) => f.startsWith('.large.geojson.') && f.endsWith('.partial')), 'a unique temporary file while it runs');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 143, r.stderr());
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('large.geojson')), []);
    assert.ok(!existsSync(join(home, '.cache', 'Microsoft')), 'no onnxruntime telemetry folder');
  });
});
