/** Pixel format conversion for incoming tile frames (pure). */
import { PixelFormat, type PixelFormatCode } from '../../protocol';

/** Returns packed RGB8 in a fresh buffer (transferable to a worker). */
export function toRgb8(pixels: Uint8Array, format: PixelFormatCode, width: number, height: number): Uint8Array {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  if (format === PixelFormat.RGB8) { out.set(pixels.subarray(0, n * 3)); return out; }
  // ARGB32 big-endian ints: bytes A, R, G, B.
  for (let i = 0, s = 0, d = 0; i < n; i++, s += 4, d += 3) {
    out[d] = pixels[s + 1]; out[d + 1] = pixels[s + 2]; out[d + 2] = pixels[s + 3];
  }
  return out;
}
