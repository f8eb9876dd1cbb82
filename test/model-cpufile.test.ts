/**
 * A model card's `cpuFile` (issue 10, CPU budget): the int8 copy runs on the CPU provider, the card's
 * `file` everywhere else and with --full-precision; a broken cpuFile falls back to `file` at start-up;
 * a missing or escaping one is a failed model with the reason; `npm run eval` picks and falls back the
 * same way. And the bundled default's int8 copy segments real CoNSeP tiles like its full-precision file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ModelRegistry, runFileFor } from '../bridge/inference/model-registry';
import { validateCard } from '../bridge/inference/card-validate';
import { modelSegmenter } from '../bridge/eval/segmenter';
import { startDaemon, CLI, REPO_ROOT, SHARED_DATA, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir, syntheticCard, syntheticModelOnnx } from './helpers/synthetic-model';
import { RawPeer } from './hardening-helpers.test';

function modelsWithCpuFiles(): string {
  return makeSyntheticModelsDir((root) => {
    const add = (name: string, cpuFile: string, bytes: Uint8Array | null) => {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'model.onnx'), syntheticModelOnnx());
      if (bytes) writeFileSync(join(root, name, cpuFile), bytes);
      writeFileSync(join(root, name, 'card.json'), JSON.stringify({ ...syntheticCard({ name }), cpuFile }));
    };
    add('quant', 'model-cpu.onnx', syntheticModelOnnx());
    add('badcpu', 'model-cpu.onnx', randomBytes(4096));
    add('nocpu', 'absent.onnx', null);
    add('escape', '../synthetic/model.onnx', null);
  });
}

describe('model card cpuFile: which file runs', function () {
  const root = modelsWithCpuFiles();

  it('the registry resolves cpuFile inside the model folder; missing or escaping ones fail with the reason', () => {
    const reg = new ModelRegistry(root);
    const quant = reg.get('quant')!;
    assert.equal(quant.status, 'ready');
    assert.equal(quant.onnxPath, join(root, 'quant', 'model.onnx'), 'the card\'s file until a provider is chosen');
    assert.equal(quant.cpuFilePath, join(root, 'quant', 'model-cpu.onnx'));
    assert.equal(reg.get('synthetic')!.cpuFilePath, null);
    assert.equal(reg.get('nocpu')!.status, 'failed');
    assert.match(reg.get('nocpu')!.error!, /model file absent\.onnx is missing/);
    assert.equal(reg.get('escape')!.status, 'failed');
    assert.match(reg.get('escape')!.error!, /cpuFile must stay inside the model folder/);
    assert.throws(() => validateCard({ ...syntheticCard(), cpuFile: 5 }, 'card.json'), /cpuFile must name an \.onnx file/);
  });

  it('useProvider: cpuFile on the CPU, the card\'s file on GPUs and with fullPrecision', () => {
    const reg = new ModelRegistry(root);
    const file = join(root, 'quant', 'model.onnx'), cpu = join(root, 'quant', 'model-cpu.onnx');
    reg.useProvider('cpu');
    assert.equal(reg.get('quant')!.onnxPath, cpu);
    assert.equal(reg.get('synthetic')!.onnxPath, join(root, 'synthetic', 'model.onnx'), 'no cpuFile: its file');
    reg.useProvider('cuda');
    assert.equal(reg.get('quant')!.onnxPath, file);
    reg.useProvider('webgpu');
    assert.equal(reg.get('quant')!.onnxPath, file);
    reg.useProvider('cpu', true);
    assert.equal(reg.get('quant')!.onnxPath, file);
    assert.equal(runFileFor(reg.get('quant')!, 'cpu', false), cpu);
    assert.equal(reg.get('nocpu')!.onnxPath, null, 'a failed model stays without a file');
  });

  describe('the daemon on the CPU', function () {
    let daemon: RunningDaemon;
    let full: RunningDaemon;
    before(async () => {
      [daemon, full] = await Promise.all([
        startDaemon({ modelsDir: root, args: ['--device', 'cpu', '--model', 'synthetic'] }),
        startDaemon({ modelsDir: root, args: ['--device', 'cpu', '--model', 'synthetic', '--full-precision'] }),
      ]);
    });
    after(async () => { await Promise.all([daemon?.stop(), full?.stop()]); });

    const models = async (d: RunningDaemon): Promise<Record<string, { status: string; file?: string; error?: string }>> => {
      const p = await RawPeer.open(d.url);
      try {
        const init = await p.initialize();
        return Object.fromEntries(init.result.models.map((m: { name: string }) => [m.name, m]));
      } finally {
        await p.close();
      }
    };

    it('initialize names the file each model runs: the cpuFile, or model.onnx with --full-precision', async () => {
      const m = await models(daemon);
      assert.equal(m.quant.file, 'model-cpu.onnx');
      assert.equal(m.synthetic.file, 'model.onnx');
      assert.equal(m.nocpu.status, 'failed');
      assert.equal(m.nocpu.file, undefined, 'failed models name no file');
      const f = await models(full);
      assert.equal(f.quant.file, 'model.onnx');
    });

    it('cellbridge health lists the file each ready model runs', () => {
      const r = spawnSync(process.execPath, [CLI, 'health', '--server', daemon.url], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      const h = JSON.parse(r.stdout);
      assert.deepEqual(h.modelFiles, { badcpu: 'model.onnx', quant: 'model-cpu.onnx', synthetic: 'model.onnx' });
    });

    it('a cpuFile that does not load: the model stays ready on its full-precision file, with a warning', async () => {
      const m = await models(daemon);
      assert.equal(m.badcpu.status, 'ready');
      assert.equal(m.badcpu.file, 'model.onnx');
      const warned = daemon.stderr.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
        .filter((e) => e.level === 'warn' && e.model === 'badcpu');
      assert.equal(warned.length, 1, daemon.stderr.join('\n'));
      assert.match(warned[0].msg ?? warned[0].message ?? warned[0].event, /cpuFile could not be loaded/);
    });
  });

  it('npm run eval falls back like the daemon: a cpuFile that does not load runs the card\'s file, and says so', async function () {
    this.timeout(60_000);
    const lines: string[] = [];
    const seg = await modelSegmenter(root, 'badcpu', 0.5, { device: 'cpu', postprocessWorkers: 1, log: (l) => lines.push(l) });
    try {
      assert.equal(seg.modelFile, 'model.onnx');
      assert.ok(lines.some((l) => /\[eval\] model cpuFile could not be loaded \(.+\); running its full-precision file/.test(l)), lines.join('\n'));
    } finally {
      await seg.close();
    }
    const good = await modelSegmenter(root, 'quant', 0.5, { device: 'cpu', postprocessWorkers: 1 });
    try { assert.equal(good.modelFile, 'model-cpu.onnx'); } finally { await good.close(); }
  });

  it('cellbridge segment reports the file that ran (modelFile), the cpuFile or with --full-precision the card\'s file', function () {
    this.timeout(60_000);
    const svs = join(SHARED_DATA, 'wsi', 'CMU-1-Small-Region.svs');
    if (!existsSync(svs)) { console.log(`      ${svs} not found: skipping`); this.skip(); }
    const roi = join(root, 'roi.geojson');
    writeFileSync(roi, JSON.stringify({ type: 'Polygon', coordinates: [[[800, 1200], [1000, 1200], [1000, 1400], [800, 1400], [800, 1200]]] }));
    const run = (extra: string[]) => {
      const r = spawnSync(process.execPath, [CLI, 'segment', svs, '--roi', roi, '--models', root, '--model', 'quant', '--device', 'cpu', '--quiet',
        '--out', join(root, `out${extra.length}.geojson`), ...extra], { encoding: 'utf8', timeout: 55_000 });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').pop()!);
    };
    assert.equal(run([]).modelFile, 'model-cpu.onnx');
    assert.equal(run(['--full-precision']).modelFile, 'model.onnx');
  });

  describe('the bundled default model\'s int8 copy on real CoNSeP tiles', function () {
    const data = join(SHARED_DATA, 'consep', 'test');
    before(function () {
      if (!existsSync(data)) { console.log(`      ${data} not found: skipping (see ../shared/data/README)`); this.skip(); }
    });

    it('names model-int8.onnx and scores like the full-precision file on 24 test tiles (within 0.02 PQ, cell counts within 3 %)', function () {
      this.timeout(300_000);
      const run = (extra: string[]) => {
        const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'bridge', 'eval', 'cli.js'), '--model', 'cellbridge-he-v2', '--data', data,
          '--limit', '24', '--device', 'cpu', '--iterations', '20', '--no-images', ...extra], { encoding: 'utf8', timeout: 280_000 });
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout.trim().split('\n').pop()!);
      };
      const int8 = run([]), fp = run(['--full-precision']);
      assert.equal(int8.modelFile, 'model-int8.onnx');
      assert.equal(fp.modelFile, 'model.onnx');
      assert.ok(Math.abs(int8.bPQ - fp.bPQ) < 0.02, `bPQ ${int8.bPQ} vs ${fp.bPQ}`);
      assert.ok(Math.abs(int8.mPQ - fp.mPQ) < 0.02, `mPQ ${int8.mPQ} vs ${fp.mPQ}`);
      for (const c of ['Inflammatory', 'Epithelial', 'Spindle']) {
        const a = int8.perClass[c].predCount, b = fp.perClass[c].predCount;
        assert.ok(Math.abs(a - b) <= Math.max(3, 0.03 * b), `${c}: ${a} vs ${b} cells`);
      }
      assert.ok(int8.bPQ > 0.3, `bPQ ${int8.bPQ}`);
    });
  });

  it('cellbridge serve --help lists --full-precision; segment refuses it with --server (exit 2, says what to do)', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8' });
    assert.match(r.stdout, /--full-precision/);
    assert.match(r.stdout, /CELLBRIDGE_FULL_PRECISION/);
    const s = spawnSync(process.execPath, [CLI, 'segment', join(SHARED_DATA, 'wsi', 'CMU-1-Small-Region.svs'), '--server', 'ws://127.0.0.1:9/',
      '--full-precision', '--out', join(root, 'never.geojson')], { encoding: 'utf8' });
    assert.equal(s.status, 2, s.stderr);
    assert.match(s.stderr, /--full-precision sets up the in-process daemon.*cellbridge serve --full-precision/);
  });
});
