"""Minimal Python reference of the bridge's 'cellpose' post-processing, plus PQ metrics.

Post-processing (card.postprocess, mode 'cellpose'):
  foreground = cellprob > cellprobThreshold; follow flows/flowScale for niter Euler steps with
  bilinear sampling (positions clamped to the image); truncate final positions to integer bins of a
  histogram padded by 20; seeds = bins equal to their 5x5 maximum with count > seedMinCount (by
  descending count); each seed grows growIterations rounds of 3x3 into bins with count > claimMinCount
  (later seeds overwrite earlier); each pixel takes the label of its final bin; masks over
  maxSizeFraction of the tile are dropped; masks < minSize px dropped; holes filled; class = majority
  vote of argmax(type) over the mask among foreground classes (ties to the lower index).
"""
import numpy as np
from scipy import ndimage as ndi

RPAD = 20


def bilinear(field, py, px):
    """field [C,H,W]; positions float (clamped inside). Returns [C,N]."""
    C, H, W = field.shape
    y0 = np.floor(py).astype(np.int64)
    x0 = np.floor(px).astype(np.int64)
    y0 = np.clip(y0, 0, H - 1)
    x0 = np.clip(x0, 0, W - 1)
    y1 = np.minimum(y0 + 1, H - 1)
    x1 = np.minimum(x0 + 1, W - 1)
    wy = py - y0
    wx = px - x0
    f00 = field[:, y0, x0]; f01 = field[:, y0, x1]; f10 = field[:, y1, x0]; f11 = field[:, y1, x1]
    return (f00 * (1 - wy) * (1 - wx) + f01 * (1 - wy) * wx + f10 * wy * (1 - wx) + f11 * wy * wx)


def follow_flows(dP, mask, niter=200):
    H, W = mask.shape
    ys, xs = np.nonzero(mask)
    py = ys.astype(np.float64); px = xs.astype(np.float64)
    for _ in range(niter):
        d = bilinear(dP, py, px)
        py = np.clip(py + d[0], 0, H - 1)
        px = np.clip(px + d[1], 0, W - 1)
    return ys, xs, py, px


def get_masks(ys, xs, py, px, shape, seed_min=10, claim_min=2, grow=5, max_size_fraction=0.4):
    H, W = shape
    labels = np.zeros(shape, np.int32)
    if len(ys) == 0:
        return labels
    by = py.astype(np.int64) + RPAD
    bx = px.astype(np.int64) + RPAD
    hshape = (H + 2 * RPAD, W + 2 * RPAD)
    h = np.zeros(hshape, np.int64)
    np.add.at(h, (by, bx), 1)
    hmax = ndi.maximum_filter(h, size=5, mode='constant')
    sy, sx = np.nonzero((h >= hmax) & (h > seed_min))
    order = np.argsort(-h[sy, sx], kind='stable')
    M = np.zeros(hshape, np.int32)
    claim = h > claim_min
    st = np.ones((3, 3), bool)
    r = grow + 1
    for k, i in enumerate(order):
        cy, cx = sy[i], sx[i]
        ya, yb = max(cy - r, 0), min(cy + r + 1, hshape[0])
        xa, xb = max(cx - r, 0), min(cx + r + 1, hshape[1])
        reg = np.zeros((yb - ya, xb - xa), bool)
        reg[cy - ya, cx - xa] = True
        cl = claim[ya:yb, xa:xb]
        for _ in range(grow):
            reg = ndi.binary_dilation(reg, st) & cl
        M[ya:yb, xa:xb][reg] = k + 1
    lab = M[by, bx]
    labels[ys, xs] = lab
    if max_size_fraction:
        ids, cnt = np.unique(labels, return_counts=True)
        big = ids[(cnt > max_size_fraction * H * W) & (ids > 0)]
        if len(big):
            labels[np.isin(labels, big)] = 0
    return labels


def clean(labels, min_size=10, fill_holes=True):
    out = np.zeros_like(labels)
    objs = ndi.find_objects(labels)
    n = 0
    for i, sl in enumerate(objs):
        if sl is None:
            continue
        m = labels[sl] == (i + 1)
        if m.sum() < min_size:
            continue
        if fill_holes:
            m = ndi.binary_fill_holes(m)
        n += 1
        out[sl][m] = n
    return out


def classify(labels, type_logits, n_classes=4):
    """Majority vote of argmax(type) over each mask (ties -> lower index); if background wins the
    runner-up foreground class is taken; a mask with no foreground vote gets class 0 (dropped by
    postprocess), as the bridge's voteClasses + dropBackgroundVoted."""
    am = np.argmax(type_logits, 0)
    n = labels.max()
    cls = np.zeros(n + 1, np.int32)
    if n == 0:
        return cls
    idx = labels.ravel()
    votes = np.zeros((n + 1, type_logits.shape[0]), np.int64)
    np.add.at(votes, (idx, am.ravel()), 1)
    for k in range(1, n + 1):
        v = votes[k, 1:n_classes + 1]
        if v.sum() > 0:
            cls[k] = 1 + int(np.argmax(v))
    return cls


def flow_errors(labels, flows, flow_scale=5.0):
    """Cellpose flow_error: per mask, sum over channels of the mean over the mask of
    (mask flow - network flow / flowScale)^2 (network flows unmasked)."""
    from data import heat_flows
    mf = heat_flows(labels)
    d = ((mf - flows / flow_scale) ** 2).sum(0)
    n = labels.max()
    if n == 0:
        return np.zeros(1)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    err = np.bincount(labels.ravel(), weights=d.ravel(), minlength=n + 1)
    return err / np.maximum(area, 1)


def drop_labels(labels, drop):
    """Zero labels with drop[id] true and renumber 1..n keeping order."""
    keep = ~drop
    keep[0] = True
    lut = np.zeros(len(drop), np.int32)
    lut[keep] = np.arange(keep.sum())
    lab = labels.copy()
    lab[~keep[labels]] = 0
    return lut[lab]


def cluster(flows, cellprob, cellprob_threshold=0.0, niter=200, flow_scale=5.0, seed_min=10, claim_min=2, grow=5,
            max_size_fraction=0.4):
    """The raw label map before finish(): pixels above the threshold follow the flows and are clustered.
    Callers that score many finish() settings on one map (tune.py, faint_on_train.py) compute it once."""
    mask = cellprob > cellprob_threshold
    ys, xs, py, px = follow_flows(flows * mask[None] / flow_scale, mask, niter)
    return get_masks(ys, xs, py, px, mask.shape, seed_min, claim_min, grow, max_size_fraction)


def postprocess(flows, cellprob, type_logits, niter=200, flow_scale=5.0, cellprob_threshold=0.0,
                seed_min=10, claim_min=2, grow=5, min_size=10, fill_holes=True, max_size_fraction=0.4,
                flow_threshold=0.0, mean_cellprob_threshold=None):
    """flows [2,H,W] (network output, 5x field), cellprob [H,W] logits, type [5,H,W]. Returns
    (labels int32 [H,W], classes per label index)."""
    lab = cluster(flows, cellprob, cellprob_threshold, niter, flow_scale, seed_min, claim_min, grow, max_size_fraction)
    return finish(lab, flows, type_logits, flow_scale, min_size, fill_holes, flow_threshold,
                  cellprob=cellprob, mean_cellprob_threshold=mean_cellprob_threshold)


def faint_cells(lab, cellprob, threshold):
    """drop[id] (id 0 = background, never): cells whose mean cell probability over their pixels is below
    `threshold` (the map's own units), as the bridge's dropFaintCells. Cellpose's pixel threshold decides
    where a cell may be; this decides whether a whole cell is confident enough to keep (session 16: half of
    the false positives on the held-out images are small cells on background)."""
    n = int(lab.max())
    area = np.bincount(lab.ravel(), minlength=n + 1)
    total = np.bincount(lab.ravel(), weights=cellprob.ravel().astype(np.float64), minlength=n + 1)
    drop = total / np.maximum(area, 1) < threshold
    drop[0] = False
    return drop


def finish(lab, flows, type_logits, flow_scale=5.0, min_size=10, fill_holes=True, flow_threshold=0.0, errors=None,
           cellprob=None, mean_cellprob_threshold=None):
    """Flow-error check (if flow_threshold > 0), small-mask removal, hole filling, class vote and
    removal of background-voted masks, then (with a cellprob map and mean_cellprob_threshold not None)
    removal of faint cells. `errors`: precomputed flow_errors(lab, ...)."""
    if flow_threshold and flow_threshold > 0:
        e = flow_errors(lab, flows, flow_scale) if errors is None else errors
        lab = drop_labels(lab, e > flow_threshold)
    lab = clean(lab, min_size, fill_holes)
    cls = classify(lab, type_logits)
    lab, cls = drop_cells(lab, cls, cls == 0)
    if mean_cellprob_threshold is not None and cellprob is not None and lab.max() > 0:
        lab, cls = drop_cells(lab, cls, faint_cells(lab, cellprob, mean_cellprob_threshold))
    return lab, cls


def drop_cells(lab, cls, drop):
    """drop_labels on the label map and the same cells out of the class list (drop[0] is ignored)."""
    if not drop[1:].any():
        return lab, cls
    return drop_labels(lab, drop), np.concatenate([[0], cls[1:][~drop[1:]]])


def refine_outlines(lab, cellprob, k, threshold):
    """bridge/postprocess/outline.ts: the label map on a grid k times finer. Each fine pixel takes the
    label of its model pixel if the bilinearly upsampled (align_corners=False) cellprob logit there is
    above `threshold`; a fine foreground pixel without a label takes the largest label of its 3x3
    neighbourhood (of the nearest-model-pixel labels); each label keeps its largest 4-connected part."""
    import torch
    import torch.nn.functional as F
    cpu = F.interpolate(torch.from_numpy(np.ascontiguousarray(cellprob, np.float32))[None, None], scale_factor=k,
                        mode='bilinear', align_corners=False)[0, 0].numpy()
    near = np.repeat(np.repeat(lab, k, 0), k, 1)
    fg = cpu > threshold
    out = np.where(fg, near, 0)
    out = np.where(fg & (out == 0), ndi.maximum_filter(near, 3), out)
    four = ndi.generate_binary_structure(2, 1)
    for i, sl in enumerate(ndi.find_objects(out)):
        if sl is None:
            continue
        m = out[sl] == (i + 1)
        cc, n = ndi.label(m, four)
        if n > 1:
            keep = np.argmax(np.bincount(cc.ravel())[1:]) + 1
            out[sl][m & (cc != keep)] = 0
    return out


# ---------------------------------------------------------------- metrics
def match(gt, pred):
    """Unique matching at IoU > 0.5. Returns list of (gt_id, pred_id, iou), gt ids, pred ids."""
    g = gt.ravel().astype(np.int64); p = pred.ravel().astype(np.int64)
    gid = np.unique(g); gid = gid[gid > 0]
    pid = np.unique(p); pid = pid[pid > 0]
    gs = np.bincount(g); ps = np.bincount(p)
    both = (g > 0) & (p > 0)
    pairs, inter = np.unique(g[both] * (p.max() + 1) + p[both], return_counts=True)
    gi = pairs // (p.max() + 1); pi = pairs % (p.max() + 1)
    iou = inter / (gs[gi] + ps[pi] - inter)
    ok = iou > 0.5
    return list(zip(gi[ok], pi[ok], iou[ok])), gid, pid


class PQ:
    """Dataset-level PQ (TP/FP/FN and IoU sums accumulated over all tiles)."""

    def __init__(self, n_classes=4):
        self.n = n_classes
        self.acc = np.zeros((n_classes + 1, 4))  # row 0 binary; cols tp, fp, fn, iou_sum
        self.tile_bpq = []  # per-tile binary PQ (the project's bPQ = mean over tiles, empty tiles skipped)

    def add(self, gt, gt_cls, pred, pred_cls):
        """gt/pred label maps; gt_cls/pred_cls: arrays indexed by label id -> class (1..n)."""
        self.add_matched(*match(gt, pred), gt_cls, pred_cls)

    def add_matched(self, m, gid, pid, gt_cls, pred_cls):
        """As add, from match()'s pairs and ids (callers that re-score one matching many times)."""
        row = [len(m), len(pid) - len(m), len(gid) - len(m), sum(x[2] for x in m)]
        self.acc[0] += row
        if row[0] + row[1] + row[2] > 0:
            self.tile_bpq.append(0.0 if row[0] == 0 else row[0] / (row[0] + 0.5 * row[1] + 0.5 * row[2]) * row[3] / row[0])
        for c in range(1, self.n + 1):
            gc = set(int(i) for i in gid if gt_cls[i] == c)
            pc = set(int(i) for i in pid if pred_cls[i] == c)
            mc = [x for x in m if int(x[0]) in gc and int(x[1]) in pc]
            self.acc[c] += [len(mc), len(pc) - len(mc), len(gc) - len(mc), sum(x[2] for x in mc)]

    def result(self):
        out = {}
        names = ['binary', 'Other', 'Inflammatory', 'Epithelial', 'Spindle']
        for i, nm in enumerate(names[:self.n + 1]):
            tp, fp, fn, s = self.acc[i]
            dq = tp / (tp + 0.5 * fp + 0.5 * fn) if tp + fp + fn > 0 else 0.0
            sq = s / tp if tp > 0 else 0.0
            out[nm] = {'PQ': round(dq * sq, 4), 'DQ': round(dq, 4), 'SQ': round(sq, 4), 'TP': int(tp), 'FP': int(fp), 'FN': int(fn)}
        out['bPQ_tileMean'] = round(float(np.mean(self.tile_bpq)), 4) if self.tile_bpq else 0.0
        out['mPQ3'] = round(float(np.mean([out[c]['PQ'] for c in ('Inflammatory', 'Epithelial', 'Spindle')])), 4)
        return out


def gt_classes(inst, typ):
    """Class per gt instance id (majority of the type map)."""
    n = int(inst.max())
    cls = np.zeros(n + 1, np.int32)
    if n == 0:
        return cls
    v = np.zeros((n + 1, 5), np.int64)
    np.add.at(v, (inst.ravel().astype(np.int64), typ.ravel().astype(np.int64)), 1)
    cls[1:] = np.argmax(v[1:, 1:], 1) + 1
    return cls
