"""Final evaluation on CoNSeP test (use once, after training) with the Python reference post-processing.

  /usr/bin/python3 models/training/evaluate.py --ckpt models/training/runs/cellbridge-he-v1/best.pt \
      --card models/cellbridge-he-v1/card.json [--json out.json]

Reports PQ (IoU > 0.5, accumulated over all tiles) at model resolution (against the mode-downscaled
ground truth) and at the original 40x resolution (labels upscaled by nearest neighbour, against the
original 256x256 instance maps) -- the latter is what the project's TypeScript eval measures, up to the
bridge's own resizing and polygon rasterisation.
"""
import os
# OpenMP threads must sleep, not spin, while waiting: on a shared, oversubscribed CPU the default
# active wait made each training step ~10x slower (measured 2.1 vs 0.23 CPU-s per step).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from data import load_split, DATA_ROOT  # noqa: E402
from model import CellUNet  # noqa: E402
from postprocess_ref import postprocess, PQ, gt_classes  # noqa: E402
from train import predict  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True)
    ap.add_argument('--card', required=True)
    ap.add_argument('--split', default='test')
    ap.add_argument('--json')
    ap.add_argument('--val', action='store_true', help='evaluate the held-out train images instead')
    a = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    ck = torch.load(a.ckpt, map_location='cpu')
    card = json.load(open(a.card))
    pp = card['postprocess']
    f = ck.get('factor', 2)
    m = CellUNet(); m.load_state_dict(ck['model']); m.eval()
    d = load_split(a.split, f)
    if a.val:
        from train import VAL_IMAGES, image_of
        a.split = 'train'
        d = load_split('train', f)
        keep = np.array([image_of(n) in VAL_IMAGES for n in d['names']])
        d = {k: v[keep] for k, v in d.items()}
    labels = json.load(open(os.path.join(DATA_ROOT, a.split, 'labels.json')))['tiles']
    flows, cellprob, tlog = predict(m, d['images'], ck['mean'], ck['std'])
    low, full = PQ(), PQ()
    for i, name in enumerate(d['names']):
        lab, cls = postprocess(flows[i], cellprob[i], tlog[i], niter=pp['niter'], flow_scale=pp['flowScale'],
                               cellprob_threshold=pp['cellprobThreshold'], seed_min=pp['seedMinCount'],
                               claim_min=pp['claimMinCount'], grow=pp['growIterations'], min_size=pp['minSize'],
                               fill_holes=pp['fillHoles'], max_size_fraction=pp.get('maxSizeFraction', 0.4),
                               flow_threshold=pp.get('flowThreshold', 0.0),
                               mean_cellprob_threshold=pp.get('meanCellprobThreshold'))
        g = d['inst'][i].astype(np.int32)
        low.add(g, gt_classes(g, d['type'][i]), lab, cls)
        gi = np.array(Image.open(os.path.join(DATA_ROOT, a.split, 'instances', name + '.png'))).astype(np.int32)
        gc = np.zeros(gi.max() + 1, np.int32)
        for k, v in labels.get(str(name), {}).items():
            if int(k) < len(gc):
                gc[int(k)] = int(v)
        up = np.repeat(np.repeat(lab, f, 0), f, 1)
        full.add(gi, gc, up, cls)
    res = {'split': a.split, 'tiles': len(d['names']), 'postprocess': pp,
           'modelResolution': low.result(), 'fullResolution': full.result(), 'seconds': round(time.time() - t0, 1)}
    print(json.dumps(res, indent=1))
    if a.json:
        json.dump(res, open(a.json, 'w'), indent=1)


if __name__ == '__main__':
    main()
