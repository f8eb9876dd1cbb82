/**
 * `npm run bench [-- --quick] [-- --only model,sizes,postproc,transport,e2e,scale,stability,tta,precision,isolation,baseline] [-- --device cpu|webgpu|cuda]`: the benchmarks of issue #6
 * (and `scale`, issue 14: nginx + TLS in front of 1 vs 3 daemons; only when named in --only, or in full mode;
 * `stability`, issue 10, `tta`, whole slide with 1/2/4(/8) views per tile, `precision`, `isolation` and `baseline`, QuPath's
 * own Cell detection beside Cell Bridge on the whole slide: only when named in --only).
 * Prints one JSON object per benchmark (stdout), writes each to bench/results/NAME.json, and ends with
 * the summary object (e2eOverModel, postprocOverModel, peakRssMB, rssGrowthPct, cellsPerSecond).
 * Progress goes to stderr. See bench/README.md.
 */
import { execSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { engineDefaults } from '../bridge/pipeline/engine';
import { basename } from 'node:path';
import { runFileFor } from '../bridge/inference/model-registry';
import { defaultModel, emit, machine, median, note, planSlide, r2, r3, sampleTiles } from './common';
import { modelOnly, providerUnavailable, recordOutputs, tileSizes, type ModelConfig, type ModelResult } from './model';
import { foregroundPixels, loadFixture, postprocBench, saveFixtures } from './postproc';
import { transportBench } from './transport';
import { e2eBench } from './e2e';
import { configsBench } from './configs';
import { scaleBench } from './scale';
import { stabilityBench } from './stability';
import { precisionBench } from './precision';
import { baselineBench } from './baseline';
import { isolationBench } from './isolation';

const MODES = {
  quick: { modelTiles: 8, modelRuns: 64, postCandidates: 32, postTiles: 6, postRepeats: 3, transportSide: 4096, e2eRepeats: 5 },
  full: { modelTiles: 24, modelRuns: 96, postCandidates: 96, postTiles: 16, postRepeats: 5, transportSide: 8192, e2eRepeats: 5 },
};

/** CPU time of all cores used over `ms` (0..1), from os.cpus() counters. */
async function cpuBusy(ms: number): Promise<number> {
  const sum = () => cpus().reduce((a, c) => { const t = c.times; a.busy += t.user + t.nice + t.sys + t.irq; a.all += t.user + t.nice + t.sys + t.irq + t.idle; return a; }, { busy: 0, all: 0 });
  const a = sum();
  await new Promise((r) => setTimeout(r, ms));
  const b = sum();
  return b.all > a.all ? (b.busy - a.busy) / (b.all - a.all) : 0;
}

/** Other processes keeping the cores busy make every number here noise: say so in the results. */
async function busyNote(): Promise<string | null> {
  const busy = await cpuBusy(2000);
  if (busy < 0.15) return null;
  let others = '';
  try { others = execSync('ps -eo pcpu=,args= --sort=-pcpu | head -5', { encoding: 'utf8' }); } catch { /* no ps */ }
  const hot = others.split('\n').map((l) => l.trim()).filter((l) => l && parseFloat(l) > 30 && !l.includes('bench/run.js') && !l.includes('npm run bench'));
  return `machine busy before the run (${Math.round(busy * 100)} % of the CPU used by others over 2 s, load ${loadavg()[0].toFixed(2)}; ${hot.map((l) => l.slice(0, 120)).join('; ') || 'no single hot process'}): timings are noise`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, full: { type: 'boolean' }, only: { type: 'string' }, device: { type: 'string' } }, strict: true });
  const mode = values.quick ? 'quick' : 'full';
  const M = MODES[mode];
  const only = values.only ? new Set(values.only.split(',')) : null;
  const want = (b: string): boolean => !only || only.has(b);
  const started = performance.now();
  const cores = availableParallelism();
  const busy = await busyNote();
  if (busy) note(busy);
  const env = { mode, ...machine(), ...(busy ? { busy } : {}) };

  const provider = values.device ?? 'cpu';
  if (!['cpu', 'webgpu', 'cuda'].includes(provider)) throw new Error(`--device must be cpu, webgpu or cuda, got "${provider}"`);
  // The file the daemon runs with this provider (the card's int8 cpuFile on the CPU), and the card's file.
  const fullModel = defaultModel();
  const model: typeof fullModel = { ...fullModel, onnxPath: runFileFor(fullModel, provider, false)! };
  const plan = await planSlide(model.card);
  const tiles = await sampleTiles(plan, Math.max(M.modelTiles, M.postTiles));
  note(`model ${model.name}, ${plan.tiles.length} tiles in CMU-1-Small-Region.svs, ${mode} mode`);

  // The daemon's engine on this machine (what e2e runs with), and the model-only figure it is compared with.
  // --device picks the provider of the model-only, post-processing recording and end-to-end runs
  // (the daemon's defaults for it); the tile-size benchmark always runs the CPU.
  const d = engineDefaults(provider, cores);
  const daemonCfg: ModelConfig = { sessions: d.inferenceWorkers, threads: d.intraOpThreads };
  const daemonArgs = ['--device', provider];

  let modelRef: ModelResult | null = null;
  if (want('model') || want('e2e') || want('postproc')) {
    const configs: ModelConfig[] = [daemonCfg];
    if (want('model')) {
      for (const c of provider === 'cpu' ? [{ sessions: 1, threads: cores }, { sessions: 1, threads: 1 }, { sessions: 2, threads: 1 }] : []) {
        if (!configs.some((x) => x.sessions === c.sessions && x.threads === c.threads) && c.sessions * c.threads <= cores) configs.push(c);
      }
    }
    const results: ModelResult[] = [];
    for (const c of configs) {
      const r = await modelOnly(model, tiles.slice(0, M.modelTiles), provider, c, M.modelRuns);
      note(`model ${provider} ${c.sessions}x${c.threads} threads: ${r.tilesPerSecond} tiles/s, ${r.msPerTile} ms/tile`);
      results.push(r);
    }
    modelRef = results[0];
    // The int8 file against the full-precision one, same engine configuration, alternating rounds.
    let precision: Record<string, unknown> | null = null;
    if (model.onnxPath !== fullModel.onnxPath) {
      const ms: Record<'runs' | 'full', number[]> = { runs: [], full: [] };
      for (let round = 0; round < 3; round++) {
        ms.full.push((await modelOnly(fullModel, tiles.slice(0, M.modelTiles), provider, daemonCfg, M.modelRuns / 2)).msPerTile);
        ms.runs.push((await modelOnly(model, tiles.slice(0, M.modelTiles), provider, daemonCfg, M.modelRuns / 2)).msPerTile);
      }
      precision = {
        file: basename(model.onnxPath), fullFile: basename(fullModel.onnxPath), rounds: 3, msPerTile: r2(median(ms.runs)), fullMsPerTile: r2(median(ms.full)),
        fullOverFile: r3(median(ms.full) / median(ms.runs)), perRound: ms,
      };
      note(`model file ${basename(model.onnxPath)} ${r2(median(ms.runs))} ms/tile against ${basename(fullModel.onnxPath)} ${r2(median(ms.full))} ms/tile (medians of 3 alternating rounds)`);
    }
    const skipped: { provider: string; reason: string }[] = [];
    for (const p of ['cpu', 'webgpu', 'cuda'].filter((x) => x !== provider)) {
      const why = await providerUnavailable(fullModel, p); // GPUs run the card's file
      skipped.push({ provider: p, reason: why ?? 'available but not measured by this benchmark' });
    }
    emit('model', {
      ...env, model: model.name, modelFile: basename(model.onnxPath), provider, tileSize: model.card.input.readSize, daemonConfig: daemonCfg,
      results, ...(precision ? { precision } : {}), skipped, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only model`,
    });
  }

  if (want('sizes')) {
    const sides = [256, 512];
    const r = await tileSizes(model, tiles[0], sides, [...new Set([1, cores])], mode === 'quick' ? 8 : 24);
    emit('sizes', { ...env, model: model.name, provider: 'cpu', results: r, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only sizes` });
    note(`model per tile size: ${r.map((x) => `${x.side}² ${x.threads} thr ${x.msPerTile} ms`).join(', ')}`);
  }

  let postMs: number | null = null;
  if (want('postproc')) {
    // The densest tiles of an even sample over the slide: post-processing cost grows with the
    // foreground, so this is its worst case on this slide, not its average.
    const candidates = await sampleTiles(plan, M.postCandidates);
    const recorded = await recordOutputs(model, candidates, provider, cores);
    const thr = model.card.postprocess.cellprobThreshold;
    const order = recorded.map((m, k) => ({ k, fg: foregroundPixels(m, thr) })).sort((a, b) => b.fg - a.fg).slice(0, M.postTiles).map((x) => x.k);
    const post = order.map((k) => candidates[k]);
    const maps = order.map((k) => recorded[k]);
    const files = saveFixtures(maps);
    const loaded = files.map((f) => loadFixture(f, model));
    const r = postprocBench(model, loaded, post.map((t) => t.tile), plan.roi, plan.slide.info.micronsPerPixel, M.postRepeats);
    postMs = r.totalMs;
    // The same tiles as if from a 40x slide: outlines refined on the 2x grid (card postprocess.outlineThreshold).
    const fine = model.card.postprocess.outlineThreshold != null
      ? postprocBench(model, loaded, post.map((t) => t.tile), plan.roi, plan.slide.info.micronsPerPixel, M.postRepeats, model.card.postprocess, 2)
      : null;
    emit('postproc', {
      ...env, model: model.name, provider, selection: `the ${M.postTiles} tiles with the most foreground of ${M.postCandidates} spread over the slide`,
      fixtures: files.map((f) => f.slice(f.indexOf('bench/'))), ...r,
      outlinesOn2xGrid: fine ? { totalMs: fine.totalMs, cpuMs: fine.cpuMs, contoursMs: fine.stagesMs.contours, overPlain: Math.round((fine.totalMs / r.totalMs) * 1000) / 1000 } : null,
      inferenceMsPerTile: modelRef?.msPerTile ?? null,
      command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only postproc`,
    });
    note(`post-processing ${r.totalMs} ms/tile: ${JSON.stringify(r.stagesMs)}${fine ? `; with outlines on the 2x grid (40x slide) ${fine.totalMs} ms/tile` : ''}`);
  }

  if (want('transport')) {
    const r = await transportBench(M.transportSide);
    emit('transport', { ...env, imageSide: M.transportSide, pixelFormat: 'rgb8', results: r, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only transport` });
    note(`transport: ${JSON.stringify(r)}`);
  }

  if (want('configs') && (mode === 'full' || only?.has('configs'))) {
    const r = await configsBench(model, tiles.slice(0, M.modelTiles), M.modelRuns);
    emit('configs', { ...env, model: model.name, ...r, command: 'npm run bench -- --only configs' });
  }

  if (want('scale') && (mode === 'full' || only?.has('scale'))) {
    // Light daemons (one onnxruntime session with 1 thread, one post-processing worker each): on a
    // machine with few cores, 3 daemons with the defaults would fight for the same cores.
    const r = await scaleBench(mode === 'quick' ? 3 : 5, ['--device', provider, '--inference-workers', '1', '--postprocess-workers', '1', '--threads', '1']);
    emit('scale', { ...env, ...r, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only scale` });
  }

  // Only on request (4 whole-slide runs): results against the declared pixel size, see bench/stability.ts.
  if (only?.has('stability')) {
    const r = await stabilityBench({ model: model.name });
    emit(`stability-${r.model}`, { ...env, ...r, command: 'npm run bench -- --only stability' });
  }

  // Only on request: QuPath's own Cell detection against Cell Bridge, whole slide, alternating runs.
  if (only?.has('baseline')) {
    const r = await baselineBench({ model: model.name, rounds: mode === 'quick' ? 3 : 5 });
    emit('baseline', { ...env, ...r, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only baseline` });
  }

  // Only on request: the CPU's int8 model file against the full-precision one, whole slide, alternating runs.
  if (only?.has('precision')) {
    const r = await precisionBench({ model: model.name, rounds: mode === 'quick' ? 3 : 5 });
    emit('precision', { ...env, ...r, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only precision` });
  }

  // Only on request: inference workers as threads against child processes, whole slide, alternating runs.
  if (only?.has('isolation')) {
    const r = await isolationBench({ model: model.name, rounds: mode === 'quick' ? 3 : 5 });
    emit('isolation', { ...env, ...r, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only isolation` });
  }

  // Only on request: the whole slide with 1, 2, 4 (and, not --quick, 8) views per tile (test-time augmentation), side by side.
  if (only?.has('tta')) {
    const runs: Record<string, unknown>[] = [];
    let base: number | null = null;
    for (const views of mode === 'quick' ? [1, 2, 4] : [1, 2, 4, 8]) {
      const r = await e2eBench(daemonArgs, mode === 'quick' ? 3 : 5, ['--tta', String(views)]);
      base ??= r.seconds;
      runs.push({ views, seconds: r.seconds, cells: r.cells, tilesPerSecond: r.tilesPerSecond, overOneView: r3(r.seconds / base), runs: r.runs.map((x) => x.seconds) });
      note(`tta ${views}: ${r.seconds} s, ${r.cells} cells`);
    }
    emit('tta', { ...env, model: model.name, image: 'CMU-1-Small-Region.svs', views: runs, command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only tta` });
  }

  let e2e: Awaited<ReturnType<typeof e2eBench>> | null = null;
  if (want('e2e')) {
    e2e = await e2eBench(daemonArgs, M.e2eRepeats);
    emit('e2e', { ...env, model: model.name, image: 'CMU-1-Small-Region.svs', modelOnly: modelRef, ...e2e,
      e2eOverModel: modelRef ? r3(e2e.tilesPerSecond / modelRef.tilesPerSecond) : null,
      command: `npm run bench -- ${mode === 'quick' ? '--quick ' : ''}--only e2e` });
  }

  emit(mode === 'quick' ? 'summary-quick' : 'summary', {
    ...env,
    e2eOverModel: e2e && modelRef ? r3(e2e.tilesPerSecond / modelRef.tilesPerSecond) : null,
    postprocOverModel: postMs !== null && modelRef ? r3(postMs / modelRef.msPerTile) : null,
    peakRssMB: e2e?.peakRssMB ?? null,
    rssGrowthPct: e2e?.rssGrowthPct ?? null,
    cellsPerSecond: e2e?.cellsPerSecond ?? null,
    e2eTilesPerSecond: e2e?.tilesPerSecond ?? null,
    modelTilesPerSecond: modelRef?.tilesPerSecond ?? null,
    modelConfig: modelRef ? { sessions: modelRef.sessions, threads: modelRef.threads } : null,
    postprocMsPerTile: postMs,
    inferenceMsPerTile: modelRef?.msPerTile ?? null,
    e2eSeconds: e2e?.seconds ?? null,
    benchSeconds: r2((performance.now() - started) / 1000),
  }, { write: only === null }); // an --only run would overwrite the whole run's summary with nulls: printed only
}

main().then(() => process.exit(0), (err: Error) => { process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`); process.exit(1); });
