/**
 * The synthetic model: an ONNX graph that reads its outputs straight from the pixels, so a test can
 * paint a scene whose cells, flows and classes are known exactly.
 *
 * Encoding of a pixel (R, G, B), after the card's normalisation x' = (x/255 - mean) / std:
 *   R → dY = (R/255 - 0.5) / 0.1   (±5: Cellpose's 5x unit flow)
 *   G → dX likewise
 *   B → b = B/255: cellprob = (b - 0.1) * 100; type logit k = 5 - 20·|b - centre_k| with centres
 *       0 (background), 0.4 (class 1 "Alpha"), 0.8 (class 2 "Beta").
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from './onnx-builder';
import type { ModelCard } from '../../bridge/inference/model-card';

export const SYNTHETIC_CLASSES = [
  { index: 1, name: 'Alpha', color: [255, 0, 0] as [number, number, number], blue: 0.4 },
  { index: 2, name: 'Beta', color: [0, 0, 255] as [number, number, number], blue: 0.8 },
];

export function syntheticModelOnnx(): Uint8Array {
  const g = new GraphBuilder();
  g.sliceChannels('image', 0, 2, 'flows');
  const b = g.sliceChannels('image', 2, 3);
  g.op('Mul', [g.op('Sub', [b, g.constant([0.1], [1])]), g.constant([100], [1])], 'cellprob');
  const dist = g.op('Abs', [g.op('Sub', [b, g.constant([0, 0.4, 0.8], [1, 3, 1, 1])])]);
  g.op('Add', [g.op('Mul', [dist, g.constant([-20], [1])]), g.constant([5], [1])], 'type');
  return g.build('image', 3, [{ name: 'flows', channels: 2 }, { name: 'cellprob', channels: 1 }, { name: 'type', channels: 3 }]);
}

export function syntheticCard(overrides: Partial<ModelCard> = {}): ModelCard {
  return {
    cardVersion: 1,
    name: 'synthetic',
    version: '1.0.0',
    description: 'Test model: outputs are read from the pixels (see test/helpers/synthetic-model.ts)',
    file: 'model.onnx',
    input: {
      name: 'image', layout: 'NCHW', channels: 3, micronsPerPixel: 0.5, readSize: 128, modelSize: 128,
      dynamicSize: true, multipleOf: 1, resize: 'bilinear',
      normalization: { kind: 'meanstd', scale: 1 / 255, mean: [0.5, 0.5, 0], std: [0.1, 0.1, 1] },
      padValue: 0,
    },
    outputs: {
      flows: { name: 'flows', dyChannel: 0, dxChannel: 1 },
      cellProbability: { name: 'cellprob', channel: 0, kind: 'logit' },
      type: { name: 'type', backgroundChannel: 0, kind: 'logits' },
    },
    classes: SYNTHETIC_CLASSES.map(({ index, name, color }) => ({ index, name, color })),
    postprocess: {
      mode: 'cellpose', niter: 200, flowScale: 5, cellprobThreshold: 0, seedMinCount: 10, claimMinCount: 2,
      growIterations: 5, minSize: 10, fillHoles: true,
    },
    tiling: { overlap: 32 },
    ...overrides,
  };
}

/** Writes a models folder holding the synthetic model (and optionally more, e.g. a broken one). */
export function makeSyntheticModelsDir(extra?: (root: string) => void, card: ModelCard = syntheticCard()): string {
  const root = mkdtempSync(join(tmpdir(), 'cellbridge-models-'));
  const dir = join(root, card.name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'model.onnx'), syntheticModelOnnx());
  writeFileSync(join(dir, 'card.json'), JSON.stringify(card, null, 2));
  extra?.(root);
  return root;
}
