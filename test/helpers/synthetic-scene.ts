/** Scenes of disc-shaped cells painted in the synthetic model's pixel encoding (see synthetic-model.ts). */
import { SYNTHETIC_CLASSES } from './synthetic-model';
import { mulberry32 } from '../../bridge/eval/metrics';

export interface Disc { cx: number; cy: number; r: number; classIndex: number }

export interface Scene {
  width: number;
  height: number;
  rgb: Uint8Array;
  discs: Disc[];
  /** Pixel count of each disc, in the order of `discs`. */
  areas: number[];
}

export function paintScene(width: number, height: number, discs: Disc[]): Scene {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) { rgb[3 * i] = 128; rgb[3 * i + 1] = 128; rgb[3 * i + 2] = 0; }
  const areas = discs.map((d) => {
    const blue = Math.round(255 * SYNTHETIC_CLASSES.find((c) => c.index === d.classIndex)!.blue);
    let area = 0;
    for (let y = Math.floor(d.cy - d.r - 1); y <= Math.ceil(d.cy + d.r + 1); y++) {
      for (let x = Math.floor(d.cx - d.r - 1); x <= Math.ceil(d.cx + d.r + 1); x++) {
        if (x < 0 || y < 0 || x >= width || y >= height) continue;
        const px = x + 0.5 - d.cx, py = y + 0.5 - d.cy;
        const dist = Math.hypot(px, py);
        if (dist > d.r) continue;
        area++;
        const uy = dist > 0 ? -py / dist : 0, ux = dist > 0 ? -px / dist : 0;
        const o = 3 * (y * width + x);
        rgb[o] = Math.round(255 * (0.5 + 0.5 * uy));
        rgb[o + 1] = Math.round(255 * (0.5 + 0.5 * ux));
        rgb[o + 2] = blue;
      }
    }
    return area;
  });
  return { width, height, rgb, discs, areas };
}

/** Copies a rectangle of the scene (downsample 1) as packed RGB8. */
export function cropScene(scene: Scene, x: number, y: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++) out.set(scene.rgb.subarray(3 * ((y + r) * scene.width + x), 3 * ((y + r) * scene.width + x + w)), 3 * r * w);
  return out;
}

/** Deterministic PRNG (mulberry32) for reproducible scenes. */
export const prng = mulberry32;

/**
 * Non-touching discs (gap >= 2 px): first some centred within a pixel of the given tile-core
 * boundaries (vertical and horizontal), then random ones, by rejection sampling.
 */
export function gridScene(width: number, height: number, seed: number, boundaries: number[] = []): Scene {
  const rand = prng(seed);
  const discs: Disc[] = [];
  const fits = (d: Disc) => d.cx - d.r >= 2 && d.cy - d.r >= 2 && d.cx + d.r <= width - 2 && d.cy + d.r <= height - 2
    && discs.every((o) => Math.hypot(o.cx - d.cx, o.cy - d.cy) >= o.r + d.r + 2);
  const add = (cx: number, cy: number) => {
    const d = { cx, cy, r: 5 + rand() * 3, classIndex: rand() < 0.5 ? 1 : 2 };
    if (fits(d)) discs.push(d);
  };
  for (const b of boundaries) {
    for (let t = 20; t < Math.max(width, height) - 20; t += 37) {
      const off = (rand() - 0.5) * 2;
      if (b < width) add(b + off, t);
      if (b < height) add(t + 5, b + off);
    }
  }
  for (let k = 0; k < 4000; k++) add(10 + rand() * (width - 20), 10 + rand() * (height - 20));
  return paintScene(width, height, discs);
}
