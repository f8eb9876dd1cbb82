/**
 * The CPU's int8 model file against the full-precision one (card `cpuFile` vs `file`): the whole of
 * CMU-1-Small-Region with `cellbridge segment` (a daemon in-process, as a user runs it), the two
 * alternating for `rounds` rounds after one warm-up run of each; the job's own seconds (no start-up),
 * medians, their ratio, and the cells of the int8 run against the full-precision run (one-to-one by
 * centroid within 2 px, as bench/stability.ts).
 *
 *   node dist/bench/precision.js [--model NAME] [--rounds 3]
 *   npm run bench -- --only precision          (the default model)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { emit, machine, median, note, r2, r3, SVS } from './common';
import { compareRuns, segmentWithCli, type CellPoint } from './stability';

interface Run { seconds: number; cells: CellPoint[]; model: string }

function segmentOnce(out: string, model: string | undefined, full: boolean): Run {
  const extra = [...(model ? ['--model', model] : []), ...(full ? ['--full-precision'] : [])];
  const { summary, cells } = segmentWithCli(SVS, out, extra, full ? '--full-precision' : '(int8 cpuFile)');
  return { seconds: summary.seconds, cells, model: summary.model };
}

export async function precisionBench(opts: { model?: string; rounds?: number } = {}) {
  const rounds = opts.rounds ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'cellbridge-precision-'));
  const seconds: Record<'cpuFile' | 'full', number[]> = { cpuFile: [], full: [] };
  let last: Record<'cpuFile' | 'full', Run | null> = { cpuFile: null, full: null };
  try {
    for (let k = 0; k <= rounds; k++) {
      for (const which of ['cpuFile', 'full'] as const) {
        const run = segmentOnce(join(dir, `${which}.geojson`), opts.model, which === 'full');
        note(`precision ${which} ${k === 0 ? 'warm-up' : `round ${k}/${rounds}`}: ${run.seconds} s, ${run.cells.length} cells`);
        if (k > 0) seconds[which].push(run.seconds);
        last = { ...last, [which]: run };
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const a = median(seconds.cpuFile), b = median(seconds.full);
  return {
    model: last.full!.model, image: 'CMU-1-Small-Region.svs', rounds,
    seconds: { cpuFile: r2(a), full: r2(b) }, fullOverCpuFile: r3(b / a), perRound: seconds,
    // The full-precision run is the reference: how many of its cells the int8 run finds, with which class.
    cells: compareRuns(last.full!.cells, last.cpuFile!.cells, 2),
  };
}

if (require.main === module) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
  precisionBench({ model: values.model, rounds: values.rounds ? Number(values.rounds) : undefined }).then(
    (r) => { emit('precision', { ...machine(), ...r, command: `node dist/bench/precision.js ${process.argv.slice(2).join(' ')}`.trim() }); },
    (e: Error) => { process.stderr.write(`precision: ${e.message}\n`); process.exitCode = 1; },
  );
}
