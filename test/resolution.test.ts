/**
 * Protocol v2's one resampling: the daemon decides the level a client reads (and whether it
 * resamples), clients never resize, and a slide within the pixel-size tolerance of the model is read
 * unscaled. Pure rules first, then over a real socket with the synthetic model.
 */
import assert from 'node:assert/strict';
import { chooseResolution, PIXEL_SIZE_TOLERANCE } from '../bridge/tiling/resolution';
import { gridOf, planTiles } from '../bridge/tiling/planner';
import { parseRoi } from '../bridge/tiling/roi';
import { resampleRgb } from '../bridge/tiling/resample';
import { CellBridgeClient } from '../bridge/client/client';
import { encodeTileFrame, ErrorCodes, PixelFormat, type DetectionFeature, type StartJobParams } from '../protocol';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { cropScene, gridScene, type Scene } from './helpers/synthetic-scene';

describe('resolution: the daemon\'s one decision (level, tolerance, resampling)', () => {
  it('reads a slide within 2 % of the model\'s pixel size unscaled (CMU-1: 0.499 vs 0.5 µm/px)', () => {
    assert.equal(PIXEL_SIZE_TOLERANCE, 0.02);
    const c = chooseResolution(0.5 / 0.499, [1], PIXEL_SIZE_TOLERANCE, 0.499);
    assert.deepEqual(c, { level: 0, readDownsample: 1, align: 1, downsample: 1, resampled: false, effectiveMicronsPerPixel: 0.499 });
    assert.equal(chooseResolution(0.5 / 0.4902).resampled, false, '1.99 % off: unscaled');
    assert.equal(chooseResolution(0.5 / 0.51).resampled, false, '1.96 % off (coarser): unscaled');
    const off = chooseResolution(0.5 / 0.488);
    assert.equal(off.resampled, true, '2.5 % off: resampled');
    assert.ok(Math.abs(off.downsample - 0.5 / 0.488) < 1e-12);
  });

  it('picks the coarsest whole-number pyramid level not coarser than the model', () => {
    // 40x slide (0.25 µm/px) with levels 1, 4, 16: level 0, the daemon halves it.
    assert.deepEqual(chooseResolution(2, [1, 4, 16]), { level: 0, readDownsample: 1, align: 1, downsample: 2, resampled: true, effectiveMicronsPerPixel: null });
    // Levels 1, 2, 8: level 1 is the model's resolution: read as is.
    assert.deepEqual(chooseResolution(2, [1, 2, 8]), { level: 1, readDownsample: 2, align: 2, downsample: 2, resampled: false, effectiveMicronsPerPixel: null });
    // 0.1 µm/px with an Aperio-style level 4.000479: read level 1 (4), resample by 4/5.
    const c = chooseResolution(5, [1, 4.000479, 16.0019]);
    // The client's own value comes back (its reader picks the level by it); tiles align to 4.
    assert.equal(c.level, 1); assert.equal(c.readDownsample, 4.000479); assert.equal(c.align, 4); assert.equal(c.downsample, 5); assert.equal(c.resampled, true);
    // A level with a fractional downsample (3.5) cannot be tiled on whole pixels: not used.
    assert.equal(chooseResolution(4, [1, 3.5]).readDownsample, 1);
    // A level just inside the tolerance above the target is used unscaled (2.01 vs 1.98).
    assert.deepEqual(chooseResolution(1.98, [1, 2.0004]), { level: 1, readDownsample: 2.0004, align: 2, downsample: 2, resampled: false, effectiveMicronsPerPixel: null });
    // An image coarser than the model (1 µm/px): level 0, enlarged by the daemon.
    assert.deepEqual(chooseResolution(0.5, [1, 4]), { level: 0, readDownsample: 1, align: 1, downsample: 0.5, resampled: true, effectiveMicronsPerPixel: null });
    // Level order does not matter; level 0 is found wherever the client lists it.
    assert.equal(chooseResolution(2.2, [4, 1, 2]).level, 2);
  });

  it('aligns tiles read at a level to whole level pixels, with cores that still partition the image', () => {
    const spec = { imageWidth: 2003, imageHeight: 1501, downsample: 5, tileSize: 256, overlap: 64, align: 4 };
    const g = gridOf(spec);
    assert.equal(g.extent % 4, 0); assert.equal(g.stride % 4, 0); assert.equal(g.half % 4, 0);
    const roi = parseRoi('r', { type: 'Polygon', coordinates: [[[0, 0], [2003, 0], [2003, 1501], [0, 1501], [0, 0]]] });
    const tiles = planTiles(spec, [roi]);
    let coreArea = 0;
    for (const t of tiles) {
      assert.equal(t.x % 4, 0); assert.equal(t.y % 4, 0);
      assert.equal(t.readWidth, Math.floor(t.width / 4 + 0.5));
      assert.equal(t.outputWidth, Math.floor(t.width / 5 + 0.5));
      coreArea += (t.core[2] - t.core[0]) * (t.core[3] - t.core[1]);
    }
    assert.equal(coreArea, 2003 * 1501);
    // Without a level (align 1) the grid is the protocol 1 grid.
    const g1 = gridOf({ ...spec, align: undefined, downsample: 2 });
    assert.deepEqual([g1.extent, g1.stride, g1.half], [512, 384, 64]);
  });

  it('enlarging (a 0.25 µm/px model on a 0.499 µm/px slide): no tile is larger than the model reads', () => {
    // round(512 * 0.501) = 257 full-res px would be 513 model px: the extent steps back to 256.
    const downsample = 0.25 / 0.499;
    const spec = { imageWidth: 2220, imageHeight: 2967, downsample, tileSize: 512, overlap: 128 };
    const g = gridOf(spec);
    assert.equal(g.extent, 256);
    const roi = parseRoi('r', { type: 'Polygon', coordinates: [[[0, 0], [2220, 0], [2220, 2967], [0, 2967], [0, 0]]] });
    const tiles = planTiles(spec, [roi]);
    assert.ok(tiles.length > 100);
    assert.equal(Math.max(...tiles.map((t) => Math.max(t.outputWidth, t.outputHeight))), 511, "256 / 0.501 px");
    let coreArea = 0;
    for (const t of tiles) coreArea += (t.core[2] - t.core[0]) * (t.core[3] - t.core[1]);
    assert.equal(coreArea, 2220 * 2967);
    // The same rule leaves every other grid as it was (shrinking: 0.5 µm/px model on 0.2273 µm/px).
    assert.equal(gridOf({ ...spec, downsample: 0.5 / 0.2273 }).extent, Math.round(512 * 0.5 / 0.2273));
  });

  it('resamples with centre-aligned pixels: flat stays flat, a ramp stays symmetric', async () => {
    const w = 40, h = 4;
    const flat = new Uint8Array(w * h * 3).fill(77);
    assert.ok((await resampleRgb(flat, w, h, 17, 3)).every((v) => v === 77));
    const ramp = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) ramp.fill(x < w / 2 ? 0 : 200, 3 * (y * w + x), 3 * (y * w + x) + 3);
    const out = await resampleRgb(ramp, w, h, 20, 2);
    const row = Array.from({ length: 20 }, (_, x) => out[3 * x]);
    for (let x = 0; x < 10; x++) assert.equal(row[x] + row[19 - x], 200, `symmetric at ${x}: ${row.join(',')}`);
    assert.strictEqual(await resampleRgb(ramp, w, h, w, h), ramp, 'same size: no copy, no change');
  });
});

const W = 610, H = 500;
const ROI = { type: 'Polygon' as const, coordinates: [[[20, 20], [590, 20], [590, 470], [20, 470], [20, 20]]] };

/** The scene enlarged k times by pixel repetition: a "full resolution" whose level k is the scene itself. */
function enlarge(scene: Scene, k: number): Scene {
  const w = scene.width * k, h = scene.height * k;
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set(scene.rgb.subarray(3 * (Math.floor(y / k) * scene.width + Math.floor(x / k)), 3 * (Math.floor(y / k) * scene.width + Math.floor(x / k)) + 3), 3 * (y * w + x));
  return { ...scene, width: w, height: h, rgb };
}

const scaleGeometry = (k: number) => ({ type: 'Polygon' as const, coordinates: ROI.coordinates.map((r) => r.map(([x, y]) => [x * k, y * k])) });
const outline = (f: DetectionFeature, k = 1) => JSON.stringify([f.geometry.coordinates[0].map(([x, y]) => [x / k, y / k]), f.properties.classification.name]);

describe('protocol v2 over a real socket: clients send unresized pixels, the daemon resamples', function () {
  let daemon: RunningDaemon;
  const scene = gridScene(W, H, 11, [96, 192, 288, 384, 480, 576]);

  before(async () => { daemon = await startDaemon({ modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu'] }); });
  after(async () => { await daemon?.stop(); });

  let lastPlan: Awaited<ReturnType<CellBridgeClient['runJob']>>['plan'] | undefined;

  /** Runs a job; the pixel source reads `level` (a scene whose level-k image is `levels[k]`) exactly where the plan says. */
  async function run(image: StartJobParams['image'], levels: Map<number, Scene>, geometry = ROI) {
    const client = await CellBridgeClient.connect(daemon.url);
    const reads: string[] = [];
    try {
      const outcome = await client.runJob({ image, rois: [{ id: 'r', geometry }], model: 'synthetic', options: { pixelFormat: 'rgb8' } }, async (t) => {
        const k = lastPlan!.readDownsample;
        const src = levels.get(k);
        if (!src) throw new Error(`plan asked for level ${k}`);
        assert.equal(t.x % k, 0); assert.equal(t.y % k, 0);
        reads.push(`${t.readWidth}x${t.readHeight}`);
        return cropScene(src, t.x / k, t.y / k, t.readWidth, t.readHeight);
      }, { onPlan: (p) => { lastPlan = p; } });
      return { ...outcome, reads };
    } finally {
      await client.close();
    }
  }

  it('0.499 µm/px on a 0.5 µm/px model: read unscaled, the very cells of 0.5 µm/px', async () => {
    const at05 = await run({ name: 's', width: W, height: H, micronsPerPixel: 0.5 }, new Map([[1, scene]]));
    const at0499 = await run({ name: 's', width: W, height: H, micronsPerPixel: 0.499 }, new Map([[1, scene]]));
    assert.equal(at0499.plan.downsample, 1);
    assert.equal(at0499.plan.readDownsample, 1);
    assert.deepEqual(at0499.plan.resolution, { imageMicronsPerPixel: 0.499, modelMicronsPerPixel: 0.5, effectiveMicronsPerPixel: 0.499, tolerance: 0.02, resampling: null });
    const a = (at05.features.get('r') ?? []).map((f) => outline(f)).sort();
    const b = (at0499.features.get('r') ?? []).map((f) => outline(f)).sort();
    assert.ok(a.length > 50);
    assert.deepEqual(b, a);
    // Measurements keep the slide's true pixel size.
    const f = at0499.features.get('r')![0];
    const g = at05.features.get('r')!.find((x) => outline(x) === outline(f))!;
    const ratio = f.properties.measurements['Nucleus: Area µm^2'] / g.properties.measurements['Nucleus: Area µm^2'];
    assert.ok(Math.abs(ratio - (0.499 / 0.5) ** 2) < 1e-3, `area ratio ${ratio}`);
  });

  it('a 0.25 µm/px pyramid with a level at 2: the client reads level 1 unresized, the same cells at twice the coordinates', async () => {
    const big = enlarge(scene, 2);
    const ref = await run({ name: 's', width: W, height: H, micronsPerPixel: 0.5 }, new Map([[1, scene]]));
    const lv = await run({ name: 's', width: 2 * W, height: 2 * H, micronsPerPixel: 0.25, downsamples: [1, 2, 8] }, new Map([[1, big], [2, scene]]), scaleGeometry(2));
    assert.equal(lv.plan.readDownsample, 2); assert.equal(lv.plan.readLevel, 1); assert.equal(lv.plan.resolution.resampling, null);
    assert.deepEqual(lv.plan.tiles!.map((t) => `${t.readWidth}x${t.readHeight}`), ref.plan.tiles!.map((t) => `${t.outputWidth}x${t.outputHeight}`));
    assert.deepEqual((lv.features.get('r') ?? []).map((f) => outline(f, 2)).sort(), (ref.features.get('r') ?? []).map((f) => outline(f)).sort());
  });

  it('at a pyramid level, an edge tile 1 px short (a reader rounding the last level pixel) is accepted and resampled', async () => {
    const client = await CellBridgeClient.connect(daemon.url);
    try {
      const c = client.connection;
      const completed = new Promise<{ status: string; cells: number }>((resolve) => c.onNotification('job/completed', resolve));
      const rejected: string[] = [];
      c.onNotification('frame/rejected', (p: { message: string }) => { rejected.push(p.message); });
      let short = 0;
      let plan: { jobId: number; tiles: { id: number; x: number; y: number; width: number; readWidth: number; readHeight: number }[] } | undefined;
      const pending: number[][] = [];
      const send = (ids: number[]) => {
        for (const id of ids) {
          const t = plan!.tiles.find((u) => u.id === id)!;
          const w = t.readWidth - (t.x + t.width === 2 * W ? 1 : 0);
          if (w !== t.readWidth) short++;
          client.socket.send(encodeTileFrame({ format: PixelFormat.RGB8, jobId: plan!.jobId, tileId: id, width: w, height: t.readHeight }, cropScene(scene, t.x / 2, t.y / 2, w, t.readHeight)));
        }
      };
      c.onNotification('job/requestTiles', (p: { tileIds: number[] }) => { if (plan) send(p.tileIds); else pending.push(p.tileIds); });
      plan = await c.sendRequest('job/start', {
        image: { name: 's', width: 2 * W, height: 2 * H, micronsPerPixel: 0.25, downsamples: [1, 2.0004] }, rois: [{ id: 'r', geometry: scaleGeometry(2) }],
        model: 'synthetic', options: { pixelFormat: 'rgb8' },
      }) as typeof plan;
      assert.equal((plan as unknown as { readDownsample: number }).readDownsample, 2.0004, 'the client\'s own level downsample comes back');
      for (const ids of pending) send(ids);
      const done = await completed;
      assert.deepEqual(rejected, []);
      assert.equal(done.status, 'completed');
      assert.ok(short > 0, 'some edge tiles were sent 1 px short');
      assert.ok(done.cells > 50);
    } finally {
      await client.close();
    }
  });

  it('the same pyramid offered without levels: full-resolution frames, the daemon halves them (linear), the cells are found', async () => {
    const big = enlarge(scene, 2);
    const ref = await run({ name: 's', width: W, height: H, micronsPerPixel: 0.5 }, new Map([[1, scene]]));
    const l0 = await run({ name: 's', width: 2 * W, height: 2 * H, micronsPerPixel: 0.25 }, new Map([[1, big]]), scaleGeometry(2));
    assert.equal(l0.plan.readDownsample, 1);
    assert.deepEqual(l0.plan.resolution.resampling, { kernel: 'linear', scale: 0.5 });
    for (const t of l0.plan.tiles!) { assert.equal(t.readWidth, t.width); assert.equal(t.outputWidth, Math.floor(t.width / 2 + 0.5)); }
    const n = ref.completed.cells;
    assert.ok(Math.abs(l0.completed.cells - n) <= Math.ceil(0.03 * n), `${l0.completed.cells} cells resampled vs ${n} at the model's resolution`);
  });

  it('a frame of the model-resolution size (what a protocol 1 client sent) is rejected when the daemon resamples', async () => {
    const big = enlarge(scene, 2);
    const client = await CellBridgeClient.connect(daemon.url);
    try {
      const plan = await client.connection.sendRequest('job/start', {
        image: { name: 's', width: 2 * W, height: 2 * H, micronsPerPixel: 0.25 }, rois: [{ id: 'r', geometry: scaleGeometry(2) }],
        model: 'synthetic', options: { pixelFormat: 'rgb8', maxTilesInFlight: 1 },
      }) as { jobId: number; tiles: { id: number; outputWidth: number; outputHeight: number; readWidth: number }[] };
      const t = plan.tiles[0];
      assert.notEqual(t.readWidth, t.outputWidth);
      const rejected = new Promise<{ code: number; message: string }>((resolve) => client.connection.onNotification('frame/rejected', resolve));
      await new Promise((r) => setTimeout(r, 50)); // the tile request comes after the plan
      client.socket.send(encodeTileFrame({ format: PixelFormat.RGB8, jobId: plan.jobId, tileId: t.id, width: t.outputWidth, height: t.outputHeight }, cropScene(big, 0, 0, t.outputWidth, t.outputHeight)));
      const r = await rejected;
      assert.equal(r.code, ErrorCodes.BadTileFrame);
      assert.match(r.message, /readDownsample, not resized/);
    } finally {
      await client.close();
    }
  });

  it('refuses image.downsamples that are not pyramid downsamples', async () => {
    const client = await CellBridgeClient.connect(daemon.url);
    try {
      for (const downsamples of [[], [0.5], ['4'], [1, Number.NaN]]) {
        await assert.rejects(client.connection.sendRequest('job/start', { image: { width: W, height: H, micronsPerPixel: 0.5, downsamples }, rois: [{ id: 'r', geometry: ROI }] }),
          (e: { code: number; message: string }) => e.code === ErrorCodes.InvalidParams && /image\.downsamples/.test(e.message));
      }
    } finally {
      await client.close();
    }
  });
});
