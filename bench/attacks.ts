/**
 * The attacks of issue #11 against one build of the daemon, measured the same way as in
 * test/hardening-attacks.test.ts but without assertions: one JSON line per attack.
 *
 *   node dist/bench/attacks.js [--cli path/to/dist/bridge/cli.js] [--only name,name] [--vertices N]
 *
 * --cli measures another build (e.g. main's, to compare before/after). Flags a build does not know
 * (limits added later) are dropped for it. Loopback only; every attack is bounded in time, and the
 * daemon is killed should its RSS pass 4 GB.
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from '../test/helpers/daemon';
import { makeSyntheticModelsDir } from '../test/helpers/synthetic-model';
import { gridScene } from '../test/helpers/synthetic-scene';
import { cellKeys, runSceneJob } from '../test/hardening-helpers.test';
import {
  attackBacklog, attackBigFrames, attackBigPlan, attackDeepRoi, attackDribble, attackHeavyOptions, attackIdleSockets, attackKinks,
  attackPrototypeOptions, attackRawTcp, attackTokenGuesses, measure, rssMonitor, type AttackReport,
} from '../test/helpers/attacks';

const TOKEN = 'bench-attack-token-0123456789';

async function start(cli: string | undefined, models: string, args: string[], optional: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningDaemon> {
  const base = { cli, modelsDir: models, env: { CELLBRIDGE_DEBUG: '1', ...env } };
  try {
    return await startDaemon({ ...base, args: [...args, ...optional] });
  } catch {
    return startDaemon({ ...base, args });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { cli: { type: 'string' }, only: { type: 'string' }, vertices: { type: 'string' } } });
  const only = values.only ? new Set(values.only.split(',')) : null;
  const want = (n: string) => !only || only.has(n);
  const models = makeSyntheticModelsDir();
  const scene = gridScene(320, 320, 31);
  const common = ['--device', 'cpu', '--log-level', 'error', '--postprocess-workers', '2'];
  const out = (r: AttackReport | Record<string, unknown>) => process.stdout.write(JSON.stringify(r) + '\n');

  let d = await start(values.cli, models, common);
  const reference = cellKeys(await runSceneJob(d.url, scene));
  const restart = async () => { await d.stop(); d = await start(values.cli, models, common); };
  try {
    if (want('prototype-options')) { out(await measure('prototype-options', d, scene, reference, () => attackPrototypeOptions(d.url, scene), { minGoodMs: 5000 })); await restart(); }
    if (want('deep-roi')) { out(await measure('deep-roi', d, scene, reference, () => attackDeepRoi(d.url, scene))); await restart(); }
    if (want('backlog')) { out(await measure('backlog', d, scene, reference, () => attackBacklog(d.url, scene, 20, d.url))); await restart(); }
    if (want('kinks')) { out(await measure('kinks', d, scene, reference, () => attackKinks(d.url, scene, Number(values.vertices ?? 20_000)))); await restart(); }
    if (want('idle-sockets')) out(await measure('idle-sockets', d, scene, reference, () => attackIdleSockets(d.url, 80)));
    if (want('big-frames')) { out(await measure('big-frames', d, scene, reference, () => attackBigFrames(d.url, 24, 32 * 1024 * 1024))); await restart(); }
    if (want('raw-tcp')) { out(await measure('raw-tcp', d, scene, reference, () => attackRawTcp(d.port, 300, 2000))); await restart(); }
    if (want('big-plan')) { out(await measure('big-plan', d, scene, reference, () => attackBigPlan(d.url, scene))); await restart(); }
    if (want('heavy-options')) out(await measure('heavy-options', d, scene, reference, () => attackHeavyOptions(d.url, scene)));
  } finally {
    await d.stop();
  }
  if (want('token-guesses') || want('dribble')) {
    const t = await start(values.cli, models, [...common, '--token', TOKEN], ['--job-timeout-s', '5']);
    try {
      if (want('token-guesses')) out(await measure('token-guesses', t, scene, reference, () => attackTokenGuesses(t.url, 200), { token: TOKEN }));
      if (want('dribble')) out(await measure('dribble', t, scene, reference, () => attackDribble(t.url, scene, 500, 8000, TOKEN), { token: TOKEN }));
    } finally { await t.stop(); }
  }
  if (want('telemetry')) {
    const home = mkdtempSync(join(tmpdir(), 'cellbridge-home-'));
    const t = await start(values.cli, models, common, [], { HOME: home });
    const rss = rssMonitor(t.process.pid!);
    await runSceneJob(t.url, scene);
    const pid = t.process.pid!;
    await t.stop();
    const cache = join(home, '.cache', 'Microsoft', 'DeveloperTools', '.onnxruntime');
    out({ attack: 'telemetry', attacker: { deviceFiles: existsSync(cache) ? readdirSync(cache) : [], matDebugLog: existsSync(join(tmpdir(), `mat-debug-${pid}.log`)) || existsSync(`/tmp/mat-debug-${pid}.log`) }, peakRssMb: rss.stop() });
  }
}

main().then(() => process.exit(0), (err) => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1); });
