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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { emit, machine, median, note, r2, r3, SVS } from './common';
import { compareRuns, segmentWithCli, type CellPoint } from './stability';

type Isolation = 'thread' | 'process';
interface Run { seconds: number; cells: CellPoint[]; model: string }

function segmentOnce(out: string, model: string | undefined, isolation: Isolation): Run {
  const extra = [...(model ? ['--model', model] : []), '--inference-isolation', isolation];
  const { summary, cells } = segmentWithCli(SVS, out, extra, `--inference-isolation ${isolation}`);
  return { seconds: summary.seconds, cells, model: summary.model };
}

export async function isolationBench(opts: { model?: string; rounds?: number } = {}) {
  const rounds = opts.rounds ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'cellbridge-isolation-'));
  const seconds: Record<Isolation, number[]> = { thread: [], process: [] };
  const last: Partial<Record<Isolation, Run>> = {};
  try {
    for (let k = 0; k <= rounds; k++) {
      for (const which of ['thread', 'process'] as const) {
        const run = segmentOnce(join(dir, `${which}.geojson`), opts.model, which);
        note(`isolation ${which} ${k === 0 ? 'warm-up' : `round ${k}/${rounds}`}: ${run.seconds} s, ${run.cells.length} cells`);
        if (k > 0) seconds[which].push(run.seconds);
        last[which] = run;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const t = median(seconds.thread), p = median(seconds.process);
  return {
    model: last.thread!.model, image: 'CMU-1-Small-Region.svs', provider: 'cpu', rounds,
    seconds: { thread: r2(t), process: r2(p) }, processOverThread: r3(p / t), perRound: seconds,
    cells: compareRuns(last.thread!.cells, last.process!.cells, 2),
  };
}

if (require.main === module) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
  isolationBench({ model: values.model, rounds: values.rounds ? Number(values.rounds) : undefined }).then(
    (r) => { emit('isolation', { ...machine(), ...r, command: `node dist/bench/isolation.js ${process.argv.slice(2).join(' ')}`.trim() }); },
    (e: Error) => { process.stderr.write(`isolation: ${e.message}\n`); process.exitCode = 1; },
  );
}
