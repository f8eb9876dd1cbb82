/**
 * The one resampling kernel of Cell Bridge: tiles the client read at a pyramid level are resized to
 * the model's resolution here, in the daemon (and `npm run eval` resizes its images with the same
 * call), so every client gives the same cells.
 *
 * Kernel: libvips (through sharp) `linear`, i.e. a triangle filter whose support widens with the
 * shrink factor (antialiased, like PIL's BILINEAR resize the training data went through), plain
 * bilinear when enlarging; pixel centres are aligned (output pixel c samples input position
 * (c + 0.5) * in / out - 0.5), so tile pixel column c still covers full-res x from
 * x + c * width / outputWidth, the mapping detections are computed with.
 */
import sharp from 'sharp';

export const RESAMPLING_KERNEL = 'linear' as const;

/** Packed RGB8 width x height → packed RGB8 outW x outH (a fresh buffer, transferable to a worker). */
export async function resampleRgb(rgb: Uint8Array, width: number, height: number, outW: number, outH: number): Promise<Uint8Array> {
  if (outW === width && outH === height) return rgb;
  const buf = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, width * height * 3), { raw: { width, height, channels: 3 } })
    .resize(outW, outH, { fit: 'fill', kernel: RESAMPLING_KERNEL })
    .raw()
    .toBuffer();
  if (buf.length !== outW * outH * 3) throw new Error(`resampling gave ${buf.length} bytes, expected ${outW * outH * 3}`);
  const out = new Uint8Array(buf.length);
  out.set(buf);
  return out;
}
