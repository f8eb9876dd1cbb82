"""Whole source images for training: each training image's tiles stitched back together.

The sets come as 256x256 tiles at 40x (128x128 at the model's 0.5 um/px), so a tile-based crop can
never be larger than the 128x128 tile that `npm run eval` feeds the model, and a crop never spans a
tile border. Stitched, a crop can be as large as wanted (with room for the scale jitter) and sees
nuclei that a tile border cuts.

Where the tiles sit: `<set>/source_images.json` (MoNuSeg, CPM-15) or, for CoNSeP (1000x1000 images, 16
tiles each; `consep_layout`), tiles 0-8 a row-major 3x3 grid at a stride of 256, 9-11 the bottom row and
12-14 the right column flush with the image's edge (x or y = 744, overlapping the grid by 24 px), 15 the
corner: measured on train_1, train_20 and test_10 (the 24-px overlaps agree to 1.5-2.8 grey levels, less
than neighbouring columns inside a tile; the same as bridge/eval/stitch.ts). Instances are joined the way
stitch.ts joins them: two ids on the same pixel of an overlap are one nucleus; across a border between
tiles that only touch, two parts are one nucleus when their contact along the border is more than half
of the longer part's extent along it. Classes: the first part's (UNKNOWN where a set has none).
Cached under models/training/cache/ (git-ignored).
"""
import json
import os
from multiprocessing import Pool

import numpy as np
from PIL import Image

from data import downscale_instances, heat_flows, CACHE
from datasets import SHARED, UNKNOWN, VAL_IMAGES, image_of

TILE = 256
CONSEP_SIZE = 1000


def consep_layout(image, size=CONSEP_SIZE, tile=TILE):
    """[(tile, x, y)] of a CoNSeP image's 16 tiles (see the module comment)."""
    edge = size - tile
    xy = [(c * tile, r * tile) for r in range(3) for c in range(3)]
    xy += [(c * tile, edge) for c in range(3)] + [(edge, r * tile) for r in range(3)] + [(edge, edge)]
    return [(f'{image}_{k:03d}', x, y) for k, (x, y) in enumerate(xy)]


def layout(name, split):
    """{image: [(tile, x, y), ...]} at 40x."""
    d = os.path.join(SHARED, name)
    js = os.path.join(d, 'source_images.json')
    if os.path.exists(js):
        raw = json.load(open(js))
        return {k: [tuple(t) for t in v['tiles']] for k, v in raw.items() if v.get('split') == split}
    tiles = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(d, split, 'images')))
    groups = {}
    for t in tiles:
        groups.setdefault(image_of(t), []).append(t)
    out = {}
    for img, ts in groups.items():
        out[img] = consep_layout(img)
        assert sorted(t for t, _, _ in out[img]) == sorted(ts), f'{img}: tiles are not <image>_000..015'
    return out


class UnionFind:
    def __init__(self):
        self.parent = [0]

    def add(self, n):
        base = len(self.parent) - 1
        self.parent.extend(range(base + 1, base + n + 1))
        return base

    def find(self, a):
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _pairs(a, b):
    """Unique (a, b) pairs with both > 0 and their counts."""
    m = (a > 0) & (b > 0)
    if not m.any():
        return []
    pr, cnt = np.unique(np.stack([a[m], b[m]], 1), axis=0, return_counts=True)
    return [(int(x), int(y), int(c)) for (x, y), c in zip(pr, cnt)]


def _seam_joins(ids, owner, uf):
    """Join parts that line up across borders between tiles that touch (stitch.ts joinAcrossSeams)."""
    joins = []
    for a, b, oa, ob in ((ids[:, :-1], ids[:, 1:], owner[:, :-1], owner[:, 1:]),
                         (ids[:-1], ids[1:], owner[:-1], owner[1:])):
        seam = (oa != ob) & (oa >= 0) & (ob >= 0)
        ea = np.bincount(a[seam], minlength=ids.max() + 1)
        eb = np.bincount(b[seam], minlength=ids.max() + 1)
        for x, y, c in _pairs(np.where(seam, a, 0), np.where(seam, b, 0)):
            if uf.find(x) != uf.find(y) and c > 0.5 * max(ea[x], eb[y]):
                joins.append((x, y))
    for x, y in joins:
        uf.union(x, y)
    return len(joins)


def stitch(name, split, placed, labels):
    """rgb40 uint8 [H,W,3], instances int32 (joined, 1..n), class per instance (index = id; UNKNOWN if none),
    number of seam joins."""
    d = os.path.join(SHARED, name, split)
    ext = '.jpg' if os.path.exists(os.path.join(d, 'images', placed[0][0] + '.jpg')) else '.png'
    W = max(x for _, x, _ in placed) + TILE
    H = max(y for _, _, y in placed) + TILE
    rgb = np.full((H, W, 3), 255, np.uint8)
    ids = np.zeros((H, W), np.int64)
    owner = np.full((H, W), -1, np.int64)
    uf = UnionFind()
    cls_of = {}
    for k, (t, x, y) in enumerate(placed):
        im = np.array(Image.open(os.path.join(d, 'images', t + ext)).convert('RGB'))
        inst = np.array(Image.open(os.path.join(d, 'instances', t + '.png'))).astype(np.int64)
        h, w = inst.shape
        base = uf.add(int(inst.max()))
        for iid, c in labels.get(t, {}).items():
            if 1 <= int(iid) <= inst.max():
                cls_of[base + int(iid)] = int(c)
        g = np.where(inst > 0, inst + base, 0)
        sl = (slice(y, y + h), slice(x, x + w))
        taken = owner[sl] >= 0
        for a, b, _ in _pairs(np.where(taken, ids[sl], 0), np.where(taken, g, 0)):
            uf.union(a, b)
        fill = taken & (ids[sl] == 0) & (g > 0)
        ids[sl][fill] = g[fill]
        new = ~taken
        ids[sl][new] = g[new]
        owner[sl][new] = k
        rgb[sl][new] = im[new]
    joins = _seam_joins(ids, owner, uf)
    roots = np.array([uf.find(i) for i in range(len(uf.parent))])
    r = roots[ids]
    uniq, inv = np.unique(r, return_inverse=True)
    inst = inv.reshape(r.shape).astype(np.int32)  # root 0 (background) is uniq[0] -> 0
    cls = np.full(len(uniq), UNKNOWN, np.uint8)
    cls[0] = 0
    pos = {int(u): i for i, u in enumerate(uniq)}
    for gid in sorted(cls_of):
        i = pos.get(int(roots[gid]))
        if i is not None and i > 0 and cls[i] == UNKNOWN and cls_of[gid] != 0:
            cls[i] = cls_of[gid]
    return rgb, inst, cls, joins


def _source(args):
    name, split, image, placed, labels, factor = args
    rgb40, inst40, cls, _ = stitch(name, split, placed, labels)
    H, W = (inst40.shape[0] // factor) * factor, (inst40.shape[1] // factor) * factor
    rgb40, inst40 = rgb40[:H, :W], inst40[:H, :W]
    img = np.array(Image.fromarray(rgb40).resize((W // factor, H // factor), Image.BILINEAR), np.uint8)
    inst = downscale_instances(inst40, factor)
    return image, rgb40, img, inst.astype(np.uint16), heat_flows(inst).astype(np.float32), cls[inst]


def load_sources(name, split='train', factor=2, processes=2):
    """{image: {'img40', 'images', 'inst', 'flows', 'type'}} (one whole source image each; model-resolution maps)."""
    os.makedirs(CACHE, exist_ok=True)
    cache = os.path.join(CACHE, f'{name}_{split}_f{factor}_sources_v1.npz')
    keys = ('img40', 'images', 'inst', 'flows', 'type')
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        images = [str(n) for n in z['names']]
        return {n: {k: z[f'{k}__{i}'] for k in keys} for i, n in enumerate(images)}
    labels = json.load(open(os.path.join(SHARED, name, split, 'labels.json')))['tiles']
    lay = layout(name, split)
    jobs = [(name, split, im, placed, labels, factor) for im, placed in sorted(lay.items())]
    with Pool(processes) as p:
        rows = p.map(_source, jobs, chunksize=1)
    out, flat = {}, {'names': np.array([r[0] for r in rows])}
    for i, r in enumerate(rows):
        out[r[0]] = dict(zip(keys, r[1:6]))
        for k, v in zip(keys, r[1:6]):
            flat[f'{k}__{i}'] = v
    np.savez(cache, **flat)
    return out


def training_sources(name):
    """The train split's source images minus the held-out validation images (datasets.VAL_IMAGES)."""
    return {k: v for k, v in load_sources(name).items() if k not in VAL_IMAGES[name]}


if __name__ == '__main__':
    import sys
    import time
    for s in sys.argv[1:] or ('consep', 'monuseg', 'cpm15'):
        t = time.time()
        src = load_sources(s)
        n_inst = sum(int(v['inst'].max()) for v in src.values())
        print(s, len(src), 'images', sorted({v['images'].shape for v in src.values()})[:3], 'instances (20x)', n_inst,
              'type px', np.bincount(np.concatenate([v['type'].ravel() for v in src.values()]), minlength=256)[[0, 1, 2, 3, 4, 255]],
              f'{time.time() - t:.1f}s', flush=True)
