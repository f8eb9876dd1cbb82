"""Where the missed nuclei go: merged with a neighbour, not found, or found with a poor outline.

  /usr/bin/python3 models/training/errors.py models/cellbridge-he-v2/checkpoint-fp16.pt \
      models/training/runs/cellbridge-he-v2-w11/last.pt

For each checkpoint, on the held-out images of each set (datasets.VAL_IMAGES; train_v2's validation post-processing
at model resolution), every ground-truth nucleus without a match (IoU > 0.5) is put in one of three groups:
  merged     a predicted cell covers at least half of it and at least half of another true nucleus
  not found  no predicted cell covers half of it; of these, "notFoundBelowThreshold" are those where the cell
             probability stays below the threshold on more than half of the nucleus (the network does not see a
             nucleus there, against one it sees but loses in the flows or the size filter); by true class too
             (notFoundByClass: index 0 = a nucleus without a class, MoNuSeg and CPM-15; 1-4 the CoNSeP classes)
  poor       the rest (covered, but the outline's IoU stays at or below 0.5)
and every unmatched predicted cell counts as a false positive. A count is a less noisy view of one mechanism
(e.g. the merged neighbours a loss term targets) than the PQ it moves. No test split is read.
"""
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from datasets import SETS  # noqa: E402
from postprocess_ref import match  # noqa: E402


def tile_errors(gt, pred, fg=None, typ=None):
    """Counts for one tile: gt and pred are instance maps of the same shape (0 = background); fg (optional) the
    pixels where the cell probability passes the threshold, typ (optional) the true class map. Matches are the
    PQ code's (postprocess_ref.match: unique, IoU > 0.5)."""
    m, g_ids, p_ids = match(gt, pred)
    matched = {int(g) for g, _, _ in m}
    out = {'gt': len(g_ids), 'tp': len(m), 'merged': 0, 'notFound': 0, 'notFoundBelowThreshold': 0, 'poor': 0,
           'fp': len(p_ids) - len(m), 'notFoundByClass': [0] * 5}
    if len(g_ids) == len(matched):
        return out
    # share of each true nucleus (rows) inside each predicted cell (columns; 0 = background, never counted)
    ng, npd = int(gt.max()) + 1, int(pred.max()) + 1
    inter = np.bincount(gt.ravel().astype(np.int64) * npd + pred.ravel().astype(np.int64), minlength=ng * npd).reshape(ng, npd)
    cover = inter / np.maximum(inter.sum(1, keepdims=True), 1)
    cover[:, 0] = 0
    for g in g_ids:
        if int(g) in matched:
            continue
        p = int(cover[g].argmax())
        if cover[g, p] < 0.5:
            out['notFound'] += 1
            nucleus = gt == g
            if fg is not None and fg[nucleus].mean() < 0.5:
                out['notFoundBelowThreshold'] += 1
            if typ is not None:
                out['notFoundByClass'][int(np.bincount(typ[nucleus].astype(np.int64), minlength=5)[:5].argmax())] += 1
        elif ((cover[:, p] >= 0.5).sum() - 1) > 0:
            out['merged'] += 1
        else:
            out['poor'] += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('checkpoints', nargs='+')
    ap.add_argument('--sets', default=','.join(SETS))
    a = ap.parse_args()
    import torch  # the counting above needs numpy only (and is tested without torch)
    from datasets import load_set, split_val
    from train_v2 import predict, segment_tile, load_network
    torch.set_num_threads(2)
    sets = a.sets.split(',')
    va = {s: split_val(s, load_set(s, 'train'))[1] for s in sets}
    report = {}
    for path in a.checkpoints:
        net, ck = load_network(path)
        report[path] = {}
        for s in sets:
            flows, cellprob, tlog = predict(net, va[s]['images'], ck['mean'], ck['std'])
            tot = {}
            for i in range(len(va[s]['inst'])):
                lab, _ = segment_tile(flows[i], cellprob[i], tlog[i])
                e = tile_errors(va[s]['inst'][i], lab, cellprob[i] > 0.0, va[s]['type'][i])
                for k, v in e.items():
                    tot[k] = (np.add(tot[k], v).tolist() if isinstance(v, list) else tot[k] + v) if k in tot else v
            report[path][s] = tot
            print(json.dumps({'checkpoint': path, 'set': s, **tot}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
