/**
 * Whole source images from an evaluation split's tiles, so PQ can be computed per image as HoVer-Net
 * reports it (a nucleus cut by a tile border is one nucleus again, and the model sees the whole image).
 *
 * Where each tile sits (`tileLayout`):
 *  - `<split>/../source_images.json` (MoNuSeg, CPM-15): `{ <image>: { split, tiles: [[tile, x, y], ...] } }`;
 *  - otherwise (CoNSeP: 1000x1000 images, 16 tiles of 256² named `<image>_000`..`_015`; `consepLayout`)
 *    tiles 0-8 form a row-major 3 x 3 grid at a stride of 256, 9-11 the bottom row and 12-14 the right
 *    column flush with the image's edge (y or x = 744: 24 px over the grid), 15 the corner. Measured on
 *    train_1, train_20 and test_10: each 24-px overlap agrees to 1.5-2.8 grey levels (neighbouring
 *    columns inside a tile differ by ~8, unrelated tiles by 25-45), and every other neighbour pair joins
 *    at that 8-10 level. (Until 2026-12-03 this read a row-major 4 x 4 grid of adjacent tiles: the
 *    "per image" CoNSeP figures before then were measured on scrambled mosaics.)
 *
 * Ground-truth instances (`stitchTiles`): tile ids are made unique, then joined (union-find) where
 * tiles overlap (two ids on the same image pixel are the same nucleus) and, across a border between
 * tiles that only touch, where the two parts line up: an instance pair is joined when its contact along
 * the border is more than half of the longer of the two parts' extents along it (a nucleus cut in two;
 * two different nuclei that merely touch at the border rarely line up like that). Pure functions, no I/O.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { DatasetIndex, Tile } from './dataset';

export interface TilePlacement { tile: string; x: number; y: number }
export interface SourceImage { name: string; tiles: TilePlacement[] }
export interface TileLayout { images: SourceImage[]; source: string }

/** The source images of the split's tiles, or null when their placement is unknown. */
export function tileLayout(ds: Pick<DatasetIndex, 'dir' | 'tiles'>): TileLayout | null {
  const present = new Set(ds.tiles);
  const json = path.join(ds.dir, '..', 'source_images.json');
  if (existsSync(json)) {
    const raw = JSON.parse(readFileSync(json, 'utf8')) as Record<string, { tiles?: Array<[string, number, number]> }>;
    const images: SourceImage[] = [];
    for (const [name, v] of Object.entries(raw)) {
      const tiles = (v.tiles ?? []).filter(([t]) => present.has(t)).map(([tile, x, y]) => ({ tile, x, y }));
      if (tiles.length) images.push({ name, tiles });
    }
    return images.length ? { images: images.sort((a, b) => a.name.localeCompare(b.name)), source: 'source_images.json' } : null;
  }
  return consepLayout(ds.tiles);
}

/** CoNSeP's tile layout (see the module comment): 16 tiles `<image>_<k>`, k = 0..15, over an `imageSize`² image. */
export function consepLayout(tiles: readonly string[], imageSize = 1000, tileSize = 256): TileLayout | null {
  const edge = imageSize - tileSize;
  if (edge < 0 || edge > 3 * tileSize) return null;
  const xy: Array<[number, number]> = [];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) xy.push([c * tileSize, r * tileSize]);
  for (let c = 0; c < 3; c++) xy.push([c * tileSize, edge]);
  for (let r = 0; r < 3; r++) xy.push([edge, r * tileSize]);
  xy.push([edge, edge]);
  const groups = new Map<string, Map<number, string>>();
  for (const t of tiles) {
    const m = /^(.*)_(\d+)$/.exec(t);
    if (!m) return null;
    if (!groups.has(m[1])) groups.set(m[1], new Map());
    groups.get(m[1])!.set(Number(m[2]), t);
  }
  const images: SourceImage[] = [];
  for (const [name, byIndex] of groups) {
    if (byIndex.size !== xy.length) return null;
    const placed: TilePlacement[] = [];
    for (let k = 0; k < xy.length; k++) {
      const tile = byIndex.get(k);
      if (!tile) return null;
      placed.push({ tile, x: xy[k][0], y: xy[k][1] });
    }
    images.push({ name, tiles: placed });
  }
  return {
    images: images.sort((a, b) => a.name.localeCompare(b.name)),
    source: `CoNSeP layout: 3x3 grid of ${tileSize}² tiles, bottom row, right column and corner flush with the ${imageSize}² image's edge`,
  };
}

export interface StitchedImage extends Tile {
  /** Image pixels covered by more than one tile, and how many of them disagree on nucleus vs background. */
  overlapPixels: number;
  overlapDisagreements: number;
  /** Instance pairs joined across borders where tiles only touch. */
  seamJoins: number;
}

/** Stitch tiles placed at (x, y); the first tile to cover a pixel keeps it (RGB and label). */
export function stitchTiles(name: string, placed: ReadonlyArray<{ x: number; y: number; tile: Tile }>): StitchedImage {
  let width = 0, height = 0;
  for (const p of placed) { width = Math.max(width, p.x + p.tile.width); height = Math.max(height, p.y + p.tile.height); }
  const rgb = new Uint8Array(width * height * 3).fill(255);
  const ids = new Int32Array(width * height);
  const owner = new Int32Array(width * height).fill(-1);
  const parent: number[] = [0];
  const find = (a: number): number => { while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; } return a; };
  const union = (a: number, b: number) => { const ra = find(a), rb = find(b); if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb); };
  const globalClass = new Map<number, number>();
  let overlapPixels = 0, overlapDisagreements = 0;
  placed.forEach((p, k) => {
    const t = p.tile;
    let maxId = 0;
    for (const v of t.instances) if (v > maxId) maxId = v;
    const offset = parent.length - 1;
    for (let i = 1; i <= maxId; i++) parent.push(offset + i);
    for (const [id, c] of t.classOf) if (id >= 1 && id <= maxId) globalClass.set(offset + id, c);
    for (let r = 0; r < t.height; r++) {
      for (let c = 0; c < t.width; c++) {
        const j = (p.y + r) * width + p.x + c;
        const v = t.instances[r * t.width + c];
        const g = v > 0 ? offset + v : 0;
        if (owner[j] >= 0) {
          overlapPixels++;
          if ((ids[j] > 0) !== (g > 0)) overlapDisagreements++;
          if (ids[j] > 0 && g > 0) union(ids[j], g);
          else if (g > 0) ids[j] = g;
          continue;
        }
        owner[j] = k;
        ids[j] = g;
        const s = 3 * (r * t.width + c);
        rgb.set(t.rgb.subarray(s, s + 3), 3 * j);
      }
    }
  });
  const seamJoins = joinAcrossSeams(ids, owner, width, height, find, union);
  // Compact ids 1..n; the class of a joined nucleus is that of its first part with a class.
  const compact = new Map<number, number>();
  const instances = new Int32Array(width * height);
  const classOf = new Map<number, number>();
  for (let j = 0; j < ids.length; j++) {
    if (ids[j] === 0) continue;
    const root = find(ids[j]);
    let id = compact.get(root);
    if (id === undefined) { id = compact.size + 1; compact.set(root, id); }
    instances[j] = id;
  }
  for (const [g, c] of [...globalClass.entries()].sort((a, b) => a[0] - b[0])) {
    const id = compact.get(find(g));
    if (id !== undefined && !classOf.has(id)) classOf.set(id, c);
  }
  return { name, width, height, rgb, instances, classOf, overlapPixels, overlapDisagreements, seamJoins };
}

/** Join instance parts that line up across borders between tiles that touch without overlapping. */
function joinAcrossSeams(ids: Int32Array, owner: Int32Array, width: number, height: number,
  find: (a: number) => number, union: (a: number, b: number) => void): number {
  const contact = new Map<string, number>();
  const extent = new Map<string, number>(); // `${id}|${direction}` -> pixels of the part on the border
  const visit = (a: number, b: number, dir: string) => {
    if (owner[a] === owner[b] || owner[a] < 0 || owner[b] < 0) return;
    const ia = ids[a], ib = ids[b];
    if (ia > 0) extent.set(`${ia}|${dir}a`, (extent.get(`${ia}|${dir}a`) ?? 0) + 1);
    if (ib > 0) extent.set(`${ib}|${dir}b`, (extent.get(`${ib}|${dir}b`) ?? 0) + 1);
    if (ia > 0 && ib > 0 && find(ia) !== find(ib)) {
      const key = `${ia},${ib},${dir}`;
      contact.set(key, (contact.get(key) ?? 0) + 1);
    }
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const j = y * width + x;
      if (x + 1 < width) visit(j, j + 1, 'h');
      if (y + 1 < height) visit(j, j + width, 'v');
    }
  }
  let joins = 0;
  for (const [key, n] of contact) {
    const [a, b, dir] = key.split(',');
    const longer = Math.max(extent.get(`${a}|${dir}a`) ?? 0, extent.get(`${b}|${dir}b`) ?? 0);
    if (n > 0.5 * longer && find(Number(a)) !== find(Number(b))) { union(Number(a), Number(b)); joins++; }
  }
  return joins;
}
