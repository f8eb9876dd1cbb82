/**
 * The model card: a JSON file (`card.json`) next to a model's `.onnx` file that says everything the
 * daemon needs to feed the model and read its outputs. The same format describes our own students
 * and the seed paper's student (see models/README.md for both, written out).
 *
 * This module holds the types and a validator; it does no I/O.
 */

export type RGB = [number, number, number];

/** How pixels (RGB, 0..255) become the model's input tensor. */
export type Normalization =
  /** x' = (x * scale - mean[c]) / std[c]; scale is usually 1/255. */
  | { kind: 'meanstd'; scale: number; mean: RGB; std: RGB }
  /** zero mean, unit variance over the whole tile and all channels: (x - mean) / (std + eps). */
  | { kind: 'zscore'; eps: number };

export interface InputSpec {
  /** ONNX input name. */
  name: string;
  layout: 'NCHW' | 'NHWC';
  /** 3 = RGB; 1 = grey (mean of RGB). */
  channels: 1 | 3;
  /**
   * Physical resolution the model expects, in µm per pixel of the tile that is read from the slide.
   * null: the model ignores physical size and tiles are read at full resolution (the seed student).
   */
  micronsPerPixel: number | null;
  /** Edge length (px) of the square region read from the slide at `micronsPerPixel`. */
  readSize: number;
  /**
   * Edge length (px) of the tensor given to the model. Equal to readSize unless the model resizes
   * (the seed student reads 384 and runs at 224); outputs are resized back to readSize.
   */
  modelSize: number;
  /** Whether the model accepts other spatial sizes (then partial edge tiles are padded only to `multipleOf`). */
  dynamicSize: boolean;
  /** Spatial sizes must be a multiple of this (U-Net downsampling); 1 when any size works. */
  multipleOf: number;
  /** Antialiased bilinear when readSize != modelSize. */
  resize: 'bilinear-antialias' | 'bilinear';
  normalization: Normalization;
  /** Value (0..255, RGB) used to pad tiles past the slide's edge; the seed uses 0, H&E looks best white. */
  padValue: number;
  /** Views of each tile averaged by default (test-time augmentation, bridge/inference/tta.ts); absent = 1. Jobs may override. */
  testTimeAugmentation?: 1 | 2 | 4 | 8;
}

export interface FlowOutput {
  name: string;
  /** Channel indices of the dY (rows) and dX (columns) components in this output. */
  dyChannel: number;
  dxChannel: number;
}

export interface CellProbabilityOutput {
  name: string;
  channel: number;
  /** 'logit': threshold applies to the raw value (Cellpose convention, threshold 0 = p 0.5). */
  kind: 'logit' | 'probability';
}

export interface TypeOutput {
  name: string;
  /** Channel of the background class in the type logits (always 0 in our models and the seed's). */
  backgroundChannel: number;
  kind: 'logits' | 'probabilities';
}

export interface ClassSpec {
  /** Channel index in the type output. */
  index: number;
  name: string;
  color: RGB;
}

export interface PostprocessDefaults {
  /**
   * 'cellpose': follow dP/flowScale from pixels with cellprob > threshold, 5 rounds of 3x3 growth,
   *             optional flow-error check; like MouseLand/cellpose.
   * 'seed':     the seed paper's reference code exactly (foreground = argmax(type) != 0, no scaling,
   *             its sampling convention and one round of 3x3 claiming). See student-contract.md.
   */
  mode: 'cellpose' | 'seed';
  /** Euler steps of flow following. */
  niter: number;
  /** Flows are divided by this before following (Cellpose trains on 5x the unit field). */
  flowScale: number;
  /** cellprob threshold (in the output's own units) for the foreground in 'cellpose' mode. */
  cellprobThreshold: number;
  /** Histogram bins must hold more than this many pixels to seed a cell. */
  seedMinCount: number;
  /** A neighbouring bin is claimed when it holds more than this. */
  claimMinCount: number;
  /** Rounds of 3x3 growth of each seed (1 in seed mode, 5 in Cellpose). */
  growIterations: number;
  /** Remove instances smaller than this many pixels (at model resolution). */
  minSize: number;
  fillHoles: boolean;
  /** Drop masks whose flow error exceeds this (Cellpose 0.4); 0 or absent disables the check. */
  flowThreshold?: number;
  /** Drop masks larger than this fraction of the tile (Cellpose 0.4). */
  maxSizeFraction?: number;
  /**
   * Drop cells whose mean cellprob over their pixels (the output's own units) is below this, after the
   * class vote (bridge/postprocess/faint.ts; needs a cellProbability output). Absent or null: keep all.
   */
  meanCellprobThreshold?: number | null;
  /**
   * Outlines at the slide's resolution: when the slide is at least 1.5x finer than the model, each
   * outline is redrawn on the finer grid where the upsampled cellprob logit crosses this value
   * (bridge/postprocess/outline.ts; needs a cellProbability output). Absent or null: outlines on the
   * model's grid.
   */
  outlineThreshold?: number | null;
}

export interface TilingDefaults {
  /** Overlap between neighbouring tiles, px at model resolution; must exceed the largest cell diameter. */
  overlap: number;
}

export interface ModelCard {
  cardVersion: 1;
  /** Unique name; also the folder name under models/. */
  name: string;
  version: string;
  description: string;
  /** ONNX file, relative to the card. */
  file: string;
  /**
   * Optional ONNX file run instead of `file` on the CPU provider: the same network quantized to int8
   * (`models/training/quantize.py`), same inputs and outputs. `--full-precision` keeps `file`.
   */
  cpuFile?: string;
  input: InputSpec;
  outputs: {
    flows: FlowOutput;
    cellProbability?: CellProbabilityOutput;
    type: TypeOutput;
  };
  /** Foreground classes (background excluded), by channel index. */
  classes: ClassSpec[];
  postprocess: PostprocessDefaults;
  tiling: TilingDefaults;
  /** Free-form provenance: training data, metrics, licence. */
  provenance?: Record<string, unknown>;
}
