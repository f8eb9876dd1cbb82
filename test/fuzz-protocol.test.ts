/**
 * Property-based fuzzing (issue #7) with fast-check against a live daemon over a real socket:
 * > 10,000 generated malformed or hostile messages (bad JSON, wrong types, huge numbers, NaN and
 * Infinity, bad envelopes, hostile job/start params, garbage and out-of-order tile frames, frames
 * for unknown jobs, oversize frames). Properties: the daemon never exits; every request is answered
 * (an error or a result, with its id; id null for text that is not a request) or the connection is
 * closed with a reason; every malformed frame is rejected; and a well-behaved client working all
 * the while gets exactly the cells of a run in isolation.
 *
 * Messages are sent in batches of 100 per connection without waiting for each answer; answers are
 * counted. FUZZ_SEED and FUZZ_RUNS override the seed and the number of batches.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeTileFrame, encodeTileFrame, FRAME_HEADER_BYTES, type StartJobParams, type TilePlan } from '../protocol';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { gridScene } from './helpers/synthetic-scene';
import { cellKeys, RawPeer, runSceneJob, sceneJob } from './hardening-helpers.test';

const BATCH = 100;
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const SEED = Number(process.env.FUZZ_SEED ?? 20261127);
const MAX_MESSAGE = 1024 * 1024;

// ------------------------------------------------------------------------------------------------
// Generators

const hostileNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1, 0.5, 1e308, -1e308, 5e-324, 2 ** 31, 2 ** 32, 2 ** 53 + 2, -(2 ** 53), 65535, 4_000_000_001),
  fc.integer(), fc.double({ noNaN: false }),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileNumber },
  { weight: 2, arbitrary: fc.constantFrom(null, true, false, '', 'NaN', 'Infinity', '../../etc/passwd', '__proto__', 'x'.repeat(3000), [], {}, [[[]]], { __proto__: { polluted: 1 } }) },
  { weight: 2, arbitrary: fc.anything({ maxDepth: 3, maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40, unit: 'binary' }) },
);
const ring = fc.array(fc.oneof({ weight: 4, arbitrary: fc.tuple(fc.integer({ min: -50, max: 400 }), fc.integer({ min: -50, max: 400 })) }, { weight: 1, arbitrary: hostileValue }), { maxLength: 12 });
const geometry = fc.oneof(
  fc.record({ type: fc.constantFrom('Polygon', 'MultiPolygon', 'Point', 'polygon', 'LineString'), coordinates: fc.oneof(fc.array(ring, { maxLength: 3 }), fc.array(fc.array(ring, { maxLength: 2 }), { maxLength: 3 }), hostileValue) }),
  hostileValue,
);

/** A valid job/start with some of its fields replaced by hostile values. */
const hostileJob: fc.Arbitrary<unknown> = fc.record({
  width: fc.option(hostileValue, { nil: undefined }), height: fc.option(hostileValue, { nil: undefined }),
  mpp: fc.option(hostileValue, { nil: undefined }), name: fc.option(hostileValue, { nil: undefined }),
  roiId: fc.option(hostileValue, { nil: undefined }), geometry: fc.option(geometry, { nil: undefined }),
  rois: fc.option(hostileValue, { nil: undefined }), model: fc.option(fc.oneof(hostileValue, fc.constantFrom('synthetic', '../synthetic')), { nil: undefined }),
  option: fc.option(fc.tuple(fc.constantFrom('pixelFormat', 'objectType', 'maxTilesInFlight', 'assumeMicronsPerPixel', 'simplifyTolerance', 'minAreaMicrons', 'detectionBatchSize', 'postprocess', 'bogus'), hostileValue), { nil: undefined }),
  post: fc.option(fc.tuple(fc.constantFrom('mode', 'niter', 'flowScale', 'cellprobThreshold', 'growIterations', 'fillHoles', 'maxSizeFraction', 'constructor'), hostileValue), { nil: undefined }),
}).map((m) => mutatedJob(m));
/** Sometimes a valid job: it starts, asks for tiles, and meets the hostile frames and cancels that follow. */
const validJob: fc.Arbitrary<unknown> = fc.constant({}).map((m) => mutatedJob(m));

function mutatedJob(m: Record<string, any>): unknown {
  const job: any = {
    image: { name: 'fuzz', width: 300, height: 300, micronsPerPixel: 0.5 },
    rois: [{ id: 'r', geometry: { type: 'Polygon', coordinates: [[[10, 10], [290, 10], [290, 290], [10, 290], [10, 10]]] } }],
    model: 'synthetic',
    options: { pixelFormat: 'rgb8' },
  };
  if (m.width !== undefined) job.image.width = m.width;
  if (m.height !== undefined) job.image.height = m.height;
  if (m.mpp !== undefined) job.image.micronsPerPixel = m.mpp;
  if (m.name !== undefined) job.image.name = m.name;
  if (m.roiId !== undefined) job.rois[0].id = m.roiId;
  if (m.geometry !== undefined) job.rois[0].geometry = m.geometry;
  if (m.rois !== undefined) job.rois = m.rois;
  if (m.model !== undefined) job.model = m.model;
  if (m.option) job.options[m.option[0]] = m.option[1];
  if (m.post) job.options.postprocess = { [m.post[0]]: m.post[1] };
  return job;
}

const methods = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('initialize', 'models/list', 'job/start', 'job/start', 'job/cancel') },
  { weight: 2, arbitrary: fc.constantFrom('debug/stats', 'job/requestTiles', '$/cancelRequest', '$/setTrace', '__proto__', 'constructor', 'toString', 'rpc.discover', '') },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);
const paramsFor = (method: string): fc.Arbitrary<unknown> => {
  const absent = fc.constant(undefined);
  const common = [absent, hostileValue, fc.array(hostileValue, { maxLength: 3 })];
  if (method === 'job/start') return fc.oneof({ weight: 6, arbitrary: hostileJob }, { weight: 2, arbitrary: validJob }, ...common);
  if (method === 'job/cancel') return fc.oneof(fc.record({ jobId: hostileValue }), ...common);
  if (method === 'initialize') {
    return fc.oneof(fc.record({ clientInfo: fc.oneof(fc.record({ name: fc.oneof(fc.string({ maxLength: 10 }), hostileValue) }), hostileValue), protocolVersion: fc.oneof(fc.constantFrom('2.0', '2.9', '1.0', '3.0', '2', '02.0', '2.0.0'), hostileValue), token: fc.option(hostileValue, { nil: undefined }) }), ...common);
  }
  return fc.oneof(...common);
};

type Msg =
  | { t: 'badjson'; text: string }
  | { t: 'notobject'; value: unknown }
  | { t: 'badid'; id: unknown; method: string }
  | { t: 'envelope'; jsonrpc: unknown; method: unknown }
  | { t: 'request'; method: string; params: unknown; numericId: boolean }
  | { t: 'literal'; method: string; literal: string }
  | { t: 'notification'; method: string; params: unknown }
  | { t: 'response'; body: unknown }
  | { t: 'frame'; frame: FrameSpec };

interface FrameSpec { raw?: Uint8Array; format: number; version: number; job: 'current' | 'random' | 'huge'; jobId: number; tile: number; width: number; height: number; sizeDelta: number; correctSize: boolean }

const validJson = (s: string) => { try { JSON.parse(s); return true; } catch { return false; } };
const message: fc.Arbitrary<Msg> = fc.oneof(
  { weight: 3, arbitrary: fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.constantFrom('{"jsonrpc":"2.0","id":1,"method":', '{', '[', '{"a":1,}', "{'jsonrpc':'2.0'}", '\u0000', '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1.0",}}'),
    fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1)) + '{'),
  ).filter((s) => !validJson(s)).map((text) => ({ t: 'badjson' as const, text })) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.string({ maxLength: 10 }), fc.constant(null), fc.boolean(), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 })).map((value) => ({ t: 'notobject' as const, value })) },
  { weight: 1, arbitrary: fc.record({ id: fc.oneof(fc.boolean(), fc.object({ maxDepth: 1 }), fc.array(fc.integer(), { maxLength: 2 })), method: fc.constantFrom('initialize', 'job/start') }).map((m) => ({ t: 'badid' as const, ...m })) },
  { weight: 2, arbitrary: fc.record({ jsonrpc: fc.oneof(fc.constantFrom('1.0', '2', 2, null, '2.0 ', undefined), hostileValue), method: fc.oneof(fc.integer(), fc.constant(null), fc.boolean(), fc.object({ maxDepth: 1 })) })
    .map(({ jsonrpc, method }) => ({ t: 'envelope' as const, jsonrpc: jsonrpc === '2.0' ? '2.00' : jsonrpc, method })) },
  { weight: 10, arbitrary: methods.chain((method) => fc.record({ params: paramsFor(method), numericId: fc.boolean() }).map((r) => ({ t: 'request' as const, method, ...r }))) },
  { weight: 2, arbitrary: fc.record({ method: fc.constantFrom('job/start', 'job/cancel', 'initialize'), literal: fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '1e-400', '123456789012345678901234567890', '0x10', '+1', '.5', 'undefined') })
    .map((m) => ({ t: 'literal' as const, ...m })) },
  { weight: 2, arbitrary: methods.chain((method) => paramsFor(method).map((params) => ({ t: 'notification' as const, method, params }))) },
  { weight: 1, arbitrary: fc.oneof(fc.record({ result: hostileValue }), fc.record({ error: hostileValue })).map((body) => ({ t: 'response' as const, body })) },
  { weight: 6, arbitrary: fc.oneof(
    fc.uint8Array({ maxLength: 80 }).map((raw) => ({ raw } as FrameSpec)),
    fc.record({
      format: fc.constantFrom(1, 1, 2, 0, 3, 255), version: fc.constantFrom(1, 1, 1, 0, 2), job: fc.constantFrom('current', 'current', 'random', 'huge'),
      jobId: fc.nat(), tile: fc.nat({ max: 40 }), width: fc.oneof(fc.nat({ max: 140 }), fc.constantFrom(0, 2 ** 32 - 1, 65536)),
      height: fc.oneof(fc.nat({ max: 140 }), fc.constantFrom(0, 2 ** 32 - 1, 65536)), sizeDelta: fc.constantFrom(0, 0, 0, 1, -1, -24, 7), correctSize: fc.boolean(),
    }) as fc.Arbitrary<FrameSpec>,
  ).map((frame) => ({ t: 'frame' as const, frame })) },
);

const batch = fc.record({
  init: fc.integer({ min: 0, max: 9 }).map((n) => n < 8), // mostly initialized: reaches the handlers
  withJob: fc.boolean(),
  trickyIds: fc.boolean(),
  oversize: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  messages: fc.array(message, { minLength: BATCH, maxLength: BATCH }),
});

// ------------------------------------------------------------------------------------------------
// Sending one batch and checking the answers

function buildFrame(f: FrameSpec, plan: { jobId: number; tiles: TilePlan[] } | null): Uint8Array {
  if (f.raw) return f.raw;
  let { width, height, tile } = f;
  const jobId = f.job === 'huge' ? 2 ** 31 + (f.jobId % 2 ** 31) : f.job === 'current' && plan ? plan.jobId : f.jobId % 2 ** 32;
  if (f.job === 'current' && plan && plan.tiles.length > 0) {
    const t = plan.tiles[tile % plan.tiles.length];
    tile = t.id;
    if (f.correctSize) { width = t.readWidth; height = t.readHeight; }
  }
  const bpp = f.format === 2 ? 4 : 3;
  const n = width * height * bpp;
  const payload = Math.max(0, Math.min(n > 200_000 ? 64 : n, 200_000) + f.sizeDelta);
  const header = encodeTileFrame({ format: 1, jobId, tileId: tile, width, height }, new Uint8Array(0));
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload);
  out.set(header);
  out[4] = f.version;
  out[5] = f.format;
  for (let i = FRAME_HEADER_BYTES; i < out.length; i++) out[i] = (i * 31) & 255;
  return out;
}

const stats = { batches: 0, messages: 0, text: 0, frames: 0, answered: 0, nullIdErrors: 0, rejectedFrames: 0, oversizeClosed: 0, jobsStarted: 0 };

async function runBatch(url: string, b: any, index: number): Promise<void> {
  const p = await RawPeer.open(url);
  try {
    let plan: { jobId: number; tiles: TilePlan[] } | null = null;
    if (b.init) {
      const r = await p.initialize();
      assert.ok(r.result, JSON.stringify(r));
      if (b.withJob) {
        const j = await p.request('job', 'job/start', sceneJob(gridScene(1, 1, 0), { image: { name: 'fuzz', width: 300, height: 300, micronsPerPixel: 0.5 } }) as StartJobParams);
        assert.ok(j.result, JSON.stringify(j).slice(0, 300));
        plan = { jobId: j.result.jobId, tiles: j.result.tiles };
      }
    }
    const expectIds: string[] = [];
    let expectNull = 0, expectRejected = 0, n = 0;
    const nextId = (numeric: boolean) => { n++; if (b.trickyIds && n <= 2) return n === 1 ? '__proto__' : 'constructor'; return numeric ? index * 1000 + n : `b${index}-${n}`; };
    for (const m of b.messages as Msg[]) {
      stats.messages++;
      if (m.t === 'frame') {
        stats.frames++;
        const data = buildFrame(m.frame, plan);
        let certain = false;
        try {
          const f = decodeTileFrame(data);
          certain = f.jobId >= 2 ** 31; // never a job id: UnknownJob (or NotInitialized)
        } catch { certain = true; } // malformed: BadTileFrame
        if (certain) expectRejected++;
        p.send(data);
        continue;
      }
      stats.text++;
      switch (m.t) {
        case 'badjson': p.send(m.text); expectNull++; break;
        case 'notobject': p.send(JSON.stringify(m.value)); expectNull++; break;
        case 'badid': p.send(JSON.stringify({ jsonrpc: '2.0', id: m.id, method: m.method })); expectNull++; break;
        case 'envelope': {
          const id = nextId(false);
          p.send(JSON.stringify({ ...(m.jsonrpc === undefined ? {} : { jsonrpc: m.jsonrpc }), id, method: m.method }));
          expectIds.push(JSON.stringify(id));
          break;
        }
        case 'request': {
          const id = nextId(m.numericId);
          p.send(JSON.stringify({ jsonrpc: '2.0', id, method: m.method, ...(m.params === undefined ? {} : { params: m.params }) }));
          expectIds.push(JSON.stringify(id));
          break;
        }
        case 'literal': {
          const id = nextId(true);
          const text = JSON.stringify({ jsonrpc: '2.0', id, method: m.method, params: { jobId: '@', image: { width: '@', height: 10, micronsPerPixel: '@' }, rois: [{ id: 'r', geometry: { type: 'Polygon', coordinates: [[[0, 0], ['@', 5], [5, '@'], [0, 0]]] } }] } }).replaceAll('"@"', m.literal);
          p.send(text);
          if (validJson(text)) expectIds.push(JSON.stringify(id)); else expectNull++;
          break;
        }
        case 'notification': p.send(JSON.stringify({ jsonrpc: '2.0', method: m.method, ...(m.params === undefined ? {} : { params: m.params }) })); break;
        case 'response': p.send(JSON.stringify({ jsonrpc: '2.0', id: `resp-${index}-${n++}`, ...(m.body as object) })); break;
      }
    }
    const done = () => expectIds.every((id) => p.responses.has(id)) && p.nullIdErrors >= expectNull && p.rejectedFrames >= expectRejected;
    const ok = await p.until(done, 15_000);
    assert.equal(p.closed, null, `connection closed unexpectedly: ${JSON.stringify(p.closed)}`);
    assert.ok(ok, `unanswered: ${expectIds.filter((id) => !p.responses.has(id)).slice(0, 5).join(', ')}; null-id errors ${p.nullIdErrors}/${expectNull}; rejected frames ${p.rejectedFrames}/${expectRejected}`);
    assert.equal(p.duplicates, 0, 'one answer per request');
    for (const id of expectIds) {
      const r = p.responses.get(id);
      assert.ok('result' in r || (Number.isInteger(r.error?.code) && typeof r.error.message === 'string' && r.error.message.length > 0), JSON.stringify(r).slice(0, 300));
      if (r.result?.jobId !== undefined) stats.jobsStarted++;
    }
    for (const m of p.messages) if (m.id === null) assert.ok(Number.isInteger(m.error?.code) && m.error.message, JSON.stringify(m));
    stats.answered += expectIds.length;
    stats.nullIdErrors += p.nullIdErrors;
    stats.rejectedFrames += p.rejectedFrames;
    if (b.oversize) {
      stats.messages++; stats.frames++;
      p.send(new Uint8Array(MAX_MESSAGE + 1 + (index % 1000)));
      assert.ok(await p.until(() => p.closed !== null, 10_000), 'oversize frame closes the connection');
      assert.equal(p.closed!.code, 1009);
      stats.oversizeClosed++;
    }
    stats.batches++;
  } finally {
    await p.close();
  }
}

describe('fuzz: hostile messages against a live daemon', function () {
  let daemon: RunningDaemon;
  const scene = gridScene(300, 300, 41);

  before(async () => {
    daemon = await startDaemon({
      modelsDir: makeSyntheticModelsDir(),
      args: ['--device', 'cpu', '--log-level', 'error', '--max-message-mb', '1', '--max-preauth-kb', '1024', '--max-tiles-per-job', '400', '--max-roi-megapixels', '25'],
    });
  });
  after(async () => { await daemon?.stop(); });

  it(`survives ${RUNS} batches of ${BATCH} messages; every request is answered; a good client is unaffected`, async function () {
    const isolated = cellKeys(await runSceneJob(daemon.url, scene));
    assert.ok(isolated.length > 50);
    let fuzzing = true;
    const goodRuns: string[][] = [];
    const good = (async () => {
      while (fuzzing) goodRuns.push(cellKeys(await runSceneJob(daemon.url, scene)));
    })();
    const t0 = Date.now();
    let index = 0;
    try {
      await fc.assert(fc.asyncProperty(batch, async (b) => {
        await runBatch(daemon.url, b, index++);
        assert.equal(daemon.process.exitCode, null, 'the daemon is still running');
        const escaped = daemon.stderr.find((l) => /"event":"(uncaught exception|unhandled rejection|internal error)"/.test(l));
        assert.equal(escaped, undefined, 'an exception escaped a handler');
      }), { numRuns: RUNS, seed: SEED, endOnFailure: true });
    } finally {
      fuzzing = false;
      await good;
    }
    console.log(`      ${stats.messages} messages (${stats.text} text, ${stats.frames} binary) in ${stats.batches} batches, ${((Date.now() - t0) / 1000).toFixed(1)} s: ` +
      `${stats.answered} requests answered, ${stats.nullIdErrors} id-null errors, ${stats.rejectedFrames} frames rejected, ${stats.oversizeClosed} closed for size, ${stats.jobsStarted} jobs started; ${goodRuns.length} good jobs alongside`);
    assert.ok(stats.messages >= 10_000 || RUNS < 100, `${stats.messages} messages`);
    assert.equal(daemon.process.exitCode, null);
    const bugs = daemon.stderr.filter((l) => /"event":"(uncaught exception|unhandled rejection|internal error)"/.test(l));
    assert.deepEqual(bugs, [], 'no exception escaped a handler (the safety nets caught nothing)');
    assert.ok(goodRuns.length >= 1);
    for (const run of goodRuns) assert.deepEqual(run, isolated, 'the good client got exactly the cells of the isolated run');
    // And the daemon still serves a fresh client normally.
    assert.deepEqual(cellKeys(await runSceneJob(daemon.url, scene)), isolated);
  });
});
