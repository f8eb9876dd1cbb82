/**
 * Concurrency (issue #7): 8 clients at once on the same image get exactly the cells of a sequential
 * run; afterwards the daemon holds no client, job or queued work, and its memory is back near its
 * baseline. Also: the inference queue is shared fairly (round-robin between clients).
 */
import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tagOwner, WorkerPool } from '../bridge/workers/pool';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { gridScene } from './helpers/synthetic-scene';
import { cellKeys, RawPeer, rssBytes, runSceneJob, sleep } from './hardening-helpers.test';

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
    // RSS includes allocator and worker-heap slack that is not given back at once (it plateaus about
    // 20-30 MiB above the first round); the main-thread heap after a GC is the exact check.
    assert.ok(grew < 64 * MiB, `RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
    assert.ok(after.s.memory.heapUsed - base.s.memory.heapUsed < 8 * MiB, 'main-thread heap back to its baseline');
  });

});

describe('concurrency: the worker pools are shared fairly', function () {
  it('takes queued tasks round-robin between clients, not first come first served', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cellbridge-pool-'));
    const script = join(dir, 'busy-worker.js');
    writeFileSync(script, `const { parentPort } = require('node:worker_threads');
require(${JSON.stringify(join(__dirname, '..', 'bridge', 'workers', 'pool.js'))}).serveWorker(parentPort, async (x) => {
  const t = Date.now(); while (Date.now() - t < 3) { /* busy */ }
  return { result: x };
});`);
    const pool = new WorkerPool<string, string>(script, { name: 'test', size: 1 });
    try {
      const greedy = new AbortController(), doomed = new AbortController(), modest = new AbortController(), late = new AbortController();
      for (const [c, owner] of [[greedy, 'greedy'], [doomed, 'greedy'], [modest, 'modest'], [late, 'late']] as const) {
        setMaxListeners(100, c.signal);
        tagOwner(c.signal, owner);
      }
      const order: string[] = [];
      const run = (x: string, signal: AbortSignal) => pool.run(x, [], signal).then((r) => { order.push(r); });
      const all = [
        ...Array.from({ length: 30 }, (_, i) => run(`g${i}`, greedy.signal)),
        ...Array.from({ length: 3 }, (_, i) => run(`m${i}`, modest.signal)),
        run('l0', late.signal),
      ];
      // Dropping a job's queued work frees it at once.
      const dropped = Array.from({ length: 5 }, () => pool.run('x', [], doomed.signal).then(() => 'ran', (e: Error) => e.name));
      doomed.abort();
      assert.deepEqual(await Promise.all(dropped), Array(5).fill('AbortError'));
      await Promise.all(all);
      // Everything was queued before the worker was ready; the owners then take turns.
      assert.deepEqual(order.slice(0, 10), ['g0', 'm0', 'l0', 'g1', 'm1', 'g2', 'm2', 'g3', 'g4', 'g5']);
      assert.equal(order.length, 34);
      assert.equal(pool.queued, 0);
    } finally {
      await pool.close();
    }
  });
});
