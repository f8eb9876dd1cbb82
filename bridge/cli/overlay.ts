/** `cellbridge overlay`: draws detections (GeoJSON) over a region of a slide into a PNG, to look at results. */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { SlideReader } from '../images/slide-reader';
import { UsageError } from './args';

export const OVERLAY_USAGE = `cellbridge overlay IMAGE CELLS.geojson --region X,Y,W,H --out OUT.png [--scale 2]`;

export async function overlay(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { region: { type: 'string' }, out: { type: 'string' }, scale: { type: 'string' } }, allowPositionals: true, strict: true });
  if (positionals.length !== 2 || !values.out || !values.region) throw new UsageError('overlay needs IMAGE CELLS.geojson --region X,Y,W,H --out OUT.png');
  const [x, y, w, h] = values.region.split(',').map(Number);
  if (![x, y, w, h].every((v) => Number.isInteger(v) && v >= 0) || w === 0 || h === 0) throw new UsageError('--region must be four integers X,Y,W,H');
  const scale = Number(values.scale ?? 2);
  const slide = await SlideReader.open(positionals[0]);
  const rgb = await slide.readRegion(x, y, w, h, w * scale, h * scale);
  const fc = JSON.parse(readFileSync(positionals[1], 'utf8'));
  const paths: string[] = [];
  for (const f of fc.features ?? []) {
    const ring: number[][] = f.geometry?.coordinates?.[0] ?? [];
    if (!ring.some(([px, py]) => px >= x && px <= x + w && py >= y && py <= y + h)) continue;
    const [r, g, b] = f.properties?.classification?.color ?? [255, 255, 0];
    const d = ring.map(([px, py], i) => `${i ? 'L' : 'M'}${((px - x) * scale).toFixed(1)},${((py - y) * scale).toFixed(1)}`).join('') + 'Z';
    paths.push(`<path d="${d}" fill="none" stroke="rgb(${r},${g},${b})" stroke-width="1.5"/>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w * scale}" height="${h * scale}">${paths.join('')}</svg>`;
  await sharp(Buffer.from(rgb), { raw: { width: w * scale, height: h * scale, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png().toFile(values.out);
  process.stdout.write(JSON.stringify({ out: values.out, cells: paths.length }) + '\n');
  return 0;
}
