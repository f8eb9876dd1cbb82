/** Pure geometry on flat rings [x0,y0,x1,y1,...] (closing point not repeated). */

export function ringArea(r: ArrayLike<number>): number {
  let a = 0;
  const n = r.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) a += r[2 * j] * r[2 * i + 1] - r[2 * i] * r[2 * j + 1];
  return a / 2;
}

export function ringPerimeter(r: ArrayLike<number>): number {
  let p = 0;
  const n = r.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) p += Math.hypot(r[2 * i] - r[2 * j], r[2 * i + 1] - r[2 * j + 1]);
  return p;
}

/** Largest distance between two vertices (the outline's Feret diameter). */
export function maxDiameter(r: ArrayLike<number>): number {
  let best = 0;
  const n = r.length / 2;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const d = (r[2 * i] - r[2 * j]) ** 2 + (r[2 * i + 1] - r[2 * j + 1]) ** 2;
      if (d > best) best = d;
    }
  }
  return Math.sqrt(best);
}

/**
 * Douglas-Peucker on a closed ring: split at vertex 0 and the vertex farthest from it, simplify
 * both chains. Keeps at least 3 vertices so the ring stays a polygon.
 */
export function simplifyRing(r: Float64Array, tolerance: number): Float64Array {
  const n = r.length / 2;
  if (tolerance <= 0 || n <= 4) return r;
  let far = 0, best = -1;
  for (let i = 1; i < n; i++) {
    const d = (r[2 * i] - r[0]) ** 2 + (r[2 * i + 1] - r[1]) ** 2;
    if (d > best) { best = d; far = i; }
  }
  const keep = new Uint8Array(n);
  keep[0] = 1; keep[far] = 1;
  const tol2 = tolerance * tolerance;
  const stack: [number, number][] = [[0, far], [far, n]];
  while (stack.length > 0) {
    const [a, b] = stack.pop()!;
    const bx = r[2 * (b % n)], by = r[2 * (b % n) + 1];
    const ax = r[2 * a], ay = r[2 * a + 1];
    const dx = bx - ax, dy = by - ay;
    const len2 = dx * dx + dy * dy;
    let idx = -1, dmax = tol2;
    for (let i = a + 1; i < b; i++) {
      const px = r[2 * i] - ax, py = r[2 * i + 1] - ay;
      const t = len2 > 0 ? Math.max(0, Math.min(1, (px * dx + py * dy) / len2)) : 0;
      const d = (px - t * dx) ** 2 + (py - t * dy) ** 2;
      if (d > dmax) { dmax = d; idx = i; }
    }
    if (idx >= 0) { keep[idx] = 1; stack.push([a, idx], [idx, b]); }
  }
  let count = 0;
  for (let i = 0; i < n; i++) count += keep[i];
  if (count < 3) return r;
  const out = new Float64Array(count * 2);
  for (let i = 0, k = 0; i < n; i++) if (keep[i]) { out[k++] = r[2 * i]; out[k++] = r[2 * i + 1]; }
  return out;
}
