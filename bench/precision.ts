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
import { parseArgs } from 'node:util';
import { emit, machine, median, r2, r3 } from './common';
import { alternatingSegmentRuns, compareRuns } from './stability';

export async function precisionBench(opts: { model?: string; rounds?: number } = {}) {
  const rounds = opts.rounds ?? 3;
  const model = opts.model ? ['--model', opts.model] : [];
  const { seconds, last } = alternatingSegmentRuns('precision', { cpuFile: model, full: [...model, '--full-precision'] }, rounds);
  const a = median(seconds.cpuFile), b = median(seconds.full);
  return {
    model: last.full.model, image: 'CMU-1-Small-Region.svs', rounds,
    seconds: { cpuFile: r2(a), full: r2(b) }, fullOverCpuFile: r3(b / a), perRound: seconds,
    // The full-precision run is the reference: how many of its cells the int8 run finds, with which class.
    cells: compareRuns(last.full.cells, last.cpuFile.cells, 2),
  };
}

if (require.main === module) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
  precisionBench({ model: values.model, rounds: values.rounds ? Number(values.rounds) : undefined }).then(
    (r) => { emit('precision', { ...machine(), ...r, command: `node dist/bench/precision.js ${process.argv.slice(2).join(' ')}`.trim() }); },
    (e: Error) => { process.stderr.write(`precision: ${e.message}\n`); process.exitCode = 1; },
  );
}
