import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from '../bridge/eval/cli';
import { openDataset, readTile } from '../bridge/eval/dataset';
import { datasetMetrics, tileStats } from '../bridge/eval/metrics';
import { defaultModelName, oracleSegmenter } from '../bridge/eval/segmenter';

// dist/test/ -> repo root -> ../shared/data
const REPO = path.resolve(__dirname, '../..');
const DATA = path.resolve(REPO, '../shared/data/consep/test');
const CLI = path.join(REPO, 'dist/bridge/eval/cli.js');
const SKIP = `CoNSeP test split not found at ${DATA} (read-only shared data, not part of the repo): skipping`;

function runCli(args: string[], timeout = 60_000) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout });
  const lines = r.stdout.trim().split('\n').filter((l) => l.length > 0);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(lines[lines.length - 1]) };
}

describe('eval on real CoNSeP tiles (oracle)', function () {
  before(function () {
    if (!existsSync(DATA)) {
      console.log(`      ${SKIP}`);
      this.skip();
    }
  });

  it('reads tiles: 256x256 RGB, 16-bit instance ids, classes from labels.json', async () => {
    const ds = openDataset(DATA);
    assert.deepEqual([...ds.classes.entries()], [[1, 'Other'], [2, 'Inflammatory'], [3, 'Epithelial'], [4, 'Spindle']]);
    const t = await readTile(ds, ds.tiles[0]);
    assert.equal(t.width, 256);
    assert.equal(t.height, 256);
    assert.equal(t.rgb.length, 256 * 256 * 3);
    const ids = new Set(t.instances);
    ids.delete(0);
    assert.ok(ids.size > 5, 'instances present');
    for (const id of ids) assert.ok(t.classOf.has(id), `instance ${id} has a class in labels.json`);
  });

  it('oracle on 3 tiles: every PQ/DQ/SQ/R² is exactly 1', async () => {
    const ds = openDataset(DATA);
    const seg = oracleSegmenter(ds.classes, false);
    const names = [...ds.classes.values()];
    const stats = [];
    for (const name of ds.tiles.slice(0, 3)) {
      const tile = await readTile(ds, name);
      const pred = await seg.segment(tile);
      stats.push(tileStats(name, tile.instances, (id) => (tile.classOf.get(id) ?? 0) - 1, pred.labels,
        (id) => names.indexOf(pred.classOfLabel.get(id) ?? ''), names.length));
    }
    const m = datasetMetrics(stats, names.length);
    assert.equal(m.bPQ, 1);
    assert.equal(m.mPQ, 1);
    for (const c of m.perClass) {
      if (c.trueCount === 0) continue;
      assert.deepEqual([c.PQ, c.DQ, c.SQ, c.R2, c.fp, c.fn], [1, 1, 1, 1, 0, 0]);
    }
  });

  it('npm run eval -- --oracle --limit 3 prints PQ exactly 1 as the last JSON line', () => {
    const r = runCli(['--oracle', '--limit', '3', '--iterations', '200']);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.model, 'oracle');
    assert.equal(j.tiles, 3);
    assert.equal(typeof j.seconds, 'number');
    assert.equal(j.bPQ, 1);
    assert.deepEqual(j.bPQ_CI, [1, 1]);
    assert.equal(j.mPQ, 1);
    assert.deepEqual(Object.keys(j.perClass), ['Other', 'Inflammatory', 'Epithelial', 'Spindle']);
    for (const [name, c] of Object.entries<Record<string, unknown>>(j.perClass)) {
      if (c.trueCount === 0) continue;
      for (const k of ['PQ', 'DQ', 'SQ', 'R2']) {
        assert.equal(c[k], 1, `${name}.${k}`);
        assert.deepEqual(c[`${k}_CI`], [1, 1], `${name}.${k}_CI`);
      }
    }
    assert.match(r.stderr, /\[eval\] 3\/3 tiles/);
  });

  it('--oracle-erode scores below 1, with the point estimate inside its CI', () => {
    const r = runCli(['--oracle-erode', '--limit', '3', '--iterations', '200']);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.model, 'oracle-erode');
    assert.ok(j.bPQ > 0.5 && j.bPQ < 1, `bPQ ${j.bPQ}`);
    assert.ok(j.bPQ_CI[0] <= j.bPQ && j.bPQ <= j.bPQ_CI[1]);
    assert.ok(j.mPQ > 0 && j.mPQ < 1, `mPQ ${j.mPQ}`);
  });
});

/** The default model's CoNSeP test figures, kept for the baseline comparison below (null until measured). */
let modelOnConsep: { bPQ: number; Fd: number } | null = null;

describe('eval with the daemon pipeline (model mode)', function () {
  // whatever models/default.json ships: the quality bar holds for the default model
  const MODEL = defaultModelName(path.join(REPO, 'models'));
  before(function () {
    if (!existsSync(DATA)) { console.log(`      ${SKIP}`); this.skip(); }
    if (!existsSync(path.join(REPO, 'models', MODEL, 'card.json'))) {
      console.log(`      models/${MODEL}/card.json not found: skipping the model-mode run`);
      this.skip();
    }
  });

  it('segments 1 tile through segmentRgbImage and prints well-formed metrics', () => {
    const r = runCli(['--model', MODEL, '--limit', '1', '--device', 'cpu', '--threads', '1', '--iterations', '20', '--no-images']);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.model, MODEL);
    assert.equal(j.mode, 'model');
    assert.equal(j.provider, 'cpu');
    assert.equal(j.tiles, 1);
    const unit = (v: unknown) => v === null || (typeof v === 'number' && v >= 0 && v <= 1);
    assert.ok(unit(j.bPQ) && unit(j.mPQ), `bPQ ${j.bPQ} mPQ ${j.mPQ}`);
    assert.deepEqual(Object.keys(j.perClass), ['Other', 'Inflammatory', 'Epithelial', 'Spindle']);
    for (const c of Object.values<Record<string, unknown>>(j.perClass)) {
      for (const k of ['PQ', 'DQ', 'SQ']) assert.ok(unit(c[k]), `${k} = ${c[k]}`);
      assert.ok(c.R2 === null || typeof c.R2 === 'number');
      assert.ok(Array.isArray(c.PQ_CI) && Array.isArray(c.R2_CI));
    }
  });

  // The shipped model's quality bar (issue 3), on all 224 test tiles: a retrained or re-exported model
  // that falls below it, or a pipeline change that degrades it, fails here.
  it('the default model on the whole CoNSeP test split: bPQ >= 0.45, PQ > 0.30 for Inflammatory, Epithelial, Spindle', function () {
    this.timeout(600_000); // 224 tiles + 14 whole images: ~20 s on 2 idle cores, minutes on a shared one
    const r = runCli(['--model', MODEL, '--device', 'cpu', '--iterations', '200'], 590_000);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.tiles, 224);
    assert.ok(j.bPQ >= 0.45, `bPQ ${j.bPQ}`);
    for (const c of ['Inflammatory', 'Epithelial', 'Spindle']) assert.ok(j.perClass[c].PQ > 0.3, `${c} PQ ${j.perClass[c].PQ}`);
    assert.ok(j.bPQ_CI[0] <= j.bPQ && j.bPQ <= j.bPQ_CI[1]);
    // detection F1 of centroids within 3 µm (HoVer-Net's F_d), its counts adding up to the split's nuclei
    assert.ok(j.Fd > 0.6 && j.Fd_CI[0] <= j.Fd && j.Fd <= j.Fd_CI[1], `Fd ${j.Fd} ${j.Fd_CI}`);
    assert.equal(j.detection.tp + j.detection.fn, Object.values<{ trueCount: number }>(j.perClass).reduce((a, c) => a + c.trueCount, 0));
    // HoVer-Net's classification F1 per class, over the same pairs
    for (const c of ['Inflammatory', 'Epithelial', 'Spindle']) {
      const pc = j.perClass[c];
      assert.ok(pc.Fc > 0.4 && pc.Fc < 1 && pc.Fc_CI[0] <= pc.Fc && pc.Fc <= pc.Fc_CI[1], `${c} Fc ${pc.Fc} ${pc.Fc_CI}`);
    }
    modelOnConsep = { bPQ: j.bPQ, Fd: j.Fd };
    // per whole image (16 tiles stitched back each): same bar for binary PQ, per-class figures both ways
    assert.equal(j.images.count, 14);
    // CoNSeP's layout: every image has 24-px overlaps (16 x 256² tiles over 1000²) on which the tiles agree
    assert.deepEqual(j.images.stitch.overlapPixels, 14 * (16 * 256 * 256 - 1000 * 1000));
    assert.equal(j.images.stitch.overlapDisagreements, 0);
    assert.ok(j.images.bPQ >= 0.45, `per-image bPQ ${j.images.bPQ}`);
    for (const c of ['Inflammatory', 'Epithelial', 'Spindle']) {
      assert.ok(j.images.perClass[c].PQ > 0.3, `${c} per-image summed PQ ${j.images.perClass[c].PQ}`);
      assert.ok(j.images.perClass[c].PQ_imageMean > 0, `${c} PQ averaged per image`);
    }
  });

  // Issue 10's bar on tissue CoNSeP does not have (7+ organs, 14 images of 14 patients not in training).
  it('the default model on the whole MoNuSeg test split (binary only): bPQ >= 0.56, per image too', function () {
    const data = path.resolve(DATA, '../../monuseg/test');
    if (!existsSync(data)) {
      console.log(`      MoNuSeg test split not found at ${data}: skipping`);
      this.skip();
    }
    this.timeout(600_000);
    const r = runCli(['--model', MODEL, '--device', 'cpu', '--iterations', '200', '--data', data], 590_000);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.tiles, 224);
    assert.equal(j.binaryOnly, true);
    assert.ok(j.bPQ >= 0.56, `bPQ ${j.bPQ}`);
    assert.equal(j.images.count, 14);
    assert.ok(j.images.bPQ >= 0.56, `per-image bPQ ${j.images.bPQ}`);
  });
});

// QuPath's own Cell detection (no deep learning) scored on the same tiles: the baseline the issue compares with.
describe('eval: QuPath Cell detection (watershed) as a baseline, on the headless QuPath 0.6 classes', function () {
  const HEADLESS = path.resolve(REPO, '../shared/qupath-headless');
  before(function () {
    if (!existsSync(DATA)) { console.log(`      ${SKIP}`); this.skip(); }
    if (!existsSync(path.join(HEADLESS, 'lib'))) { console.log(`      ${HEADLESS} absent (headless QuPath classes of shared/): skipping`); this.skip(); }
    if (spawnSync('java', ['-version']).status !== 0) { console.log('      no java on PATH: skipping'); this.skip(); }
  });

  it('--qupath-watershed scores its nuclei with the binary metrics only (it has no classes)', function () {
    this.timeout(120_000);
    const r = runCli(['--qupath-watershed', '--limit', '4', '--no-images', '--iterations', '100'], 110_000);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.model, 'qupath-watershed');
    assert.equal(j.mode, 'qupath-watershed');
    assert.equal(j.binaryOnly, true);
    assert.equal(j.mPQ, null);
    assert.deepEqual(j.perClass, {});
    assert.deepEqual(j.watershed, {});
    assert.ok(j.detection.tp > 20 && j.detection.fp > 0 && j.detection.fn > 0, JSON.stringify(j.detection));
    assert.ok(j.bPQ > 0.05 && j.bPQ < 0.6, `bPQ ${j.bPQ}`);
    assert.match(r.stderr, /QuPath Cell detection \(WatershedCellDetection\)/);
    // a higher hematoxylin threshold finds fewer nuclei
    const hi = runCli(['--qupath-watershed', '--watershed-threshold', '0.4', '--limit', '4', '--no-images', '--iterations', '100'], 110_000).json();
    assert.deepEqual(hi.watershed, { threshold: 0.4 });
    assert.equal(hi.model, 'qupath-watershed (threshold 0.4)');
    assert.ok(hi.detection.tp + hi.detection.fp < j.detection.tp + j.detection.fp, `${JSON.stringify(hi.detection)} vs ${JSON.stringify(j.detection)}`);
  });

  it('the default model beats it on the whole CoNSeP test split, in outlines (bPQ) and in finding nuclei (F_d)', function () {
    if (!modelOnConsep) { console.log('      the default model\'s CoNSeP run did not complete above: skipping'); this.skip(); }
    this.timeout(300_000);
    const r = runCli(['--qupath-watershed', '--no-images', '--iterations', '100'], 290_000);
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.tiles, 224);
    const m = modelOnConsep!;
    assert.ok(m.bPQ > j.bPQ + 0.15, `model bPQ ${m.bPQ}, watershed ${j.bPQ}`);
    assert.ok(m.Fd > j.Fd + 0.1, `model Fd ${m.Fd}, watershed ${j.Fd}`);
  });

  it('setup problems: the options without --qupath-watershed, or no QuPath runtime, exit 2 with a message', () => {
    const a = runCli(['--watershed-threshold', '0.2']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /go with --qupath-watershed/);
    const b = runCli(['--qupath-watershed', '--qupath-headless', path.join(tmpdir(), 'no-such-qupath'), '--limit', '1']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /needs the headless QuPath runtime: .*no-such-qupath.*lib is missing/);
    assert.doesNotMatch(b.stderr, /\n\s+at /);
  });
});

describe('eval CLI: setup errors', () => {
  it('missing data set: clear message, exit code 2, no stack trace', () => {
    const r = runCli(['--oracle', '--data', path.join(tmpdir(), 'no-such-eval-data')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /evaluation data not found: .*no-such-eval-data/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(r.stdout, '');
  });

  it('unknown argument: usage and exit code 2', () => {
    const r = runCli(['--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown argument "--bogus"/);
  });

  it('missing model: clear message, exit code 2', function () {
    if (!existsSync(DATA)) { console.log(`      ${SKIP}`); this.skip(); }
    const empty = mkdtempSync(path.join(tmpdir(), 'eval-models-'));
    try {
      const r = runCli(['--models', empty, '--model', 'nope', '--limit', '1']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /model "nope" not found/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('default model name comes from models/default.json, else cellbridge-he-v1', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'eval-models-'));
    try {
      assert.equal(parseArgs(['--models', dir]).model, 'cellbridge-he-v1');
      writeFileSync(path.join(dir, 'default.json'), JSON.stringify({ default: 'my-model' }));
      assert.equal(parseArgs(['--models', dir]).model, 'my-model');
      assert.equal(parseArgs(['--models', dir, '--model', 'other']).model, 'other');
      assert.equal(parseArgs([]).data, DATA);
      assert.equal(parseArgs([]).modelsDir, path.join(REPO, 'models'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
