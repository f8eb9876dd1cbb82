/** Worker thread: output maps of one tile → final cells as QuPath features. */
import { parentPort } from 'node:worker_threads';
import { outlineFactor, postprocessTile, type PostprocessOptions } from '../postprocess';
import type { TileOutputMaps } from '../inference/preprocess';
import { cellsToFeatures, type FeatureContext } from '../results/features';
import type { DetectionFeature } from '../../protocol';
import { serveWorker } from '../workers/pool';

export interface PostprocessTask {
  maps: TileOutputMaps;
  options: PostprocessOptions;
  context: FeatureContext;
}

export interface PostprocessResult {
  byRoi: [string, DetectionFeature[]][];
  cells: number;
  /** Instances found in the whole tile, before the core/ROI selection. */
  instances: number;
  postprocessMs: number;
}

serveWorker<PostprocessTask, PostprocessResult>(parentPort!, async (task) => {
  const started = performance.now();
  const { tile } = task.context;
  // Outlines as fine as the pixels the client read (a 40x slide read at level 0 for a 20x model).
  const { cells } = postprocessTile(task.maps, task.options, undefined, outlineFactor(tile.readWidth / tile.outputWidth));
  const features = cellsToFeatures(cells, task.context);
  return { result: { byRoi: [...features.byRoi], cells: features.cells, instances: cells.length, postprocessMs: performance.now() - started } };
});
