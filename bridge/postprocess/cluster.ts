import type { ClusterOptions } from './types';
import { renumber } from './masks';
import { scratchInt32 } from './scratch';

/**
 * Cluster final flow positions into instances (Cellpose get_masks / the seed's get_masks_cellpose).
 *
 * `pos` is followFlows' output (interleaved y, x for every pixel). Positions are truncated to integer
 * bins. The references pad the histogram by 20 bins on each side; positions are clamped into the image
 * and padding bins stay empty, so an unpadded histogram with out-of-range neighbours read as 0 is
 * equivalent (scipy's 'reflect' mode at the padded border only ever reflects zeros).
 *
 * Seeds: bins whose count equals the maximum of their 5x5 neighbourhood and exceeds seedMinCount.
 * Each seed grows `growIterations` rounds into 3x3 neighbour bins whose count exceeds claimMinCount
 * (geodesic growth: only through claimed bins, as both references do).
 *
 * mode 'seed' (contract step 3): every pixel is binned (background pixels at their own position) and
 *   every pixel takes its bin's label, so background pixels can join a cell. Seeds are processed in
 *   descending count order and later seeds overwrite earlier ones, so the SMALLER seed wins contested
 *   bins. numpy's default argsort is not stable; ties are ordered as a stable argsort reversed would
 *   order them (later raster bin first), which is also what numpy does for fewer than 17 seeds.
 * mode 'cellpose' (Cellpose >= 3 get_masks_torch): only foreground pixels are binned and labelled, and
 *   the LARGER seed wins contested bins (ascending order + overwrite there; here: descending order, the
 *   first claim wins). Masks larger than maxSizeFraction of the tile are dropped.
 *
 * maxSizeFraction is honoured in both modes when set (the seed code effectively uses 1.0: leave it
 * unset in seed cards). Labels are renumbered 1..N in seed order (order-preserving, like np.unique).
 */
export function clusterPositions(
  pos: Float32Array,
  mask: Uint8Array,
  W: number,
  H: number,
  opts: ClusterOptions,
): Int32Array {
  const n = W * H;
  const seedMode = opts.mode === 'seed';
  const bin = scratchInt32('cluster.bin', n, false).fill(-1);
  const hist = scratchInt32('cluster.hist', n);
  for (let i = 0; i < n; i++) {
    if (!seedMode && !mask[i]) continue;
    // Truncation toward zero (np.int32 of float32); positions are >= 0.
    const b = (pos[2 * i] | 0) * W + (pos[2 * i + 1] | 0);
    bin[i] = b;
    hist[b]++;
  }

  // Seeds in raster order (np.nonzero).
  const seedMin = opts.seedMinCount;
  let nseeds = 0;
  const seedsBuf = scratchInt32('cluster.seeds', n, false);
  for (let by = 0; by < H; by++) {
    for (let bx = 0; bx < W; bx++) {
      const h = hist[by * W + bx];
      if (h <= seedMin) continue;
      let isMax = true;
      const y0 = by > 2 ? by - 2 : 0;
      const y1 = by + 2 < H ? by + 2 : H - 1;
      const x0 = bx > 2 ? bx - 2 : 0;
      const x1 = bx + 2 < W ? bx + 2 : W - 1;
      for (let yy = y0; yy <= y1 && isMax; yy++) {
        for (let xx = x0; xx <= x1; xx++) {
          if (hist[yy * W + xx] > h) { isMax = false; break; }
        }
      }
      if (isMax) seedsBuf[nseeds++] = by * W + bx;
    }
  }
  const order = Array.from(seedsBuf.subarray(0, nseeds));
  // Descending count; ties: later raster bin first (stable ascending argsort, reversed).
  order.sort((a, b) => hist[b] - hist[a] || b - a);

  const M = scratchInt32('cluster.M', n);
  const stamp = scratchInt32('cluster.stamp', n);
  const cur = scratchInt32('cluster.cur', n, false);
  const claimMin = opts.claimMinCount;
  const rounds = opts.growIterations;
  for (let k = 0; k < nseeds; k++) {
    const s = order[k];
    const lab = k + 1;
    // Geodesic 3x3 growth from the seed bin; stamp marks bins already in this seed's set.
    let len = 1;
    cur[0] = s;
    stamp[s] = lab;
    let start = 0;
    for (let r = 0; r < rounds; r++) {
      const end = len;
      for (let q = start; q < end; q++) {
        const b = cur[q];
        const by = (b / W) | 0;
        const bx = b - by * W;
        for (let dyy = -1; dyy <= 1; dyy++) {
          const yy = by + dyy;
          if (yy < 0 || yy >= H) continue;
          for (let dxx = -1; dxx <= 1; dxx++) {
            const xx = bx + dxx;
            if (xx < 0 || xx >= W) continue;
            const nb = yy * W + xx;
            if (stamp[nb] === lab || hist[nb] <= claimMin) continue;
            stamp[nb] = lab;
            cur[len++] = nb;
          }
        }
      }
      start = end;
      if (start === len) break;
    }
    if (seedMode) {
      for (let q = 0; q < len; q++) M[cur[q]] = lab;
    } else {
      for (let q = 0; q < len; q++) if (M[cur[q]] === 0) M[cur[q]] = lab;
    }
  }

  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const b = bin[i];
    if (b >= 0) labels[i] = M[b];
  }

  const frac = opts.maxSizeFraction;
  if (frac !== undefined && frac > 0 && nseeds > 0) {
    const counts = new Int32Array(nseeds + 1);
    for (let i = 0; i < n; i++) counts[labels[i]]++;
    const big = n * frac;
    let any = false;
    for (let l = 1; l <= nseeds; l++) if (counts[l] > big) { counts[l] = -1; any = true; }
    if (any) for (let i = 0; i < n; i++) if (counts[labels[i]] === -1) labels[i] = 0;
  }
  renumber(labels);
  return labels;
}
