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
 * `niter` steps are taken; cost is proportional to the number of foreground pixels. The cellpose
 * mode (the default models') runs several trajectories in lockstep on a padded, interleaved field
 * (integrateCellpose), 1.4-1.6x less CPU than one at a time, same bits; the periodic-orbit shortcut
 * is kept for the seed mode only: on real tissue positions still change at step ~197 of 200 on
 * average (bench/README.md), so it almost never fires there.
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
  const seed = opts.mode === 'seed';
  const niter = opts.niter;
  if (!seed) {
    // dP = flows * fg / flowScale as float32 (zero off the foreground), straight into the padded field.
    const { F, inds, nfg } = cellposeField(dy, dx, mask, W, H, opts.flowScale);
    integrateCellpose(F, W + 1, W, H, inds, nfg, niter, pos);
    return pos;
  }
  // dP is zero off the foreground in both references; masking once keeps the inner loop branch-free.
  const py = new Float32Array(n);
  const px = new Float32Array(n);
  let nfg = 0;
  for (let i = 0; i < n; i++) {
    if (mask[i]) {
      nfg++;
      py[i] = dy[i];
      px[i] = dx[i];
    }
  }
  const inds = new Int32Array(nfg);
  for (let i = 0, k = 0; i < n; i++) if (mask[i]) inds[k++] = i;
  const xmax = W - 1;
  const ymax = H - 1;
  // Last HIST positions of the current pixel (power of two), for the periodic-orbit shortcut.
  const HIST = 8;
  const hy = new Float64Array(HIST);
  const hx = new Float64Array(HIST);

  {
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

  return pos;
}

let fieldScratch = new Float32Array(0);
let indsScratch = new Int32Array(0);

/**
 * dP = flows * fg / flowScale (float32, zero off the foreground), (dy, dx) interleaved per pixel on a
 * (W+1) x (H+1) grid whose last row and column repeat row H-1 and column W-1 (the reference clamps
 * neighbour indices to the image), and the foreground pixels in raster order. Buffers are reused
 * between the tiles a worker processes (valid until the next call).
 */
function cellposeField(dy: Float32Array, dx: Float32Array, mask: Uint8Array, W: number, H: number, s: number): { F: Float32Array; inds: Int32Array; nfg: number } {
  const Wp = W + 1;
  const len = 2 * Wp * (H + 1);
  if (fieldScratch.length < len) fieldScratch = new Float32Array(len);
  if (indsScratch.length < W * H) indsScratch = new Int32Array(W * H);
  const F = fieldScratch;
  const inds = indsScratch;
  let nfg = 0;
  for (let r = 0; r < H; r++) {
    let o = 2 * r * Wp;
    for (let c = 0, i = r * W; c < W; c++, i++, o += 2) {
      if (mask[i]) { F[o] = dy[i] / s; F[o + 1] = dx[i] / s; inds[nfg++] = i; } else { F[o] = 0; F[o + 1] = 0; }
    }
    F[o] = F[o - 2]; F[o + 1] = F[o - 1];
  }
  F.copyWithin(2 * H * Wp, 2 * (H - 1) * Wp, 2 * H * Wp);
  return { F, inds, nfg };
}

/**
 * Cellpose-mode integration of the foreground pixels inds[0..nfg): 4 trajectories advance in
 * lockstep so that the CPU overlaps their dependency chains (one step is a chain of loads and
 * multiplications that depend on the previous position: latency-bound when run alone). The field F
 * holds (dy, dx) interleaved per pixel with one replicated row and column at the bottom and right,
 * which is what the reference's clamped neighbour indices read; so every step is branch-free and
 * each term and its order are those of the reference: the final positions are bit-identical.
 */
function integrateCellpose(F: Float32Array, Wp: number, W: number, H: number, inds: Int32Array, nfg: number, niter: number, pos: Float32Array): void {
  const xmax = W - 1;
  const ymax = H - 1;
  const row2 = Wp << 1;
  let k = 0;
  for (; k + 4 <= nfg; k += 4) {
    const i0 = inds[k + 0];
    const i1 = inds[k + 1];
    const i2 = inds[k + 2];
    const i3 = inds[k + 3];
    let y0 = (i0 / W) | 0, x0 = i0 - y0 * W;
    let y1 = (i1 / W) | 0, x1 = i1 - y1 * W;
    let y2 = (i2 / W) | 0, x2 = i2 - y2 * W;
    let y3 = (i3 / W) | 0, x3 = i3 - y3 * W;
    for (let t = 0; t < niter; t++) {
        {
          const yf = y0 | 0, xf = x0 | 0;
          const fy = y0 - yf, fx = x0 - xf;
          const gy = 1 - fy, gx = 1 - fx;
          const w00 = gy * gx, w01 = gy * fx, w10 = fy * gx, w11 = fy * fx;
          const a = (yf * Wp + xf) << 1, c = a + row2;
          y0 += F[a] * w00 + F[a + 2] * w01 + F[c] * w10 + F[c + 2] * w11;
          x0 += F[a + 1] * w00 + F[a + 3] * w01 + F[c + 1] * w10 + F[c + 3] * w11;
          y0 = y0 < 0 ? 0 : y0 > ymax ? ymax : y0;
          x0 = x0 < 0 ? 0 : x0 > xmax ? xmax : x0;
        }
        {
          const yf = y1 | 0, xf = x1 | 0;
          const fy = y1 - yf, fx = x1 - xf;
          const gy = 1 - fy, gx = 1 - fx;
          const w00 = gy * gx, w01 = gy * fx, w10 = fy * gx, w11 = fy * fx;
          const a = (yf * Wp + xf) << 1, c = a + row2;
          y1 += F[a] * w00 + F[a + 2] * w01 + F[c] * w10 + F[c + 2] * w11;
          x1 += F[a + 1] * w00 + F[a + 3] * w01 + F[c + 1] * w10 + F[c + 3] * w11;
          y1 = y1 < 0 ? 0 : y1 > ymax ? ymax : y1;
          x1 = x1 < 0 ? 0 : x1 > xmax ? xmax : x1;
        }
        {
          const yf = y2 | 0, xf = x2 | 0;
          const fy = y2 - yf, fx = x2 - xf;
          const gy = 1 - fy, gx = 1 - fx;
          const w00 = gy * gx, w01 = gy * fx, w10 = fy * gx, w11 = fy * fx;
          const a = (yf * Wp + xf) << 1, c = a + row2;
          y2 += F[a] * w00 + F[a + 2] * w01 + F[c] * w10 + F[c + 2] * w11;
          x2 += F[a + 1] * w00 + F[a + 3] * w01 + F[c + 1] * w10 + F[c + 3] * w11;
          y2 = y2 < 0 ? 0 : y2 > ymax ? ymax : y2;
          x2 = x2 < 0 ? 0 : x2 > xmax ? xmax : x2;
        }
        {
          const yf = y3 | 0, xf = x3 | 0;
          const fy = y3 - yf, fx = x3 - xf;
          const gy = 1 - fy, gx = 1 - fx;
          const w00 = gy * gx, w01 = gy * fx, w10 = fy * gx, w11 = fy * fx;
          const a = (yf * Wp + xf) << 1, c = a + row2;
          y3 += F[a] * w00 + F[a + 2] * w01 + F[c] * w10 + F[c + 2] * w11;
          x3 += F[a + 1] * w00 + F[a + 3] * w01 + F[c + 1] * w10 + F[c + 3] * w11;
          y3 = y3 < 0 ? 0 : y3 > ymax ? ymax : y3;
          x3 = x3 < 0 ? 0 : x3 > xmax ? xmax : x3;
        }
    }
    pos[2 * i0] = y0; pos[2 * i0 + 1] = x0;
    pos[2 * i1] = y1; pos[2 * i1 + 1] = x1;
    pos[2 * i2] = y2; pos[2 * i2 + 1] = x2;
    pos[2 * i3] = y3; pos[2 * i3 + 1] = x3;
  }
  for (; k < nfg; k++) {
    const i0 = inds[k];
    let y0 = (i0 / W) | 0, x0 = i0 - y0 * W;
    for (let t = 0; t < niter; t++) {
        {
          const yf = y0 | 0, xf = x0 | 0;
          const fy = y0 - yf, fx = x0 - xf;
          const gy = 1 - fy, gx = 1 - fx;
          const w00 = gy * gx, w01 = gy * fx, w10 = fy * gx, w11 = fy * fx;
          const a = (yf * Wp + xf) << 1, c = a + row2;
          y0 += F[a] * w00 + F[a + 2] * w01 + F[c] * w10 + F[c + 2] * w11;
          x0 += F[a + 1] * w00 + F[a + 3] * w01 + F[c + 1] * w10 + F[c + 3] * w11;
          y0 = y0 < 0 ? 0 : y0 > ymax ? ymax : y0;
          x0 = x0 < 0 ? 0 : x0 > xmax ? xmax : x0;
        }
    }
    pos[2 * i0] = y0; pos[2 * i0 + 1] = x0;
  }
}
