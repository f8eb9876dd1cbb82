/**
 * Outlines on a finer grid than the model's (pure).
 *
 * When a slide is finer than the model (a 40x slide, 0.25 µm/px, segmented at 0.5 µm/px), an outline
 * traced on the model's grid and scaled up is a staircase of 2-pixel steps: every boundary pixel of the
 * slide is decided by the nearest model pixel. Here each cell keeps the pixels it had (nearest model
 * pixel), but on a grid `factor` times finer the boundary is redrawn where the bilinearly upsampled
 * cell-probability logit crosses `threshold`: fine pixels of the cell below it are dropped, fine
 * foreground pixels next to a cell (3x3) join it. On held-out CoNSeP and MoNuSeg images this raised
 * bPQ by 0.01-0.02 (models/README.md); cells, their classes and the model grid's labels are unchanged.
 *
 * Mirrors `refine_outlines` in models/training/postprocess_ref.py (used to choose the threshold).
 * The upsampling is the daemon's own `resizePlane` without antialiasing, which for a whole factor k
 * equals PyTorch's `interpolate(scale_factor=k, mode='bilinear', align_corners=False)` (fine pixel d
 * samples model coordinate (d + 0.5) / k - 0.5, clamped to the tile).
 */
import { resizePlane } from '../inference/preprocess';

/** Largest refinement factor: beyond 4x the model grid a finer outline carries no information. */
export const MAX_OUTLINE_FACTOR = 4;

/**
 * The fine grid for a tile read at `resample` times the model's resolution (read px per model px):
 * the nearest whole number when the slide is at least 1.5x finer than the model, else 1 (no refinement).
 */
export function outlineFactor(resample: number): number {
  if (!(resample >= 1.5)) return 1;
  return Math.min(MAX_OUTLINE_FACTOR, Math.round(resample));
}

/**
 * The label map on the fine grid (W*k x H*k). `cellprob` in its own units (`kind`); `threshold` is a
 * logit (a probability map is compared with sigmoid(threshold)).
 */
export function refineLabels(
  labels: Int32Array,
  W: number,
  H: number,
  cellprob: Float32Array,
  kind: 'logit' | 'probability',
  k: number,
  threshold: number,
): Int32Array {
  const FW = W * k, FH = H * k;
  const cp = resizePlane(cellprob, W, H, FW, FH, false);
  const thr = kind === 'probability' ? 1 / (1 + Math.exp(-threshold)) : threshold;
  const near = (r: number, c: number): number => labels[Math.floor(r / k) * W + Math.floor(c / k)];
  const out = new Int32Array(FW * FH);
  for (let r = 0, i = 0; r < FH; r++) {
    for (let c = 0; c < FW; c++, i++) {
      if (!(cp[i] > thr)) continue;
      let l = near(r, c);
      if (l === 0) {
        // A foreground pixel just outside every cell joins the neighbouring cell (the largest label
        // among the 3x3 nearest-model-pixel labels, as scipy's maximum_filter in the reference).
        for (let dr = -1; dr <= 1; dr++) {
          const rr = r + dr;
          if (rr < 0 || rr >= FH) continue;
          for (let dc = -1; dc <= 1; dc++) {
            const cc = c + dc;
            if (cc < 0 || cc >= FW) continue;
            const v = near(rr, cc);
            if (v > l) l = v;
          }
        }
      }
      out[i] = l;
    }
  }
  return out;
}
