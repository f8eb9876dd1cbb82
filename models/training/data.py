"""CoNSeP loading and Cellpose-style training targets.

Targets per tile (at model resolution):
  flows    float32 [2,H,W]  unit heat-diffusion gradient (dY, dX); the network learns 5x this
  cellprob uint8   [H,W]    1 inside a nucleus
  type     uint8   [H,W]    0 background, 1 Other, 2 Inflammatory, 3 Epithelial, 4 Spindle
Targets are cached under models/training/cache/ (never committed).
"""
import json
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get('CELLBRIDGE_TRAINING_CACHE', os.path.join(HERE, 'cache'))  # elsewhere: packed data (gpu_pack.py)
DATA_ROOT = os.environ.get('CONSEP_ROOT', os.path.normpath(os.path.join(HERE, '..', '..', '..', 'shared', 'data', 'consep')))
CLASS_NAMES = ['Other', 'Inflammatory', 'Epithelial', 'Spindle']


def downscale_instances(inst, factor):
    """Mode of each factor x factor block (ties to the first value in the block); 0 counts too."""
    if factor == 1:
        return inst.copy()
    h, w = inst.shape
    blocks = inst.reshape(h // factor, factor, w // factor, factor).transpose(0, 2, 1, 3).reshape(h // factor, w // factor, factor * factor)
    n = factor * factor
    counts = np.zeros(blocks.shape, np.int32)
    for i in range(n):
        counts += (blocks == blocks[..., i:i + 1])
    best = np.argmax(counts, axis=-1)
    return np.take_along_axis(blocks, best[..., None], axis=-1)[..., 0]


def relabel_components(inst):
    """Keep instance ids; nothing to do here (instance ids may be split by downscaling, kept as one id)."""
    return inst


def heat_flows(inst):
    """Cellpose masks_to_flows (CPU version): heat diffusion from the pixel nearest each mask's median,
    n_iter = 2*(bbox h + bbox w + 2) rounds of 3x3 averaging inside the mask, log(1+T),
    central differences normalised to unit length. Returns [2,H,W] (dY, dX)."""
    H, W = inst.shape
    flows = np.zeros((2, H, W), np.float32)
    ids = np.unique(inst)
    ids = ids[ids > 0]
    for i in ids:
        ys, xs = np.nonzero(inst == i)
        if len(ys) == 0:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
        ly, lx = y1 - y0 + 1, x1 - x0 + 1
        # crop padded by 1 so neighbours outside stay 0
        yy, xx = ys - y0 + 1, xs - x0 + 1
        ymed, xmed = np.median(yy), np.median(xx)
        k = np.argmin((yy - ymed) ** 2 + (xx - xmed) ** 2)
        cy, cx = yy[k], xx[k]
        n_iter = 2 * (ly + lx + 2)
        T = np.zeros((ly + 2, lx + 2), np.float64)
        for _ in range(n_iter):
            T[cy, cx] += 1.0
            s = (T[yy - 1, xx - 1] + T[yy - 1, xx] + T[yy - 1, xx + 1] +
                 T[yy, xx - 1] + T[yy, xx] + T[yy, xx + 1] +
                 T[yy + 1, xx - 1] + T[yy + 1, xx] + T[yy + 1, xx + 1]) / 9.0
            T[yy, xx] = s
        T = np.log(1.0 + T)
        dy = T[yy + 1, xx] - T[yy - 1, xx]
        dx = T[yy, xx + 1] - T[yy, xx - 1]
        norm = np.sqrt(dy * dy + dx * dx) + 1e-20
        flows[0, ys, xs] = dy / norm
        flows[1, ys, xs] = dx / norm
    return flows


def load_split(split, factor=2, root=DATA_ROOT, use_cache=True):
    """Returns dict of arrays: names, images uint8 [N,H,W,3], inst uint16 [N,H,W], flows f32 [N,2,H,W],
    type uint8 [N,H,W]."""
    os.makedirs(CACHE, exist_ok=True)
    cache = os.path.join(CACHE, f'{split}_f{factor}.npz')
    if use_cache and os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    d = os.path.join(root, split)
    labels = json.load(open(os.path.join(d, 'labels.json')))['tiles']
    names = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(d, 'images')) if f.endswith('.jpg'))
    images, insts, flows, types = [], [], [], []
    for n in names:
        img = Image.open(os.path.join(d, 'images', n + '.jpg')).convert('RGB')
        inst = np.array(Image.open(os.path.join(d, 'instances', n + '.png'))).astype(np.int64)
        if factor != 1:
            w, h = img.size
            # PIL's bilinear downscale is antialiased (support scaled with the factor)
            img = img.resize((w // factor, h // factor), Image.BILINEAR)
            inst = downscale_instances(inst, factor)
        inst = inst.astype(np.uint16)
        lab = labels.get(n, {})
        lut = np.zeros(int(inst.max()) + 1 if inst.max() > 0 else 1, np.uint8)
        for k, v in lab.items():
            if int(k) < len(lut):
                lut[int(k)] = int(v)
        typ = lut[inst]
        images.append(np.array(img, np.uint8))
        insts.append(inst)
        flows.append(heat_flows(inst))
        types.append(typ)
    out = {'names': np.array(names), 'images': np.stack(images), 'inst': np.stack(insts),
           'flows': np.stack(flows).astype(np.float32), 'type': np.stack(types)}
    np.savez_compressed(cache, **out)
    return out


if __name__ == '__main__':
    import sys, time
    f = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    for s in ('train', 'test'):
        t = time.time()
        d = load_split(s, f)
        print(s, d['images'].shape, 'classes px', np.bincount(d['type'].ravel(), minlength=5), f'{time.time()-t:.1f}s')
