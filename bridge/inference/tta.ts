/**
 * Test-time augmentation: the model also sees the tile mirrored (and, for 8, transposed), each
 * output is brought back to the tile's own frame and the maps are averaged before post-processing.
 * Flows are vectors: mirroring a tile reverses one component, transposing it swaps them.
 * Pure functions over typed arrays; no I/O.
 */
import type { TileMaps } from '../postprocess/types';

/** How many views of each tile the model sees: 1 (off), 2 (+ rotated 180°), 4 (all mirrorings), 8 (+ their transposes). */
export type TtaViews = 1 | 2 | 4 | 8;

export function isTtaViews(v: unknown): v is TtaViews {
  return v === 1 || v === 2 || v === 4 || v === 8;
}

/** The views in effect: what the job asked for, else the model card's default (input.testTimeAugmentation), else 1. */
export function viewsFor(input: { testTimeAugmentation?: TtaViews }, requested?: TtaViews): TtaViews {
  return requested ?? input.testTimeAugmentation ?? 1;
}

/** One view: transpose first (rows become columns), then mirror left-right (flipX) and/or top-bottom (flipY). */
export interface View { transpose: boolean; flipX: boolean; flipY: boolean }

const v = (transpose: boolean, flipX: boolean, flipY: boolean): View => ({ transpose, flipX, flipY });

/** The views of each setting; the first is always the tile itself. 2 and 4 keep the tile's shape (no transpose). */
export const VIEWS: Record<TtaViews, readonly View[]> = {
  1: [v(false, false, false)],
  2: [v(false, false, false), v(false, true, true)],
  4: [v(false, false, false), v(false, true, false), v(false, false, true), v(false, true, true)],
  8: [false, true].flatMap((t) => [v(t, false, false), v(t, true, false), v(t, false, true), v(t, true, true)]),
};

/** Source index (row-major, original w x h) of the pixel at (row, col) of the view. */
function sourceIndex(view: View, w: number, h: number, vw: number, vh: number, row: number, col: number): number {
  const r1 = view.flipY ? vh - 1 - row : row;
  const c1 = view.flipX ? vw - 1 - col : col;
  return view.transpose ? c1 * w + r1 : r1 * w + c1;
}

/** The tile (RGB8, w*h*3) as the view shows it; a transposed view is h wide and w high. */
export function viewRgb(rgb: Uint8Array, w: number, h: number, view: View): { rgb: Uint8Array; width: number; height: number } {
  const vw = view.transpose ? h : w;
  const vh = view.transpose ? w : h;
  const out = new Uint8Array(vw * vh * 3);
  for (let r = 0, o = 0; r < vh; r++) {
    for (let c = 0; c < vw; c++, o += 3) {
      const s = 3 * sourceIndex(view, w, h, vw, vh, r, c);
      out[o] = rgb[s]; out[o + 1] = rgb[s + 1]; out[o + 2] = rgb[s + 2];
    }
  }
  return { rgb: out, width: vw, height: vh };
}

/**
 * Adds the maps the model produced for a view (in the view's frame) to `sum` (in the tile's frame,
 * w x h): every map moved back to its pixel, flow components mirrored / swapped back.
 */
export function addViewMaps(sum: TileMaps, viewMaps: TileMaps, view: View): void {
  const w = sum.width, h = sum.height;
  const vw = viewMaps.width, vh = viewMaps.height;
  if (vw !== (view.transpose ? h : w) || vh !== (view.transpose ? w : h)) throw new Error(`view maps ${vw}x${vh} do not fit a ${w}x${h} tile`);
  if (viewMaps.typeChannels !== sum.typeChannels) throw new Error('views disagree on the number of type channels');
  const plane = w * h;
  const sy = view.flipY ? -1 : 1;
  const sx = view.flipX ? -1 : 1;
  for (let r = 0, vi = 0; r < vh; r++) {
    for (let c = 0; c < vw; c++, vi++) {
      const t = sourceIndex(view, w, h, vw, vh, r, c);
      // In the view's frame: undo the mirroring (sign), then the transpose (swap).
      const dy = viewMaps.dy[vi] * sy;
      const dx = viewMaps.dx[vi] * sx;
      sum.dy[t] += view.transpose ? dx : dy;
      sum.dx[t] += view.transpose ? dy : dx;
      if (sum.cellprob && viewMaps.cellprob) sum.cellprob[t] += viewMaps.cellprob[vi];
      for (let k = 0; k < sum.typeChannels; k++) sum.typeLogits[k * plane + t] += viewMaps.typeLogits[k * plane + vi];
    }
  }
}

/** Zeroed maps of a w x h tile shaped like `like` (same channels and kinds). */
export function emptyMapsLike(like: TileMaps, w: number, h: number): TileMaps {
  return {
    width: w,
    height: h,
    dy: new Float32Array(w * h),
    dx: new Float32Array(w * h),
    cellprob: like.cellprob ? new Float32Array(w * h) : undefined,
    cellprobKind: like.cellprobKind,
    typeLogits: new Float32Array(like.typeChannels * w * h),
    typeChannels: like.typeChannels,
    typeKind: like.typeKind,
  };
}

/** Divides every map of `sum` by n in place (the mean of n views). */
export function scaleMaps(sum: TileMaps, n: number): TileMaps {
  const k = 1 / n;
  for (const a of [sum.dy, sum.dx, sum.cellprob, sum.typeLogits]) if (a) for (let i = 0; i < a.length; i++) a[i] *= k;
  return sum;
}
