/**
 * Worker thread: checks a job's ROIs and plans its tiles. Both can cost seconds for large or
 * hostile polygons (self-intersection tests, tile-by-polygon tests), so they run here, off the
 * daemon's event loop and under a time limit (limits.planTimeoutMs), and never stall other clients.
 */
import { parentPort } from 'node:worker_threads';
import { ErrorCodes, type RoiInput } from '../../protocol';
import { serveWorker } from '../workers/pool';
import { parseRoi, RoiError, type Roi } from '../tiling/roi';
import { gridOf, planCells, unionBbox, type GridSpec } from '../tiling/planner';

export interface PlanTask {
  /** Already copied to {id, geometry} and shape-checked by validate.ts: nothing else reaches the worker. */
  rois: RoiInput[];
  grid: GridSpec;
  maxRoiVertices: number;
  maxRoiAreaPixels: number;
  maxTilesPerJob: number;
  /** The limit maxTilesPerJob stands for here: 'maxTilesPerJob', or 'maxPlannedTilesPerClient' when the connection's remaining quota is smaller. */
  tileLimitName?: string;
  /** limits.maxTilesPerJob itself (bounds the ROIs' joint bounding box to 16x that many grid cells); default maxTilesPerJob. */
  jobTileLimit?: number;
}

/** `cells`: the compact plan (see planCells), transferred, not copied. */
export interface PlanResult { rois: Roi[]; cells: Uint32Array; area: number }

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
  const tooMany = (what: string): never => {
    const name = task.tileLimitName ?? 'maxTilesPerJob';
    return fail(ErrorCodes.LimitExceeded, name === 'maxTilesPerJob'
      ? `Limit exceeded: the job needs ${what} tiles, the daemon accepts at most ${task.maxTilesPerJob} per job (maxTilesPerJob); split the ROIs into several jobs`
      : `Limit exceeded: the job needs ${what} tiles, more than the ${task.maxTilesPerJob} left to this connection (${name}: planned tiles of its running jobs together); wait for a job to end`, name, task.maxTilesPerJob);
  };
  // Each tile's core covers stride² px: more area than that many tiles can hold fails now.
  const g = gridOf(grid);
  const atLeast = Math.ceil(area / (g.stride * g.stride));
  if (atLeast > task.maxTilesPerJob) tooMany(`at least ${atLeast}`);
  // The planner visits every grid cell of the ROIs' joint bounding box: bound that too.
  const [bx0, by0, bx1, by1] = unionBbox(grid, rois);
  const cells = (Math.floor(bx1 / g.stride) - Math.floor(bx0 / g.stride) + 1) * (Math.floor(by1 / g.stride) - Math.floor(by0 / g.stride) + 1);
  const perJob = task.jobTileLimit ?? task.maxTilesPerJob;
  if (cells > 16 * perJob) {
    fail(ErrorCodes.LimitExceeded, `Limit exceeded: the ROIs' bounding box spans ${cells} tiles; split the job (at most ${perJob} tiles per job, maxTilesPerJob)`, 'maxTilesPerJob', perJob);
  }
  const planned = planCells(grid, rois, task.maxTilesPerJob);
  if (planned.length / 2 > task.maxTilesPerJob) tooMany(`more than ${task.maxTilesPerJob}`);
  return { rois, cells: planned, area };
}

if (parentPort) {
  serveWorker<PlanTask, PlanResult>(parentPort, async (task) => {
    const result = plan(task);
    return { result, transfer: [result.cells.buffer as ArrayBuffer] };
  });
}
