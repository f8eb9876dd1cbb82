/**
 * Reader for an evaluation split laid out like ../shared/data/consep/<split>/ (see shared/data/README.md):
 *   images/<tile>.jpg|.jpeg|.png   RGB tile (CoNSeP: JPEG; MoNuSeg, CPM-15: PNG)
 *   instances/<tile>.png           16-bit greyscale instance map, 0 = background
 *   labels.json                    { classes: { <class id>: <name> }, tiles: { <tile>: { <instance id>: <class id> } } }
 * Class id 0 ("Unknown") means "no class": such instances count for the binary metrics only, and a
 * split where no instance has another class (MoNuSeg, CPM-15) is evaluated with binary metrics only.
 * Where the tiles came from (to stitch them back into whole images) is in stitch.ts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';

/** A problem with the data set that the user has to fix (reported without a stack trace). */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

export interface DatasetIndex {
  dir: string;
  /** Class id -> class name, from labels.json, without id 0 (Unknown); empty when no instance has a class. */
  classes: Map<number, string>;
  /** True when no instance of the split has a class other than 0 (binary metrics only). */
  binaryOnly: boolean;
  /** Tile names (without extension), sorted. */
  tiles: string[];
  /** Image file name of each tile (its extension varies between data sets). */
  imageFile: Map<string, string>;
  /** Per tile: instance id -> class id. */
  labels: Map<string, Map<number, number>>;
}

export interface Tile {
  name: string;
  width: number;
  height: number;
  /** Interleaved RGB, width * height * 3. */
  rgb: Uint8Array;
  /** GT instance map, 0 = background. */
  instances: Int32Array;
  /** GT instance id -> class id (ids missing from labels.json are absent). */
  classOf: Map<number, number>;
}

/** Check the layout and read labels.json. Throws DatasetError with a readable message. */
export function openDataset(dir: string): DatasetIndex {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new DatasetError(`evaluation data not found: ${dir} is not a directory (expected images/, instances/ and labels.json, e.g. ../shared/data/consep/test; choose another with --data DIR)`);
  }
  for (const sub of ['images', 'instances']) {
    const p = path.join(dir, sub);
    if (!existsSync(p) || !statSync(p).isDirectory()) throw new DatasetError(`evaluation data incomplete: ${p} is missing`);
  }
  const labelsPath = path.join(dir, 'labels.json');
  if (!existsSync(labelsPath)) throw new DatasetError(`evaluation data incomplete: ${labelsPath} is missing`);
  let raw: { classes?: Record<string, string>; tiles?: Record<string, Record<string, number>> };
  try {
    raw = JSON.parse(readFileSync(labelsPath, 'utf8'));
  } catch (e) {
    throw new DatasetError(`cannot parse ${labelsPath}: ${(e as Error).message}`);
  }
  if (!raw || typeof raw.classes !== 'object' || typeof raw.tiles !== 'object') {
    throw new DatasetError(`${labelsPath} must hold { classes: {...}, tiles: {...} }`);
  }
  const labels = new Map<string, Map<number, number>>();
  const used = new Set<number>();
  for (const [tile, inst] of Object.entries(raw.tiles)) {
    // Class 0 is "Unknown" (no class): leave those instances out of the map, as if unlabelled.
    const m = new Map(Object.entries(inst).map(([k, v]) => [Number(k), Number(v)] as [number, number]).filter(([, v]) => v !== 0));
    for (const v of m.values()) used.add(v);
    labels.set(tile, m);
  }
  const binaryOnly = used.size === 0;
  const classes = new Map<number, string>();
  if (!binaryOnly) {
    for (const [id, name] of Object.entries(raw.classes)) if (Number(id) !== 0) classes.set(Number(id), String(name));
  }
  const imageFile = new Map<string, string>();
  for (const f of readdirSync(path.join(dir, 'images'))) {
    const ext = IMAGE_EXTENSIONS.find((e) => f.toLowerCase().endsWith(e));
    if (!ext) continue;
    const t = f.slice(0, -ext.length);
    if (imageFile.has(t)) throw new DatasetError(`two images for tile ${t} in ${path.join(dir, 'images')}: ${imageFile.get(t)} and ${f}`);
    if (existsSync(path.join(dir, 'instances', `${t}.png`))) imageFile.set(t, f);
  }
  const tiles = [...imageFile.keys()].sort();
  if (tiles.length === 0) throw new DatasetError(`no tiles in ${dir} (images/<tile>.jpg or .png with instances/<tile>.png)`);
  return { dir, classes, binaryOnly, tiles, imageFile, labels };
}

const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'];

/** Read one tile's image and GT. */
export async function readTile(ds: DatasetIndex, name: string): Promise<Tile> {
  const file = ds.imageFile.get(name);
  if (!file) throw new DatasetError(`no image for tile ${name} in ${path.join(ds.dir, 'images')}`);
  const imgPath = path.join(ds.dir, 'images', file);
  const instPath = path.join(ds.dir, 'instances', `${name}.png`);
  const img = await sharp(imgPath).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (img.info.channels !== 3) throw new DatasetError(`${imgPath}: expected 3 channels, got ${img.info.channels}`);
  const inst = await sharp(instPath).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  const { width, height } = img.info;
  if (inst.info.width !== width || inst.info.height !== height) {
    throw new DatasetError(`${name}: image is ${width}x${height} but the instance map is ${inst.info.width}x${inst.info.height}`);
  }
  if (inst.info.channels !== 1) throw new DatasetError(`${instPath}: expected 1 channel, got ${inst.info.channels}`);
  const n = width * height;
  // sharp returns native-endian 16-bit samples; copy when the Buffer is not 2-byte aligned.
  const src = inst.data.byteOffset % 2 === 0 ? inst.data : new Uint8Array(inst.data);
  const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
  const instances = new Int32Array(n);
  for (let i = 0; i < n; i++) instances[i] = u16[i];
  // A private copy: the daemon may transfer (detach) the buffer to a worker thread.
  const rgb = new Uint8Array(img.data.subarray(0, n * 3));
  return { name, width, height, rgb, instances, classOf: ds.labels.get(name) ?? new Map() };
}
