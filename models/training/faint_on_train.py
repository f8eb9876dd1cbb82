"""The faint-cell threshold (card postprocess.meanCellprobThreshold) scored on the network's own TRAINING images.

Session 16 chose t = 0.9 on the 8 held-out images (3 CoNSeP), where 0.9 won the pooled score through one image
while 0.5-0.7 helped every image; which rule to trust could not be told there, and the test split may not decide it.
The training images are the next best judge: the network fits them barely better than new ones (CoNSeP bPQ 0.492
against 0.473, session 14), no post-processing choice has seen them, and there are 24 + 27 + 10 of them. Everything
else as the card (cellprob threshold, minimum size, no flow check), the selection score as finish_v2.py
(0.4 CoNSeP + 0.4 MoNuSeg + 0.2 CPM-15 tile-mean bPQ + CoNSeP mPQ3), per set pooled and per image. Exports nothing.

  nice -n 19 /usr/bin/python3 models/training/faint_on_train.py --ckpt models/cellbridge-he-v2/checkpoint-fp16.pt \
      --card models/cellbridge-he-v2/card.json [--json out.json]
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
from postprocess_ref import cluster, finish, flow_errors, PQ, gt_classes  # noqa: E402
from train_v2 import load_network, eval_type, SCORE_W  # noqa: E402
from tta_ref import predict_views  # noqa: E402

GRID = (None, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True)
    ap.add_argument('--card', required=True)
    ap.add_argument('--json', default='')
    a = ap.parse_args()
    torch.set_num_threads(2)
    post = json.load(open(a.card))['postprocess']
    net, ck = load_network(a.ckpt)
    pooled = {t: {} for t in GRID}
    per_image = {t: {} for t in GRID}
    for s in SETS:
        tr = split_val(s, load_set(s, 'train'))[0]
        flows, cellprob, tlog = predict_views(net, tr['images'], ck['mean'], ck['std'], 1)
        typ = eval_type(tr['type'])
        images = [image_of(str(n)) for n in tr['names']]
        acc = {t: PQ() for t in GRID}
        img_acc = {t: {} for t in GRID}
        for i in range(len(tr['inst'])):
            raw = cluster(flows[i], cellprob[i], post['cellprobThreshold'], post['niter'], post['flowScale'],
                          post['seedMinCount'], post['claimMinCount'], post['growIterations'], post['maxSizeFraction'])
            errs = flow_errors(raw, flows[i], post['flowScale'])
            g = tr['inst'][i].astype(np.int32)
            gc = gt_classes(g, typ[i])
            for t in GRID:
                lab, cls = finish(raw, flows[i], tlog[i], post['flowScale'], post['minSize'], post['fillHoles'],
                                  post.get('flowThreshold', 0.0), errs, cellprob=cellprob[i], mean_cellprob_threshold=t)
                acc[t].add(g, gc, lab, cls)
                img_acc[t].setdefault(images[i], PQ()).add(g, gc, lab, cls)
        for t in GRID:
            pooled[t][s] = acc[t].result()
            per_image[t][s] = {im: p.result()['bPQ_tileMean'] for im, p in img_acc[t].items()}
        print(s, len(tr['inst']), 'tiles,', len(set(images)), 'images:', ' '.join(
            f'{t}: {pooled[t][s]["bPQ_tileMean"]:.4f}' for t in GRID), flush=True)

    def comb(t):
        return sum(SCORE_W[s] * pooled[t][s]['bPQ_tileMean'] for s in SETS) + pooled[t]['consep']['mPQ3']
    out = {}
    for t in GRID:
        gains = {s: [per_image[t][s][im] - per_image[None][s][im] for im in per_image[None][s]] for s in SETS}
        out[str(t)] = {'score': round(comb(t), 4), **{s: pooled[t][s]['bPQ_tileMean'] for s in SETS},
                       'consepMPQ3': pooled[t]['consep']['mPQ3'],
                       'consepClasses': {c: pooled[t]['consep'][c]['PQ'] for c in ('Other', 'Inflammatory', 'Epithelial', 'Spindle')},
                       'imagesGaining': {s: f'{sum(x > 0 for x in v)}/{len(v)}' for s, v in gains.items()},
                       'worstImageGain': {s: round(min(v), 4) for s, v in gains.items()}}
        print(t, json.dumps(out[str(t)]), flush=True)
    if a.json:
        json.dump(out, open(a.json, 'w'), indent=1)


if __name__ == '__main__':
    main()
