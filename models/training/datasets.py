"""All training sets of model v2 (CoNSeP, MoNuSeg 2018, CPM-15) in one form, cached.

Every set lives in ../shared/data/<set>/{train,test}/{images,instances,labels.json} (CoNSeP JPEG
tiles, the others PNG), 256x256 at ~0.25 um/px. Per tile this returns, besides the targets at model
resolution that data.py computes (image, inst, flows, type at 0.5 um/px), the original 40x image:
the scale augmentation resamples from it, as a slide scanned at 40x would be.

type: 0 background, 1..4 CoNSeP classes, UNKNOWN (255) = a nucleus without a class (MoNuSeg,
CPM-15: labels.json says class 0 "Unknown"). The classification loss leaves UNKNOWN pixels out of
the class choice (they only say "not background").
Caches under models/training/cache/ (git-ignored).
"""
import json
import os
from multiprocessing import Pool

import numpy as np
from PIL import Image

from data import downscale_instances, heat_flows, CACHE

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get('CELLBRIDGE_DATA', os.path.normpath(os.path.join(HERE, '..', '..', '..', 'shared', 'data')))
SETS = ('consep', 'monuseg', 'cpm15')
UNKNOWN = 255

# Whole source images held out of each set's train split for validation / model selection /
# post-processing tuning / temperature calibration. Test splits are never read by training.
VAL_IMAGES = {
    'consep': ('train_3', 'train_12', 'train_22'),
    'monuseg': ('TCGA-21-5786-01Z-00-DX1', 'TCGA-B0-5711-01Z-00-DX1', 'TCGA-E2-A14V-01Z-00-DX1'),
    'cpm15': ('cpm15_image02', 'cpm15_image10'),
}


def image_of(tile):
    return tile.rsplit('_', 1)[0]


def _tile(args):
    d, n, ext, lab, factor = args
    img40 = Image.open(os.path.join(d, 'images', n + ext)).convert('RGB')
    inst40 = np.array(Image.open(os.path.join(d, 'instances', n + '.png'))).astype(np.int64)
    w, h = img40.size
    img = img40.resize((w // factor, h // factor), Image.BILINEAR)  # antialiased, as v1
    inst = downscale_instances(inst40, factor).astype(np.uint16)
    lut = np.zeros(int(inst.max()) + 1 if inst.max() > 0 else 1, np.uint8)
    for k, v in lab.items():
        if int(k) < len(lut):
            lut[int(k)] = UNKNOWN if int(v) == 0 else int(v)
    # an instance missing from labels.json has no class either
    known = np.zeros(len(lut), bool)
    for k in lab:
        if int(k) < len(lut):
            known[int(k)] = True
    lut[1:][~known[1:]] = UNKNOWN
    typ = lut[inst]
    return np.array(img40, np.uint8), np.array(img, np.uint8), inst, heat_flows(inst), typ


def load_set(name, split, factor=2, processes=None):
    """dict: names, img40 uint8 [N,256,256,3], images uint8 [N,128,128,3], inst uint16, flows f32 [N,2,h,w],
    type uint8 (0 bg, 1..4, 255 unknown)."""
    os.makedirs(CACHE, exist_ok=True)
    cache = os.path.join(CACHE, f'{name}_{split}_f{factor}_v2.npz')
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    d = os.path.join(SHARED, name, split)
    labels = json.load(open(os.path.join(d, 'labels.json')))['tiles']
    files = sorted(os.listdir(os.path.join(d, 'images')))
    ext = os.path.splitext(files[0])[1]
    names = [os.path.splitext(f)[0] for f in files if f.endswith(ext)]
    jobs = [(d, n, ext, labels.get(n, {}), factor) for n in names]
    with Pool(processes or min(16, os.cpu_count() or 2)) as p:
        rows = p.map(_tile, jobs, chunksize=8)
    out = {'names': np.array(names), 'img40': np.stack([r[0] for r in rows]), 'images': np.stack([r[1] for r in rows]),
           'inst': np.stack([r[2] for r in rows]), 'flows': np.stack([r[3] for r in rows]).astype(np.float32),
           'type': np.stack([r[4] for r in rows])}
    np.savez(cache, **out)
    return out


def split_val(name, d):
    is_val = np.array([image_of(str(n)) in VAL_IMAGES[name] for n in d['names']])
    return {k: v[~is_val] for k, v in d.items()}, {k: v[is_val] for k, v in d.items()}


if __name__ == '__main__':
    import time
    for s in SETS:
        t = time.time()
        d = load_set(s, 'train')
        tr, va = split_val(s, d)
        print(s, d['images'].shape, 'train', len(tr['names']), 'val', len(va['names']),
              'type px', np.bincount(d['type'].ravel(), minlength=256)[[0, 1, 2, 3, 4, 255]], f'{time.time() - t:.1f}s', flush=True)
