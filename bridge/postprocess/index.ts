/**
 * Pure post-processing of one tile of model outputs (flows, optional cellprob, type logits) into
 * labelled cell instances with classes, probabilities and pixel-edge outer rings.
 *
 * Two modes (PostprocessDefaults.mode, see student-contract.md):
 * - 'seed': the seed paper's reference code exactly (foreground = argmax(type) != 0, unscaled flows,
 *   grid_sample-style sampling, one round of 3x3 claiming, later seeds overwrite, every pixel binned).
 *   Verified bit-for-bit against test/fixtures/postprocess/seed_reference.py.
 * - 'cellpose': MouseLand/cellpose defaults (cellprob > threshold, dP / flowScale, steps2D sampling,
 *   geodesic growth, larger seed wins, maxSizeFraction, optional flow-error check).
 *
 * Conventions: typed arrays, row-major [H][W]; pixel (col, row) covers [col, col+1] x [row, row+1];
 * labels 0 = background, 1..N contiguous; parts and holes use 4-connectivity (diagonal contact
 * separates); each cell keeps its largest 4-connected part only; rings have positive shoelace area
 * with y down (counter-clockwise for JTS/GeoJSON, clockwise on screen). Details in each module.
 */
export type { TileMaps, CellInstance, PostprocessOptions, FlowOptions, ClusterOptions } from './types';
export { foregroundMask, followFlows } from './flows';
export { clusterPositions } from './cluster';
export { flowErrorFilter, flowErrors, maskFlows } from './flowerror';
export {
  renumber,
  maxLabel,
  removeSmall,
  fillHoles,
  removeSmallAndFillHoles,
  keepLargestParts,
  components4,
  largestParts,
  type Components,
} from './masks';
export { voteClasses, dropBackgroundVoted, type ClassVotes } from './classify';
export { traceOuterContours, ringArea, type OuterContours } from './contours';
export { labelTile, postprocessTile, newStageTimings, type StageTimings, type FineLabels } from './tile';
export { outlineFactor, refineLabels, MAX_OUTLINE_FACTOR } from './outline';
export { dropFaintCells } from './faint';
