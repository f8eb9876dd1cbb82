/** Synthetic tiles for the post-processing tests (not a test file itself). */
import type { PostprocessOptions, TileMaps } from '../bridge/postprocess';

export interface Disc { cy: number; cx: number; r: number; cls: number }

export const CELLPOSE_OPTS: PostprocessOptions = {
  mode: 'cellpose', niter: 200, flowScale: 5, cellprobThreshold: 0, seedMinCount: 10, claimMinCount: 2,
  growIterations: 5, minSize: 15, fillHoles: true, flowThreshold: 0.4, maxSizeFraction: 0.4,
};

export const SEED_OPTS: PostprocessOptions = {
  mode: 'seed', niter: 200, flowScale: 1, cellprobThreshold: 0, seedMinCount: 10, claimMinCount: 2,
  growIterations: 1, minSize: 30, fillHoles: true,
};

/**
 * Discs on the pixel-index grid: pixel (row, col) belongs to the disc with the smallest
 * normalised distance ((row-cy)^2 + (col-cx)^2) / r^2 <= 1. Flows are 5x the unit vector towards the
 * owner's centre, cellprob +6 inside / -6 outside, type logits favour the disc's class inside.
 * Returns the owner map too (index into discs, -1 = background).
 */
export function discTile(W: number, H: number, discs: Disc[], C = 4): { maps: TileMaps; owner: Int32Array } {
  const n = W * H;
  const owner = new Int32Array(n).fill(-1);
  const dy = new Float32Array(n);
  const dx = new Float32Array(n);
  const cellprob = new Float32Array(n).fill(-6);
  const typeLogits = new Float32Array(C * n);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      const i = r * W + c;
      let best = Infinity;
      for (let k = 0; k < discs.length; k++) {
        const d = discs[k];
        const q = ((r - d.cy) ** 2 + (c - d.cx) ** 2) / (d.r * d.r);
        if (q <= 1 && q < best) { best = q; owner[i] = k; }
      }
      typeLogits[i] = 2;
      if (owner[i] >= 0) {
        const d = discs[owner[i]];
        const vy = d.cy - r, vx = d.cx - c;
        const nrm = Math.hypot(vy, vx) || 1;
        dy[i] = (5 * vy) / nrm;
        dx[i] = (5 * vx) / nrm;
        cellprob[i] = 6;
        typeLogits[i] = -1;
        typeLogits[d.cls * n + i] = 3;
      }
    }
  }
  return { maps: { width: W, height: H, dy, dx, cellprob, typeLogits, typeChannels: C, typeKind: 'logits' }, owner };
}

/** Deterministic PRNG (mulberry32) so synthetic data is reproducible without fixtures. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Non-overlapping-ish discs on a jittered grid: about (W/spacing)*(H/spacing) cells. */
export function gridDiscs(W: number, H: number, spacing: number, radius: number, C: number, seed = 7): Disc[] {
  const rand = rng(seed);
  const discs: Disc[] = [];
  for (let y = spacing / 2; y < H; y += spacing) {
    for (let x = spacing / 2; x < W; x += spacing) {
      discs.push({
        cy: y + (rand() - 0.5) * 4 + 0.31, cx: x + (rand() - 0.5) * 4 + 0.17,
        r: radius * (0.8 + 0.4 * rand()), cls: 1 + Math.floor(rand() * (C - 1)),
      });
    }
  }
  return discs;
}
