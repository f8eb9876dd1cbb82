import type { CellInstance, PostprocessOptions, TileMaps } from './types';
import { foregroundMask, followFlows } from './flows';
import { clusterPositions } from './cluster';
import { flowErrorFilter } from './flowerror';
import { keepLargestParts, removeSmall, removeSmallAndFillHoles, renumber } from './masks';
import { dropBackgroundVoted, voteClasses, type ClassVotes } from './classify';
import { traceOuterContours } from './contours';

function checkMaps(maps: TileMaps): void {
  const n = maps.width * maps.height;
  if (!(maps.width > 0 && maps.height > 0)) throw new Error(`bad tile size ${maps.width}x${maps.height}`);
  if (maps.dy.length !== n || maps.dx.length !== n) throw new Error('flow maps must hold width*height values');
  if (maps.cellprob && maps.cellprob.length !== n) throw new Error('cellprob must hold width*height values');
  if (maps.typeChannels < 2 || maps.typeLogits.length !== n * maps.typeChannels) {
    throw new Error('typeLogits must hold typeChannels*width*height values (typeChannels >= 2)');
  }
}

/**
 * The label map as the reference pipelines define it (contract steps 1-5, or Cellpose's compute_masks
 * plus the vote): foreground, flow following, clustering, [cellpose: flow-error check], small-mask
 * removal and hole filling, class vote, background-voted instances dropped; labels renumbered 1..n
 * keeping their order. Instances may still consist of several parts here (as in the references).
 */
export function labelTile(maps: TileMaps, opts: PostprocessOptions, timings?: StageTimings): { labels: Int32Array; n: number } {
  checkMaps(maps);
  const W = maps.width;
  const H = maps.height;
  let t = timings ? performance.now() : 0;
  const lap = (stage: keyof StageTimings): void => {
    if (!timings) return;
    const now = performance.now();
    timings[stage] += now - t;
    t = now;
  };
  const fg = foregroundMask(maps, opts);
  const pos = followFlows(maps.dy, maps.dx, fg, W, H, opts);
  lap('flows');
  const labels = clusterPositions(pos, fg, W, H, opts);
  lap('cluster');
  if (opts.mode === 'cellpose' && opts.flowThreshold !== undefined && opts.flowThreshold > 0) {
    flowErrorFilter(labels, maps.dy, maps.dx, W, H, opts.flowThreshold, opts.flowScale);
    renumber(labels);
    lap('flowError');
  }
  let n = removeSmallAndFillHoles(labels, W, H, opts.minSize, opts.fillHoles);
  const vote = voteClasses(labels, n, maps.typeLogits, maps.typeChannels, maps.typeKind, false);
  if (dropBackgroundVoted(labels, vote.classIndex) > 0) n = renumber(labels);
  lap('masks');
  return { labels, n };
}

/** Milliseconds per post-processing stage, accumulated (benchmarks pass one in; production passes none). */
export interface StageTimings { flows: number; cluster: number; flowError: number; masks: number; contours: number; measurements: number }

export function newStageTimings(): StageTimings {
  return { flows: 0, cluster: 0, flowError: 0, masks: 0, contours: 0, measurements: 0 };
}

/**
 * Full post-processing of one tile: labelTile, then every instance is reduced to its largest
 * 4-connected part (so label map, measurements and the single outer ring agree), instances that fall
 * under minSize by this are removed, and the per-cell measurements and rings are computed.
 * The returned label map matches `cells` exactly (label = index + 1).
 */
export function postprocessTile(
  maps: TileMaps,
  opts: PostprocessOptions,
  timings?: StageTimings,
): { labels: Int32Array; cells: CellInstance[] } {
  const W = maps.width;
  const H = maps.height;
  const C = maps.typeChannels;
  const { labels } = labelTile(maps, opts, timings);
  let t = timings ? performance.now() : 0;
  keepLargestParts(labels, W, H);
  removeSmall(labels, opts.minSize);
  let n = renumber(labels);
  let vote: ClassVotes = voteClasses(labels, n, maps.typeLogits, C, maps.typeKind);
  // Dropping fragments can leave a part with only background-argmax pixels.
  if (dropBackgroundVoted(labels, vote.classIndex) > 0) {
    n = renumber(labels);
    vote = voteClasses(labels, n, maps.typeLogits, C, maps.typeKind);
  }
  if (timings) { const now = performance.now(); timings.masks += now - t; t = now; }
  const contours = traceOuterContours(labels, W, H);
  if (timings) { const now = performance.now(); timings.contours += now - t; t = now; }

  const sumX = new Float64Array(n + 1);
  const sumY = new Float64Array(n + 1);
  const det = new Float64Array(n + 1);
  const minC = new Int32Array(n + 1).fill(W);
  const minR = new Int32Array(n + 1).fill(H);
  const maxC = new Int32Array(n + 1).fill(-1);
  const maxR = new Int32Array(n + 1).fill(-1);
  const cp = maps.cellprob;
  const cpIsProb = maps.cellprobKind === 'probability';
  for (let r = 0, i = 0; r < H; r++) {
    for (let c = 0; c < W; c++, i++) {
      const l = labels[i];
      if (l === 0) continue;
      sumX[l] += c + 0.5;
      sumY[l] += r + 0.5;
      if (c < minC[l]) minC[l] = c;
      if (c > maxC[l]) maxC[l] = c;
      if (r < minR[l]) minR[l] = r;
      if (r > maxR[l]) maxR[l] = r;
      if (cp) det[l] += cpIsProb ? cp[i] : 1 / (1 + Math.exp(-cp[i]));
    }
  }
  const cells: CellInstance[] = [];
  for (let l = 1; l <= n; l++) {
    const a = vote.area[l];
    const ring = contours.rings[l];
    if (a === 0 || ring === null) continue;
    const probs = vote.meanProbabilities.slice(l * C, (l + 1) * C);
    cells.push({
      label: l,
      area: a,
      centroidX: sumX[l] / a,
      centroidY: sumY[l] / a,
      bbox: [minC[l], minR[l], maxC[l] + 1, maxR[l] + 1],
      touchesEdge: { left: minC[l] === 0, top: minR[l] === 0, right: maxC[l] === W - 1, bottom: maxR[l] === H - 1 },
      classIndex: vote.classIndex[l],
      classProbabilities: probs,
      detectionProbability: cp ? det[l] / a : 1 - probs[0],
      ring,
      perimeter: contours.perimeters[l],
    });
  }
  if (timings) timings.measurements += performance.now() - t;
  return { labels, cells };
}
