import { clearLabels, maxLabel } from './masks';

/**
 * Cellpose's flow-error check (remove_bad_flow_masks): the flow field each mask implies is
 * recomputed from the mask alone and compared with the network's flows; masks whose error exceeds
 * `threshold` are zeroed. Returns the number of masks removed. No renumbering.
 *
 * Mask flows follow student-contract.md ("Cellpose's own defaults"): heat diffusion inside the mask
 * from the mask pixel nearest its median (per-axis median, nearest by Euclidean distance, first in
 * raster order on ties), 2·(bbox height + width + 2) Jacobi steps of 3x3 averaging (pixels outside
 * the mask hold 0), log(1+T), central differences (dY, dX) normalised to unit length.
 * Error = Σ_channels mean over the mask of (mask flow − network flow / flowScale)², as in Cellpose's
 * flow_error; the network flows are the raw ones (not masked by the foreground).
 */
export function flowErrorFilter(
  labels: Int32Array,
  dy: Float32Array,
  dx: Float32Array,
  W: number,
  H: number,
  threshold: number,
  flowScale: number,
): number {
  const errors = flowErrors(labels, dy, dx, W, H, flowScale);
  let removed = 0;
  const drop = new Uint8Array(errors.length);
  for (let l = 1; l < errors.length; l++) if (errors[l] > threshold) { drop[l] = 1; removed++; }
  if (removed) clearLabels(labels, drop);
  return removed;
}

/** Flow error per label (index = label; NaN where the label is absent). */
export function flowErrors(
  labels: Int32Array,
  dy: Float32Array,
  dx: Float32Array,
  W: number,
  H: number,
  flowScale: number,
): Float64Array {
  const nLab = maxLabel(labels);
  const errors = new Float64Array(nLab + 1).fill(NaN);
  if (nLab === 0) return errors;
  const mu = maskFlows(labels, W, H);
  const sum = new Float64Array(nLab + 1);
  const cnt = new Int32Array(nLab + 1);
  const n = W * H;
  for (let i = 0; i < n; i++) {
    const l = labels[i];
    if (l === 0) continue;
    const ey = mu[2 * i] - dy[i] / flowScale;
    const ex = mu[2 * i + 1] - dx[i] / flowScale;
    sum[l] += ey * ey + ex * ex;
    cnt[l]++;
  }
  for (let l = 1; l <= nLab; l++) if (cnt[l] > 0) errors[l] = sum[l] / cnt[l];
  return errors;
}

/**
 * Unit flow field implied by each mask (Cellpose masks_to_flows), interleaved [dy, dx] per pixel,
 * zero off the masks.
 */
export function maskFlows(labels: Int32Array, W: number, H: number): Float64Array {
  const n = W * H;
  const nLab = maxLabel(labels);
  const mu = new Float64Array(2 * n);
  if (nLab === 0) return mu;
  // Pixels grouped by label (counting sort), raster order within a label.
  const start = new Int32Array(nLab + 2);
  for (let i = 0; i < n; i++) start[labels[i] + 1]++;
  for (let l = 1; l <= nLab + 1; l++) start[l] += start[l - 1];
  const fill = start.slice();
  const pix = new Int32Array(n);
  for (let i = 0; i < n; i++) pix[fill[labels[i]]++] = i;

  const T = new Float64Array((W + 2) * (H + 2));
  const Tn = new Float64Array(n);
  const loc = new Int32Array(n);
  const ys = new Float64Array(n);
  const xs = new Float64Array(n);
  for (let l = 1; l <= nLab; l++) {
    const a = start[l], b = start[l + 1];
    const m = b - a;
    if (m === 0) continue;
    let c0 = W, c1 = -1, r0 = H, r1 = -1;
    for (let k = a; k < b; k++) {
      const i = pix[k];
      const r = (i / W) | 0, c = i - r * W;
      if (c < c0) c0 = c; if (c > c1) c1 = c; if (r < r0) r0 = r; if (r > r1) r1 = r;
      ys[k - a] = r; xs[k - a] = c;
    }
    const lx = c1 - c0 + 3;
    const ly = r1 - r0 + 3;
    T.fill(0, 0, lx * ly);
    for (let k = a; k < b; k++) {
      const i = pix[k];
      const r = (i / W) | 0, c = i - r * W;
      loc[k - a] = (r - r0 + 1) * lx + (c - c0 + 1);
    }
    const my = median(ys, m), mx = median(xs, m);
    let centre = loc[0], bestD = Infinity;
    for (let k = a; k < b; k++) {
      const i = pix[k];
      const r = (i / W) | 0, c = i - r * W;
      const d = (r - my) * (r - my) + (c - mx) * (c - mx);
      if (d < bestD) { bestD = d; centre = loc[k - a]; }
    }
    const niter = 2 * (r1 - r0 + 1 + c1 - c0 + 1 + 2);
    for (let t = 0; t < niter; t++) {
      T[centre] += 1;
      // Jacobi update (all new values from the old T), as Cellpose's vectorised numpy update.
      for (let k = 0; k < m; k++) {
        const g = loc[k];
        Tn[k] = (T[g] + T[g - lx] + T[g + lx] + T[g - 1] + T[g + 1]
          + T[g - lx - 1] + T[g - lx + 1] + T[g + lx - 1] + T[g + lx + 1]) / 9;
      }
      for (let k = 0; k < m; k++) T[loc[k]] = Tn[k];
    }
    for (let k = 0; k < m; k++) T[loc[k]] = Math.log1p(T[loc[k]]);
    for (let k = 0; k < m; k++) {
      const g = loc[k];
      const vy = T[g + lx] - T[g - lx];
      const vx = T[g + 1] - T[g - 1];
      const norm = 1e-60 + Math.sqrt(vy * vy + vx * vx);
      const i = pix[a + k];
      mu[2 * i] = vy / norm;
      mu[2 * i + 1] = vx / norm;
    }
  }
  return mu;
}

/** np.median of the first m values (sorts a copy; m is one cell's pixel count). */
function median(v: Float64Array, m: number): number {
  const s = v.slice(0, m).sort();
  return m % 2 ? s[(m - 1) >> 1] : (s[m / 2 - 1] + s[m / 2]) / 2;
}
