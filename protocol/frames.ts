/**
 * Binary tile frames: the pixels of one planned tile, sent by the client in one binary WebSocket
 * message (never base64, never inside JSON).
 *
 * Layout (all integers big-endian, i.e. Java's ByteBuffer default):
 *
 *   offset size field
 *   0      4    magic "CBT1" (0x43 0x42 0x54 0x31)
 *   4      1    header version = 1
 *   5      1    pixel format: 1 = RGB8 (3 bytes per pixel: R, G, B), 2 = ARGB32 (one 32-bit int
 *               per pixel, 0xAARRGGBB, as BufferedImage.getRGB gives it; alpha ignored)
 *   6      2    reserved, 0
 *   8      4    job id (uint32)
 *   12     4    tile id (uint32)
 *   16     4    width  (uint32, pixels)
 *   20     4    height (uint32, pixels)
 *   24     ...  pixels, row-major, top row first, width*height*(3|4) bytes, no row padding
 */
export const FRAME_MAGIC = 0x43425431; // "CBT1"
export const FRAME_HEADER_BYTES = 24;
export const FRAME_VERSION = 1;

export const PixelFormat = { RGB8: 1, ARGB32: 2 } as const;
export type PixelFormatCode = (typeof PixelFormat)[keyof typeof PixelFormat];
export type PixelFormatName = 'rgb8' | 'argb32';

export function pixelFormatCode(name: PixelFormatName): PixelFormatCode {
  return name === 'rgb8' ? PixelFormat.RGB8 : PixelFormat.ARGB32;
}

export function bytesPerPixel(format: PixelFormatCode): number {
  return format === PixelFormat.RGB8 ? 3 : 4;
}

export interface TileFrameHeader {
  format: PixelFormatCode;
  jobId: number;
  tileId: number;
  width: number;
  height: number;
}

export interface TileFrame extends TileFrameHeader {
  /** View into the received message: width*height*bytesPerPixel bytes. */
  pixels: Uint8Array;
}

export class FrameError extends Error {}

/** Decodes and checks a frame's own consistency; whether the tile was asked for is the session's business. */
export function decodeTileFrame(data: Uint8Array): TileFrame {
  if (data.byteLength < FRAME_HEADER_BYTES) {
    throw new FrameError(`tile frame too short: ${data.byteLength} bytes, the header alone is ${FRAME_HEADER_BYTES}`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint32(0) !== FRAME_MAGIC) throw new FrameError('tile frame does not start with the magic "CBT1"');
  const version = view.getUint8(4);
  if (version !== FRAME_VERSION) throw new FrameError(`tile frame header version ${version} is not supported (expected ${FRAME_VERSION})`);
  const format = view.getUint8(5);
  if (format !== PixelFormat.RGB8 && format !== PixelFormat.ARGB32) {
    throw new FrameError(`unknown pixel format ${format} (1 = RGB8, 2 = ARGB32)`);
  }
  const jobId = view.getUint32(8);
  const tileId = view.getUint32(12);
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const expected = width * height * bytesPerPixel(format);
  const actual = data.byteLength - FRAME_HEADER_BYTES;
  if (width === 0 || height === 0 || actual !== expected) {
    throw new FrameError(`tile frame for job ${jobId} tile ${tileId}: ${width}x${height} ${format === 1 ? 'RGB8' : 'ARGB32'} needs ${expected} pixel bytes, got ${actual}`);
  }
  return { format, jobId, tileId, width, height, pixels: data.subarray(FRAME_HEADER_BYTES) };
}

export function encodeTileFrameHeader(h: TileFrameHeader): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, FRAME_MAGIC);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, h.format);
  view.setUint32(8, h.jobId);
  view.setUint32(12, h.tileId);
  view.setUint32(16, h.width);
  view.setUint32(20, h.height);
  return out;
}

/** Header + pixels in one buffer (pixels must already be in the header's format). */
export function encodeTileFrame(h: TileFrameHeader, pixels: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + pixels.byteLength);
  out.set(encodeTileFrameHeader(h), 0);
  out.set(pixels, FRAME_HEADER_BYTES);
  return out;
}
