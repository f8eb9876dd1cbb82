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

`--on train --max-tiles 96` counts the same on the first 96 tiles of the images a checkpoint was trained on
(unaugmented): how well the network fits its own training data (session 14: w2 underfits it, bPQ 0.492 against
0.473 held out). Each line also carries the binary PQ (tile mean) and the recall by true nucleus area (px at model
resolution; `recallByArea`: bins <10, 10-20, 20-40, 40-80, 80-160, >=160).

`oracle` in place of a checkpoint scores the ground truth's own maps (its flows and foreground, cell probability
+/-5, classes from the true type map) through the same post-processing: what the representation and the
post-processing can reach at model resolution when the network is perfect (session 14: bPQ 0.978 CoNSeP, 0.979
MoNuSeg on the held-out images at 0.5 um/px).
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


AREA_BINS = (10, 20, 40, 80, 160)


def oracle_maps(d):
    """The maps a perfect network would give, from one set's targets: (flows x5 as the network predicts them, cell
    probability logits +/-5, type logits one-hot x5 over background + 4 classes; UNKNOWN nuclei as class 1)."""
    from datasets import UNKNOWN
    fg = d['inst'] > 0
    typ = np.where(d['type'] == UNKNOWN, 1, d['type']).astype(np.int64) * fg
    tlog = np.eye(5, dtype=np.float32)[typ].transpose(0, 3, 1, 2) * 5.0
    return d['flows'] * 5.0, np.where(fg, 5.0, -5.0).astype(np.float32), tlog


def recall_by_area(gt, pred):
    """[matched per area bin..., true nuclei per area bin...] for one tile (bins: AREA_BINS edges, px)."""
    m, g_ids, _ = match(gt, pred)
    matched = {int(g) for g, _, _ in m}
    area = np.bincount(gt.ravel().astype(np.int64))
    nb = len(AREA_BINS) + 1
    found, total = np.zeros(nb, np.int64), np.zeros(nb, np.int64)
    for g in g_ids:
        b = int(np.searchsorted(AREA_BINS, area[int(g)], side='right'))
        total[b] += 1
        found[b] += int(g) in matched
    return np.concatenate([found, total]).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('checkpoints', nargs='+')
    ap.add_argument('--sets', default=','.join(SETS))
    ap.add_argument('--on', choices=('val', 'train'), default='val',
                    help='the held-out images (default) or the images the checkpoints were trained on')
    ap.add_argument('--max-tiles', type=int, default=0, help='only the first N tiles of each set (0 = all)')
    a = ap.parse_args()
    import torch  # the counting above needs numpy only (and is tested without torch)
    from datasets import load_set, split_val
    from train_v2 import predict, segment_tile, load_network, add_tile
    from postprocess_ref import PQ
    torch.set_num_threads(2)
    sets = a.sets.split(',')
    tiles = {s: split_val(s, load_set(s, 'train'))[0 if a.on == 'train' else 1] for s in sets}
    if a.max_tiles:
        tiles = {s: {k: v[:a.max_tiles] for k, v in d.items()} for s, d in tiles.items()}
    report = {}
    for path in a.checkpoints:
        net, ck = (None, None) if path == 'oracle' else load_network(path)
        report[path] = {}
        for s in sets:
            if net is None:
                flows, cellprob, tlog = oracle_maps(tiles[s])
            else:
                flows, cellprob, tlog = predict(net, tiles[s]['images'], ck['mean'], ck['std'])
            tot, pq = {}, PQ()
            for i in range(len(tiles[s]['inst'])):
                lab, cls = segment_tile(flows[i], cellprob[i], tlog[i])
                add_tile(pq, tiles[s]['inst'][i], tiles[s]['type'][i], lab, cls)
                e = tile_errors(tiles[s]['inst'][i], lab, cellprob[i] > 0.0, tiles[s]['type'][i])
                e['byArea'] = recall_by_area(tiles[s]['inst'][i], lab)
                for k, v in e.items():
                    tot[k] = (np.add(tot[k], v).tolist() if isinstance(v, list) else tot[k] + v) if k in tot else v
            found, total = np.array(tot.pop('byArea')).reshape(2, -1)
            tot['recallByArea'] = np.round(found / np.maximum(total, 1), 3).tolist()
            tot['nucleiByArea'] = total.astype(int).tolist()
            tot['bPQ_tileMean'] = round(pq.result()['bPQ_tileMean'], 4)
            report[path][s] = {'on': a.on, 'tiles': len(tiles[s]['inst']), **tot}
            print(json.dumps({'checkpoint': path, 'set': s, **report[path][s]}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
