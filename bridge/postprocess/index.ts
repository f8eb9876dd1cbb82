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
export { labelTile, postprocessTile } from './tile';
