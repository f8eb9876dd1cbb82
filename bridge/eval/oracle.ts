/**
 * Oracle "segmenters" that answer with the ground truth itself, to test the evaluation end to end
 * without a model: `oracle` returns the GT unchanged (every metric must be exactly 1: PQ, DQ, SQ, R²),
 * `oracle-erode` returns the GT with every instance eroded by 1 px (scores just below 1).
 */

/**
 * Erode every instance of a label map by one pixel: a pixel keeps its label only if its 4 neighbours
 * (up, down, left, right) carry the same label. Pixels outside the image count as the same label, so
 * instances cut by the tile border are not eroded along that border. Instances 1-2 px thick vanish.
 */
export function erodeLabels(labels: Int32Array, width: number, height: number): Int32Array {
  if (labels.length !== width * height) throw new Error(`erodeLabels: ${labels.length} pixels for ${width}x${height}`);
  const out = new Int32Array(labels.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const v = labels[i];
      if (v === 0) continue;
      if (x > 0 && labels[i - 1] !== v) continue;
      if (x < width - 1 && labels[i + 1] !== v) continue;
      if (y > 0 && labels[i - width] !== v) continue;
      if (y < height - 1 && labels[i + width] !== v) continue;
      out[i] = v;
    }
  }
  return out;
}

/** Class names of GT instances, for predictions that are the GT. */
export function gtClassNames(classOf: Map<number, number>, classNames: Map<number, string>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [id, c] of classOf) {
    const name = classNames.get(c);
    if (name !== undefined) out.set(id, name);
  }
  return out;
}
