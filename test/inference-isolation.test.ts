/**
 * Inference in child processes (--inference-isolation process, the default on GPUs): a native abort
 * in an inference worker (SIGABRT, as WebGPU's Dawn did on an H200) ends that worker, not the daemon.
 * The worker is replaced and its tile runs once more, so the job completes with the same cells; a tile
 * that kills every worker fails its job with ModelFailed and a message that says so. The aborts are
 * real (process.abort() in the worker process, CELLBRIDGE_TEST_ABORT_ON_INFERENCE).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ErrorCodes } from '../protocol';
import { CLI, startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { gridScene } from './helpers/synthetic-scene';
import { CellBridgeClient } from '../bridge/client/client';
import { cropScene } from './helpers/synthetic-scene';
import { cellKeys, RawPeer, runSceneJob, sceneJob, sleep } from './hardening-helpers.test';

const logLines = (d: RunningDaemon) => d.stderr.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('inference isolation: a native abort ends a worker process, not the daemon', function () {
  const scene = gridScene(300, 300, 21);
  const daemons: RunningDaemon[] = [];
  after(async () => { await Promise.all(daemons.map((d) => d.stop())); });

  async function daemon(isolation: string, abortOn?: string): Promise<RunningDaemon> {
    const d = await startDaemon({
      modelsDir: makeSyntheticModelsDir(),
      args: ['--device', 'cpu', '--model', 'synthetic', '--inference-isolation', isolation],
      env: abortOn ? { CELLBRIDGE_TEST_ABORT_ON_INFERENCE: abortOn } : {},
    });
    daemons.push(d);
    return d;
  }

  it('the inference worker aborts on the 2nd tile: replaced, the tile retried, the job completes with the cells of a clean run', async () => {
    const [faulty, clean] = await Promise.all([daemon('process', '2'), daemon('thread')]);
    const listening = logLines(faulty).find((e) => e.event === 'listening')!;
    assert.deepEqual(listening.inference, { workers: 1, isolation: 'process' });
    assert.deepEqual(logLines(clean).find((e) => e.event === 'listening')!.inference, { workers: 1, isolation: 'thread' });

    const [hit, reference] = await Promise.all([runSceneJob(faulty.url, scene), runSceneJob(clean.url, scene)]);
    assert.equal(hit.completed.status, 'completed', JSON.stringify(hit.completed));
    assert.ok(reference.completed.cells > 30, `${reference.completed.cells} cells`);
    assert.equal(hit.completed.cells, reference.completed.cells);
    assert.deepEqual(cellKeys(hit), cellKeys(reference), 'the same cells as without the abort');
    const crashes = logLines(faulty).filter((e) => e.event === 'inference worker crashed; replaced');
    assert.equal(crashes.length, 1, JSON.stringify(crashes));
    assert.match(String(crashes[0].error), /killed by SIGABRT/);
    assert.equal(faulty.process.exitCode, null, 'the daemon is still up');
    assert.equal(faulty.process.signalCode, null);

    // The replacement worker serves the next job as the first did.
    const next = await runSceneJob(faulty.url, scene);
    assert.deepEqual(cellKeys(next), cellKeys(reference));
  });

  it('every inference worker aborts from the 2nd tile on: the job fails with ModelFailed, saying so; the daemon answers', async () => {
    const d = await daemon('process', '2+');
    const failed = await runSceneJob(d.url, scene);
    assert.equal(failed.completed.status, 'failed');
    assert.equal(failed.completed.error!.code, ErrorCodes.ModelFailed);
    assert.match(failed.completed.error!.message, /inference worker crashed \(worker process killed by SIGABRT\).*retried once/);
    assert.equal(d.process.exitCode, null, 'the daemon is still up');
    const p = await RawPeer.open(d.url);
    await p.initialize();
    const health = await p.request('h', 'server/health');
    const inference = health.result.pools.find((x: { name: string }) => x.name === 'inference');
    assert.ok(inference.replacedLastMinute >= 2, JSON.stringify(inference));
    await p.close();
  });
});

describe('start-up test inferences in a child process: a provider or model file that aborts is reported, not fatal', function () {
  it('the provider probe aborts: the daemon exits 1 (not by a signal) naming the provider and SIGABRT', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--device', 'cpu', '--models', makeSyntheticModelsDir(), '--model', 'synthetic'], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, CELLBRIDGE_TEST_ABORT_ON_CHECK: '1' },
    });
    assert.equal(r.signal, null, 'not killed by a signal');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /execution provider "cpu" is not available here \(cpu: the test inference ended the process it ran in \(worker process killed by SIGABRT\)\)/);
  });

  it('the model file\'s first load aborts: that model is failed with the reason, the daemon serves', async () => {
    const d = await startDaemon({
      modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu', '--model', 'synthetic'], env: { CELLBRIDGE_TEST_ABORT_ON_CHECK: '2' },
    });
    try {
      const failed = logLines(d).find((e) => e.event === 'model failed');
      assert.equal(failed?.model, 'synthetic');
      assert.match(String(failed?.reason), /model file could not be loaded: the test inference ended the process it ran in \(worker process killed by SIGABRT\)/);
      const p = await RawPeer.open(d.url);
      const init = await p.initialize();
      assert.equal(init.result.models[0].status, 'failed');
      await p.close();
      assert.equal(d.process.exitCode, null);
    } finally {
      await d.stop();
    }
  });
});

describe('Ctrl-C with inference in child processes', function () {
  it('SIGINT to the whole process group (a terminal\'s Ctrl-C) mid-job: the inference processes live on, the job completes in the grace period, exit 0', async () => {
    const scene = gridScene(300, 300, 25);
    const d = await startDaemon({
      modelsDir: makeSyntheticModelsDir(), detached: true,
      args: ['--device', 'cpu', '--model', 'synthetic', '--inference-isolation', 'process', '--shutdown-grace-s', '20'],
    });
    try {
      const client = await CellBridgeClient.connect(d.url);
      let sent = 0;
      const outcome = client.runJob(sceneJob(scene, { options: { pixelFormat: 'rgb8', maxTilesInFlight: 2 } }), async (t) => {
        if (++sent === 3) process.kill(-d.process.pid!, 'SIGINT'); // the daemon and its inference process
        if (sent >= 3) await sleep(30); // tiles keep coming during the grace period
        return cropScene(scene, t.x, t.y, t.width, t.height);
      });
      const done = await outcome;
      await client.close().catch(() => undefined);
      assert.equal(done.completed.status, 'completed', JSON.stringify(done.completed));
      assert.ok(done.completed.cells > 30);
      assert.equal(await new Promise((r) => d.process.exitCode !== null ? r(d.process.exitCode) : d.process.once('exit', (code) => r(code))), 0);
      assert.ok(!d.stderr.some((l) => /worker crashed/.test(l)), d.stderr.filter((l) => /crash/.test(l)).join('\n'));
    } finally {
      if (d.process.exitCode === null) process.kill(-d.process.pid!, 'SIGKILL');
    }
  });
});
