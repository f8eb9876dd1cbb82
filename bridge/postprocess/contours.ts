import { scratchInt32, scratchUint8 } from './scratch';
import { components4, largestParts, maxLabel } from './masks';

export interface OuterContours {
  /** Indexed by label (length maxLabel+1); null where the label is absent. */
  rings: (Float64Array | null)[];
  /** Ring length per label (tile px). */
  perimeters: Float64Array;
  /** Pixels of the traced part per label (excluding enclosed holes). */
  partArea: Int32Array;
}

/**
 * Outer boundary of each instance along pixel edges (crack following on the pixel grid).
 *
 * Conventions:
 * - Pixel (col, row) is the square [col, col+1] x [row, row+1]; vertices are integer lattice points in
 *   tile px, flat [x0, y0, x1, y1, ...], first vertex not repeated, vertices only where the direction
 *   changes. The first vertex is the top-left corner of the part's first pixel in raster order.
 * - Orientation: the interior is on the right when walking the ring with y pointing down, so the
 *   shoelace sum (1/2)·Σ(x_i·y_{i+1} − x_{i+1}·y_i) is POSITIVE with (x, y) taken literally: that is
 *   counter-clockwise for JTS / GeoJSON (RFC 7946 exterior rings), clockwise as seen on screen.
 * - Connectivity: parts are 4-connected; pixels touching only at a corner are separate parts. When an
 *   instance has several parts only the largest (ties: first in raster order) is traced; the others
 *   get no ring (postprocessTile removes them from the label map beforehand).
 * - Rings are simple: the traced region is the part plus everything it encloses (its holes, by
 *   4-connected background, other labels included), which has no pinch points, so no vertex is visited
 *   twice and diagonal contacts cannot make a ring touch or cross itself. Hence the shoelace area equals
 *   the part's pixel count plus its enclosed holes (= the pixel count after hole filling).
 */
export function traceOuterContours(labels: Int32Array, W: number, H: number): OuterContours {
  const nLab = maxLabel(labels);
  const rings: (Float64Array | null)[] = new Array(nLab + 1).fill(null);
  const perimeters = new Float64Array(nLab + 1);
  const partArea = new Int32Array(nLab + 1);
  if (nLab === 0) return { rings, perimeters, partArea };
  const cc = components4(labels, W, H);
  const best = largestParts(cc, nLab);
  const comp = cc.comp;

  // Bounding boxes of the chosen parts.
  const minC = new Int32Array(nLab + 1).fill(W);
  const minR = new Int32Array(nLab + 1).fill(H);
  const maxC = new Int32Array(nLab + 1).fill(-1);
  const maxR = new Int32Array(nLab + 1).fill(-1);
  for (let r = 0, i = 0; r < H; r++) {
    for (let c = 0; c < W; c++, i++) {
      const l = labels[i];
      if (l === 0 || comp[i] !== best[l]) continue;
      if (c < minC[l]) minC[l] = c;
      if (c > maxC[l]) maxC[l] = c;
      if (r < minR[l]) minR[l] = r;
      if (r > maxR[l]) maxR[l] = r;
    }
  }

  // Local grid with a one-pixel frame: 1 = part, 2 = outside (reached from the frame), 0 = hole.
  const grid = scratchUint8('contours.grid', (W + 2) * (H + 2), false); // cleared per instance below
  const queue = scratchInt32('contours.queue', (W + 2) * (H + 2), false);
  // A simple ring visits each lattice point at most once.
  const verts = scratchInt32('contours.verts', 2 * (W + 1) * (H + 1), false);

  for (let l = 1; l <= nLab; l++) {
    const id = best[l];
    if (id === 0) continue;
    partArea[l] = cc.size[id];
    const c0 = minC[l], r0 = minR[l];
    const GW = maxC[l] - c0 + 3;
    const GH = maxR[l] - r0 + 3;
    grid.fill(0, 0, GW * GH);
    for (let r = r0; r <= maxR[l]; r++) {
      const g = (r - r0 + 1) * GW + 1 - c0;
      for (let c = c0; c <= maxC[l]; c++) if (comp[r * W + c] === id) grid[g + c] = 1;
    }
    // Flood the outside from the frame (4-connected), so enclosed pixels stay 0 and count as inside.
    let qh = 0, qt = 0;
    grid[0] = 2;
    queue[qt++] = 0;
    while (qh < qt) {
      const g = queue[qh++];
      const gy = (g / GW) | 0;
      const gx = g - gy * GW;
      if (gx > 0 && grid[g - 1] === 0) { grid[g - 1] = 2; queue[qt++] = g - 1; }
      if (gx < GW - 1 && grid[g + 1] === 0) { grid[g + 1] = 2; queue[qt++] = g + 1; }
      if (gy > 0 && grid[g - GW] === 0) { grid[g - GW] = 2; queue[qt++] = g - GW; }
      if (gy < GH - 1 && grid[g + GW] === 0) { grid[g + GW] = 2; queue[qt++] = g + GW; }
    }

    const f = cc.first[id];
    const fr = (f / W) | 0;
    const sx = f - fr * W - c0 + 1;
    const sy = fr - r0 + 1;
    // Directions 0 E, 1 S, 2 W, 3 N (clockwise on screen); the interior stays on the right.
    let x = sx, y = sy, d = 0, nv = 0, steps = 0;
    verts[nv++] = x; verts[nv++] = y;
    for (;;) {
      if (d === 0) x++; else if (d === 1) y++; else if (d === 2) x--; else y--;
      steps++;
      // The two pixels ahead of vertex (x, y): ahead-left and ahead-right for direction d.
      let left: number, right: number;
      if (d === 0) { left = (y - 1) * GW + x; right = y * GW + x; }
      else if (d === 1) { left = y * GW + x; right = y * GW + x - 1; }
      else if (d === 2) { left = y * GW + x - 1; right = (y - 1) * GW + x - 1; }
      else { left = (y - 1) * GW + x - 1; right = (y - 1) * GW + x; }
      const inL = grid[left] !== 2;
      const inR = grid[right] !== 2;
      const nd = !inR ? (d + 1) & 3 : inL ? (d + 3) & 3 : d;
      if (nd !== d) {
        if (x === sx && y === sy) break;
        verts[nv++] = x; verts[nv++] = y;
        d = nd;
      }
    }
    const ring = new Float64Array(nv);
    for (let k = 0; k < nv; k += 2) { ring[k] = verts[k] - 1 + c0; ring[k + 1] = verts[k + 1] - 1 + r0; }
    rings[l] = ring;
    perimeters[l] = steps;
  }
  return { rings, perimeters, partArea };
}

/** Signed shoelace area of a flat ring (positive for this module's orientation). */
export function ringArea(ring: Float64Array): number {
  const n = ring.length >> 1;
  let s = 0;
  for (let k = 0; k < n; k++) {
    const j = (k + 1) % n;
    s += ring[2 * k] * ring[2 * j + 1] - ring[2 * j] * ring[2 * k + 1];
  }
  return s / 2;
}
