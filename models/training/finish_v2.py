"""Finish a v2 model from its compact checkpoint: tune the post-processing defaults, calibrate the class
head (temperature scaling), export ONNX + card + reference tensors. All on the held-out validation
images of the training sets (datasets.VAL_IMAGES); no test split is read (except one CoNSeP test tile
as the parity-test input, which is neither training nor selection).

  nice -n 19 /usr/bin/python3 models/training/finish_v2.py --out models/cellbridge-he-v2

train_v2.py calls finish_model() at the end of a stage. Appends to training-log-<stage>.txt.

Calibration: what a user sees as `Prob: <class>` is the mean over the cell's pixels of the softmax of
the type logits (background channel included; bridge/postprocess/classify.ts). Dividing the logits by
a temperature T changes those numbers, not the per-pixel argmax (so not the voted class). T is chosen
on the held-out CoNSeP images to minimise the expected calibration error of exactly that quantity on
matched cells (IoU > 0.5), and baked into the ONNX graph (type = logits / T). ECE: 10 equal-width
confidence bins, confidence = Prob of the voted class, accuracy = voted class == true class; also
reported leave-one-image-out (T fitted on the other held-out images).
"""
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from datasets import load_set, split_val, SETS, VAL_IMAGES, image_of  # noqa: E402
from model import count_params  # noqa: E402
from postprocess_ref import match, gt_classes  # noqa: E402
from train_v2 import predict, eval_type, load_network, SCORE_W  # noqa: E402  (predict is train.py's)
from tune import tune, post_dict, summary  # noqa: E402
from tta_ref import predict_views  # noqa: E402

NAME = 'cellbridge-he-v2'
CLASS_NAMES = ['Other', 'Inflammatory', 'Epithelial', 'Spindle']


def tune_key_order(k):
    """Sort order of tuning keys, whose last field may be None (no faint-cell filter: first)."""
    return tuple(float('-inf') if v is None else v for v in k)


class Calibrated(nn.Module):
    """The network with its type logits divided by a temperature (what the ONNX file computes)."""

    def __init__(self, net, temperature):
        super().__init__()
        self.net = net
        self.register_buffer('inv_t', torch.tensor(1.0 / float(temperature)))

    def forward(self, x):
        f, c, t = self.net(x)
        return f, c, t * self.inv_t


def cell_records(preds, inst, typ, post, names=None):
    """Per matched cell with a known true class: (pixel type logits [n,5], voted class, true class);
    with names, also the source image of each record."""
    from postprocess_ref import postprocess
    flows, cellprob, tlog = preds
    recs, images = [], []
    for i in range(len(inst)):
        lab, cls = postprocess(flows[i], cellprob[i], tlog[i], niter=200, flow_scale=5.0,
                               cellprob_threshold=post['cellprobThreshold'], min_size=post['minSize'],
                               flow_threshold=post.get('flowThreshold', 0.0),
                               mean_cellprob_threshold=post.get('meanCellprobThreshold'))
        g = inst[i].astype(np.int32)
        gc = gt_classes(g, typ[i])
        pairs, _, _ = match(g, lab)
        for gi, pi, _ in pairs:
            if gc[gi] < 1:
                continue
            px = tlog[i][:, lab == pi].T  # [n, 5]
            recs.append((px, int(cls[pi]), int(gc[gi])))
            images.append(image_of(str(names[i])) if names is not None else '')
    return (recs, images) if names is not None else recs


OUTLINE_THRESHOLDS = (None, 0.25, 0.0, -0.25, -0.5, -0.75)


def tune_outline(preds, va, post, log):
    """postprocess.outlineThreshold: each held-out tile post-processed at 0.5 um/px as chosen, then outlined
    on the 2x finer grid of its 40x source (postprocess_ref.refine_outlines; None = nearest neighbour) and
    scored against the 40x ground truth (classes from labels.json), like `npm run eval` of a 40x set."""
    from PIL import Image
    from datasets import SHARED
    from postprocess_ref import postprocess, refine_outlines, PQ
    grid = {t: {} for t in OUTLINE_THRESHOLDS}
    for s in SETS:
        d = os.path.join(SHARED, s, 'train')
        labels = json.load(open(os.path.join(d, 'labels.json')))['tiles']
        flows, cellprob, tlog = preds[s]
        pqs = {t: PQ() for t in OUTLINE_THRESHOLDS}
        for i, n in enumerate(va[s]['names']):
            g = np.array(Image.open(os.path.join(d, 'instances', str(n) + '.png'))).astype(np.int32)
            gc = np.zeros(g.max() + 1, np.int32)
            for k, v in labels.get(str(n), {}).items():
                if int(k) < len(gc):
                    gc[int(k)] = int(v)
            lab, cls = postprocess(flows[i], cellprob[i], tlog[i], cellprob_threshold=post['cellprobThreshold'],
                                   min_size=post['minSize'], flow_threshold=post.get('flowThreshold', 0.0),
                                   mean_cellprob_threshold=post.get('meanCellprobThreshold'))
            for t in OUTLINE_THRESHOLDS:
                fine = np.repeat(np.repeat(lab, 2, 0), 2, 1) if t is None else refine_outlines(lab, cellprob[i], 2, t)
                pqs[t].add(g, gc, fine, cls)
        for t in OUTLINE_THRESHOLDS:
            grid[t][s] = pqs[t].result()

    def comb(t):
        return sum(SCORE_W[s] * grid[t][s]['bPQ_tileMean'] for s in SETS) + grid[t]['consep']['mPQ3']
    for t in OUTLINE_THRESHOLDS:
        log(f'outline threshold {t}: score {comb(t):.4f} ' + ' '.join(f'{s} bPQ {grid[t][s]["bPQ_tileMean"]:.4f}' for s in SETS)
            + f' consep mPQ3 {grid[t]["consep"]["mPQ3"]:.4f} (40x ground truth)')
    best = max(OUTLINE_THRESHOLDS, key=lambda t: round(comb(t), 3))
    log(f'chosen outlineThreshold: {best}')
    return best, {str(t): {'score': round(comb(t), 4), **{s: summary(grid[t][s]) for s in SETS}} for t in OUTLINE_THRESHOLDS}


def probs_at(recs, T):
    """Mean softmax(logits / T) per cell, background included (the daemon's Prob: values)."""
    out = []
    for px, _, _ in recs:
        z = px / T
        z = np.exp(z - z.max(1, keepdims=True))
        out.append((z / z.sum(1, keepdims=True)).mean(0))
    return np.array(out)


def ece(recs, P, bins=10):
    voted = np.array([r[1] for r in recs]); true = np.array([r[2] for r in recs])
    conf = P[np.arange(len(P)), voted]
    correct = (voted == true).astype(np.float64)
    e, table = 0.0, []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        sel = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if sel.any():
            e += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
            table.append({'bin': [lo, hi], 'cells': int(sel.sum()), 'meanProb': round(float(conf[sel].mean()), 3),
                          'accuracy': round(float(correct[sel].mean()), 3)})
    return float(e), table, float(correct.mean())


def fit_temperature(recs, grid=tuple(np.round(np.arange(0.1, 2.001, 0.05), 2))):
    """T minimising the ECE of the displayed Prob(voted class). Not NLL: the displayed numbers include the
    background share of the cell's pixels (they do not sum to 1 over the classes), which left v1 under-
    confident by 0.1-0.15 in every bin; the NLL optimum (T ~0.95) barely changed that."""
    return min(grid, key=lambda T: (round(ece(recs, probs_at(recs, T))[0], 4), abs(T - 1)))


def calibrate(recs, images, log):
    """recs: cell records; images: the source image of each record (for the leave-one-image-out check)."""
    T = float(fit_temperature(recs))
    e0, tab0, acc = ece(recs, probs_at(recs, 1.0))
    e1, tab1, _ = ece(recs, probs_at(recs, T))
    # out-of-sample: T fitted on the other held-out images, ECE on this one's cells, pooled
    loo = []
    for im in sorted(set(images)):
        fit = [r for r, i in zip(recs, images) if i != im]
        test = [r for r, i in zip(recs, images) if i == im]
        Ti = fit_temperature(fit)
        loo.append((test, Ti))
    P = np.concatenate([probs_at(t, Ti) for t, Ti in loo])
    e_loo, _, _ = ece([r for t, _ in loo for r in t], P)
    true = np.array([r[2] for r in recs])
    nll = float(-np.log(np.clip(probs_at(recs, T)[np.arange(len(recs)), true], 1e-6, 1)).mean())
    log(f'calibration on {len(recs)} matched held-out CoNSeP cells: temperature {T}, ECE {e0:.4f} -> {e1:.4f} '
        f'(leave-one-image-out {e_loo:.4f}, temperatures {[Ti for _, Ti in loo]}); vote accuracy {acc:.3f}')
    return {'temperature': T, 'cells': len(recs), 'eceBefore': round(e0, 4), 'eceAfter': round(e1, 4),
            'eceAfterLeaveOneImageOut': round(e_loo, 4), 'leaveOneImageOutTemperatures': [float(Ti) for _, Ti in loo],
            'voteAccuracy': round(acc, 4), 'nllAfter': round(nll, 4), 'reliabilityBefore': tab0, 'reliabilityAfter': tab1,
            'method': 'temperature scaling of the type logits (in the ONNX graph), T chosen to minimise the ECE of '
                      'Prob(voted class) = mean per-pixel softmax over the cell, background included (what the daemon '
                      'reports) on matched cells (IoU > 0.5) of the held-out CoNSeP images; 10 equal-width bins'}


INTENDED_USE = {
    'stain': 'H&E, brightfield',
    'resolution': '0.5 um/px (20x); the daemon resamples other pixel sizes',
    'tissue': 'nuclei: trained on colorectal adenocarcinoma (CoNSeP, with classes), 7+ organs from TCGA (MoNuSeg: '
              'breast, kidney, lung, prostate, bladder, colon, stomach; segmentation only) and brain tumour (CPM-15; '
              'segmentation only)',
    'classes': 'Other, Inflammatory, Epithelial, Spindle are learnt from colorectal tissue only (CoNSeP). Outside '
               'colorectal H&E treat the class as a hint: e.g. keratinocytes in skin, glia or tumour cells in brain '
               'and cells of organs absent from CoNSeP get the nearest colorectal look-alike. Other (necrotic, mitotic, '
               'unclassifiable; ~4 % of training nuclei) is unreliable (PQ ~0.1) and should not be counted.',
    'notFor': 'IHC/special stains, fluorescence, cytology smears, frozen sections (never seen in training); '
              'diagnosis (research use only; the training data licences are research/non-commercial)',
    'probabilities': 'Prob: <class> is calibrated on held-out CoNSeP cells (temperature scaling, see calibration); '
                     'on other tissue it is not calibrated and tends to be over-confident.',
}
# provenance.intendedUse.faintCells, only when tuning chose the faint-cell filter
FAINT_CELLS_USE = ('cells whose mean cell probability is below postprocess.meanCellprobThreshold are left out (tuned '
                   'on the held-out images): mostly specks and fragments, but also some faint real nuclei (pale '
                   'flattened or thin, out-of-focus ones); counts that must include every faint nucleus should turn it '
                   'off (job option postprocess.meanCellprobThreshold null, cellbridge segment --keep-faint, QuPath '
                   'keepFaint=true)')


def finish_model(out, log_name='training-log-finish', ckpt=None, views=1, version=None, tune_train=False):
    """tune_train (session 17): tune the post-processing defaults on the training images too (score = held-out + training
    images, each finish_v2's selection score): the 8 held-out images alone cannot tell choices ~0.003 apart, and the
    network fits its training images barely better than new ones. Outline threshold and calibration stay held-out only."""
    t0 = time.time()
    lines = []

    def log(msg):
        line = f'[finish {time.time() - t0:6.1f}s] {msg}'
        print(line, flush=True)
        lines.append(line)
    ckpt = ckpt or os.path.join(out, 'checkpoint-fp16.pt')
    torch.set_num_threads(2)
    net, ck = load_network(ckpt)
    mean, std = ck['mean'], ck['std']
    # a fine-output network (train_v2 --fine-output) reads and predicts at 0.25 um/px: its held-out tiles at 40x
    fine_out = bool(ck.get('fineOutput'))
    factor = 1 if fine_out else 2
    va = {s: split_val(s, load_set(s, 'train', factor=factor))[1] for s in SETS}
    # Tuning and calibration see what the daemon will compute: the mean over the card's views (tta_ref.py).
    preds = {s: predict_views(net, va[s]['images'], mean, std, views) for s in SETS}
    log(f'validation predictions with {views} view(s) per tile')
    # A reduced grid (v1's tuning chose threshold 0 with the flow check at 0.8 and minSize 10): flow
    # following per threshold is the expensive part, and on the shared CPU the full grid took 11 min.
    import tune as tune_mod
    tune_mod.THRESHOLDS, tune_mod.MIN_SIZES, tune_mod.FLOW_THRESHOLDS = (0.0,), (8, 10, 12), (0.0, 0.4, 0.8)
    # faint-cell filter (session 16): on w2's held-out maps a mean cellprob logit of 0.8-0.9 scored best (+0.025)
    tune_mod.MEAN_CELLPROB_THRESHOLDS = (None, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2)
    if fine_out:  # 4x the pixels per nucleus
        tune_mod.MIN_SIZES = (20, 30, 40, 50)
    grids = {}
    for s in SETS:
        _, grids[s] = tune(preds[s], va[s]['inst'], eval_type(va[s]['type']), lambda m: None)
    keys = list(grids['consep'])
    train_grids = {}
    if tune_train:
        for s in SETS:
            tr = split_val(s, load_set(s, 'train', factor=factor))[0]
            _, train_grids[s] = tune(predict_views(net, tr['images'], mean, std, views), tr['inst'], eval_type(tr['type']), lambda m: None)
        log('tuning also on the training images (--tune-on-train)')

    def comb_of(g, k):
        return sum(SCORE_W[s] * g[s][k]['bPQ_tileMean'] for s in SETS) + g['consep'][k]['mPQ3']

    def comb(k):
        return comb_of(grids, k) + (comb_of(train_grids, k) if tune_train else 0.0)
    usual_min_size = 40 if fine_out else 10  # ties go to the usual minimum size (10 px at 0.5 um/px = 40 at 0.25)
    best = max(keys, key=lambda k: (round(comb(k), 3), k[0] == 0.0, k[2] == 0.0, k[3] is None, -abs(k[1] - usual_min_size)))
    post = post_dict(best)
    for k in sorted(keys, key=tune_key_order):
        log(f'tune {k}: score {comb(k):.4f} ' + ' '.join(f'{s} bPQ {grids[s][k]["bPQ_tileMean"]:.4f}' for s in SETS)
            + f' consep mPQ3 {grids["consep"][k]["mPQ3"]:.4f}'
            + (f' | training images: score {comb_of(train_grids, k):.4f} ' + ' '.join(
                f'{s} bPQ {train_grids[s][k]["bPQ_tileMean"]:.4f}' for s in SETS) if tune_train else ''))
    log(f'chosen postprocess: {post}')
    validation = {s: summary(grids[s][best]) for s in SETS}
    if fine_out:  # the maps are at the 40x tiles' own resolution: no finer grid to outline on
        outline, outline_grid = None, {}
    else:
        outline, outline_grid = tune_outline(preds, va, post, log)
    recs, images = cell_records(preds['consep'], va['consep']['inst'], va['consep']['type'], post, va['consep']['names'])
    cal = calibrate(recs, images, log)

    from export import onnx_export, make_card, write_reference
    from data import load_split
    model = Calibrated(net, cal['temperature']).eval()
    onnx_path = os.path.join(out, 'model.onnx')
    onnx_export(model, onnx_path)
    stages = ck.get('stages', [])
    prov = {
        'trainingData': 'train splits of CoNSeP (27 images, 4 classes), MoNuSeg 2018 (30 images, 7+ organs, no classes) '
                        'and CPM-15 (12 images, brain, no classes), 40x tiles downscaled 2x to 0.5 um/px; whole images '
                        f'held out for validation: {VAL_IMAGES}. Test splits not used.',
        'licence': 'trained on CoNSeP (research use; cite HoVer-Net), MoNuSeg (CC BY-NC-SA 4.0; cite Kumar et al.) and '
                   'CPM-15 (no licence stated, research use; cite Vu et al. 2019): research / non-commercial use only.',
        'architecture': 'U-Net, 5 levels ' + '-'.join(str(c) for c in ck.get('channels', [])) + ', 2x(conv3x3-BN-ReLU) per '
                        'level, max-pool down, nearest up, 1x1 heads flows(2) cellprob(1) type(5); type logits divided by '
                        'the calibration temperature in the graph'
                        + ('; the type head reads its own copy of the last decoder block (type branch)' if ck.get('typeBranch') else ''),
        'targets': 'Cellpose heat-diffusion flows (dY,dX unit field x5), foreground probability, 5-class type map; '
                   'nuclei without a class (MoNuSeg, CPM-15) enter the type loss only as "not background"',
        'augmentation': 'scale jitter 0.75-1.33 with 6 resampling kernels (from the 40x tile or the 0.5 um/px tile), '
                        'rot90/flips, optical-density factor 0.8-3.5, HED jitter, brightness/contrast/saturation, '
                        'Gaussian blur or unsharp mask, JPEG re-compression (quality 35-95), noise',
        'trainingStages': stages,
        'hardware': f'CPU, 2 threads (shared 2-core machine, run at lowered priority: nice 5-19), torch {torch.__version__}',
        'testTimeAugmentation': views,
        'validation': {'images': VAL_IMAGES, 'resolution': '0.5 um/px', 'results': validation,
                       'metric': 'bPQ = mean over tiles of per-tile binary PQ; per-class PQ summed over tiles; IoU > 0.5; '
                                 'Python reference post-processing at model resolution'},
        'calibration': cal,
        'intendedUse': {**INTENDED_USE, **({'faintCells': FAINT_CELLS_USE} if post.get('meanCellprobThreshold') is not None else {})},
        'onnxBytes': os.path.getsize(onnx_path),
        'parameters': count_params(net),
    }
    card = make_card(mean, std, post, prov, ck.get('mpp', 0.5))
    if fine_out:
        # 5 poolings of the 0.25 um/px image (space-to-depth + 4); tiles and their overlap cover the same tissue as
        # the 0.5 um/px model's
        card['input'].update(multipleOf=32, readSize=512, modelSize=512)
        card['tiling']['overlap'] = 128
        prov['validation']['resolution'] = '0.25 um/px'
        prov['intendedUse'] = {**prov['intendedUse'],
                               'resolution': '0.25 um/px (40x); the daemon upsamples 20x slides 2x (trained with such '
                                             'upsampled tiles too)'}
        prov['trainingData'] = prov['trainingData'].replace('40x tiles downscaled 2x to 0.5 um/px',
                                                            '40x tiles at 0.25 um/px')
        prov['architecture'] += (f'; reads the 0.25 um/px image through a 2x2 space-to-depth step and adds a 0.25 um/px '
                                 f'top of {ck["fineOutput"]} channels whose 1x1 heads correct the maps upsampled 2x '
                                 f'(bilinear): all outputs at 0.25 um/px')
    card['name'] = NAME
    card['postprocess']['outlineThreshold'] = outline
    card['version'] = version or ('2.1.0' if ck.get('channels', [16])[0] != 16 else '2.0.0')
    if views > 1:
        # The daemon's default for jobs that do not choose (options.testTimeAugmentation); tuned and calibrated with it.
        card['input']['testTimeAugmentation'] = views
    width = '-'.join(str(c) for c in ck.get('channels', []))
    card['description'] = (f'Cell Bridge H&E nucleus model v2: U-Net ({width}, {count_params(net) / 1e6:.2f} M parameters) trained on CoNSeP + MoNuSeg + CPM-15 at {ck.get("mpp", 0.5)} um/px '
                           'with resampling/blur/JPEG/stain invariance augmentation; Cellpose-style flows + cell probability + '
                           '4-class type head (Other, Inflammatory, Epithelial, Spindle; classes learnt from colorectal '
                           'tissue only, calibrated by temperature scaling). Research use.')
    with open(os.path.join(out, 'card.json'), 'w') as fh:
        json.dump(card, fh, indent=2)
        fh.write('\n')
    test = load_split('test', factor)
    ref_index = int(np.argmax([len(np.unique(i)) for i in test['inst'][:16]]))
    x = test['images'][ref_index].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    x = (x - np.array(mean, np.float32)[None, :, None, None]) / np.array(std, np.float32)[None, :, None, None]
    write_reference(model, out, x.astype(np.float32))
    log(f'exported {onnx_path} ({prov["onnxBytes"]} bytes), card.json, reference/ (tile {test["names"][ref_index]})')
    stale = os.path.join(out, 'model-int8.onnx')
    if os.path.exists(stale):
        # the card just written names no cpuFile; an int8 copy of the previous weights must not linger
        os.remove(stale)
        log('removed the int8 copy of the previous weights: run models/training/quantize.py for the new ones')
    with open(os.path.join(out, log_name + '.txt'), 'a') as fh:
        fh.write('\n'.join(lines) + '\n')
    jl = os.path.join(out, log_name + '.json')
    j = json.load(open(jl)) if os.path.exists(jl) else {}
    j['finish'] = {'tuningGrid': {str(k): {'score': round(comb(k), 4), **{s: summary(grids[s][k]) for s in SETS}} for k in sorted(keys, key=tune_key_order)},
                   **({'tuningGridTrainingImages': {str(k): {'score': round(comb_of(train_grids, k), 4), **{s: summary(train_grids[s][k]) for s in SETS}}
                                                    for k in sorted(keys, key=tune_key_order)}} if tune_train else {}),
                   'chosenPostprocess': post, 'validation': validation, 'calibration': cal,
                   'outlineGrid': outline_grid, 'chosenOutlineThreshold': outline}
    json.dump(j, open(jl, 'w'), indent=1)
    return card


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(HERE, '..', NAME))
    ap.add_argument('--ckpt', default='')
    ap.add_argument('--log-name', default='training-log-finish')
    ap.add_argument('--tta', type=int, default=1, choices=(1, 2, 4, 8),
                    help='views per tile the card asks for by default (input.testTimeAugmentation); tuning and calibration use them')
    ap.add_argument('--version', default='', help="the card's version (default 2.1.0 for the widened network)")
    ap.add_argument('--tune-on-train', action='store_true',
                    help='tune the post-processing defaults on the training images as well as the held-out ones')
    a = ap.parse_args()
    finish_model(a.out, a.log_name, a.ckpt or None, a.tta, a.version or None, a.tune_on_train)
