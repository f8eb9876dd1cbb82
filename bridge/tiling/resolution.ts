/**
 * The one resolution decision of a job (pure): which pyramid level the client reads, and whether
 * the daemon resamples those pixels to the model's resolution. Clients never resize; this is the
 * only place that decides, and bridge/tiling/resample.ts the only code that resizes.
 *
 * Tolerance rule: a slide whose pixel size is within PIXEL_SIZE_TOLERANCE (2 %) of the model's is
 * read unscaled (CMU-1's 0.499 µm/px goes to a 0.5 µm/px model as is). A 2 % scale change is far
 * below the spread of nucleus sizes and of scanner calibrations, while resampling by it blurs every
 * pixel (a 0.2 % bilinear rescale changed the default model's class counts threefold). Measurements
 * keep the slide's true pixel size: only the model's input is unscaled.
 */

/** Relative pixel-size difference below which tiles are not resampled (0.02 = 2 %). */
export const PIXEL_SIZE_TOLERANCE = 0.02;

/** A level is used only when its downsample is within this of an integer: its tiles then align to whole level pixels. */
const INTEGER_LEVEL_SLACK = 1e-3;

export interface ResolutionChoice {
  /** Index of the chosen level in the client's downsamples (0 when it gave none). */
  level: number;
  /** The chosen level's downsample exactly as the client gave it (what its reader expects, e.g. 4.000479). */
  readDownsample: number;
  /** That downsample rounded: tiles start on multiples of it (whole level pixels). */
  align: number;
  /** Full-res px per model px as used: readDownsample when read unscaled, else model µm/px ÷ image µm/px. */
  downsample: number;
  /** True when the daemon resamples the level's pixels (scale = readDownsample / downsample model px per read px). */
  resampled: boolean;
  /** µm per model px as the model sees it (null without pixel sizes). */
  effectiveMicronsPerPixel: number | null;
}

/**
 * @param downsamples the levels the client reads without resizing (full-res px per level px); level 0 is 1
 * @param target full-res px per model px wanted: model µm/px ÷ image µm/px (1 when either is null)
 */
export function chooseResolution(target: number, downsamples: readonly number[] = [1], tolerance = PIXEL_SIZE_TOLERANCE, imageMicronsPerPixel: number | null = null): ResolutionChoice {
  // The coarsest whole-number level that is not coarser than the model (within the tolerance).
  let level = 0, k = 1;
  for (const [i, d] of downsamples.entries()) {
    const r = Math.round(d);
    if (r < 1 || Math.abs(d - r) > INTEGER_LEVEL_SLACK * d) continue;
    if (r <= target * (1 + tolerance) && r > k) { level = i; k = r; }
  }
  if (k === 1) level = Math.max(0, downsamples.findIndex((d) => Math.abs(d - 1) <= INTEGER_LEVEL_SLACK));
  const unscaled = Math.abs(target / k - 1) <= tolerance;
  const downsample = unscaled ? k : target;
  return {
    level, readDownsample: downsamples[level] ?? 1, align: k, downsample, resampled: !unscaled,
    effectiveMicronsPerPixel: imageMicronsPerPixel === null ? null : imageMicronsPerPixel * downsample,
  };
}
