"""Tune the card's post-processing defaults (cellprobThreshold, minSize, flowThreshold, meanCellprobThreshold) on the held-out
train images with the Python reference post-processing, scoring like the project's eval
(bPQ = mean over tiles of per-tile binary PQ, + mean PQ of Inflammatory/Epithelial/Spindle).

train.py calls tune(); standalone (updates card.json postprocess + provenance.validation in place):
  /usr/bin/python3 models/training/tune.py --ckpt models/training/runs/cellbridge-he-v1/best.pt --out models/cellbridge-he-v1
"""
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from postprocess_ref import cluster, finish, flow_errors, PQ, gt_classes  # noqa: E402

THRESHOLDS = (-0.5, 0.0, 0.5)
MIN_SIZES = (5, 8, 10, 12, 15)
FLOW_THRESHOLDS = (0.0, 0.4, 0.8)
# None = no faint-cell filter (v1 and v2 up to 2.2.0); finish_v2 searches a grid
MEAN_CELLPROB_THRESHOLDS = (None,)


def score(r):
    return r['bPQ_tileMean'] + r['mPQ3']


def tune(preds, inst, typ, log=print):
    flows, cellprob, tlog = preds
    grid = {}
    for thr in THRESHOLDS:
        raw, errs = [], []
        for i in range(len(inst)):
            lab = cluster(flows[i], cellprob[i], thr)
            raw.append(lab)
            errs.append(flow_errors(lab, flows[i], 5.0))
        for ft in FLOW_THRESHOLDS:
            for ms in MIN_SIZES:
                for mc in MEAN_CELLPROB_THRESHOLDS:
                    pq = PQ()
                    for i in range(len(inst)):
                        lab, cls = finish(raw[i], flows[i], tlog[i], 5.0, ms, True, ft, errs[i],
                                          cellprob=cellprob[i], mean_cellprob_threshold=mc)
                        g = inst[i].astype(np.int32)
                        pq.add(g, gt_classes(g, typ[i]), lab, cls)
                    r = pq.result()
                    grid[(thr, ms, ft, mc)] = r
                    log(f'val cellprobThreshold {thr:+.1f} minSize {ms:2d} flowThreshold {ft:.1f} meanCellprobThreshold {mc}: '
                        f'score {score(r):.4f} bPQ(tile mean) {r["bPQ_tileMean"]:.4f} PQ(dataset) {r["binary"]["PQ"]:.4f} '
                        f'Inf {r["Inflammatory"]["PQ"]:.4f} Epi {r["Epithelial"]["PQ"]:.4f} Spi {r["Spindle"]["PQ"]:.4f}')
    # best score; ties (to 3 decimals) prefer threshold 0, no flow check, no faint-cell filter, minSize near 10
    best = max(grid, key=lambda k: (round(score(grid[k]), 3), k[0] == 0.0, k[2] == 0.0, k[3] is None, -abs(k[1] - 10)))
    return best, grid


def post_dict(best):
    """The card's postprocess fields of a tuning key (cellprobThreshold, minSize, flowThreshold[, meanCellprobThreshold])."""
    thr, ms, ft, mc = best
    d = {'cellprobThreshold': thr, 'minSize': ms}
    if ft > 0:
        d['flowThreshold'] = ft
    if mc is not None:
        d['meanCellprobThreshold'] = mc
    return d


def summary(r):
    return {'bPQ_tileMean': r['bPQ_tileMean'], 'binaryPQ_dataset': r['binary']['PQ'],
            **{c: r[c]['PQ'] for c in ('Other', 'Inflammatory', 'Epithelial', 'Spindle')}, 'mPQ3': r['mPQ3'],
            'binaryCounts': {k: r['binary'][k] for k in ('TP', 'FP', 'FN')}}


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    torch.set_num_threads(2)
    from data import load_split
    from model import CellUNet
    from train import VAL_IMAGES, image_of, predict
    ck = torch.load(a.ckpt, map_location='cpu')
    m = CellUNet(); m.load_state_dict(ck['model']); m.eval()
    d = load_split('train', ck.get('factor', 2))
    v = np.array([image_of(n) in VAL_IMAGES for n in d['names']])
    lines = []

    def log(s):
        print(s, flush=True); lines.append(s)
    best, grid = tune(predict(m, d['images'][v], ck['mean'], ck['std']), d['inst'][v], d['type'][v], log)
    post = post_dict(best)
    log(f'chosen postprocess: {post}')
    cp = os.path.join(a.out, 'card.json')
    card = json.load(open(cp))
    card['postprocess'].update(post)
    if 'flowThreshold' not in post:
        card['postprocess'].pop('flowThreshold', None)
    card['provenance'].setdefault('validation', {})
    card['provenance']['validation'].update({
        'metric': 'bPQ = mean over tiles of per-tile binary PQ; per-class PQ summed over tiles; IoU > 0.5; '
                  'Python reference post-processing (models/training/postprocess_ref.py) at model resolution',
        'results': summary(grid[best])})
    json.dump(card, open(cp, 'w'), indent=2)
    open(cp, 'a').write('\n')
    ck['post'] = post
    torch.save(ck, a.ckpt)
    with open(os.path.join(a.out, 'training-log.txt'), 'a') as fh:
        fh.write('\n# tune.py (post-processing defaults on the held-out images)\n' + '\n'.join(lines) + '\n')
    lj = os.path.join(a.out, 'training-log.json')
    if os.path.exists(lj):
        j = json.load(open(lj))
        j['tuning'] = {'grid': {f'thr={k[0]},minSize={k[1]},flowThreshold={k[2]}': summary(grid[k]) for k in sorted(grid)},
                       'chosen': post, 'validationAtChosen': summary(grid[best])}
        json.dump(j, open(lj, 'w'), indent=1)
