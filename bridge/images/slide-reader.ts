/**
 * Reads regions of TIFF-family slides (Aperio .svs level 0, pyramidal TIFF, OME-TIFF) and ordinary
 * images with sharp/libvips, one region at a time so memory does not grow with the slide.
 */
import sharp from 'sharp';
import { existsSync } from 'node:fs';
import { micronsPerPixelFromDescription, micronsPerPixelFromResolution, readTiffFacts } from './tiff-description';

export class UnsupportedImageError extends Error {}

export interface SlideInfo {
  path: string;
  width: number;
  height: number;
  micronsPerPixel: number | null;
  format: string;
}

export class SlideReader {
  private constructor(readonly info: SlideInfo) {}

  static async open(path: string): Promise<SlideReader> {
    if (!existsSync(path)) throw new UnsupportedImageError(`${path}: no such file`);
    let meta: sharp.Metadata;
    try {
      meta = await sharp(path, { limitInputPixels: false }).metadata();
    } catch (err) {
      throw new UnsupportedImageError(`${path}: not an image this build can read (${(err as Error).message.split('\n')[0]})`);
    }
    if (!meta.width || !meta.height) throw new UnsupportedImageError(`${path}: image has no size`);
    let mpp: number | null = null;
    if (meta.format === 'tiff') {
      const facts = readTiffFacts(path);
      mpp = micronsPerPixelFromDescription(facts?.description ?? null);
      // Resolution tags: only when plausible for microscopy (< 100 µm/px), not a scanner's 72 dpi.
      const fromTags = facts ? micronsPerPixelFromResolution(facts) : null;
      if (mpp === null && fromTags !== null && fromTags < 100) mpp = fromTags;
    }
    const reader = new SlideReader({ path, width: meta.width, height: meta.height, micronsPerPixel: mpp, format: meta.format ?? 'unknown' });
    // Decode one small region now: compressions libvips lacks (e.g. JPEG 2000 in some .svs) fail here, not mid-job.
    await reader.readRegion(0, 0, Math.min(16, meta.width), Math.min(16, meta.height));
    return reader;
  }

  /**
   * Full-res rectangle as packed RGB8. outW x outH (default: unresized) only for pictures shown to
   * people (the overlay); tiles for the model are never resized here: the daemon does that.
   */
  async readRegion(x: number, y: number, width: number, height: number, outW = width, outH = height): Promise<Uint8Array> {
    try {
      let img = sharp(this.info.path, { limitInputPixels: false }).extract({ left: x, top: y, width, height });
      if (outW !== width || outH !== height) img = img.resize(outW, outH, { fit: 'fill', kernel: 'linear' });
      const buf = await img.removeAlpha().toColourspace('srgb').raw().toBuffer();
      if (buf.length !== outW * outH * 3) throw new Error(`decoded ${buf.length} bytes, expected ${outW * outH * 3}`);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    } catch (err) {
      const msg = (err as Error).message;
      if (/jp2k|JPEG2000|JPEG 2000/i.test(msg)) {
        throw new UnsupportedImageError(`${this.info.path}: its tiles are JPEG 2000 compressed, which this build of libvips cannot decode. Convert it (e.g. with QuPath's export or vips tiffsave --compression jpeg) or run Cell Bridge from QuPath, which reads the pixels itself.`);
      }
      throw new UnsupportedImageError(`${this.info.path}: reading region ${x},${y} ${width}x${height} failed: ${msg.split('\n')[0]}`);
    }
  }
}
