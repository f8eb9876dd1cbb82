/**
 * Reads the ImageDescription tag (270) of a TIFF's first image, classic or BigTIFF, from the
 * file's first bytes: that is where Aperio (MPP = …) and OME-XML (PhysicalSizeX) keep the pixel size,
 * which libvips does not expose.
 */
import { openSync, readSync, closeSync } from 'node:fs';

function readAt(fd: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  const n = readSync(fd, b, 0, length, offset);
  return b.subarray(0, n);
}

export interface TiffFacts {
  description: string | null;
  /** XResolution in pixels per ResolutionUnit. */
  xResolution: number | null;
  /** 1 none, 2 inch, 3 centimetre (TIFF's default is inch). */
  resolutionUnit: number;
}

/** µm/px from TIFF resolution tags (only centimetre or inch units). */
export function micronsPerPixelFromResolution(f: TiffFacts): number | null {
  if (!f.xResolution || f.xResolution <= 0) return null;
  if (f.resolutionUnit === 3) return 1e4 / f.xResolution;
  if (f.resolutionUnit === 2) return 25400 / f.xResolution;
  return null;
}

export function readImageDescription(path: string): string | null {
  return readTiffFacts(path)?.description ?? null;
}

export function readTiffFacts(path: string): TiffFacts | null {
  const fd = openSync(path, 'r');
  try {
    const head = readAt(fd, 0, 16);
    if (head.length < 8) return null;
    const le = head.toString('latin1', 0, 2) === 'II';
    if (!le && head.toString('latin1', 0, 2) !== 'MM') return null;
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const u64 = (b: Buffer, o: number) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
    const magic = u16(head, 2);
    const big = magic === 43;
    if (magic !== 42 && !big) return null;
    const ifd = big ? u64(head, 8) : u32(head, 4);
    const countBytes = big ? 8 : 2;
    const entrySize = big ? 20 : 12;
    const cb = readAt(fd, ifd, countBytes);
    const count = big ? u64(cb, 0) : u16(cb, 0);
    if (count > 4096) return null;
    const entries = readAt(fd, ifd + countBytes, count * entrySize);
    const facts: TiffFacts = { description: null, xResolution: null, resolutionUnit: 2 };
    for (let i = 0; i < count; i++) {
      const e = i * entrySize;
      const tag = u16(entries, e);
      const n = big ? u64(entries, e + 4) : u32(entries, e + 4);
      const valueAt = e + (big ? 12 : 8);
      const inline = big ? 8 : 4;
      const offset = () => (big ? u64(entries, valueAt) : u32(entries, valueAt));
      if (tag === 270) {
        const data = n <= inline ? entries.subarray(valueAt, valueAt + n) : readAt(fd, offset(), Math.min(n, 4 * 1024 * 1024));
        facts.description = data.toString('latin1').replace(/\0+$/, '');
      } else if (tag === 282) {
        const r = big ? entries.subarray(valueAt, valueAt + 8) : readAt(fd, offset(), 8);
        const den = u32(r, 4);
        facts.xResolution = den > 0 ? u32(r, 0) / den : null;
      } else if (tag === 296) {
        facts.resolutionUnit = u16(entries, valueAt);
      }
    }
    return facts;
  } finally {
    closeSync(fd);
  }
}

/** µm/px from an Aperio or OME-XML description, or null. */
export function micronsPerPixelFromDescription(desc: string | null): number | null {
  if (!desc) return null;
  const aperio = /\|\s*MPP\s*=\s*([0-9.eE+-]+)/.exec(desc);
  if (aperio && Number(aperio[1]) > 0) return Number(aperio[1]);
  const ome = /PhysicalSizeX\s*=\s*"([0-9.eE+-]+)"/.exec(desc);
  if (ome && Number(ome[1]) > 0) {
    const unit = /PhysicalSizeXUnit\s*=\s*"([^"]+)"/.exec(desc)?.[1] ?? 'µm';
    const scale: Record<string, number> = { 'µm': 1, 'um': 1, '\u03bcm': 1, 'nm': 1e-3, 'mm': 1e3 };
    return Number(ome[1]) * (scale[unit] ?? 1);
  }
  return null;
}
