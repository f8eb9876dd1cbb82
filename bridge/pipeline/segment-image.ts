/**
 * Segments an in-memory RGB image into a full-resolution label map with the daemon's own inference
 * and post-processing code (used by `npm run eval`). Tiles and cores exactly as for jobs; the label
 * map is painted at model resolution, or on the finer outline grid the daemon uses for such an image
 * (bridge/postprocess/outline.ts), and scaled back to the image with nearest neighbour.
 */
import { resampleRgb } from '../tiling/resample';
import { chooseResolution } from '../tiling/resolution';
import type { RegisteredModel } from '../inference/model-registry';
import type { TileEngine } from './engine';
import { outlineFactor, postprocessTile } from '../postprocess';
import { gridOf, tileAt, type GridSpec } from '../tiling/planner';
import { viewsFor, type TtaViews } from '../inference/tta';

export interface InferenceEngine {
  engine: TileEngine;
  model: RegisteredModel;
  /** Test-time augmentation views per tile; default the card's input.testTimeAugmentation, else 1. */
  views?: TtaViews;
}

export interface SegmentedImage {
  labels: Int32Array;
  width: number;
  height: number;
  /** label → class name */
  classOfLabel: Map<number, string>;
}

export async function segmentRgbImage(rgb: Uint8Array, width: number, height: number, micronsPerPixel: number, ie: InferenceEngine): Promise<SegmentedImage> {
  const card = ie.model.card;
  if (!card) throw new Error(`model ${ie.model.name} is not ready: ${ie.model.error}`);
  const views = viewsFor(card.input, ie.views);
  const modelMpp = card.input.micronsPerPixel ?? micronsPerPixel;
  // The daemon's resolution rule (tolerance included) and kernel, so eval scores what users get.
  const { downsample } = chooseResolution(modelMpp / micronsPerPixel);
  const mw = Math.max(1, Math.round(width / downsample));
  const mh = Math.max(1, Math.round(height / downsample));
  const scaled = await resampleRgb(rgb, width, height, mw, mh);
  const spec: GridSpec = { imageWidth: mw, imageHeight: mh, downsample: 1, tileSize: card.input.readSize, overlap: card.tiling.overlap };
  const grid = gridOf(spec);
  // The outline grid of a job on this image: read px per model px, as the postprocess worker's.
  const k = outlineFactor(width / mw);
  const fw = mw * k, fh = mh * k;
  const modelLabels = new Int32Array(fw * fh);
  const classOfLabel = new Map<number, string>();
  const names = new Map(card.classes.map((c) => [c.index, c.name]));
  let next = 1;
  for (let j = 0; j < grid.rows; j++) {
    for (let i = 0; i < grid.cols; i++) {
      const t = tileAt(spec, grid, i, j, 0);
      const tileRgb = new Uint8Array(t.width * t.height * 3);
      for (let r = 0; r < t.height; r++) tileRgb.set(scaled.subarray(3 * ((t.y + r) * mw + t.x), 3 * ((t.y + r) * mw + t.x + t.width)), 3 * r * t.width);
      const { maps } = await ie.engine.infer(ie.model, tileRgb, t.width, t.height, undefined, views);
      const { labels, cells, fine } = postprocessTile(maps, card.postprocess, undefined, k);
      const [cx0, cy0, cx1, cy1] = t.core;
      const remap = new Int32Array(cells.reduce((m, c) => Math.max(m, c.label), 0) + 1);
      for (const c of cells) {
        const gx = t.x + c.centroidX, gy = t.y + c.centroidY;
        if (gx < cx0 || gx >= cx1 || gy < cy0 || gy >= cy1) continue;
        remap[c.label] = next;
        classOfLabel.set(next, names.get(c.classIndex) ?? String(c.classIndex));
        next++;
      }
      // Paint on the outline grid: the fine labels when refined, else each model pixel as k x k.
      const f = fine ? fine.factor : 1;
      const src = fine ? fine.labels : labels;
      const tw = t.width * f;
      for (let r = 0; r < t.height * k; r++) {
        for (let c = 0; c < t.width * k; c++) {
          const l = src[Math.floor((r * f) / k) * tw + Math.floor((c * f) / k)];
          if (l > 0 && remap[l] > 0) modelLabels[(t.y * k + r) * fw + t.x * k + c] = remap[l];
        }
      }
    }
  }
  if (fw === width && fh === height) return { labels: modelLabels, width, height, classOfLabel };
  const labels = new Int32Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(fh - 1, Math.floor(((y + 0.5) * fh) / height));
    for (let x = 0; x < width; x++) labels[y * width + x] = modelLabels[sy * fw + Math.min(fw - 1, Math.floor(((x + 0.5) * fw) / width))];
  }
  return { labels, width, height, classOfLabel };
}
