/**
 * Scaling out (issue 14): real nginx with deploy/nginx/cellbridge.conf terminates TLS (a private CA made
 * by deploy/make-certs.sh with openssl) in front of 3 real daemons on loopback; `cellbridge segment`
 * runs 12 regions of CMU-1 with --parallel 6 over wss://. The cells must equal a single-daemon run,
 * all 3 daemons must have worked, and a daemon killed mid-batch must lose and duplicate nothing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import sharp from 'sharp';
import { SlideReader } from '../bridge/images/slide-reader';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CellBridgeClient } from '../bridge/client/client';
import { CLI, SHARED_DATA, startDaemon, type RunningDaemon } from './helpers/daemon';
import { findNginx, makeCerts, startNginx, type RunningNginx } from './helpers/nginx';

const SVS = join(SHARED_DATA, 'wsi', 'CMU-1-Small-Region.svs');
const REPO = join(__dirname, '..', '..');
const HEADLESS = join(REPO, '..', 'shared', 'qupath-headless');
const javaAvailable = spawnSync('java', ['-version']).status === 0;
const TOKEN = 'scale-test-token-0123456789abcdef';
/** Light daemons: three of them and nginx share 2 cores with the rest of the suite. */
const DAEMON_ARGS = ['--inference-workers', '1', '--postprocess-workers', '1', '--threads', '1', '--token', TOKEN];

/**
 * 12 regions of 168 x 360 px on the tissue of CMU-1-Small-Region (2220 x 2967 px; picked once for their
 * share of stained pixels), each inside one column and two rows of the model's 192 px tile grid: 2 tiles
 * per job keeps the test light. Each holds nuclei (35-148 cells with cellbridge-he-v2); c7r6 was replaced
 * by c4r8 when v2 became the default: it is keratin and collagen, where v1 outlined dark streaks.
 */
export function cmuRegions(): { type: 'FeatureCollection'; features: unknown[] } {
  const cells = [[6, 4], [6, 10], [7, 4], [6, 6], [6, 8], [5, 8], [7, 8], [4, 10], [8, 12], [4, 8], [5, 4], [5, 10]];
  return {
    type: 'FeatureCollection',
    features: cells.map(([col, row]) => {
      const x = 192 * col + 12, y = 192 * row + 12, w = 168, h = 360;
      return { type: 'Feature', id: `c${col}r${row}`, properties: {},
        geometry: { type: 'Polygon', coordinates: [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]] } };
    }),
  };
}

interface CliRun { code: number | null; lines: any[]; stderr: string }

function cellbridge(args: string[], onStart?: (child: ReturnType<typeof spawn>) => void): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    onStart?.(child);
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      resolve({ code, lines, stderr });
    });
  });
}

/** Every GeoJSON file of a batch's output directory: file name → features; no .partial file may be left. */
function readResults(dir: string): Map<string, any[]> {
  const files = readdirSync(dir);
  assert.deepEqual(files.filter((f) => !f.endsWith('.geojson')), [], 'only finished result files are left');
  return new Map(files.map((f) => [f, JSON.parse(readFileSync(join(dir, f), 'utf8')).features]));
}

/** Same files, and in each the same cells (ids, classes, outlines), each once. */
function assertSameResults(got: Map<string, any[]>, want: Map<string, any[]>) {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [file, features] of want) {
    const g = got.get(file)!;
    const ids = g.map((f) => f.id);
    assert.equal(new Set(ids).size, ids.length, `${file}: a cell is duplicated`);
    assert.equal(g.length, features.length, `${file}: ${g.length} cells, the single-daemon run has ${features.length}`);
    const byId = new Map(g.map((f) => [f.id, f]));
    for (const f of features) {
      const o = byId.get(f.id);
      assert.ok(o, `${file}: cell ${f.id} is missing`);
      assert.equal(o.properties.classification.name, f.properties.classification.name, `${file}: class of ${f.id}`);
      assert.deepEqual(o.geometry, f.geometry, `${file}: outline of ${f.id}`);
    }
  }
}

describe('scaling out: nginx (TLS, least_conn) in front of 3 daemons, batch over wss://', function () {
  this.timeout(180_000);
  const nginxBin = findNginx();
  let work: string;
  let certs: { ca: string; cert: string; key: string };
  let daemons: RunningDaemon[] = [];
  let nginx: RunningNginx | undefined;
  let roiFile: string;
  let reference: Map<string, any[]>;

  before(async function () {
    if (!nginxBin) { console.log('    (skipped: no nginx binary; on Debian: apt-get install nginx, as .ci/run does)'); this.skip(); }
    if (spawnSync('openssl', ['version']).status !== 0) { console.log('    (skipped: no openssl on PATH, needed for the test certificates)'); this.skip(); }
    if (!existsSync(SVS)) { console.log(`    (skipped: ${SVS} is absent)`); this.skip(); }
    work = mkdtempSync(join(tmpdir(), 'cellbridge-scale-'));
    certs = makeCerts(join(work, 'certs'));
    roiFile = join(work, 'regions.geojson');
    writeFileSync(roiFile, JSON.stringify(cmuRegions()));
    daemons = await Promise.all([1, 2, 3].map((i) => startDaemon({ args: [...DAEMON_ARGS, '--instance', `cb-${i}`] })));
    nginx = await startNginx(nginxBin!, join(work, 'nginx'), { upstreams: daemons.map((d) => `127.0.0.1:${d.port}`), cert: certs.cert, key: certs.key });
    // The single-daemon run every other result is compared with: one daemon, directly (ws://).
    const ref = await cellbridge(['segment', SVS, '--roi', roiFile, '--job-per-roi', '--parallel', '2', '--server', daemons[0].url,
      '--token', TOKEN, '--out', join(work, 'single'), '--quiet']);
    assert.equal(ref.code, 0, ref.stderr);
    reference = readResults(join(work, 'single'));
    assert.equal(reference.size, 12);
  });

  after(async () => {
    await nginx?.stop();
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('health over wss:// names the replica that answered; the private CA is needed; the token passes through', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const r = await cellbridge(['health', '--server', nginx!.url, '--ca', certs.ca, '--token', TOKEN]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.lines[0].instance, /^cb-[123]$/);
      assert.equal(r.lines[0].server.instance, r.lines[0].instance);
      assert.ok(r.lines[0].host);
      seen.add(r.lines[0].instance);
    }
    assert.ok(seen.size >= 2, `least_conn spread 3 health checks over ${[...seen]}`);
    const noCa = await cellbridge(['health', '--server', nginx!.url, '--token', TOKEN]);
    assert.equal(noCa.code, 1);
    assert.match(noCa.stderr, /certificate is not trusted.*--ca/);
    const wrong = await cellbridge(['health', '--server', nginx!.url, '--ca', certs.ca, '--token', 'wrong-token-wrong-token']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /Unauthorized/);
    // The token in an Authorization header reaches the daemon: a wrong one is refused (HTTP 401 through
    // nginx), the right one authorizes without a token in initialize.
    const ca = readFileSync(certs.ca, 'utf8');
    await assert.rejects(CellBridgeClient.connect(nginx!.url, { ca, headers: { Authorization: 'Bearer nope' } }), /HTTP 401/);
    const viaHeader = await CellBridgeClient.connect(nginx!.url, { ca, headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.match(viaHeader.initializeResult!.serverInfo.instance!, /^cb-[123]$/);
    await viaHeader.close();
  });

  it('12 regions, --parallel 6 over wss://: the cells of a single-daemon run, and all 3 daemons did work', async () => {
    const out = join(work, 'balanced');
    const r = await cellbridge(['segment', SVS, '--roi', roiFile, '--job-per-roi', '--parallel', '6', '--server', nginx!.url,
      '--ca', certs.ca, '--token', TOKEN, '--out', out, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const jobs = r.lines.filter((l) => l.status);
    const batch = r.lines.at(-1).batch;
    assert.equal(jobs.length, 12);
    assert.deepEqual({ completed: batch.completed, failed: batch.failed, retried: batch.retried }, { completed: 12, failed: 0, retried: 0 });
    assert.deepEqual(Object.keys(batch.byInstance).sort(), ['cb-1', 'cb-2', 'cb-3'], `jobs per daemon: ${JSON.stringify(batch.byInstance)}`);
    for (const j of jobs) assert.equal(j.attempts, 1);
    assertSameResults(readResults(out), reference);
    const cells = [...reference.values()].map((f) => f.length);
    assert.ok(cells.every((n) => n > 0) && cells.reduce((a, b) => a + b, 0) > 300, `cells per region: ${cells}`);
  });

  /**
   * From now on, SIGKILLs the first daemon seen running a job (a "job started" log line without its "job
   * ended"); with `afterWork`, only once every live daemon has completed a job and the victim runs another.
   * `victim()` says which one; `completed()` counts the jobs each daemon completed since the start.
   */
  function killWhenBusy(afterWork = false) {
    const started = daemons.map((d) => d.stderr.length);
    const since = (i: number) => daemons[i].stderr.slice(started[i]);
    const completed = () => daemons.map((_, i) => since(i).filter((l) => l.includes('"job ended"') && l.includes('"status":"completed"')).length);
    const alive = (d: RunningDaemon) => d.process.exitCode === null && d.process.signalCode === null;
    let victim: RunningDaemon | undefined;
    let polls = 0;
    const watch = setInterval(() => {
      if (++polls > 4000) { clearInterval(watch); return; }
      const done = completed();
      if (afterWork && daemons.some((d, i) => alive(d) && done[i] === 0)) return;
      victim = daemons.find((d, i) => {
        if (!alive(d)) return false;
        let open = 0;
        for (const line of since(i)) {
          if (line.includes('"job started"')) open++;
          else if (line.includes('"job ended"')) open--;
        }
        return open > 0;
      });
      if (!victim) return;
      clearInterval(watch);
      victim.process.kill('SIGKILL');
    }, 25);
    return { victim: () => victim, completed, stop: () => clearInterval(watch) };
  }

  it('QuPath scripts (QuPath 0.6 classes): Run for project with parallel=6 over wss://, private CA from cellbridge.properties', async function () {
    if (!javaAvailable || !existsSync(join(HEADLESS, 'run-groovy.sh'))) {
      console.log(`    (skipped: needs java and ${HEADLESS})`);
      this.skip();
    }
    this.timeout(400_000);
    // 12 images: the same CMU-1 regions as TIFFs (QuPath's ImageJ server reads them), pixel size set in the project.
    const images = join(work, 'images');
    mkdirSync(images, { recursive: true });
    const slide = await SlideReader.open(SVS);
    const list = [];
    for (const f of cmuRegions().features as any[]) {
      const [[x0, y0], , [x1, y1]] = f.geometry.coordinates[0];
      const rgb = await slide.readRegion(x0, y0, x1 - x0, y1 - y0, x1 - x0, y1 - y0);
      const tiff = join(images, `${f.id}.tif`);
      await sharp(rgb, { raw: { width: x1 - x0, height: y1 - y0, channels: 3 } }).tiff({ compression: 'none' }).toFile(tiff);
      list.push({ name: `${f.id}.tif`, tiff });
    }
    // The scripts installed as a user would (docs/scaling.md): a copy of qupath-scripts/ with its cellbridge.properties.
    const scripts = join(work, 'cellbridge');
    cpSync(join(REPO, 'qupath-scripts'), scripts, { recursive: true });
    writeFileSync(join(scripts, 'cellbridge.properties'), `server=${nginx!.url}\ntoken=${TOKEN}\ncaCertificate=${certs.ca}\nautostart=false\n`);
    const config = join(work, 'scale-scenario.json');
    writeFileSync(config, JSON.stringify({
      headless: HEADLESS, scripts, work, mpp: 0.5, images: list, wss: nginx!.url, token: TOKEN, otherCa: makeCerts(join(work, 'other-ca')).ca,
      phases: [
        { name: 'single', args: [`server=${daemons[0].url}`, 'parallel=6'] }, // one daemon, directly (ws://)
        // Through nginx; once each daemon has completed an image, one is killed while it runs another.
        { name: 'spread', args: ['parallel=6'] },
      ],
    }));
    let killer: ReturnType<typeof killWhenBusy> | undefined;
    const run = await new Promise<{ code: number | null; result: any; out: string }>((resolve, reject) => {
      const child = spawn(join(HEADLESS, 'run-groovy.sh'), [join(REPO, 'test', 'groovy', 'ScaleScenario.groovy'), config], {
        stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, JAVA_OPTS: '-Xmx1g -XX:TieredStopAtLevel=1 -XX:+UseSerialGC' },
      });
      const out: string[] = [];
      let stderr = '';
      child.stderr!.on('data', (d) => { stderr += d; });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        out.push(line);
        if (line === 'PHASE spread') killer = killWhenBusy(true);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 380_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        killer?.stop();
        const line = out.find((l) => l.startsWith('RESULT '));
        if (!line) reject(new Error(`ScaleScenario.groovy exited with ${code} without a RESULT line\n${out.join('\n')}\n${stderr.slice(-4000)}`));
        else resolve({ code, result: JSON.parse(line.slice(7)), out: out.join('\n') });
      });
    });
    const { single, spread, untrusted } = run.result;
    assert.match(untrusted[0], /Cannot open a secure connection.*set caCertificate=/, 'Java\'s trust store alone does not know the private CA');
    assert.match(untrusted[1], /not signed by caCertificate=/, 'another CA is not trusted in its place');
    console.log(`      (QuPath runs of 12 images: one daemon ${single.seconds} s; 3 daemons, one killed, ${spread.seconds} s)`);
    for (const [name, phase] of Object.entries({ single, spread }) as [string, any][]) {
      const reports = phase.reports as any[];
      assert.equal(reports.length, 12, `${name}: one report per image\n${phase.lines.join('\n')}`);
      assert.deepEqual(reports.filter((r) => r.status !== 'completed').map((r) => `${r.image}: ${r.message}`), [], name);
    }
    const counts = Object.values(single.cells as Record<string, string[]>).map((c) => c.length);
    assert.ok(counts.every((n) => n > 0), `cells per image of the single-daemon run: ${counts}`);
    assert.deepEqual(single.reports.map((r: any) => r.server).filter((x: string) => x !== 'cb-1'), [], 'the reference ran on one daemon');
    const victim = killer?.victim();
    assert.ok(victim, 'a daemon was killed while it ran a job of the QuPath run');
    const done = killer!.completed();
    assert.ok(done.every((n) => n > 0), `all 3 daemons completed images: ${done}`);
    assert.ok(spread.reports.some((r: any) => r.attempts === 2), `an image ran again:\n${spread.lines.join('\n')}`);
    const victimName = `cb-${daemons.indexOf(victim!) + 1}`;
    for (const r of spread.reports.filter((x: any) => x.attempts === 2)) assert.notEqual(r.server, victimName);
    assert.deepEqual(spread.cells, single.cells, 'parallel=6 over 3 daemons, one killed mid-run: the cells of the single-daemon run, none lost or twice');
  });

  it('a daemon killed mid-batch: its job runs again on another daemon; nothing lost, nothing duplicated', async () => {
    const out = join(work, 'killed');
    let killer: ReturnType<typeof killWhenBusy> | undefined;
    const r = await cellbridge(['segment', SVS, '--roi', roiFile, '--job-per-roi', '--parallel', '6', '--server', nginx!.url,
      '--ca', certs.ca, '--token', TOKEN, '--out', out], () => { killer = killWhenBusy(); });
    killer!.stop();
    const victim = killer!.victim();
    assert.ok(victim, 'a daemon was killed while it ran a job');
    assert.equal(r.code, 0, r.stderr);
    const batch = r.lines.at(-1).batch;
    assert.equal(batch.completed, 12);
    assert.ok(batch.retried >= 1, `a job was retried: ${JSON.stringify(batch)}`);
    assert.match(r.stderr, /lost its daemon .*attempt 2 on another connection/);
    const victimName = `cb-${daemons.indexOf(victim!) + 1}`;
    for (const j of r.lines.filter((l) => l.status && l.attempts === 2)) assert.notEqual(j.instance, victimName);
    assertSameResults(readResults(out), reference);
  });
});

/** YAML merge keys (`<<: *anchor`, which Docker Compose applies) resolved: this js-yaml leaves them as keys. */
function mergeKeys(v: any): any {
  if (Array.isArray(v)) return v.map(mergeKeys);
  if (v === null || typeof v !== 'object') return v;
  const { '<<': base, ...rest } = v;
  const out: any = base ? { ...mergeKeys(base) } : {};
  for (const [k, x] of Object.entries(rest)) out[k] = mergeKeys(x);
  return out;
}

describe('deploy/: nginx configuration and docker-compose.yml agree', () => {
  it('every daemon of the compose file is an upstream server, on its own GPU, named, token required; only nginx is published', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const yaml = require('js-yaml') as { load(text: string): unknown };
    const deploy = join(__dirname, '..', '..', 'deploy');
    const doc = mergeKeys(yaml.load(readFileSync(join(deploy, 'docker-compose.yml'), 'utf8'))) as { services: Record<string, any> };
    const conf = readFileSync(join(deploy, 'nginx', 'cellbridge.conf'), 'utf8');
    const upstream = /upstream cellbridge \{([^}]*)\}/.exec(conf)![1];
    const servers = [...upstream.matchAll(/^\s*server\s+([^\s;]+)/gm)].map((m) => m[1]);
    assert.match(upstream, /^\s*least_conn;/m);
    const daemons = Object.entries(doc.services).filter(([, s]) => s.build?.target === 'gpu');
    assert.ok(daemons.length >= 2);
    assert.deepEqual(servers.sort(), daemons.map(([name]) => `${name}:8765`).sort());
    const gpus = new Set<string>();
    for (const [name, s] of daemons) {
      assert.equal(s.environment.CELLBRIDGE_INSTANCE, name);
      assert.match(s.environment.CELLBRIDGE_TOKEN, /^\$\{CELLBRIDGE_TOKEN:\?/);
      assert.equal(s.ports, undefined, `${name} publishes no port: only nginx is reachable`);
      const ids = s.deploy.resources.reservations.devices[0].device_ids as string[];
      assert.equal(ids.length, 1);
      assert.ok(!gpus.has(ids[0]), `${name} has a GPU of its own`);
      gpus.add(ids[0]);
    }
    const nginx = doc.services.nginx;
    assert.deepEqual(nginx.ports, ['8443:8443']);
    assert.ok(nginx.volumes.some((v: string) => v.startsWith('./nginx/cellbridge.conf:/etc/nginx/conf.d/')));
    assert.match(conf, /listen 8443 ssl;/);
    for (const v of ['/etc/nginx/certs/server.crt', '/etc/nginx/certs/server.key']) {
      assert.ok(conf.includes(v) && nginx.volumes.some((x: string) => x.endsWith(`:${v}:ro`)), `${v} is mounted where the configuration reads it`);
    }
  });
});
