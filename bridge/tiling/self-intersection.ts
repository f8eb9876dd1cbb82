/**
 * Does a polygon cross itself? (pure)
 *
 * Same rule as turf's `kinks` (two non-adjacent edges of the polygon's rings meet, end points
 * included; parallel edges never count), but it stops at the first crossing and keeps nothing else:
 * turf's version tests every pair of edges and keeps every crossing, which made a 20,000-vertex
 * zig-zag (236 kB of JSON) cost gigabytes. Edges are bucketed on a uniform grid over the polygon's
 * bounding box, so only edges that share a cell are tested: about linear for real outlines. The
 * buckets' total size is capped (the grid is coarsened instead), so memory stays O(edges).
 */

/** A crossing point, or null. `rings` as in Roi: flat [x0, y0, x1, y1, ...], not closed. */
export function findSelfIntersection(rings: Float64Array[]): [number, number] | null {
  let m = 0;
  for (const r of rings) m += r.length / 2;
  const ax = new Float64Array(m), ay = new Float64Array(m), bx = new Float64Array(m), by = new Float64Array(m);
  /** Ring index and position of each edge, and its ring's edge count: to skip neighbours. */
  const ringOf = new Int32Array(m), posOf = new Int32Array(m), lenOf = new Int32Array(m);
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  let s = 0;
  rings.forEach((r, ri) => {
    const n = r.length / 2;
    for (let i = 0; i < n; i++, s++) {
      const k = (i + 1) % n;
      ax[s] = r[2 * i]; ay[s] = r[2 * i + 1]; bx[s] = r[2 * k]; by[s] = r[2 * k + 1];
      ringOf[s] = ri; posOf[s] = i; lenOf[s] = n;
      if (ax[s] < minX) minX = ax[s];
      if (ax[s] > maxX) maxX = ax[s];
      if (ay[s] < minY) minY = ay[s];
      if (ay[s] > maxY) maxY = ay[s];
    }
  });
  if (m < 4) return null;
  const w = Math.max(maxX - minX, 1e-9), h = Math.max(maxY - minY, 1e-9);
  let cols = Math.max(1, Math.min(4096, Math.round(Math.sqrt((m * w) / h))));
  let rows = Math.max(1, Math.min(4096, Math.round(m / cols)));
  const budget = 32 * m + 100_000;
  const span = (v: number, lo: number, size: number, cells: number) => Math.min(cells - 1, Math.max(0, Math.floor(((v - lo) / size) * cells)));
  let total = 0;
  for (;;) {
    total = 0;
    for (let e = 0; e < m && total <= budget; e++) {
      const c = span(Math.max(ax[e], bx[e]), minX, w, cols) - span(Math.min(ax[e], bx[e]), minX, w, cols) + 1;
      const r = span(Math.max(ay[e], by[e]), minY, h, rows) - span(Math.min(ay[e], by[e]), minY, h, rows) + 1;
      total += c * r;
    }
    if (total <= budget || (cols === 1 && rows === 1)) break;
    cols = Math.max(1, cols >> 1);
    rows = Math.max(1, rows >> 1);
  }
  // Buckets in CSR form: start[cell] .. start[cell + 1] in `items`.
  const start = new Int32Array(cols * rows + 1);
  const forCells = (e: number, fn: (cell: number) => void) => {
    const c0 = span(Math.min(ax[e], bx[e]), minX, w, cols), c1 = span(Math.max(ax[e], bx[e]), minX, w, cols);
    const r0 = span(Math.min(ay[e], by[e]), minY, h, rows), r1 = span(Math.max(ay[e], by[e]), minY, h, rows);
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) fn(r * cols + c);
  };
  for (let e = 0; e < m; e++) forCells(e, (cell) => { start[cell + 1]++; });
  for (let i = 0; i < cols * rows; i++) start[i + 1] += start[i];
  const fill = start.slice(0, cols * rows);
  const items = new Int32Array(total);
  for (let e = 0; e < m; e++) forCells(e, (cell) => { items[fill[cell]++] = e; });

  for (let cell = 0; cell < cols * rows; cell++) {
    for (let p = start[cell]; p < start[cell + 1]; p++) {
      const e = items[p];
      for (let q = p + 1; q < start[cell + 1]; q++) {
        const f = items[q];
        if (ringOf[e] === ringOf[f]) {
          const d = Math.abs(posOf[e] - posOf[f]);
          if (d === 1 || d === lenOf[e] - 1) continue;
        }
        const hit = crossing(ax[e], ay[e], bx[e], by[e], ax[f], ay[f], bx[f], by[f]);
        if (hit) return hit;
      }
    }
  }
  return null;
}

/** Where segments 1→2 and 3→4 meet (end points included), or null; parallel segments never meet. */
function crossing(x1: number, y1: number, x2: number, y2: number, x3: number, y3: number, x4: number, y4: number): [number, number] | null {
  const d = (y4 - y3) * (x2 - x1) - (x4 - x3) * (y2 - y1);
  if (d === 0) return null;
  const a = ((x4 - x3) * (y1 - y3) - (y4 - y3) * (x1 - x3)) / d;
  const b = ((x2 - x1) * (y1 - y3) - (y2 - y1) * (x1 - x3)) / d;
  if (a < 0 || a > 1 || b < 0 || b > 1) return null;
  return [x1 + a * (x2 - x1), y1 + a * (y2 - y1)];
}
