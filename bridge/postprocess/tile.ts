import type { CellInstance, PostprocessOptions, TileMaps } from './types';
import { foregroundMask, followFlows } from './flows';
import { clusterPositions } from './cluster';
import { flowErrorFilter } from './flowerror';
import { keepLargestParts, removeSmall, removeSmallAndFillHoles, renumber } from './masks';
import { dropBackgroundVoted, voteClasses, type ClassVotes } from './classify';
import { traceOuterContours } from './contours';
import { refineLabels } from './outline';
import { dropFaintCells } from './faint';

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
 * removal and hole filling, class vote, background-voted instances dropped, [meanCellprobThreshold
 * set and a cellprob map: faint cells dropped (faint.ts)]; labels renumbered 1..n
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
  const faint = opts.meanCellprobThreshold;
  if (faint !== undefined && faint !== null && maps.cellprob && dropFaintCells(labels, n, maps.cellprob, faint) > 0) {
    n = renumber(labels);
  }
  lap('masks');
  return { labels, n };
}

/** Milliseconds per post-processing stage, accumulated (benchmarks pass one in; production passes none). */
export interface StageTimings { flows: number; cluster: number; flowError: number; masks: number; contours: number; measurements: number }

export function newStageTimings(): StageTimings {
  return { flows: 0, cluster: 0, flowError: 0, masks: 0, contours: 0, measurements: 0 };
}

/** Labels on the fine grid of `refineLabels` (only when outlines were refined). */
export interface FineLabels {
  labels: Int32Array;
  /** Fine pixels per model pixel; the map is (width * factor) x (height * factor). */
  factor: number;
}

/**
 * Full post-processing of one tile: labelTile, then every instance is reduced to its largest
 * 4-connected part (so label map, measurements and the single outer ring agree), instances that fall
 * under minSize by this are removed, and the per-cell measurements and rings are computed.
 * The returned label map matches `cells` exactly (label = index + 1).
 *
 * `outlineFactor` > 1 (bridge/postprocess/outline.ts, from the slide's resolution) with
 * `opts.outlineThreshold` set and a cellprob map: each cell's ring, area and perimeter come from the
 * fine grid (still in model px, so in steps of 1/factor), and `fine` holds that grid's labels. Labels,
 * classes, centroids and bounding boxes stay those of the model grid.
 */
export function postprocessTile(
  maps: TileMaps,
  opts: PostprocessOptions,
  timings?: StageTimings,
  outlineFactor = 1,
): { labels: Int32Array; cells: CellInstance[]; fine?: FineLabels } {
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
  let fine: FineLabels | undefined;
  let fineContours: ReturnType<typeof traceOuterContours> | undefined;
  const k = outlineFactor;
  if (k > 1 && opts.outlineThreshold !== undefined && opts.outlineThreshold !== null && maps.cellprob) {
    const fl = refineLabels(labels, W, H, maps.cellprob, maps.cellprobKind ?? 'logit', k, opts.outlineThreshold);
    keepLargestParts(fl, W * k, H * k);
    fine = { labels: fl, factor: k };
    fineContours = traceOuterContours(fl, W * k, H * k);
  }
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
    let ring = contours.rings[l];
    if (a === 0 || ring === null) continue;
    let area = a, perimeter = contours.perimeters[l];
    const fr = fineContours?.rings[l];
    if (fineContours && fr) {
      // Fine-grid outline, back in model px (a cell whose fine pixels all fell below the threshold
      // keeps its model-grid outline).
      ring = fr.map((v) => v / k);
      area = fineContours.partArea[l] / (k * k);
      perimeter = fineContours.perimeters[l] / k;
    }
    const probs = vote.meanProbabilities.slice(l * C, (l + 1) * C);
    cells.push({
      label: l,
      area,
      centroidX: sumX[l] / a,
      centroidY: sumY[l] / a,
      bbox: [minC[l], minR[l], maxC[l] + 1, maxR[l] + 1],
      touchesEdge: { left: minC[l] === 0, top: minR[l] === 0, right: maxC[l] === W - 1, bottom: maxR[l] === H - 1 },
      classIndex: vote.classIndex[l],
      classProbabilities: probs,
      detectionProbability: cp ? det[l] / a : 1 - probs[0],
      ring,
      perimeter,
    });
  }
  if (timings) timings.measurements += performance.now() - t;
  return fine ? { labels, cells, fine } : { labels, cells };
}
