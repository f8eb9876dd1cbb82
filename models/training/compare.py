"""Is checkpoint B better than checkpoint A on the held-out images, or is the difference noise?

  /usr/bin/python3 models/training/compare.py models/cellbridge-he-v2/checkpoint-fp16.pt /work/v2w8/checkpoint-fp16.pt

Scores both on the validation images of every set (datasets.VAL_IMAGES; the same post-processing as train_v2's
validation) and reports train_v2's selection score and its parts for each, their difference, the difference
per held-out source image (does the gain hold on each image, or come from one?), and a paired bootstrap over
validation tiles (both checkpoints scored on the same resampled tiles): a 95 % interval of the score
difference and the share of resamples in which B wins. Tiles of one image are not independent, so the
interval is, if anything, too narrow: read it together with the per-image differences.
No test split is read.
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
from datasets import load_set, split_val, SETS, image_of  # noqa: E402
from postprocess_ref import PQ  # noqa: E402
from train_v2 import predict, segment_tile, add_tile, load_network, SCORE_W  # noqa: E402

CLASSES3 = (2, 3, 4)  # Inflammatory, Epithelial, Spindle: mPQ3


def tile_records(preds, inst, typ, thr=0.0, min_size=10):
    """Per tile: PQ accumulators [5, 4] (binary + 4 classes; tp, fp, fn, iou sum) and the tile's binary PQ
    (None for a tile with neither true nor predicted nuclei), exactly as train_v2.evaluate accumulates them."""
    flows, cellprob, tlog = preds
    out = []
    for i in range(len(inst)):
        pq = PQ()
        add_tile(pq, inst[i], typ[i], *segment_tile(flows[i], cellprob[i], tlog[i], thr, min_size))
        out.append((pq.acc.copy(), pq.tile_bpq[0] if pq.tile_bpq else None))
    return out


def pq_of(acc_row):
    tp, fp, fn, s = acc_row
    return 0.0 if tp == 0 else tp / (tp + 0.5 * fp + 0.5 * fn) * s / tp


def figures(recs, idx):
    """(bPQ tile mean, mPQ3) over the tiles idx (with repeats) of one set."""
    bpq = [recs[i][1] for i in idx if recs[i][1] is not None]
    acc = sum(recs[i][0] for i in idx)
    return (float(np.mean(bpq)) if bpq else 0.0), float(np.mean([pq_of(acc[c]) for c in CLASSES3]))


def score_of(recs_by_set, idx_by_set):
    parts = {s: figures(recs_by_set[s], idx_by_set[s]) for s in SETS}
    return sum(SCORE_W[s] * parts[s][0] for s in SETS) + parts['consep'][1], parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('a', help='checkpoint A (the reference, e.g. the shipped one)')
    ap.add_argument('b', help='checkpoint B (the candidate)')
    ap.add_argument('--channels', default='24,48,96,192,192', help='for checkpoints that do not record theirs')
    ap.add_argument('--resamples', type=int, default=2000)
    ap.add_argument('--seed', type=int, default=20261203)
    ap.add_argument('--json', default='', help='also write the figures here')
    a = ap.parse_args()
    torch.set_num_threads(2)
    ch = tuple(int(c) for c in a.channels.split(','))
    va = {s: split_val(s, load_set(s, 'train'))[1] for s in SETS}
    recs = {}
    for name, path in (('A', a.a), ('B', a.b)):
        net, ck = load_network(path, ch)
        recs[name] = {s: tile_records(predict(net, va[s]['images'], ck['mean'], ck['std']), va[s]['inst'], va[s]['type'])
                      for s in SETS}
    full = {s: np.arange(len(va[s]['names'])) for s in SETS}
    (sa, pa), (sb, pb) = score_of(recs['A'], full), score_of(recs['B'], full)
    out = {'A': a.a, 'B': a.b, 'scoreWeights': SCORE_W,
           'scoreA': round(sa, 4), 'scoreB': round(sb, 4), 'difference': round(sb - sa, 4),
           'parts': {s: {'bPQ_A': round(pa[s][0], 4), 'bPQ_B': round(pb[s][0], 4),
                         **({'mPQ3_A': round(pa[s][1], 4), 'mPQ3_B': round(pb[s][1], 4)} if s == 'consep' else {})}
                     for s in SETS}}
    # per held-out source image: that image's binary PQ (tile mean) and, on CoNSeP, mPQ3, for A and B
    per_image = {}
    for s in SETS:
        imgs = np.array([image_of(str(n)) for n in va[s]['names']])
        for im in sorted(set(imgs)):
            idx = np.flatnonzero(imgs == im)
            fa, fb = figures(recs['A'][s], idx), figures(recs['B'][s], idx)
            per_image[f'{s}/{im}'] = {'bPQ': [round(fa[0], 4), round(fb[0], 4)],
                                      **({'mPQ3': [round(fa[1], 4), round(fb[1], 4)]} if s == 'consep' else {})}
    out['perImage'] = per_image
    r = np.random.default_rng(a.seed)
    diffs = []
    for _ in range(a.resamples):
        idx = {s: r.integers(0, len(full[s]), len(full[s])) for s in SETS}
        diffs.append(score_of(recs['B'], idx)[0] - score_of(recs['A'], idx)[0])
    diffs = np.array(diffs)
    out['bootstrap'] = {'resamples': a.resamples, 'unit': 'validation tile (paired)',
                        'difference95': [round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)],
                        'shareBWins': round(float((diffs > 0).mean()), 3)}
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, 'w') as fh:
            json.dump(out, fh, indent=1)


if __name__ == '__main__':
    main()
