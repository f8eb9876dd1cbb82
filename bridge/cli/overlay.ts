/**
 * `cellbridge overlay`: draws detections (GeoJSON) over a region of a slide into a PNG, with a
 * colour legend below the picture, to look at results without QuPath.
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { SlideReader } from '../images/slide-reader';
import { numFlag, parseCommand, UsageError } from './args';
import { OVERLAY } from './specs';

export const MIN_SCALE = 0.25;
export const MAX_SCALE = 4;
/** Largest picture written (output pixels): a whole slide at scale 4 would be gigabytes of raw pixels. */
const MAX_OUTPUT_PIXELS = 120_000_000;

export interface Rect { x: number; y: number; width: number; height: number }

/** The part of a requested region that lies inside the image, or null when none does. */
export function clipRegion(r: Rect, imageWidth: number, imageHeight: number): Rect | null {
  const x0 = Math.max(0, r.x), y0 = Math.max(0, r.y);
  const x1 = Math.min(imageWidth, r.x + r.width), y1 = Math.min(imageHeight, r.y + r.height);
  return x1 > x0 && y1 > y0 ? { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } : null;
}

export function parseRegion(text: string): Rect {
  const parts = text.split(',').map((s) => Number(s.trim()));
  const [x, y, width, height] = parts;
  if (parts.length !== 4 || !parts.every(Number.isInteger) || width <= 0 || height <= 0) {
    throw new UsageError(`--region must be four integers X,Y,W,H with W and H > 0 (full-resolution pixels), got "${text}"`);
  }
  return { x, y, width, height };
}

interface LegendRow { name: string; color: [number, number, number]; count: number }

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The legend band: a title line, then one row per class (swatch, name, count), as SVG at (0, top). */
export function legendSvg(rows: LegendRow[], total: number, top: number): { svg: string; width: number; height: number } {
  const font = 14, rowH = 20, pad = 8, swatch = 12;
  const title = `Cell Bridge: ${total} cell${total === 1 ? '' : 's'} in this picture`;
  const lines = rows.map((r) => `${r.name}  ${r.count}`);
  // DejaVu Sans averages ~0.6 em per character; the band is sized from that estimate.
  const textW = Math.max(title.length, ...lines.map((l) => l.length + 3)) * font * 0.6;
  const width = Math.ceil(textW + 2 * pad + swatch);
  const height = pad * 2 + rowH * (1 + rows.length);
  const parts = [`<rect x="0" y="${top}" width="100%" height="${height}" fill="white"/>`,
    `<text x="${pad}" y="${top + pad + font}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="${font}" font-weight="bold" fill="black">${escapeXml(title)}</text>`];
  rows.forEach((r, i) => {
    const y = top + pad + rowH * (i + 1);
    parts.push(`<rect x="${pad}" y="${y + 4}" width="${swatch}" height="${swatch}" fill="rgb(${r.color.join(',')})" stroke="black" stroke-width="0.5"/>`);
    parts.push(`<text x="${pad + swatch + 6}" y="${y + font + 1}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="${font}" fill="black">${escapeXml(r.name)}: ${r.count}</text>`);
  });
  return { svg: parts.join(''), width, height };
}

type Ring = [number, number][];
interface Feature { geometry?: { type?: string; coordinates?: unknown }; properties?: { classification?: { name?: string; color?: number[] } } }

/** Outer rings of a Polygon or MultiPolygon. */
function outerRings(geometry: Feature['geometry']): Ring[] {
  if (geometry?.type === 'Polygon') return [(geometry.coordinates as Ring[])[0] ?? []];
  if (geometry?.type === 'MultiPolygon') return (geometry.coordinates as Ring[][]).map((p) => p[0] ?? []);
  return [];
}

export async function overlay(argv: string[]): Promise<number> {
  const parsed = parseCommand(OVERLAY, argv);
  if (parsed.help) return 0;
  const values = parsed.values as { out: string; region?: string; scale?: string; 'no-legend'?: boolean };
  const [imagePath, cellsPath] = parsed.positionals;
  const scale = numFlag(values.scale, 'scale', MIN_SCALE, MAX_SCALE) ?? 2;
  const slide = await SlideReader.open(imagePath);
  const { width: imageW, height: imageH } = slide.info;
  const asked = values.region ? parseRegion(values.region) : { x: 0, y: 0, width: imageW, height: imageH };
  const r = clipRegion(asked, imageW, imageH);
  if (!r) throw new UsageError(`--region ${asked.x},${asked.y},${asked.width},${asked.height} lies outside the image (${imageW}x${imageH} px)`);
  const outW = Math.max(1, Math.round(r.width * scale)), outH = Math.max(1, Math.round(r.height * scale));
  if (outW * outH > MAX_OUTPUT_PIXELS) throw new UsageError(`the picture would be ${outW}x${outH} px; choose a smaller --region or --scale`);
  // Drawing scale per axis: the rounded output size over the region (exact for integer sizes).
  const sx = outW / r.width, sy = outH / r.height;

  let fc: { features?: Feature[] };
  try { fc = JSON.parse(readFileSync(cellsPath, 'utf8')); } catch (err) { throw new UsageError(`${cellsPath}: not readable GeoJSON (${(err as Error).message})`); }
  const paths: string[] = [];
  const legend = new Map<string, LegendRow>();
  const stroke = Math.min(2, Math.max(0.5, 0.75 * scale)).toFixed(2);
  for (const f of fc.features ?? []) {
    const rings = outerRings(f.geometry).filter((ring) => ring.length >= 3);
    const xs = rings.flatMap((ring) => ring.map((p) => p[0])), ys = rings.flatMap((ring) => ring.map((p) => p[1]));
    if (xs.length === 0 || Math.max(...xs) < r.x || Math.min(...xs) > r.x + r.width || Math.max(...ys) < r.y || Math.min(...ys) > r.y + r.height) continue;
    const name = f.properties?.classification?.name ?? 'Unclassified';
    const c = f.properties?.classification?.color;
    const color: [number, number, number] = Array.isArray(c) && c.length >= 3 ? [c[0], c[1], c[2]] : [255, 255, 0];
    const row = legend.get(name) ?? { name, color, count: 0 };
    row.count++;
    legend.set(name, row);
    const d = rings.map((ring) => ring.map(([px, py], i) => `${i ? 'L' : 'M'}${((px - r.x) * sx).toFixed(1)},${((py - r.y) * sy).toFixed(1)}`).join('') + 'Z').join('');
    paths.push(`<path d="${d}" fill="none" stroke="rgb(${color.join(',')})" stroke-width="${stroke}"/>`);
  }
  const rows = [...legend.values()].sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
  const band = values['no-legend'] ? null : legendSvg(rows, paths.length, outH);
  const canvasW = Math.max(outW, band?.width ?? 0), canvasH = outH + (band?.height ?? 0);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${canvasW}" height="${canvasH}">` +
    `<svg width="${outW}" height="${outH}">${paths.join('')}</svg>${band?.svg ?? ''}</svg>`;
  const rgb = await slide.readRegion(r.x, r.y, r.width, r.height, outW, outH);
  const jpeg = /\.jpe?g$/i.test(values.out);
  await sharp({ create: { width: canvasW, height: canvasH, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite([
      { input: Buffer.from(rgb), raw: { width: outW, height: outH, channels: 3 }, top: 0, left: 0 },
      { input: Buffer.from(svg), top: 0, left: 0 },
    ])
    // PNG stays lossless (a quality option would turn on palette quantisation).
    .toFormat(jpeg ? sharp.format.jpeg : sharp.format.png, jpeg ? { quality: 90 } : {})
    .toFile(values.out);
  process.stdout.write(JSON.stringify({
    out: values.out, width: canvasW, height: canvasH, region: [r.x, r.y, r.width, r.height], clipped: r.x !== asked.x || r.y !== asked.y || r.width !== asked.width || r.height !== asked.height,
    scale, cells: paths.length, counts: Object.fromEntries(rows.map((row) => [row.name, row.count])),
  }) + '\n');
  return 0;
}
