/**
 * Bad input over a real socket: every mistake gets a JSON-RPC error with a specific code and a
 * human message (or a clean close), and the daemon keeps serving other clients.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { CellBridgeClient } from '../bridge/client/client';
import { ErrorCodes, encodeTileFrame, PixelFormat, PROTOCOL_VERSION, type StartJobResult } from '../protocol';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { cropScene, gridScene } from './helpers/synthetic-scene';

/** A raw WebSocket that collects every JSON message the server sends. */
class RawPeer {
  readonly messages: any[] = [];
  private waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, binary) => {
      if (!binary) this.messages.push(JSON.parse(data.toString()));
      this.waiters.splice(0).forEach((w) => w());
    });
    ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; this.waiters.splice(0).forEach((w) => w()); });
  }
  static async open(url: string): Promise<RawPeer> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return new RawPeer(ws);
  }
  send(obj: unknown): void { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }
  async waitFor(pred: (m: any) => boolean, ms = 10_000): Promise<any> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.messages.find(pred);
      if (m) return m;
      if (this.closed) throw new Error(`closed (${this.closed.code} ${this.closed.reason}) while waiting`);
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(this.messages).slice(0, 500)}`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
  }
  async request(id: number, method: string, params?: unknown): Promise<any> {
    this.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    return this.waitFor((m) => m.id === id);
  }
  async initialize(): Promise<void> {
    const r = await this.request(0, 'initialize', { clientInfo: { name: 'raw' }, protocolVersion: '2.0' });
    assert.ok(r.result, JSON.stringify(r));
  }
  close(): void { this.ws.close(); }
}

const square = (x0: number, y0: number, x1: number, y1: number) => ({ type: 'Polygon', coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]] });
const goodJob = (extra: Record<string, unknown> = {}) => ({
  image: { name: 'scene', width: 300, height: 300, micronsPerPixel: 0.5 },
  rois: [{ id: 'a', geometry: square(10, 10, 290, 290) }],
  model: 'synthetic',
  options: { pixelFormat: 'rgb8' },
  ...extra,
});

describe('bad input gets clear errors, and the daemon keeps serving', function () {
  let daemon: RunningDaemon;
  const scene = gridScene(300, 300, 3);

  before(async () => { daemon = await startDaemon({ modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu'] }); });
  after(async () => { await daemon?.stop(); });

  async function healthyJobStillWorks(): Promise<void> {
    const client = await CellBridgeClient.connect(daemon.url);
    const out = await client.runJob(goodJob() as any, async (t) => cropScene(scene, t.x, t.y, t.width, t.height));
    await client.close();
    assert.equal(out.completed.status, 'completed');
    assert.ok(out.completed.cells > 50, `${out.completed.cells} cells`);
  }

  it('malformed JSON → -32700 with id null; the connection stays usable', async () => {
    const p = await RawPeer.open(daemon.url);
    p.send('{"jsonrpc": "2.0", "id": 1, "method": ');
    const e = await p.waitFor((m) => m.error?.code === ErrorCodes.ParseError);
    assert.equal(e.id, null);
    assert.match(e.error.message, /not valid JSON/);
    await p.initialize();
    p.close();
  });

  it('not a request object, a batch, wrong jsonrpc version → -32600', async () => {
    const p = await RawPeer.open(daemon.url);
    p.send('42');
    p.send('[{"jsonrpc":"2.0","id":5,"method":"initialize"}]');
    p.send({ jsonrpc: '1.0', id: 7, method: 'initialize' });
    await p.waitFor((m) => m.id === 7 && m.error?.code === ErrorCodes.InvalidRequest);
    const invalid = p.messages.filter((m) => m.error?.code === ErrorCodes.InvalidRequest);
    assert.equal(invalid.length, 3);
    assert.ok(invalid.some((m) => /batches are not supported/.test(m.error.message)));
    p.close();
  });

  it('requests before initialize → -32002; unknown method → -32601', async () => {
    const p = await RawPeer.open(daemon.url);
    const before = await p.request(1, 'job/start', goodJob());
    assert.equal(before.error.code, ErrorCodes.NotInitialized);
    await p.initialize();
    const unknown = await p.request(2, 'job/explode', {});
    assert.equal(unknown.error.code, ErrorCodes.MethodNotFound);
    const again = await p.request(3, 'initialize', { clientInfo: { name: 'raw' }, protocolVersion: '2.0' });
    assert.equal(again.error.code, ErrorCodes.AlreadyInitialized);
    p.close();
  });

  it('protocol major mismatch → -32003 with a message saying what to update', async () => {
    const p = await RawPeer.open(daemon.url);
    const r = await p.request(1, 'initialize', { clientInfo: { name: 'raw' }, protocolVersion: '3.0' });
    assert.equal(r.error.code, ErrorCodes.VersionMismatch);
    assert.match(r.error.message, /3\.0.*2\.3/);
    p.close();
  });

  it('a protocol 1.x client (it resized pixels itself) → -32003 telling the user to install the matching QuPath scripts', async () => {
    const p = await RawPeer.open(daemon.url);
    const r = await p.request(1, 'initialize', { clientInfo: { name: 'qupath-cellbridge' }, protocolVersion: '1.0' });
    assert.equal(r.error.code, ErrorCodes.VersionMismatch);
    assert.match(r.error.message, /1\.0.*2\.3/);
    assert.match(r.error.message, /daemon alone resizes.*install the QuPath scripts/);
    p.close();
  });

  it('wrong parameter types → -32602 naming the field', async () => {
    const p = await RawPeer.open(daemon.url);
    await p.initialize();
    const cases: [unknown, RegExp][] = [
      [{ ...goodJob(), image: { width: '300', height: 300, micronsPerPixel: 0.5 } }, /image\.width/],
      [{ ...goodJob(), image: { width: 300, height: -1, micronsPerPixel: 0.5 } }, /image\.height/],
      [{ ...goodJob(), image: { width: 300, height: 300, micronsPerPixel: 'x' } }, /micronsPerPixel/],
      [{ ...goodJob(), rois: 'everything' }, /rois/],
      [{ ...goodJob(), rois: [] }, /rois.*empty/],
      [{ ...goodJob(), rois: [{ id: 'a' }] }, /rois\[0\]\.geometry/],
      [{ ...goodJob(), options: { pixelFormat: 'jpeg' } }, /pixelFormat/],
      [{ ...goodJob(), options: { postprocess: { niter: -3 } } }, /postprocess\.niter/],
      [{ ...goodJob(), options: { postprocess: { bogus: 1 } } }, /postprocess\.bogus/],
      [{ ...goodJob(), options: { postprocess: { meanCellprobThreshold: '1' } } }, /postprocess\.meanCellprobThreshold" must be a number -50\.\.50, or null/],
      [{ ...goodJob(), options: { postprocess: { meanCellprobThreshold: 99 } } }, /postprocess\.meanCellprobThreshold/],
      [[1, 2, 3], /object/],
    ];
    let id = 10;
    for (const [params, pattern] of cases) {
      const r = await p.request(id++, 'job/start', params);
      assert.equal(r.error?.code, ErrorCodes.InvalidParams, JSON.stringify(r));
      assert.match(r.error.message, pattern);
    }
    p.close();
  });

  it('unknown model, empty ROI, self-intersecting ROI, ROI outside, NaN, missing pixel size → specific codes', async () => {
    const p = await RawPeer.open(daemon.url);
    await p.initialize();
    const bowtie = { type: 'Polygon', coordinates: [[[10, 10], [100, 100], [100, 10], [10, 100], [10, 10]]] };
    const flat = { type: 'Polygon', coordinates: [[[10, 10], [50, 10], [90, 10], [10, 10]]] };
    const cases: [unknown, number, RegExp][] = [
      [goodJob({ model: 'no-such-model' }), ErrorCodes.UnknownModel, /Unknown model "no-such-model".*synthetic/],
      [goodJob({ model: '../../etc/passwd' }), ErrorCodes.UnknownModel, /Unknown model/],
      [goodJob({ rois: [{ id: 'b', geometry: bowtie }] }), ErrorCodes.InvalidRoi, /intersects itself/],
      [goodJob({ rois: [{ id: 'f', geometry: flat }] }), ErrorCodes.EmptyRoi, /zero area/],
      [goodJob({ rois: [{ id: 'o', geometry: square(400, 400, 500, 500) }] }), ErrorCodes.EmptyRoi, /outside/],
      [goodJob({ rois: [{ id: 'p', geometry: { type: 'Point', coordinates: [1, 2] } }] }), ErrorCodes.InvalidRoi, /Polygon or MultiPolygon/],
      [goodJob({ rois: [{ id: 't', geometry: { type: 'Polygon', coordinates: [[[1, 1], [2, 2]]] } }] }), ErrorCodes.InvalidRoi, /fewer than 3/],
      [goodJob({ rois: [{ id: 'n', geometry: { type: 'Polygon', coordinates: [[[1, 1], [null, 2], [5, 5], [1, 1]]] } }] }), ErrorCodes.InvalidRoi, /finite numbers/],
      [goodJob({ image: { width: 300, height: 300, micronsPerPixel: null } }), ErrorCodes.MissingPixelSize, /no pixel size.*assumeMicronsPerPixel/],
    ];
    let id = 100;
    for (const [params, code, pattern] of cases) {
      const r = await p.request(id++, 'job/start', params);
      assert.equal(r.error?.code, code, JSON.stringify(r));
      assert.match(r.error.message, pattern);
    }
    p.close();
  });

  it('tile frames of the wrong size, format, job or tile are rejected; the job then completes', async () => {
    const p = await RawPeer.open(daemon.url);
    await p.initialize();
    const start = await p.request(1, 'job/start', goodJob());
    const plan: StartJobResult = start.result;
    const req = await p.waitFor((m) => m.method === 'job/requestTiles');
    const t = plan.tiles!.find((x) => x.id === req.params.tileIds[0])!;
    const px = cropScene(scene, t.x, t.y, t.width, t.height);
    const frame = (o: Partial<{ jobId: number; tileId: number; width: number; height: number; format: 1 | 2 }>, pixels = px) =>
      encodeTileFrame({ format: PixelFormat.RGB8, jobId: plan.jobId, tileId: t.id, width: t.readWidth, height: t.readHeight, ...o }, pixels);
    p.ws.send(frame({}, px.subarray(0, px.length - 3)));                 // too short
    p.ws.send(frame({ width: t.readWidth - 1 }, px.subarray(0, (t.readWidth - 1) * t.readHeight * 3))); // wrong size for the tile
    p.ws.send(frame({ format: PixelFormat.ARGB32 }, new Uint8Array(t.readWidth * t.readHeight * 4))); // wrong format
    p.ws.send(frame({ jobId: 999_999 }));                                 // unknown job
    p.ws.send(frame({ tileId: 999_999 }));                                // unknown tile
    p.ws.send(Buffer.from('garbage'));                                    // not a frame at all
    await p.waitFor(() => p.messages.filter((m) => m.method === 'frame/rejected').length >= 6);
    const rejected = p.messages.filter((m) => m.method === 'frame/rejected').map((m) => m.params);
    assert.equal(rejected.filter((r) => r.code === ErrorCodes.BadTileFrame).length, 5);
    assert.equal(rejected.filter((r) => r.code === ErrorCodes.UnknownJob).length, 1);
    assert.ok(rejected.some((r) => /must be \d+x\d+ px/.test(r.message)));
    // Now behave: send every requested tile once.
    const sent = new Set<number>();
    for (;;) {
      for (const m of p.messages.filter((x) => x.method === 'job/requestTiles')) {
        for (const id of m.params.tileIds) {
          if (sent.has(id)) continue;
          sent.add(id);
          const tt = plan.tiles!.find((x) => x.id === id)!;
          p.ws.send(encodeTileFrame({ format: PixelFormat.RGB8, jobId: plan.jobId, tileId: id, width: tt.readWidth, height: tt.readHeight }, cropScene(scene, tt.x, tt.y, tt.width, tt.height)));
        }
      }
      const done = p.messages.find((m) => m.method === 'job/completed');
      if (done) { assert.equal(done.params.status, 'completed'); break; }
      await p.waitFor((m) => m.method === 'job/completed' || (m.method === 'job/requestTiles' && m.params.tileIds.some((i: number) => !sent.has(i))));
    }
    // A second copy of a tile after it was received is refused, not double-counted.
    p.close();
  });

  it('job/cancel stops a job at once; unknown job ids → -32014', async () => {
    const client = await CellBridgeClient.connect(daemon.url);
    let jobId = -1;
    const run = client.runJob(goodJob() as any, () => new Promise(() => undefined), { onPlan: (pl) => { jobId = pl.jobId; } });
    await new Promise((r) => setTimeout(r, 200));
    const c = await client.cancel(jobId);
    assert.equal(c.status, 'cancelled');
    const out = await run;
    assert.equal(out.completed.status, 'cancelled');
    assert.equal(out.completed.error?.code, ErrorCodes.Cancelled);
    await assert.rejects(client.cancel(123456), (e: any) => e.code === ErrorCodes.UnknownJob);
    await client.close();
  });

  it('a client disconnecting mid-job does not disturb the daemon', async () => {
    const client = await CellBridgeClient.connect(daemon.url);
    let planned = false;
    void client.runJob(goodJob() as any, async (t) => { planned = true; return cropScene(scene, t.x, t.y, t.width, t.height); }).catch(() => undefined);
    while (!planned) await new Promise((r) => setTimeout(r, 20));
    client.socket.terminate();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(daemon.process.exitCode, null, daemon.stderr.slice(-5).join("\n"));
    assert.ok(daemon.stderr.some((l) => /"event":"job ended".*"status":"cancelled"/.test(l)), daemon.stderr.slice(-6).join('\n'));
    await healthyJobStillWorks();
  });
});
