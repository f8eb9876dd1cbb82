/**
 * The QuPath side (qupath-scripts/) run on EXACTLY QuPath's class path, against the REAL daemon, twice:
 *  - QuPath 0.6: the jars of ../shared/qupath-headless/lib (QuPath 0.6.0 core classes, Groovy 4.0.26 with only
 *    the modules QuPath ships: groovy, groovy-jsr223, groovy-xml; Gson; no groovy-json) on the system Java;
 *  - QuPath 0.7: the same QuPath classes with Groovy 5.0.x's groovy, groovy-jsr223 and groovy-xml from Maven
 *    Central (test/setup/groovy5.sh, cached in .cache/), on Java 25 when installed (QuPath 0.7's), else Java 17.
 * The test code (test/groovy/*.groovy) needs nothing more than that class path either, so the JVM's class path
 * IS QuPath's and the scripts' class loader sees nothing else. Checks:
 *  - unit checks of the plain-Groovy library (settings, frames, results, messages, connection errors);
 *  - end to end: the Groovy client reads raw pixels like RegionRequest would, and must get the very
 *    cells that the Node path (`cellbridge segment`) gets for the same pixels and ROI, and the known
 *    cells of the painted scene;
 *  - cancel mid-job, daemon killed mid-job, daemon absent, wrong token, unknown model, version
 *    mismatch, missing pixel size, empty ROI: a clear message and nothing applied;
 *  - the real slide CMU-1-Small-Region.svs (skipped when ../shared/data is absent);
 *  - the QuPath layer on the real QuPath classes: a real project (TIFF, annotations), Run for project through
 *    QuPath's `script -p -s` loop and Detect cells through QuPath's script runner; cells saved and reloaded;
 *  - npm-groovy-lint of qupath-scripts/ (CodeNarc; the QuPath class-path lint is qupath-groovy-lint.test.ts).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { groovyRuntimes, type GroovyRuntime } from './helpers/groovy-runtimes';
import { createInterface } from 'node:readline';
import sharp from 'sharp';
import { startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir } from './helpers/synthetic-model';
import { gridScene } from './helpers/synthetic-scene';
import { parseRoi, pointInRoi } from '../bridge/tiling/roi';

const REPO = join(__dirname, '..', '..');
const CLI = join(REPO, 'dist', 'bridge', 'cli.js');
const SHARED_DATA = join(REPO, '..', 'shared', 'data');
const SVS = join(SHARED_DATA, 'wsi', 'CMU-1-Small-Region.svs');
const HEADLESS = join(REPO, '..', 'shared', 'qupath-headless');
/** C1-only JIT and the serial GC: these short runs start twice as fast on a busy 2-core machine. */
const JVM_OPTS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Djava.awt.headless=true',
  `-Dlogback.configurationFile=${join(HEADLESS, 'logback.xml')}`];

/** The CI lint command, as run by this test: `npx npm-groovy-lint <these args>` from the repo root. */
const LINT_ARGS = ['--config', 'qupath-scripts/.groovylintrc.json', '--failon', 'info', '--no-parse', '--noserver',
  '--javaoptions=-Xmx1g,-XX:TieredStopAtLevel=1,-XX:+UseSerialGC', 'qupath-scripts'];

const javaAvailable = spawnSync('java', ['-version']).status === 0;

interface GroovyRun { code: number | null; stdout: string; stderr: string; result: any }

/**
 * Runs a Groovy script; `onLine` sees stdout lines as they come; `stdin` (when given) is written to it once
 * resolved. Resolves with the RESULT line parsed.
 */
function runGroovy(rt: GroovyRuntime, script: string, args: string[], onLine?: (line: string) => void, stdin?: Promise<string>,
  timeoutMs = 200_000): Promise<GroovyRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(rt.java, [...JVM_OPTS, '-cp', rt.classPath.join(delimiter), 'groovy.ui.GroovyMain',
      join(REPO, 'test', 'groovy', script), REPO, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    if (stdin) stdin.then((text) => child.stdin!.end(text), (err) => { child.kill('SIGKILL'); reject(err); });
    else child.stdin!.end();
    const out: string[] = [];
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    createInterface({ input: child.stdout! }).on('line', (line) => { out.push(line); onLine?.(line); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.find((l) => l.startsWith('RESULT '));
      if (!line) {
        reject(new Error(`${script} exited with ${code} without a RESULT line\nstdout:\n${out.join('\n')}\nstderr:\n${stderr}`));
        return;
      }
      resolve({ code, stdout: out.join('\n'), stderr, result: JSON.parse(line.slice('RESULT '.length)) });
    });
  });
}

function scenarioOk(s: any, name: string) {
  assert.ok(s, `scenario ${name} did not run`);
  assert.equal(s.error, undefined, `scenario ${name} threw: ${s.error}\n${s.stack ?? ''}`);
}

/** Features keyed by id, without the client's marker measurement. */
function byId(features: any[]): Map<string, any> {
  const m = new Map<string, any>();
  for (const f of features) {
    const copy = JSON.parse(JSON.stringify(f));
    delete copy.properties?.measurements?.cellbridge;
    assert.ok(!m.has(copy.id), `duplicate feature id ${copy.id}`);
    m.set(copy.id, copy);
  }
  return m;
}

/** Same cells: same ids, classes, outlines (exact), nucleus outlines and measurement names. */
function assertSameCells(groovy: any[], node: any[]) {
  const g = byId(groovy), n = byId(node);
  assert.equal(g.size, n.size, `Groovy client got ${g.size} cells, the Node path ${n.size}`);
  for (const [id, nf] of n) {
    const gf = g.get(id);
    assert.ok(gf, `cell ${id} of the Node path is missing from the Groovy run`);
    assert.equal(gf.properties.classification.name, nf.properties.classification.name, `class of ${id}`);
    assert.deepEqual(gf.geometry, nf.geometry, `outline of ${id}`);
    assert.deepEqual(gf.nucleusGeometry, nf.nucleusGeometry, `nucleus of ${id}`);
    assert.deepEqual(Object.keys(gf.properties.measurements).sort(), Object.keys(nf.properties.measurements).sort());
  }
}

/** `cellbridge segment` (the Node path) on an image file, through the given daemon; resolves with its features. */
function segmentWithNode(image: string, roiFile: string, out: string, url: string, extra: string[] = []): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'segment', image, '--server', url, '--roi', roiFile, '--out', out, '--quiet', ...extra],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout!.on('data', (d) => { text += d; });
    child.stderr!.on('data', (d) => { text += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`cellbridge segment failed (${code}):\n${text}`));
      else resolve(JSON.parse(readFileSync(out, 'utf8')).features);
    });
  });
}

const ROI = {
  type: 'Polygon' as const,
  coordinates: [
    [[20, 20], [590, 20], [590, 470], [20, 470], [20, 20]],
    [[250, 150], [350, 150], [350, 260], [250, 260], [250, 150]],
  ],
};

const REAL_MODEL_DIR = join(REPO, 'models', 'cellbridge-he-v1');

for (const rt of groovyRuntimes()) describe(`QuPath scripts on ${rt.label} (real daemon)`, function () {
  this.timeout(240_000);
  const W = 610, H = 500;
  const scene = gridScene(W, H, 11, [96, 192, 288, 384, 480, 576]);
  let work: string;
  let daemon: RunningDaemon | undefined;
  let killDaemon: RunningDaemon | undefined;
  let lintRun: Promise<{ status: number | null; out: string }>;
  let mainRun: Promise<GroovyRun>;
  let killedAt = 0;
  let nodeScene: Promise<any[]>;
  let svs: { node: Promise<any[]>; model: string } | null = null;

  // Everything starts at once and the tests await their part: the lint, the daemons, the Node path and
  // ONE Groovy JVM for all the scenarios (each JVM start + compile of lib/ costs seconds of CPU).
  before(async function () {
    if (!javaAvailable) {
      console.log('    (skipped: no `java` on PATH; install a Java 17+ runtime to test the QuPath scripts)');
      this.skip();
    }
    if (rt.skip) {
      console.log(`    (skipped: ${rt.skip})`);
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), 'cellbridge-groovy-'));
    lintRun = !rt.lint ? Promise.resolve({ status: 0, out: '' }) : new Promise((resolve) => {
      const child = spawn(process.execPath, [join(REPO, 'node_modules', 'npm-groovy-lint', 'lib', 'index.js'), ...LINT_ARGS],
        { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (d) => { out += d; });
      child.stderr!.on('data', (d) => { out += d; });
      child.on('close', (status) => resolve({ status, out }));
    });
    // The Groovy JVM starts now and compiles lib/ while the daemons start; it gets its config on stdin.
    let giveConfig!: (text: string) => void;
    let noConfig!: (err: Error) => void;
    const configText = new Promise<string>((res, rej) => { giveConfig = res; noConfig = rej; });
    const scenarios = ['classpath', 'unit', 'detect', 'detections', 'tta', 'keepFaint', 'askPixelSize', 'missingPixelSize', 'cancel', 'unknownModel', 'emptyRoi',
      'versionMismatch', 'absent'];
    const hasSvs = existsSync(SVS);
    if (hasSvs) scenarios.push('detect:svs');
    // Last: a wrong token, then a job whose daemon is SIGKILLed after the client has sent two tiles.
    // The QuPath layer on the real QuPath classes (a real project), then the kill scenarios.
    scenarios.push('qupath', 'badToken', 'killed');
    mainRun = runGroovy(rt, 'DaemonTests.groovy', ['-', ...scenarios], (line) => {
      if (line === 'READY_TO_KILL' && !killedAt) { killedAt = Date.now(); killDaemon?.process.kill('SIGKILL'); }
    }, configText);
    mainRun.catch(() => undefined);
    try {
      await prepare();
    } catch (err) {
      noConfig(err as Error);
      throw err;
    }

    async function prepare() {
      // One daemon for the scenarios (synthetic model, plus the real H&E model when it is built), one with a
      // token that the kill test kills.
      const useRealModel = existsSync(join(REAL_MODEL_DIR, 'card.json')) && existsSync(join(REAL_MODEL_DIR, 'model.onnx'));
      const modelsDir = makeSyntheticModelsDir((root) => { if (useRealModel) symlinkSync(REAL_MODEL_DIR, join(root, 'cellbridge-he-v1')); });
      [daemon, killDaemon] = await Promise.all([
        startDaemon({ modelsDir, args: ['--device', 'cpu', '--log-level', 'warn'] }),
        startDaemon({ modelsDir: makeSyntheticModelsDir(), args: ['--device', 'cpu', '--log-level', 'warn', '--token', 's3cret'] }),
      ]);

      // The painted scene, as the raw pixels the Groovy "image server" reads and as a PNG for the Node path.
      const raw = join(work, 'scene.rgb');
      const png = join(work, 'scene.png');
      writeFileSync(raw, scene.rgb);
      await sharp(Buffer.from(scene.rgb), { raw: { width: W, height: H, channels: 3 } }).png().toFile(png);
      const roiFile = join(work, 'roi.geojson');
      writeFileSync(roiFile, JSON.stringify({ type: 'Feature', id: 'r', geometry: ROI, properties: {} }));
      const config: any = {
        server: daemon.url, raw, width: W, height: H, imageName: 'scene.png', mpp: 0.5, modelMpp: 0.5, model: 'synthetic',
        rois: [{ id: 'r', label: 'ROI with a hole', geometry: ROI }], outDir: work, images: {}, qupathHeadless: HEADLESS,
        node: process.execPath, modelsDir, autostartLog: autostartLog(),
      };
      // A region of the real slide (when the shared data is here): level-0 pixels dumped with sharp.
      if (hasSvs) {
        const left = 800, top = 1200, width = 640, height = 600;
        const rgb = await sharp(SVS, { limitInputPixels: false }).extract({ left, top, width, height }).removeAlpha().raw().toBuffer();
        const svsRaw = join(work, 'cmu.rgb');
        const svsPng = join(work, 'cmu-region.png');
        writeFileSync(svsRaw, rgb);
        await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toFile(svsPng);
        const roi = { type: 'Polygon', coordinates: [[[40, 30], [600, 60], [560, 570], [60, 540], [40, 30]]] };
        const svsRoi = join(work, 'cmu-roi.geojson');
        writeFileSync(svsRoi, JSON.stringify({ type: 'Feature', id: 'r', geometry: roi, properties: {} }));
        const model = useRealModel ? 'cellbridge-he-v1' : 'synthetic';
        // The pixel size stated on both paths is the model's 0.5 µm/px (the slide's is 0.499): downsample 1, so
        // both clients send the very same pixels and any difference is the client's.
        config.images.svs = { raw: svsRaw, width, height, name: 'cmu-region.png', mpp: 0.5, model,
          regions: [{ id: 'r', label: 'tissue', geometry: roi }] };
        svs = { node: segmentWithNode(svsPng, svsRoi, join(work, 'cmu-node.geojson'), daemon.url, ['--mpp', '0.5', '--model', model]), model };
        svs.node.catch(() => undefined);
      }
      config.kill = { server: killDaemon.url, token: 's3cret' };
      giveConfig(JSON.stringify(config));
      // The Node path on the scene: a PNG has no pixel size, so the same 0.5 µm/px is stated.
      nodeScene = segmentWithNode(png, roiFile, join(work, 'node.geojson'), daemon.url, ['--mpp', '0.5', '--model', 'synthetic']);
      nodeScene.catch(() => undefined);
    }
  });

  /** The log of the daemon that the scripts start themselves (autostart scenario); it names the daemon's pid. */
  const autostartLog = () => join(work, 'autostart-daemon.log');

  after(async () => {
    await Promise.allSettled([mainRun, nodeScene, lintRun, svs?.node]);
    // a daemon the scripts started and the scenario did not stop (it failed midway) must not outlive the test
    if (work && existsSync(autostartLog())) {
      for (const m of readFileSync(autostartLog(), 'utf8').matchAll(/^---- pid (\d+)$/gm)) {
        // only that daemon: a pid reused since by another process is left alone
        let cmd = '';
        try { cmd = readFileSync(`/proc/${m[1]}/cmdline`, 'utf8'); } catch { /* gone (or not Linux) */ }
        if (cmd.includes(join('dist', 'bridge', 'cli.js')) && cmd.includes('serve')) process.kill(Number(m[1]), 'SIGKILL');
      }
    }
    await Promise.all([daemon?.stop(), killDaemon?.stop()]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  describe('library checks without a daemon', () => {
    it('settings, tile frames, results, messages and connection errors', async () => {
      const run = await mainRun;
      scenarioOk(run.result.unit, 'unit');
      const line = run.stdout.split('\n').find((l) => l.startsWith('UNIT_RESULT '));
      assert.ok(line, `no UNIT_RESULT line in:\n${run.stdout}\n${run.stderr}`);
      const unit = JSON.parse(line.slice('UNIT_RESULT '.length));
      const failed = unit.results.filter((r: any) => !r.ok);
      assert.ok(unit.results.length >= 15, `only ${unit.results.length} checks ran`);
      assert.deepEqual(failed.map((f: any) => `${f.name}: ${f.error}\n${f.stack}`), []);
    });

    it('the compiled-class cache in ~/.cellbridge/classes: reused, old versions and stale staging folders pruned', async () => {
      const r = (await runGroovy(rt, 'LoadCache.groovy', [])).result;
      assert.equal(r.error, undefined, r.error);
      assert.equal(r.first.name, 'cellbridge.qupath.QuPathAdapter');
      assert.equal(r.second.name, 'cellbridge.qupath.QuPathAdapter');
      assert.equal(r.left.length, 3, `left: ${r.left.join(', ')}`);
      assert.deepEqual(r.left.filter((n: string) => !/^[0-9a-f]{32}$/.test(n)), ['compiling-fresh', 'recent-version'],
        'the version in use, one used 3 days ago and a staging folder of a compile that may still run stay');
      console.log(`      (lib loaded in ${Math.round(r.first.ms)} ms compiling, ${Math.round(r.second.ms)} ms from the cache)`);
    });
  });

  describe('with the daemon and the synthetic model', () => {
    let results: any;
    let nodeFeatures: any[];
    before(async () => {
      results = (await mainRun).result;
      nodeFeatures = await nodeScene;
    });

    it('detects the same cells as the Node path (ids, classes, exact outlines) and the painted ones', () => {
      const s = results.detect;
      scenarioOk(s, 'detect');
      assert.equal(s.report.status, 'completed', s.report.message);
      assert.equal(s.report.modelFile, 'model.onnx', 'the report names the file the daemon ran (protocol 2.2)');
      assert.equal(s.applyCalls, 1, 'results applied once, in one batch');
      const applied = JSON.parse(readFileSync(s.featuresFile, 'utf8'));
      assert.equal(applied.length, 1);
      const features = applied[0].features;
      assertSameCells(features, nodeFeatures);
      const roi = parseRoi('r', ROI);
      const expected = scene.discs.filter((d) => pointInRoi(d.cx, d.cy, roi)).length;
      assert.ok(expected > 100);
      assert.equal(features.length, expected, 'every painted cell in the ROI, once');
      assert.ok(features.every((f: any) => f.properties.measurements.cellbridge === 1), 'cells carry the cellbridge marker');
      assert.equal(s.report.cells, features.length);
      // tiles: each asked-for tile read once, none rejected
      assert.equal(new Set(s.tilesRead).size, s.tilesRead.length, 'no tile read twice');
      assert.equal(s.tilesRead.length, s.report.tilesTotal);
      assert.ok(!s.log.some((l: string) => l.includes('rejected')), s.log.join('\n'));
      assert.ok(s.progress >= 2, 'progress was shown');
    });
    it('writes the per-annotation summary: counts, percentages, densities per mm²', () => {
      const applied = JSON.parse(readFileSync(results.detect.featuresFile, 'utf8'));
      const { summary, features } = applied[0];
      const alpha = features.filter((f: any) => f.properties.classification.name === 'Alpha').length;
      const beta = features.length - alpha;
      assert.equal(summary['Cell Bridge: Num cells'], features.length);
      assert.equal(summary['Cell Bridge: Num Alpha'], alpha);
      assert.equal(summary['Cell Bridge: Num Beta'], beta);
      assert.ok(Math.abs(summary['Cell Bridge: Alpha %'] - (100 * alpha) / features.length) < 1e-9);
      const areaMm2 = ((570 * 450 - 100 * 110) * 0.25) / 1e6;
      assert.ok(Math.abs(summary['Cell Bridge: Area mm^2'] - areaMm2) < 1e-12);
      assert.ok(Math.abs(summary['Cell Bridge: Cells per mm^2'] - features.length / areaMm2) < 1e-6);
      assert.ok(Math.abs(summary['Cell Bridge: Beta per mm^2'] - beta / areaMm2) < 1e-6);
    });

    it('objectType=detection gives detections without nucleus outlines', () => {
      const s = results.detections;
      scenarioOk(s, 'detections');
      assert.equal(s.report.status, 'completed', s.report.message);
      assert.deepEqual(s.objectTypes, ['detection']);
      assert.equal(s.withNucleus, 0);
      assert.ok(s.summaryKeys.includes('Cell Bridge: Num detections'));
      assert.equal(s.report.cells, results.detect.report.cells);
    });

    it('tta=2: the daemon averages 2 views of each tile (the plan says so) and the job completes', () => {
      const s = results.tta;
      scenarioOk(s, 'tta');
      assert.equal(s.report.status, 'completed', s.report.message);
      // No cell count here: the synthetic model reads its flows from the pixels, so it is not
      // mirror-equivariant and its 2 views cancel each other's flows; test/tta.test.ts checks a real model.
      assert.ok(s.log.some((l: string) => /2 views of each tile averaged \(tta=2\)/.test(l)), s.log.join('\n'));
    });

    it('keepFaint=true: the daemon accepts options.postprocess.meanCellprobThreshold = null (protocol 2.3) and the job completes', () => {
      const s = results.keepFaint;
      scenarioOk(s, 'keepFaint');
      assert.equal(s.report.status, 'completed', s.report.message);
      // The synthetic model's card has no faint-cell filter: turning it off changes nothing here
      // (test/cli-segment.test.ts shows the real model keeping its faint cells).
      assert.equal(s.report.cells, results.detect.report.cells);
      assert.ok(s.log.some((l: string) => /faint cells kept \(keepFaint=true\)/.test(l)), s.log.join('\n'));
    });

    it('an image without pixel size: asks for one and uses it, or says how to state it', () => {
      const asked = results.askPixelSize;
      scenarioOk(asked, 'askPixelSize');
      assert.equal(asked.pixelSizeQuestions, 1);
      assert.equal(asked.report.status, 'completed', asked.report.message);
      assert.equal(asked.report.cells, results.detect.report.cells);
      const missing = results.missingPixelSize;
      scenarioOk(missing, 'missingPixelSize');
      assert.equal(missing.report.status, 'failed');
      assert.equal(missing.report.codeName, 'MissingPixelSize');
      assert.match(missing.report.message, /has no pixel size.*pixelSize=0\.5/s);
      assert.equal(missing.applyCalls, 0);
    });

    it('Cancel mid-job: the daemon is told, the report says so, nothing is applied', () => {
      const s = results.cancel;
      scenarioOk(s, 'cancel');
      assert.equal(s.report.status, 'cancelled', JSON.stringify(s.report));
      assert.match(s.report.message, /Cancelled: nothing was added/);
      assert.equal(s.applyCalls, 0);
      assert.ok(s.tilesRead.length < results.detect.tilesRead.length, `read ${s.tilesRead.length} tiles after cancelling`);
      assert.ok(s.ms < 20_000, `cancel took ${s.ms} ms`);
    });

    it('unknown model: names the available models', () => {
      const s = results.unknownModel;
      scenarioOk(s, 'unknownModel');
      assert.equal(s.report.codeName, 'UnknownModel');
      assert.match(s.report.message, /no model named 'no-such-model'.*Available models: .*synthetic/s);
      assert.equal(s.applyCalls, 0);
    });

    it('empty ROI (zero area, or outside the image): a clear message, nothing sent', () => {
      const s = results.emptyRoi;
      scenarioOk(s, 'emptyRoi');
      for (const k of ['flat', 'outside']) {
        assert.equal(s[k].report.status, 'failed', `${k}: ${JSON.stringify(s[k].report)}`);
        assert.equal(s[k].report.codeName, 'EmptyRoi', `${k}: ${s[k].report.message}`);
        assert.match(s[k].report.message, /no area inside the image/);
        assert.equal(s[k].applyCalls, 0);
        assert.equal(s[k].tilesRead.length, 0);
      }
    });

    it('protocol version mismatch: says which versions and what to update', () => {
      const s = results.versionMismatch;
      scenarioOk(s, 'versionMismatch');
      assert.equal(s.thrown, true);
      assert.equal(s.code, -32003);
      assert.match(s.message, /protocol 3\.0.*same Cell Bridge\s+release/s);
    });

    it('daemon absent: says how to start it (npx cellbridge serve, docker run)', () => {
      const s = results.absent;
      scenarioOk(s, 'absent');
      assert.equal(s.report.codeName, 'DaemonNotRunning');
      assert.match(s.report.message, /Cannot reach the Cell Bridge daemon at ws:\/\/127\.0\.0\.1:\d+\//);
      assert.match(s.report.message, /npx cellbridge serve/);
      assert.match(s.report.message, /docker run/);
      assert.equal(s.applyCalls, 0);
    });
  });

  describe('the QuPath layer (entry scripts, bootstrap, adapter) on the real QuPath 0.6.0 classes', () => {
    let q: any;
    before(async () => {
      q = (await mainRun).result.qupath;
      scenarioOk(q, 'qupath');
    });

    it(`the scripts' class path is QuPath's: ${rt.groovy} with groovy, groovy-jsr223, groovy-xml only; no groovy-json`, async () => {
      const c = (await mainRun).result.classpath;
      scenarioOk(c, 'classpath');
      assert.equal(c.groovy, rt.groovy);
      const groovyJars = c.classPath.map((f: string) => f.split('/').pop()).filter((f: string) => /^groovy/.test(f)).sort();
      assert.deepEqual(groovyJars, [`groovy-${rt.groovy}.jar`, `groovy-jsr223-${rt.groovy}.jar`, `groovy-xml-${rt.groovy}.jar`]);
      assert.deepEqual(c.classPath, rt.classPath, 'nothing but the QuPath jars');
      assert.deepEqual(c.loads, { 'groovy.json.JsonOutput': false, 'groovy.text.SimpleTemplateEngine': false, 'groovy.sql.Sql': false,
        'groovy.xml.XmlSlurper': true, 'com.google.gson.Gson': true, 'qupath.lib.objects.PathObject': true,
        'org.codehaus.groovy.jsr223.GroovyScriptEngineImpl': true });
      const sources = readdirSync(join(REPO, 'qupath-scripts'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.groovy'));
      assert.deepEqual(c.compileErrors, {});
      assert.equal(c.compiled.length, sources.length, `compiled ${c.compiled.join(', ')}`);
      console.log(`      (Groovy ${c.groovy} on Java ${c.java}: ${c.compiled.length} sources compile)`);
    });

    it('Run for project (QuPath script -p -s): cells under their annotation, saved in the project, found after reloading', () => {
      const f = q.first;
      assert.equal(f.images, 2);
      assert.deepEqual(f.errors, {});
      assert.equal(f.reportLines.filter((l: string) => l.startsWith('Cell Bridge FAILED')).length, 0, f.reportLines.join('\n'));
      assert.equal(f.resultPrinted, null, 'the script returns nothing: QuPath prints no "Script result"');
      assert.ok(f.a1Cells > 50 && f.a2Cells > 50, JSON.stringify(f));
      assert.ok(f.allNewMarked, 'new cells carry the cellbridge marker');
      assert.equal(f.withNucleus, f.a1Cells + f.a2Cells, 'cells have nucleus outlines');
      assert.deepEqual(f.classNames, ['Alpha', 'Beta']);
      assert.deepEqual(f.classes, { Alpha: 0xffff0000 | 0, Beta: 0xff0000ff | 0 }, 'class colours (packed ARGB) from the model card');
      assert.equal(f.mpp, 0.5);
    });

    it("replaces only the cells of an earlier Cell Bridge run; the user's objects and measurements stay", () => {
      const f = q.first;
      assert.ok(f.userDetectionKept, "the user's detection is kept");
      assert.ok(f.oldCellGone, "the earlier run's cell is replaced");
      assert.equal(f.a1Children, f.a1Cells + 1);
      assert.equal(f.a1Measurements['My score'], 7);
      assert.equal(f.a1Measurements['Cell Bridge: Num Gamma'], undefined, 'stale summary removed');
      assert.equal(f.a1Measurements['Cell Bridge: Num cells'], f.a1Cells);
      assert.ok(Math.abs(f.a1Measurements['Cell Bridge: Area mm^2'] - (280 * 450 * 0.25) / 1e6) < 1e-12);
      const s = q.second;
      assert.deepEqual([s.a1Cells, s.a2Cells], [f.a1Cells, f.a2Cells], 'a second run replaces, never adds');
      assert.equal(s.marked, f.a1Cells + f.a2Cells);
      assert.ok(s.userDetectionKept);
      assert.ok(s.sameIds, 'stable cell ids across runs');
    });

    it('Detect cells (script runner, selection): only the selected annotation changes; returns nothing; saved', () => {
      const t = q.third;
      assert.equal(t.result, null, `Detect cells returned ${t.result} (${t.resultType})`);
      assert.ok(t.lines.some((l: string) => /^Cell Bridge: scene-qupath\.tif: \d+ cells in 1 region/.test(l)), t.lines.join('\n'));
      assert.ok(t.a1Untouched, 'A1 untouched');
      assert.ok(t.a2Replaced, 'A2 replaced');
      assert.equal(t.savedA2Cells, q.first.a2Cells);
    });

    it('an image without annotations: the whole image, in one locked annotation made once', () => {
      const w = q.wholeImage;
      assert.equal(w.annotations, 1);
      assert.equal(w.name, 'Cell Bridge: whole image');
      assert.equal(w.locked, true);
      assert.ok(w.cells > 100);
      assert.equal(w.summary['Cell Bridge: Num cells'], w.cells);
      assert.ok(Math.abs(w.summary['Cell Bridge: Area mm^2'] - (W * H * 0.25) / 1e6) < 1e-12);
      assert.equal(q.second.wholeAnnotations, 1, 'the second run reuses it');
      assert.equal(q.second.wholeCells, w.cells);
    });

    it('no daemon runs: Detect cells starts one (token, log file), detects; the second run reuses it; Stop daemon stops it', () => {
      const a = q.autostart;
      assert.ok(a.first.lines.some((l: string) => /Starting the Cell Bridge daemon/.test(l)), a.first.lines.join('\n'));
      assert.ok(a.first.lines.some((l: string) => /^Cell Bridge: scene-qupath\.tif: \d+ cells in 1 region/.test(l)),
        `${a.first.lines.join('\n')}\n${a.logTail.join('\n')}`);
      assert.equal(a.first.cells, q.first.a2Cells, 'the same cells as with a daemon started by hand');
      assert.ok(!a.second.lines.some((l: string) => /Starting the Cell Bridge daemon/.test(l)), a.second.lines.join('\n'));
      assert.equal(a.second.cells, q.first.a2Cells);
      assert.equal(a.starts, 1, 'one daemon started for both runs');
      assert.equal(a.listening, 1);
      assert.equal(a.tokenOnCommandLine, false, 'the token is passed in the environment, not on the command line');
      assert.ok(a.wrongToken.lines.some((l: string) => /refused the token/.test(l)), a.wrongToken.lines.join('\n'));
      assert.match(a.stopText, /is stopping/);
      assert.ok(a.portClosed, 'the daemon stopped');
      assert.ok(a.stopLogged);
      assert.match(a.stopAgain, /nothing to stop/);
      console.log(`      (autostart: first Detect cells ${a.first.ms} ms incl. the daemon's start, second ${a.second.ms} ms)`);
    });

    it('the daemon is absent: each batch image FAILED with the way to start it, nothing changed', () => {
      const a = q.absent;
      assert.equal(a.failedLines.length, 2, a.failedLines.join('\n'));
      assert.ok(a.failedLines.every((l: string) => /Cannot reach the Cell Bridge daemon/.test(l)), a.failedLines.join('\n'));
      assert.ok(a.unchanged);
    });
  });

  describe('with a daemon that runs with a token and is killed mid-job', () => {
    it('a wrong token is refused with a hint', async () => {
      const bad = (await mainRun).result.badToken;
      scenarioOk(bad, 'badToken');
      assert.equal(bad.report.codeName, 'Unauthorized', JSON.stringify(bad.report));
      assert.match(bad.report.message, /refused the token.*token=/s);
      assert.equal(bad.applyCalls, 0);
    });

    it('daemon killed mid-job: a clear message, nothing applied', async () => {
      const s = (await mainRun).result.killed;
      scenarioOk(s, 'killed');
      assert.ok(killedAt > 0, 'the job started');
      assert.equal(s.report.status, 'failed', JSON.stringify(s.report));
      assert.equal(s.report.codeName, 'ConnectionLost');
      assert.match(s.report.message, /connection to the Cell Bridge daemon .* was lost.*Nothing was added.*npx cellbridge serve/s);
      assert.equal(s.applyCalls, 0, 'nothing applied');
    });
  });

  describe('with the real slide CMU-1-Small-Region.svs', () => {
    it('a region read by the Groovy client gives the cells the Node path gets', async function () {
      if (!svs) {
        console.log(`    (skipped: ${SVS} is absent; the shared test data is not on this machine)`);
        this.skip();
      }
      const s = (await mainRun).result['detect:svs'];
      scenarioOk(s, 'detect:svs');
      assert.equal(s.report.status, 'completed', s.report.message);
      const groovy = JSON.parse(readFileSync(s.featuresFile, 'utf8'))[0].features;
      const node = await svs.node;
      assertSameCells(groovy, node);
      if (svs.model === 'cellbridge-he-v1') assert.ok(groovy.length > 20, `only ${groovy.length} nuclei in a tissue region`);
      console.log(`      (${groovy.length} cells with model ${svs.model}: ${JSON.stringify(s.report.counts)})`);
    });
  });

  if (rt.lint) describe('lint (CodeNarc; Groovy 5 compiles everything in the run above)', () => {
    it(`npm-groovy-lint passes on qupath-scripts/ (${LINT_ARGS.join(' ')})`, async () => {
      const r = await lintRun;
      assert.equal(r.status, 0, r.out);
    });
  });
});

