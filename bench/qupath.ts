/**
 * `node dist/bench/qupath.js [--runs 5] [--mpp 0.499]`: the QuPath path against the CLI on the same
 * annotation (issue 12). One daemon (default model, CPU); a TIFF of a CMU-1 region; in one JVM with the
 * real QuPath 0.6.0 classes, Detect cells is run as QuPath runs it, each run followed by
 * `cellbridge segment` on the same TIFF and annotation (alternating, same clock). The first QuPath
 * run of a session (the JVM and the scripts' library warming up) is reported apart and left out of
 * the medians, as is the CLI run after it. Prints one JSON object; writes bench/results/qupath.json.
 * QuPath time: the script run, click to cells in the hierarchy. CLI time: the whole process
 * (Node start, slide open, job, GeoJSON written), and `jobSeconds`, the job alone as the CLI reports it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon } from '../test/helpers/daemon';
import { cliCommand, matchCells, median, qupathHeadlessMissing, REPO, runHeadless, writeCmuRegionTiff } from './qupath-headless';
import { machine, r2, r3 } from './common';

/** The annotation: a pentagon of about 0.94 Mpx (0.23 mm²) on the tissue of CMU-1. */
const REGION = { left: 500, top: 900, width: 1200, height: 1200 };
const RING = [[100, 80], [1080, 140], [1120, 1050], [560, 1130], [90, 980], [100, 80]];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, mpp: { type: 'string' } } });
  const runs = Number(values.runs ?? 5), mpp = Number(values.mpp ?? 0.499);
  const missing = qupathHeadlessMissing();
  if (missing) { process.stderr.write(`bench qupath: cannot run: ${missing}\n`); process.exitCode = 2; return; }
  const work = mkdtempSync(join(tmpdir(), 'cellbridge-bench-qupath-'));
  const daemon = await startDaemon({ args: ['--device', 'cpu', '--log-level', 'warn'] });
  try {
    const tiff = join(work, 'cmu.tif'), roiFile = join(work, 'roi.geojson'), out = join(work, 'cli.geojson');
    await writeCmuRegionTiff(tiff, REGION, mpp);
    writeFileSync(roiFile, JSON.stringify({ type: 'Feature', id: 'annotation', geometry: { type: 'Polygon', coordinates: [RING] }, properties: {} }));
    process.stderr.write(`bench qupath: ${runs + 1} QuPath runs alternating with ${runs + 1} CLI runs at ${mpp} µm/px\n`);
    const [r] = await runHeadless({ server: daemon.url, ring: RING, runs: runs + 1, images: [{ path: tiff, mpp, cli: cliCommand(tiff, roiFile, daemon.url, out) }] }, work, 1_800_000);
    const jobSeconds = r.cliOut.map((s) => JSON.parse(s).seconds as number);
    const m = matchCells(r.cells, JSON.parse(readFileSync(out, 'utf8')).features, 1);
    const q = median(r.qupathMs.slice(1)), c = median(r.cliMs.slice(1)), j = median(jobSeconds.slice(1)) * 1000;
    const result = {
      benchmark: 'qupath', machine: machine(), mpp, annotationAreaPx: Math.round(Math.abs(RING.slice(1).reduce((a, [x, y], i) => a + RING[i][0] * y - x * RING[i][1], 0)) / 2), runs,
      cells: { qupath: m.qupath, cli: m.cli, matchedWithin1px: m.matched, sameClass: m.sameClass },
      firstQupathRunMs: Math.round(r.qupathMs[0]),
      qupathMs: r.qupathMs.slice(1).map(Math.round), cliMs: r.cliMs.slice(1).map(Math.round), cliJobMs: jobSeconds.slice(1).map((s) => Math.round(s * 1000)),
      medianQupathMs: Math.round(q), medianCliMs: Math.round(c), medianCliJobMs: Math.round(j),
      qupathOverCli: r3(q / c), qupathOverCliJob: r3(q / j),
      // Each QuPath run and the CLI run right after it share the machine's load: the median of their ratios is the steadier figure.
      medianPairRatio: r3(median(r.qupathMs.slice(1).map((ms, i) => ms / r.cliMs[i + 1]))),
      medianPairRatioJob: r3(median(r.qupathMs.slice(1).map((ms, i) => ms / (jobSeconds[i + 1] * 1000)))),
      loadAverage: loadavg().map(r2),
    };
    process.stdout.write(JSON.stringify(result) + '\n');
    mkdirSync(join(REPO, 'bench', 'results'), { recursive: true });
    writeFileSync(join(REPO, 'bench', 'results', 'qupath.json'), JSON.stringify(result, null, 2) + '\n');
  } finally {
    await daemon.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

void main();
