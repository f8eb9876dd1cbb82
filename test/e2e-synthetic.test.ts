/**
 * End to end over a real socket with a real onnxruntime session: a synthetic model whose outputs
 * are painted into the pixels, a scene of known cells (many straddling tile borders), an ROI with
 * a hole. Every cell must come out exactly once, whole, with its class and area.
 */
import assert from 'node:assert/strict';
import { CellBridgeClient, rgbToArgb32 } from '../bridge/client/client';
import type { DetectionFeature, StartJobParams } from '../protocol';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir, SYNTHETIC_CLASSES } from './helpers/synthetic-model';
import { cropScene, gridScene, type Scene } from './helpers/synthetic-scene';
import { pointInRoi, parseRoi } from '../bridge/tiling/roi';
import { ringCentroid } from './helpers/geojson-centroid';

const W = 610, H = 500;
// Synthetic card: 128 px tiles, overlap 32 → stride 96 at downsample 1.
const BOUNDARIES = [96, 192, 288, 384, 480, 576];
const ROI_GEOMETRY = {
  type: 'Polygon' as const,
  coordinates: [
    [[20, 20], [590, 20], [590, 470], [20, 470], [20, 20]],
    [[250, 150], [350, 150], [350, 260], [250, 260], [250, 150]],
  ],
};

const centroidOf = (f: DetectionFeature): [number, number] => ringCentroid(f.geometry.coordinates[0]);

function expectedCells(scene: Scene) {
  const roi = parseRoi('r', ROI_GEOMETRY);
  return scene.discs.map((d, i) => ({ ...d, area: scene.areas[i] })).filter((d) => pointInRoi(d.cx, d.cy, roi));
}

async function runScene(url: string, scene: Scene, pixelFormat: 'rgb8' | 'argb32', extra: Partial<StartJobParams> = {}) {
  const client = await CellBridgeClient.connect(url);
  try {
    return await client.runJob({
      image: { name: 'scene', width: scene.width, height: scene.height, micronsPerPixel: 0.5 },
      rois: [{ id: 'r', geometry: ROI_GEOMETRY }],
      model: 'synthetic',
      options: { pixelFormat, maxTilesInFlight: 3 },
      ...extra,
    }, async (t) => {
      const rgb = cropScene(scene, t.x, t.y, t.width, t.height);
      return pixelFormat === 'rgb8' ? rgb : rgbToArgb32(rgb);
    });
  } finally {
    await client.close();
  }
}

describe('end to end: synthetic model over a real WebSocket', function () {
  let daemon: RunningDaemon;
  const scene = gridScene(W, H, 7, BOUNDARIES);

  before(async () => {
    daemon = await startDaemon({ modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu'] });
  });
  after(async () => { await daemon?.stop(); });

  it('finds every cell exactly once, whole, with its class and area, across tile borders', async () => {
    const outcome = await runScene(daemon.url, scene, 'rgb8');
    assert.equal(outcome.completed.status, 'completed');
    const features = outcome.features.get('r') ?? [];
    const expected = expectedCells(scene);
    const straddling = expected.filter((d) => BOUNDARIES.some((b) => Math.abs(d.cx - b) < d.r || Math.abs(d.cy - b) < d.r));
    assert.ok(straddling.length >= 20, `scene has ${straddling.length} cells across tile borders`);
    assert.equal(features.length, expected.length, 'no cell lost or duplicated');
    assert.equal(outcome.completed.cells, expected.length);
    const used = new Set<number>();
    let exact = 0;
    for (const f of features) {
      const [x, y] = centroidOf(f);
      let best = -1, bestD = Infinity;
      expected.forEach((d, i) => { const dd = Math.hypot(d.cx - x, d.cy - y); if (dd < bestD) { bestD = dd; best = i; } });
      assert.ok(bestD < 0.75, `cell at ${x.toFixed(2)},${y.toFixed(2)} is ${bestD.toFixed(2)} px from the nearest disc`);
      assert.ok(!used.has(best), 'a disc matched twice');
      used.add(best);
      const d = expected[best];
      assert.equal(f.properties.classification.name, SYNTHETIC_CLASSES.find((c) => c.index === d.classIndex)!.name);
      // Outlines follow pixel edges: area is the pixel count (0.25 µm² per px); flow following may
      // leave a rim pixel or two of a disc to a neighbour's fragment, never more than 3 %.
      const px = f.properties.measurements['Nucleus: Area µm^2'] / 0.25;
      assert.equal(px, Math.round(px), 'area is a whole number of pixels');
      assert.ok(Math.abs(px - d.area) <= Math.max(1, 0.03 * d.area), `area ${px} px vs disc ${d.area} px`);
      if (px === d.area) exact++;
      assert.equal(f.properties.objectType, 'cell');
      assert.deepEqual(f.nucleusGeometry, f.geometry);
      assert.ok(f.properties.measurements['Prob: ' + f.properties.classification.name] > 0.9);
      assert.ok(f.properties.measurements['Nucleus: Circularity'] > 0.8 && f.properties.measurements['Nucleus: Circularity'] <= 1);
      assert.match(String(f.id), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    assert.ok(exact >= 0.95 * features.length, `${exact} of ${features.length} areas exact`);
    const perClass: Record<string, number> = {};
    for (const d of expected) { const n = SYNTHETIC_CLASSES.find((c) => c.index === d.classIndex)!.name; perClass[n] = (perClass[n] ?? 0) + 1; }
    assert.deepEqual(outcome.completed.counts, perClass);
    assert.deepEqual(outcome.completed.countsByRoi.r, perClass);
  });

  it('gives identical cells for ARGB32 frames, with the same stable ids', async () => {
    const a = await runScene(daemon.url, scene, 'rgb8');
    const b = await runScene(daemon.url, scene, 'argb32');
    const key = (f: DetectionFeature) => JSON.stringify([f.id, f.geometry, f.properties.classification.name]);
    assert.deepEqual((b.features.get('r') ?? []).map(key).sort(), (a.features.get('r') ?? []).map(key).sort());
  });

  it('puts vertices exactly on full-resolution pixel edges', async () => {
    const outcome = await runScene(daemon.url, scene, 'rgb8');
    for (const f of outcome.features.get('r') ?? []) {
      for (const [x, y] of f.geometry.coordinates[0]) {
        assert.equal(x, Math.round(x)); assert.equal(y, Math.round(y));
        assert.ok(x >= 0 && x <= W && y >= 0 && y <= H);
      }
    }
  });
});
