/**
 * Concurrency (issue #7): 8 clients at once on the same image get exactly the cells of a sequential
 * run; afterwards the daemon holds no client, job or queued work, and its memory is back near its
 * baseline. Also: the inference queue is shared fairly (round-robin between clients).
 */
import assert from 'node:assert/strict';
import { CellBridgeClient } from '../bridge/client/client';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { cropScene, gridScene } from './helpers/synthetic-scene';
import { cellKeys, RawPeer, rssBytes, runSceneJob, sceneJob, sleep } from './hardening-helpers.test';

const MiB = 1024 * 1024;

describe('concurrency: 8 clients on one image', function () {
  let daemon: RunningDaemon;
  const scene = gridScene(320, 320, 31);

  before(async () => {
    daemon = await startDaemon({
      modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu', '--log-level', 'warn'],
      env: { CELLBRIDGE_DEBUG: '1', NODE_OPTIONS: [process.env.NODE_OPTIONS, '--expose-gc'].filter(Boolean).join(' ') },
    });
  });
  after(async () => { await daemon?.stop(); });

  async function stats(): Promise<any> {
    const p = await RawPeer.open(daemon.url);
    try {
      await p.initialize();
      return (await p.request('s', 'debug/stats')).result;
    } finally {
      await p.close();
    }
  }

  /** Waits for the clients to be gone, then returns the daemon's RSS after a GC. */
  async function settledRss(): Promise<{ rss: number; s: any }> {
    let s: any;
    for (let i = 0; i < 30; i++) {
      s = await stats();
      if (s.clients === 1 && s.jobs === 0) break;
      await sleep(100);
    }
    await sleep(300);
    s = await stats();
    return { rss: rssBytes(daemon.process.pid!), s };
  }

  it('all complete with the sequential results, and the daemon returns to its baseline', async () => {
    const reference = await runSceneJob(daemon.url, scene);
    assert.equal(reference.completed.status, 'completed');
    const want = cellKeys(reference);
    assert.ok(want.length > 50, `${want.length} cells`);
    // Warm-up round: worker heaps and onnxruntime arenas reach their working size.
    await Promise.all(Array.from({ length: 8 }, () => runSceneJob(daemon.url, scene)));
    const base = await settledRss();

    for (let round = 0; round < 2; round++) {
      const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => runSceneJob(daemon.url, scene, { options: { pixelFormat: 'rgb8', maxTilesInFlight: 1 + (i % 4) } })));
      for (const [i, o] of outcomes.entries()) {
        assert.equal(o.completed.status, 'completed', `client ${i}`);
        assert.deepEqual(cellKeys(o), want, `client ${i} round ${round}: same cells as the sequential run`);
      }
    }
    const after = await settledRss();
    assert.deepEqual({ clients: after.s.clients, jobs: after.s.jobs, queued: after.s.queued },
      { clients: 1, jobs: 0, queued: { inference: 0, postprocess: 0, plan: 0 } });
    const grew = after.rss - base.rss;
    console.log(`      daemon RSS: baseline ${(base.rss / MiB).toFixed(1)} MiB, after 16 more jobs ${(after.rss / MiB).toFixed(1)} MiB; heap ${(base.s.memory.heapUsed / MiB).toFixed(1)} → ${(after.s.memory.heapUsed / MiB).toFixed(1)} MiB`);
    assert.ok(grew < 48 * MiB, `RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
    assert.ok(after.s.memory.heapUsed - base.s.memory.heapUsed < 8 * MiB, 'main-thread heap back to its baseline');
  });

  it('shares the inference queue fairly: a small job is not stuck behind a greedy client', async () => {
    // Greedy: 4 jobs x 8 tiles in flight on one connection. Small: one job of one tile on another.
    const greedy = await CellBridgeClient.connect(daemon.url);
    const big = gridScene(640, 640, 32);
    let greedyDone = 0;
    const greedyJobs = Array.from({ length: 4 }, () => greedy.runJob(sceneJob(big, { options: { pixelFormat: 'rgb8', maxTilesInFlight: 8 } }),
      async (t) => cropScene(big, t.x, t.y, t.width, t.height)).then((o) => { greedyDone++; return o; }));
    await sleep(300);
    const t0 = Date.now();
    const small = await runSceneJob(daemon.url, scene, { rois: [{ id: 's', geometry: { type: 'Polygon', coordinates: [[[10, 10], [60, 10], [60, 60], [10, 60], [10, 10]]] } }] });
    const smallMs = Date.now() - t0;
    assert.equal(small.completed.status, 'completed');
    assert.equal(greedyDone, 0, `the small job (${smallMs} ms) finished before the greedy jobs`);
    for (const o of await Promise.all(greedyJobs)) assert.equal(o.completed.status, 'completed');
    await greedy.close();
  });
});
