/**
 * Worker thread: checks a job's ROIs and plans its tiles. Both can cost seconds for large or
 * hostile polygons (self-intersection tests, tile-by-polygon tests), so they run here, off the
 * daemon's event loop and under a time limit (limits.planTimeoutMs), and never stall other clients.
 */
import { parentPort } from 'node:worker_threads';
import { ErrorCodes, type RoiInput } from '../../protocol';
import { serveWorker } from '../workers/pool';
import { parseRoi, RoiError, type Roi } from '../tiling/roi';
import { gridOf, planTiles, type GridSpec, type PlannedTile } from '../tiling/planner';

export interface PlanTask {
  rois: RoiInput[];
  grid: GridSpec;
  maxRoiVertices: number;
  maxRoiAreaPixels: number;
  maxTilesPerJob: number;
}

export interface PlanResult { rois: Roi[]; tiles: PlannedTile[]; area: number }

/** Errors carry the JSON-RPC code the session answers with. */
function fail(code: number, message: string, limit?: string, value?: number): never {
  throw Object.assign(new Error(message), { code, ...(limit ? { data: { limit, value } } : {}) });
}

export function plan(task: PlanTask): PlanResult {
  const { grid } = task;
  const rois: Roi[] = [];
  let area = 0;
  for (const r of task.rois) {
    let roi: Roi;
    try {
      roi = parseRoi(r.id, r.geometry, task.maxRoiVertices);
    } catch (err) {
      if (err instanceof RoiError) fail(err.empty ? ErrorCodes.EmptyRoi : ErrorCodes.InvalidRoi, err.message);
      throw err;
    }
    const [x0, y0, x1, y1] = roi.bbox;
    if (x1 <= 0 || y1 <= 0 || x0 >= grid.imageWidth || y0 >= grid.imageHeight) {
      fail(ErrorCodes.EmptyRoi, `ROI "${r.id}" lies wholly outside the ${grid.imageWidth}x${grid.imageHeight} image`);
    }
    area += roi.area;
    rois.push(roi);
  }
  if (area > task.maxRoiAreaPixels) {
    fail(ErrorCodes.LimitExceeded, `Limit exceeded: the ROIs cover ${Math.round(area)} px², the daemon accepts at most ${task.maxRoiAreaPixels} px² per job (maxRoiAreaPixels)`, 'maxRoiAreaPixels', task.maxRoiAreaPixels);
  }
  // Each tile's core covers stride² px: more area than that many tiles can hold fails now.
  const g = gridOf(grid);
  const atLeast = Math.ceil(area / (g.stride * g.stride));
  if (atLeast > task.maxTilesPerJob) {
    fail(ErrorCodes.LimitExceeded, `Limit exceeded: the job needs at least ${atLeast} tiles, the daemon accepts at most ${task.maxTilesPerJob} per job (maxTilesPerJob); split the ROIs into several jobs`, 'maxTilesPerJob', task.maxTilesPerJob);
  }
  // The planner visits every grid cell of the ROIs' joint bounding box: bound that too.
  const bx0 = Math.max(0, Math.min(...rois.map((r) => r.bbox[0]))), by0 = Math.max(0, Math.min(...rois.map((r) => r.bbox[1])));
  const bx1 = Math.min(grid.imageWidth, Math.max(...rois.map((r) => r.bbox[2]))), by1 = Math.min(grid.imageHeight, Math.max(...rois.map((r) => r.bbox[3])));
  const cells = (Math.floor(bx1 / g.stride) - Math.floor(bx0 / g.stride) + 1) * (Math.floor(by1 / g.stride) - Math.floor(by0 / g.stride) + 1);
  if (cells > 16 * task.maxTilesPerJob) {
    fail(ErrorCodes.LimitExceeded, `Limit exceeded: the ROIs' bounding box spans ${cells} tiles; split the job (at most ${task.maxTilesPerJob} tiles per job, maxTilesPerJob)`, 'maxTilesPerJob', task.maxTilesPerJob);
  }
  const tiles = planTiles(grid, rois);
  if (tiles.length > task.maxTilesPerJob) {
    fail(ErrorCodes.LimitExceeded, `Limit exceeded: the job needs ${tiles.length} tiles, the daemon accepts at most ${task.maxTilesPerJob} per job (maxTilesPerJob); split the ROIs into several jobs`, 'maxTilesPerJob', task.maxTilesPerJob);
  }
  return { rois, tiles, area };
}

if (parentPort) serveWorker<PlanTask, PlanResult>(parentPort, async (task) => ({ result: plan(task) }));
