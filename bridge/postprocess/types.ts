import type { PostprocessDefaults } from '../inference/model-card';

/** Raw model outputs for one tile, row-major [H][W] (channel-major for the type maps). */
export interface TileMaps {
  width: number;
  height: number;
  /** Raw flow outputs (rows, columns), H*W each. */
  dy: Float32Array;
  dx: Float32Array;
  /** Raw cell-probability output, H*W; absent for the seed model. */
  cellprob?: Float32Array;
  /** Units of `cellprob` (model card `cellProbability.kind`); default 'logit'. */
  cellprobKind?: 'logit' | 'probability';
  /** C*H*W, channel-major; channel 0 = background. */
  typeLogits: Float32Array;
  typeChannels: number;
  typeKind: 'logits' | 'probabilities';
}

export interface CellInstance {
  /** 1..N within the tile; equals the value in the returned label map. */
  label: number;
  /** Area in tile px²: the pixel count, or the fine grid's pixel count / factor² when outlines are refined. */
  area: number;
  /** Mean of pixel centres (col + 0.5, row + 0.5), tile px. */
  centroidX: number;
  centroidY: number;
  /** minCol, minRow, maxCol + 1, maxRow + 1. */
  bbox: [number, number, number, number];
  touchesEdge: { left: boolean; top: boolean; right: boolean; bottom: boolean };
  /** Channel index of the voted class (>= 1). */
  classIndex: number;
  /** Mean softmax probability per channel over the cell's pixels (length C). */
  classProbabilities: Float32Array;
  /** Mean sigmoid(cellprob) over the cell, or 1 - mean P(background) without cellprob. */
  detectionProbability: number;
  /**
   * Outer contour along pixel edges, flat [x0, y0, x1, y1, ...] in tile px, closed implicitly.
   * Orientation: positive shoelace area with (x, y) taken literally (y down); see contours.ts.
   */
  ring: Float64Array;
  /** Length of `ring` in tile px. */
  perimeter: number;
}

// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface PostprocessOptions extends PostprocessDefaults {}

export type FlowOptions = Pick<PostprocessDefaults, 'mode' | 'niter' | 'flowScale'>;
export type ClusterOptions = Pick<
  PostprocessDefaults,
  'mode' | 'seedMinCount' | 'claimMinCount' | 'growIterations' | 'maxSizeFraction'
>;
