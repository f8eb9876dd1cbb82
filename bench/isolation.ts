/**
 * Inference workers as threads against child processes (`--inference-isolation thread|process`): the
 * whole of CMU-1-Small-Region with `cellbridge segment` (a daemon in-process, as a user runs it), the
 * two alternating for `rounds` rounds after one warm-up run of each; the job's own seconds (no
 * start-up), medians and their ratio (the price of copying each tile's pixels and maps through the
 * IPC pipe), and the cells of the process run against the thread run (one-to-one by centroid within
 * 2 px, as bench/stability.ts: the same model on the same pixels should give the same cells).
 *
 *   node dist/bench/isolation.js [--model NAME] [--rounds 3]
 *   npm run bench -- --only isolation          (the default model)
 */
import { parseArgs } from 'node:util';
import { emit, machine, median, r2, r3 } from './common';
import { alternatingSegmentRuns, compareRuns } from './stability';

export async function isolationBench(opts: { model?: string; rounds?: number } = {}) {
  const rounds = opts.rounds ?? 3;
  const model = opts.model ? ['--model', opts.model] : [];
  const { seconds, last } = alternatingSegmentRuns('isolation', {
    thread: [...model, '--inference-isolation', 'thread'], process: [...model, '--inference-isolation', 'process'],
  }, rounds);
  const t = median(seconds.thread), p = median(seconds.process);
  return {
    model: last.thread.model, image: 'CMU-1-Small-Region.svs', provider: 'cpu', rounds,
    seconds: { thread: r2(t), process: r2(p) }, processOverThread: r3(p / t), perRound: seconds,
    cells: compareRuns(last.thread.cells, last.process.cells, 2),
  };
}

if (require.main === module) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
  isolationBench({ model: values.model, rounds: values.rounds ? Number(values.rounds) : undefined }).then(
    (r) => { emit('isolation', { ...machine(), ...r, command: `node dist/bench/isolation.js ${process.argv.slice(2).join(' ')}`.trim() }); },
    (e: Error) => { process.stderr.write(`isolation: ${e.message}\n`); process.exitCode = 1; },
  );
}
