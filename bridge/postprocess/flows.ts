import type { FlowOptions, PostprocessOptions, TileMaps } from './types';

/**
 * Foreground pixels (1) that are followed and clustered.
 * - cellpose mode: cellprob > cellprobThreshold (threshold in the output's own units);
 *   without a cellprob output it falls back to the seed rule.
 * - seed mode: argmax(type) != background (channel 0), cellprob ignored even when present.
 * argmax ties go to the lower channel (numpy's argmax), so a tie with background is background.
 */
export function foregroundMask(
  maps: TileMaps,
  opts: Pick<PostprocessOptions, 'mode' | 'cellprobThreshold'>,
): Uint8Array {
  const n = maps.width * maps.height;
  const fg = new Uint8Array(n);
  if (opts.mode === 'cellpose' && maps.cellprob) {
    const cp = maps.cellprob;
    const t = opts.cellprobThreshold;
    for (let i = 0; i < n; i++) fg[i] = cp[i] > t ? 1 : 0;
    return fg;
  }
  const C = maps.typeChannels;
  const T = maps.typeLogits;
  for (let i = 0; i < n; i++) {
    let best = T[i];
    let arg = 0;
    for (let c = 1; c < C; c++) {
      const v = T[c * n + i];
      if (v > best) { best = v; arg = c; }
    }
    fg[i] = arg !== 0 ? 1 : 0;
  }
  return fg;
}

/**
 * Euler integration of the flow field from every foreground pixel.
 *
 * Returns final positions for ALL pixels, interleaved [y0, x0, y1, x1, ...] (row-major pixel order);
 * background pixels keep their own coordinates, as in both reference implementations. Positions are
 * stored as float32 because the reference code keeps them in a float32 array and truncates those
 * values to bins: rounding to float32 first matters for bit-exact binning. Integration itself runs
 * in float64 (the reference's torch tensors are double).
 *
 * - seed mode (student-contract.md, step 2): dP = flows * fg, unscaled; per step dP is sampled
 *   bilinearly at (x*W/(W-1) - 0.5, y*H/(H-1) - 0.5), neighbours outside the image count as 0
 *   (torch grid_sample, align_corners=False, zero padding, expressed in pixel units);
 *   then x = clamp(x + dPx, 0, W-1), y = clamp(y + dPy, 0, H-1).
 * - cellpose mode (Cellpose steps2D + map_coordinates): dP = flows * fg / flowScale (float32),
 *   sampled bilinearly at the position itself with neighbour indices clamped to the image, then the
 *   same clamp. Cellpose's GPU path uses the seed mode's sampling instead; the difference is a
 *   half-pixel shift of the sampled field, which rarely changes the sink a pixel ends in.
 *
 * `niter` steps are taken; cost is proportional to the number of foreground pixels.
 */
export function followFlows(
  dy: Float32Array,
  dx: Float32Array,
  mask: Uint8Array,
  W: number,
  H: number,
  opts: FlowOptions,
): Float32Array {
  const n = W * H;
  const pos = new Float32Array(2 * n);
  for (let r = 0, i = 0; r < H; r++) {
    for (let c = 0; c < W; c++, i++) { pos[2 * i] = r; pos[2 * i + 1] = c; }
  }
  // dP is zero off the foreground in both references; masking once keeps the inner loop branch-free.
  const py = new Float32Array(n);
  const px = new Float32Array(n);
  let nfg = 0;
  const seed = opts.mode === 'seed';
  const s = seed ? 1 : opts.flowScale;
  for (let i = 0; i < n; i++) {
    if (mask[i]) {
      nfg++;
      py[i] = seed ? dy[i] : dy[i] / s;
      px[i] = seed ? dx[i] : dx[i] / s;
    }
  }
  const inds = new Int32Array(nfg);
  for (let i = 0, k = 0; i < n; i++) if (mask[i]) inds[k++] = i;
  const niter = opts.niter;
  const xmax = W - 1;
  const ymax = H - 1;
  // Last HIST positions of the current pixel (power of two), for the periodic-orbit shortcut.
  const HIST = 8;
  const hy = new Float64Array(HIST);
  const hx = new Float64Array(HIST);

  if (seed) {
    const sxs = W > 1 ? W / (W - 1) : 1;
    const sys = H > 1 ? H / (H - 1) : 1;
    for (let k = 0; k < nfg; k++) {
      const i = inds[k];
      let y = pos[2 * i];
      let x = pos[2 * i + 1];
      hy[0] = y; hx[0] = x;
      for (let t = 1; t <= niter; t++) {
        const sx = x * sxs - 0.5;
        const sy = y * sys - 0.5;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        const gx = 1 - fx;
        const gy = 1 - fy;
        // Same summation order as the Python reference (nw, ne, sw, se); skipped terms add exact zeros.
        let vy = 0;
        let vx = 0;
        if (x0 >= 0 && y0 >= 0 && x0 < xmax && y0 < ymax) {
          // All four neighbours inside: same terms and order as below, without the bounds tests.
          const a = y0 * W + x0;
          const b = a + W;
          const w00 = gx * gy, w01 = fx * gy, w10 = gx * fy, w11 = fx * fy;
          vy = w00 * py[a] + w01 * py[a + 1] + w10 * py[b] + w11 * py[b + 1];
          vx = w00 * px[a] + w01 * px[a + 1] + w10 * px[b] + w11 * px[b + 1];
        } else {
          const inX0 = x0 >= 0 && x0 < W;
          const inX1 = x0 + 1 >= 0 && x0 + 1 < W;
          if (y0 >= 0 && y0 < H) {
            const row = y0 * W;
            if (inX0) { const w = gx * gy; vy += w * py[row + x0]; vx += w * px[row + x0]; }
            if (inX1) { const w = fx * gy; vy += w * py[row + x0 + 1]; vx += w * px[row + x0 + 1]; }
          }
          if (y0 + 1 >= 0 && y0 + 1 < H) {
            const row = (y0 + 1) * W;
            if (inX0) { const w = gx * fy; vy += w * py[row + x0]; vx += w * px[row + x0]; }
            if (inX1) { const w = fx * fy; vy += w * py[row + x0 + 1]; vx += w * px[row + x0 + 1]; }
          }
        }
        x += vx;
        y += vy;
        x = x < 0 ? 0 : x > xmax ? xmax : x;
        y = y < 0 ? 0 : y > ymax ? ymax : y;
        // Exact shortcut: the step depends on the position only, so once the position repeats one from
        // P <= 8 steps ago the orbit is periodic and the position after niter steps is known.
        // Checked every 16th step only: the comparisons cost more than the steps they would save.
        let period = 0;
        const lim = (t & 15) !== 0 ? 0 : t < HIST ? t : HIST;
        for (let P = 1; P <= lim; P++) {
          const slot = (t - P) & (HIST - 1);
          if (hy[slot] === y && hx[slot] === x) { period = P; break; }
        }
        hy[t & (HIST - 1)] = y; hx[t & (HIST - 1)] = x;
        if (period !== 0) {
          const m = t - period + ((niter - t + period) % period);
          y = hy[m & (HIST - 1)]; x = hx[m & (HIST - 1)];
          break;
        }
      }
      pos[2 * i] = y;
      pos[2 * i + 1] = x;
    }
    return pos;
  }

  for (let k = 0; k < nfg; k++) {
    const i = inds[k];
    let y = pos[2 * i];
    let x = pos[2 * i + 1];
    hy[0] = y; hx[0] = x;
    for (let t = 1; t <= niter; t++) {
      // Positions never go negative (clamped), so truncation is floor, as in Cellpose's astype(int32).
      const yf = y | 0;
      const xf = x | 0;
      const fy = y - yf;
      const fx = x - xf;
      const yf1 = yf < ymax ? yf + 1 : ymax;
      const xf1 = xf < xmax ? xf + 1 : xmax;
      const a = yf * W + xf;
      const b = yf * W + xf1;
      const c = yf1 * W + xf;
      const d = yf1 * W + xf1;
      const w00 = (1 - fy) * (1 - fx);
      const w01 = (1 - fy) * fx;
      const w10 = fy * (1 - fx);
      const w11 = fy * fx;
      const vy = py[a] * w00 + py[b] * w01 + py[c] * w10 + py[d] * w11;
      const vx = px[a] * w00 + px[b] * w01 + px[c] * w10 + px[d] * w11;
      y += vy;
      x += vx;
      y = y < 0 ? 0 : y > ymax ? ymax : y;
      x = x < 0 ? 0 : x > xmax ? xmax : x;
      // Exact shortcut: the step depends on the position only, so once the position repeats one from
      // P <= 8 steps ago the orbit is periodic and the position after niter steps is known.
      // Checked every 16th step only: the comparisons cost more than the steps they would save.
      let period = 0;
      const lim = (t & 15) !== 0 ? 0 : t < HIST ? t : HIST;
      for (let P = 1; P <= lim; P++) {
        const slot = (t - P) & (HIST - 1);
        if (hy[slot] === y && hx[slot] === x) { period = P; break; }
      }
      hy[t & (HIST - 1)] = y; hx[t & (HIST - 1)] = x;
      if (period !== 0) {
        const m = t - period + ((niter - t + period) % period);
        y = hy[m & (HIST - 1)]; x = hx[m & (HIST - 1)];
        break;
      }
    }
    pos[2 * i] = y;
    pos[2 * i + 1] = x;
  }
  return pos;
}
