"""Train model v2 (cellbridge-he-v2): CoNSeP + MoNuSeg + CPM-15, invariance augmentation, resumable.

  # stage 1 of session 1: start from the v1 weights (read back from its ONNX file)
  nice -n 19 /usr/bin/python3 models/training/train_v2.py --init-onnx models/cellbridge-he-v1/model.onnx \
      --out models/cellbridge-he-v2 --stage s1 --time-budget-min 60
  # any later session: continue from the committed compact checkpoint
  nice -n 19 /usr/bin/python3 models/training/train_v2.py --resume models/cellbridge-he-v2/checkpoint-fp16.pt \
      --out models/cellbridge-he-v2 --stage s2 --lr 1e-3 --time-budget-min 60

Data: each set's train split; whole source images of each (datasets.VAL_IMAGES) are held out for
validation, model selection, post-processing tuning and temperature calibration. Test splits are
never read here (evaluate with `npm run eval`).
Writes into --out: model.onnx, card.json, reference/*.npy, checkpoint-fp16.pt (weights + BN
statistics in fp16, normalisation, post-processing, temperature: what --resume needs), and
training-log-<stage>.{txt,json}. Optimizer state and per-epoch files stay in models/training/runs/
(git-ignored).
"""
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # sleep, not spin, on the shared CPU (see README)
import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from datasets import load_set, split_val, SETS, UNKNOWN, VAL_IMAGES  # noqa: E402
from augment import geometric_with, colour, rescale, rescale_fine, rescale_native, degrade, contact_pixels  # noqa: E402
from model import CellUNet, count_params, fine_input_weights  # noqa: E402
from postprocess_ref import cluster, finish, PQ, gt_classes  # noqa: E402
from train import predict  # noqa: E402  (same inference as v1's validation)

# share of each set in a batch: CoNSeP carries the classes, so it keeps half of the samples
SET_P = {'consep': 0.5, 'monuseg': 0.35, 'cpm15': 0.15}
# model selection: weighted binary PQ over the sets' validation images + CoNSeP mean class PQ
SCORE_W = {'consep': 0.4, 'monuseg': 0.4, 'cpm15': 0.2}


def eval_type(typ):
    """Type map for the PQ code: unknown nuclei count as class 0 (binary metrics only)."""
    return np.where(typ == UNKNOWN, 0, typ)


# Validation post-processing per map resolution: at 0.5 um/px the v1/v2 defaults; at 0.25 um/px (fine_output) the
# same clustering (Cellpose's own defaults, made for nuclei 15-30 px across, which 40x nuclei are) and a minimum size
# of 30 fine pixels (10 at 0.5 um/px is 40 fine pixels; smaller and thinner nuclei are what the finer grid is for).
VAL_MIN_SIZE = {'value': 10}


def segment_tile(flows, cellprob, tlog, thr=0.0, min_size=None, mean_cellprob_threshold=None):
    """One tile's (labels, class per label) from the model maps: the validation's post-processing."""
    min_size = VAL_MIN_SIZE['value'] if min_size is None else min_size
    raw = cluster(flows, cellprob, thr)
    return finish(raw, flows, tlog, 5.0, min_size, True, cellprob=cellprob, mean_cellprob_threshold=mean_cellprob_threshold)


def add_tile(pq, inst, typ, lab, cls):
    """Scores one tile's segmentation against its ground truth into pq (postprocess_ref.PQ)."""
    g = inst.astype(np.int32)
    pq.add(g, gt_classes(g, eval_type(typ)), lab, cls)


def evaluate(preds, inst, typ, thr=0.0, min_size=None):
    flows, cellprob, tlog = preds
    pq = PQ()
    for i in range(len(inst)):
        add_tile(pq, inst[i], typ[i], *segment_tile(flows[i], cellprob[i], tlog[i], thr, min_size))
    return pq.result()


def score(res):
    return sum(SCORE_W[s] * res[s]['bPQ_tileMean'] for s in res) + res['consep']['mPQ3']


def type_loss(logits, typ, cw):
    """CE over background + 4 classes on labelled pixels; on UNKNOWN nuclei only 'not background':
    -log(1 - p_bg) = logsumexp(all) - logsumexp(classes). Class 0 never enters the class choice."""
    known = typ != UNKNOWN
    ce = F.cross_entropy(logits, torch.where(known, typ, torch.zeros_like(typ)), weight=cw, reduction='none')
    wsum = cw[torch.where(known, typ, torch.zeros_like(typ))]
    l_known = (ce * known).sum() / (wsum * known).sum().clamp(min=1)
    unk = ~known
    if unk.any():
        lse_all = torch.logsumexp(logits, 1)
        lse_fg = torch.logsumexp(logits[:, 1:], 1)
        l_unk = ((lse_all - lse_fg) * unk).sum() / unk.sum()
    else:
        l_unk = logits.sum() * 0
    return l_known, l_unk


def distill_loss(pf, pc, pt, t_f, t_c, t_t):
    """The student's maps against a teacher's: flows by squared error (both in the network's units), cell
    probability by cross-entropy to the teacher's probability, classes by KL(teacher || student) per pixel."""
    lf = ((pf - t_f) ** 2).mean()
    lc = F.binary_cross_entropy_with_logits(pc[:, 0], torch.sigmoid(t_c))
    lt = (F.softmax(t_t, 1) * (F.log_softmax(t_t, 1) - F.log_softmax(pt, 1))).sum(1).mean()
    return 0.5 * lf + lc + lt


def add_teacher_maps(tr, ckpt, views, log, dev=torch.device('cpu')):
    """tr[s]['teacher'] = (flows [N,2,H,W], cell-probability logit [N,H,W], type logits [N,H,W,5]) float16 of the
    checkpoint's network averaged over `views` mirrored views, on every training tile, the type logits channels-last
    once here (as augmented_crop moves maps); cached beside the training caches (keyed by file and views).
    The teacher runs on `dev` (a large teacher's 8 views take minutes per view on 2 CPU cores, seconds on a GPU).
    stack_crops makes the crops float32."""
    from datasets import CACHE
    from tta_ref import predict_views
    st = os.stat(ckpt)
    path = os.path.join(CACHE, f'teacher-{os.path.basename(ckpt)}-{st.st_size}-{int(st.st_mtime)}-v{views}.npz')
    if os.path.exists(path):
        z = np.load(path)
        maps = {s: (z[s + '_f'], z[s + '_c'], z[s + '_t']) for s in tr}
        log(f'teacher maps read from {path}')
    else:
        net, ck = load_network(ckpt)
        net.to(dev)
        t0 = time.time()
        maps = {s: tuple(m.astype(np.float16) for m in predict_views(net, tr[s]['images'], ck['mean'], ck['std'], views))
                for s in tr}
        np.savez(path, **{s + k: m for s in tr for k, m in zip(('_f', '_c', '_t'), maps[s])})
        log(f'teacher maps of {ckpt} over {views} views on {sum(len(tr[s]["images"]) for s in tr)} tiles '
            f'in {time.time() - t0:.0f} s, cached in {path}')
    for s in tr:
        f, c, t = maps[s]
        tr[s]['teacher'] = (f, c, np.ascontiguousarray(t.transpose(0, 2, 3, 1)))


def save_compact(path, model, meta):
    sd = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    torch.save({'model_fp16': sd, **meta}, path)


def float_weights(ck):
    """A checkpoint's weights in fp32: a compact checkpoint's ('model_fp16') or a run's best.pt / last.pt ('model')."""
    sd = ck['model_fp16'] if 'model_fp16' in ck else ck['model']
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}


def type_branch_weights(src, last):
    """A type branch (CellUNet dec_type + type_head) initialised from a network's last decoder block dec.<last> and
    its type head: at the start, the branch computes exactly that network's type logits from the same inputs."""
    pre = f'dec.{last}.'
    out = {'dec_type.' + k[len(pre):]: v for k, v in src.items() if k.startswith(pre)}
    out.update({k: v for k, v in src.items() if k.startswith('type_head.')})
    return out


def load_network(path, channels=(16, 32, 64, 128, 128)):
    """(network in eval mode, checkpoint dict) from a compact checkpoint or a run's best.pt / last.pt, read once;
    its recorded channel widths (else `channels`) and type branch decide the architecture."""
    ck = torch.load(path, map_location='cpu')
    net = CellUNet(tuple(ck.get('channels', channels)), type_branch=bool(ck.get('typeBranch')),
                   fine_input=bool(ck.get('fineInput')), fine_output=int(ck.get('fineOutput', 0)))
    net.load_state_dict(float_weights(ck))
    return net.eval(), ck


def per_set_numbers(text, flag):
    """'a,b,c' -> one non-negative number per set (SETS order), or exit with what the flag needs."""
    v = np.array([float(x) for x in text.split(',')])
    if len(v) != len(SETS) or (v < 0).any():
        raise SystemExit(f'{flag} needs {len(SETS)} non-negative numbers ({",".join(SETS)})')
    return v


def load_compact(path, model):
    ck = torch.load(path, map_location='cpu')
    model.load_state_dict(float_weights(ck))
    return ck


# --fine-input: the image at twice the maps' resolution (model.CellUNet fine_input); --fine-output: image and maps
# both at 0.25 um/px (the 40x tiles and 40x targets)
FINE = {'on': False, 'p20x': 0.35, 'out': False}
AUG = {'clean': 0.0}  # --clean-share: the share of crops without scale, colour and degradation augmentation


def augmented_crop(r, img40, img, flows, ty, ins, crop, scale_range, od_scale, teacher=None):
    """One training sample from a region (its 40x pixels, model-resolution image and targets): scale jitter,
    a random crop of `crop` (or of the whole rescaled region if smaller), rotations/flips, colour and
    degradation. Returns (image float, flows, type, foreground, contact); with FINE['on'] the image is 2x the maps.
    teacher: (flows [2,H,W], cell-probability logit [H,W], type logits [H,W,5]) of a teacher on this region
    (--distill-from, any float type), moved by the same scale, crop and rotation as the targets and appended to the
    result (type logits back as [5,H,W])."""
    t_fl, t_maps = (teacher[0], list(teacher[1:])) if teacher is not None else (None, [])
    clean = AUG['clean'] > 0 and r.random() < AUG['clean']  # main() allows it without fine input or teacher only
    if clean:  # --clean-share: the tile as it is (rotations and flips only)
        fl = flows
    elif FINE['out']:
        img, fl, (ty, ins) = rescale_native(r, img40, flows, [ty, ins], scale_range, p_20x=FINE['p20x'])
    elif FINE['on']:
        img, fl, (ty, ins) = rescale_fine(r, img40, img, flows, [ty, ins], scale_range, p_20x=FINE['p20x'])
    else:
        fl_in = flows if t_fl is None else np.concatenate([flows, t_fl])
        img, fl, maps = rescale(r, img40, img, fl_in, [ty, ins] + t_maps, scale_range)
        (ty, ins), t_maps = maps[:2], maps[2:]
        if t_fl is not None:
            fl, t_fl = fl[:2], fl[2:]
    H, W = ty.shape
    c = min(crop, H, W)
    y, x_ = r.integers(0, H - c + 1), r.integers(0, W - c + 1)
    sl = (slice(y, y + c), slice(x_, x_ + c))
    f = 2 if FINE['on'] and not FINE['out'] else 1
    isl = (slice(f * y, f * (y + c)), slice(f * x_, f * (x_ + c)))
    img, fl, (ty, ins), t_fl, t_maps = geometric_with(r, img[isl], fl[(slice(None),) + sl], [ty[sl], ins[sl]],
                                                      None if t_fl is None else t_fl[(slice(None),) + sl],
                                                      [m[sl] for m in t_maps])
    out = (img.astype(np.float32) if clean else degrade(r, colour(r, img, od_scale)), fl, ty, ins > 0, contact_pixels(ins))
    if t_fl is None:
        return out
    return out + (t_fl, t_maps[0], np.ascontiguousarray(t_maps[1].transpose(2, 0, 1)))


def make_sampler(tr, names, probs, crop, scale_range, od_scale):
    """sample(rng) -> one augmented training crop (image u8, flows, type, foreground) from a set drawn by `probs`;
    with the teacher's maps when the sets carry them (tr[s]['teacher'])."""
    def sample(r):
        s = names[r.choice(len(names), p=probs)]
        d = tr[s]
        i = r.integers(len(d['names']))
        t = d.get('teacher')
        return augmented_crop(r, d['img40'][i], d['images'][i], d['flows'][i], d['type'][i], d['inst'][i],
                              crop, scale_range, od_scale, None if t is None else (t[0][i], t[1][i], t[2][i]))
    return sample


def make_source_sampler(src, names, probs, crop, scale_range, od_scale):
    """As make_sampler, from whole source images (sources.py): the crop may be larger than a tile and span tile
    borders. A window with room for the scale jitter (crop / smallest scale) is cut first, then augmented like
    a tile; an image is drawn in proportion to its area (as tiles were)."""
    sets = {s: (list(src[s].values()), np.array([v['type'].size for v in src[s].values()], np.float64)) for s in names}
    need = int(np.ceil(crop / scale_range[0])) + 1

    def sample(r):
        s = names[r.choice(len(names), p=probs)]
        imgs, area = sets[s]
        d = imgs[r.choice(len(imgs), p=area / area.sum())]
        H, W = d['type'].shape
        n = min(need, H, W)
        y, x_ = int(r.integers(0, H - n + 1)), int(r.integers(0, W - n + 1))
        sl = (slice(y, y + n), slice(x_, x_ + n))
        return augmented_crop(r, d['img40'][2 * y:2 * (y + n), 2 * x_:2 * (x_ + n)], d['images'][sl],
                              d['flows'][(slice(None),) + sl], d['type'][sl], d['inst'][sl], crop, scale_range, od_scale)
    return sample


def stack_crops(crops):
    """A list of sample() results -> (images u8 [N,H,W,3], flows [N,2,H,W], type int64, foreground float32, contact
    float32) tensors, then the teacher's (flows, cell-probability logit, type logits) float32 when distilling."""
    out = (torch.from_numpy(np.stack([b[0] for b in crops])), torch.from_numpy(np.stack([b[1] for b in crops])),
           torch.from_numpy(np.stack([b[2] for b in crops]).astype(np.int64)),
           torch.from_numpy(np.stack([b[3] for b in crops]).astype(np.float32)),
           torch.from_numpy(np.stack([b[4] for b in crops])))
    return out + tuple(torch.from_numpy(np.stack([b[k] for b in crops]).astype(np.float32))
                       for k in range(5, len(crops[0])))


class _CropStream(torch.utils.data.IterableDataset):
    """Endless batches of augmented crops; each worker process draws from its own generator."""

    def __init__(self, sample, batch, seed):
        super().__init__()
        self.sample, self.batch, self.seed = sample, batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        r = np.random.default_rng([self.seed, 7_919, info.id if info else 0])
        while True:
            yield stack_crops([self.sample(r) for _ in range(self.batch)])


def crop_batches(sample, batch, workers, seed):
    """An iterator of training batches cut in `workers` processes (forked: they share the loaded sets)."""
    loader = torch.utils.data.DataLoader(_CropStream(sample, batch, seed), batch_size=None, num_workers=workers,
                                         prefetch_factor=4, persistent_workers=True)
    return iter(loader)


def cpu_state(model):
    return {k: v.cpu() for k, v in model.state_dict().items()}


def to_input(images_u8, mean, std):
    """[N, H, W, 3] uint8 -> the network's normalised NCHW float input."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2) / 255.0 - m) / sd


def with_reestimated_bn(model, batches):
    """A copy of the model whose BatchNorm statistics are the plain mean over `batches` (network inputs), not the
    exponential average of the last ~20 training batches that a run ends with."""
    m = copy.deepcopy(model)
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d):
            b.reset_running_stats()
            b.momentum = None  # cumulative mean over the batches
    m.train()
    with torch.no_grad():
        for x in batches:
            m(x)
    m.eval()
    return m


def validation(model, va, mean, std):
    """Scores on the held-out images of every set: (per-set results, selection score). A fine_input network
    reads the 40x tiles."""
    key = 'img40' if getattr(model, 'fine_input', False) else 'images'
    res = {s: evaluate(predict(model, va[s][key], mean, std), va[s]['inst'], va[s]['type']) for s in SETS}
    return res, score(res)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(HERE, '..', 'cellbridge-he-v2'))
    ap.add_argument('--stage', default='s1', help='name of this stage (log files training-log-<stage>.*)')
    ap.add_argument('--init-onnx', default='', help='start from a shipped ONNX model of the same architecture (v1)')
    ap.add_argument('--resume', default='', help='continue from a compact checkpoint (checkpoint-fp16.pt)')
    ap.add_argument('--channels', default='16,32,64,128,128')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--crop', type=int, default=96)
    ap.add_argument('--lr', type=float, default=1.5e-3)
    ap.add_argument('--time-budget-min', type=float, default=60)
    ap.add_argument('--steps-per-epoch', type=int, default=100)
    ap.add_argument('--val-every', type=int, default=4, help='epochs between validations')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--od-scale', default='0.8,3.5')
    ap.add_argument('--scale-range', default='0.75,1.33')
    ap.add_argument('--unknown-weight', type=float, default=0.5)
    ap.add_argument('--contact-weight', type=float, default=0.0,
                    help='extra weight of the flow loss on pixels with another nucleus within 2 px (weight 1 + this); '
                         '0: plain mean squared error (stages s1-w10)')
    ap.add_argument('--set-shares', default='', help='consep,monuseg,cpm15 batch shares (default 0.5,0.35,0.15)')
    ap.add_argument('--no-export', action='store_true')
    ap.add_argument('--bn-batches', type=int, default=0,
                    help='validate (and keep as best) a copy whose BatchNorm statistics are the plain mean over this many '
                         'augmented batches, the same ones at every validation; 0: the running averages (stages s1-w4)')
    ap.add_argument('--sources', action='store_true',
                    help='crop from whole source images (tiles stitched back, sources.py) instead of single 128x128 tiles: '
                         'crops larger than a tile (--crop up to ~190) that also span tile borders')
    ap.add_argument('--type-branch-from', default='',
                    help='give the type head its own copy of the last decoder block (CellUNet type_branch), both '
                         'initialised from this checkpoint (e.g. the shipped one) while the rest comes from --resume')
    ap.add_argument('--score-weights', default='',
                    help='consep,monuseg,cpm15 weights of binary PQ in the selection score (default 0.4,0.4,0.2; '
                         'CoNSeP mPQ3 always adds with weight 1)')
    ap.add_argument('--device', default='cpu', help='torch device to train on (cpu, cuda); validation post-processing stays on the CPU')
    ap.add_argument('--workers', type=int, default=0,
                    help='processes that cut and augment the training crops (0: the training process itself, as in '
                         'stages s1-w10; a GPU needs several to be kept busy)')
    ap.add_argument('--fine-input', action='store_true',
                    help='the network reads the image at 0.25 um/px (twice the maps\' resolution, folded 2x2 into 12 '
                         'channels); from a checkpoint without it, the first convolution is spread over the sub-pixels '
                         '(model.fine_input_weights: the same function on the 2x2 box average at the start). Experimental (stage f1, '
                         'not shipped): finish_v2.py, the card and the daemon have no fine-input path')
    ap.add_argument('--fine-output', type=int, default=0,
                    help='channels of a 0.25 um/px top (implies --fine-input): maps at the 40x tiles\' resolution, '
                         'trained on 40x targets; from a 0.5 um/px checkpoint it starts as that network upsampled')
    ap.add_argument('--clean-share', type=float, default=0.0,
                    help='share of training crops without scale jitter, colour or degradation (rotations/flips only)')
    ap.add_argument('--train-tiles', type=int, default=0,
                    help='train on the first N training tiles of each set only (0 = all): a check that the network '
                         'can fit a few tiles (with errors.py --on train --max-tiles N)')
    ap.add_argument('--no-start-val', action='store_true',
                    help='skip the validation of the starting weights (the last validation decides; saves a GPU call time)')
    ap.add_argument('--p-20x', type=float, default=0.35,
                    help='with --fine-input: share of crops that imitate a 20x slide (0.5 um/px upsampled 2x)')
    ap.add_argument('--distill-from', default='',
                    help='a teacher checkpoint: its maps (averaged over --distill-views views) on the training tiles '
                         'become soft targets beside the labels (self-distillation when it is the starting network)')
    ap.add_argument('--distill-views', type=int, default=8, choices=(1, 2, 4, 8))
    ap.add_argument('--distill-weight', type=float, default=0.5,
                    help='share of the loss taken by the teacher (the labels keep the rest)')
    ap.add_argument('--train-only', default='',
                    help='comma-separated parameter-name prefixes (e.g. type_head): train only those, the rest frozen '
                         'with BatchNorm statistics fixed (re-estimated first on --bn-batches batches when given)')
    a = ap.parse_args()
    if a.score_weights:
        SCORE_W.update(zip(SETS, per_set_numbers(a.score_weights, '--score-weights').tolist()))
    od_scale = tuple(float(v) for v in a.od_scale.split(','))
    scale_range = tuple(float(v) for v in a.scale_range.split(','))
    ch = tuple(int(c) for c in a.channels.split(','))

    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    run_dir = os.path.join(HERE, 'runs', 'cellbridge-he-v2-' + a.stage)
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    lines = []

    def log(msg):
        line = f'[{time.time() - t_start:7.1f}s] {msg}'
        print(line, flush=True)
        lines.append(line)

    prev = torch.load(a.resume, map_location='cpu') if a.resume else {}
    fine_out = int(prev.get('fineOutput', 0)) or a.fine_output
    factor = 1 if fine_out else 2  # targets at 0.25 um/px for a fine-output network
    if fine_out:
        VAL_MIN_SIZE['value'] = 30
    tr, va = {}, {}
    for s in SETS:
        tr[s], va[s] = split_val(s, load_set(s, 'train', factor=factor))
        if a.train_tiles:  # the overfitting check: can the network fit a handful of tiles at all?
            tr[s] = {k: v[:a.train_tiles] for k, v in tr[s].items()}
        log(f'{s}: train tiles {len(tr[s]["names"])}, val tiles {len(va[s]["names"])} (images {VAL_IMAGES[s]})')

    type_branch = bool(prev.get('typeBranch')) or bool(a.type_branch_from)
    fine = bool(prev.get('fineInput')) or a.fine_input or bool(fine_out)
    if fine and a.distill_from:
        raise SystemExit('--distill-from works on the 0.5 um/px image only: not with a fine-input network')
    FINE.update(on=fine, p20x=a.p_20x, out=bool(fine_out))
    if a.clean_share and (fine or a.distill_from):
        raise SystemExit('--clean-share works on the 0.5 um/px image without a teacher only (stage c1)')
    AUG['clean'] = a.clean_share
    model = CellUNet(ch, type_branch=type_branch, fine_input=fine, fine_output=fine_out)
    if a.resume:
        sd = float_weights(prev)
        if fine and not prev.get('fineInput'):
            sd = fine_input_weights(sd)
            log('fine input: first convolution spread over the 2x2 sub-pixels (the same function on box-averaged input)')
        if type_branch and not prev.get('typeBranch'):
            sd.update(type_branch_weights(float_weights(torch.load(a.type_branch_from, map_location='cpu')), len(model.dec) - 1))
            log(f'type branch: last decoder block and type head copied from {a.type_branch_from}')
        if fine_out and not prev.get('fineOutput'):
            # the top's weights are new; its heads start at zero (the network starts as the resumed one, upsampled)
            sd.update({k: v for k, v in model.state_dict().items() if k.startswith('top_')})
            log(f'fine output: a 0.25 um/px top of {fine_out} channels, its correction zero at the start')
        model.load_state_dict(sd)
        mean, std = prev['mean'], prev['std']
        log(f'resumed from {a.resume} (stages so far: {[st["stage"] for st in prev.get("stages", [])]})'
            + ('' if 'stages' in prev else '; a run file, not a compact checkpoint: the earlier stages are not recorded'))
    else:
        if a.init_onnx:
            card = json.load(open(os.path.join(os.path.dirname(a.init_onnx), 'card.json')))
            mean, std = card['input']['normalization']['mean'], card['input']['normalization']['std']
            from init_from_onnx import load_onnx_into, check_reference
            xs = tr['consep']['images'][rng.choice(len(tr['consep']['names']), 16, replace=False)]
            x = (torch.from_numpy(xs.astype(np.float32)).permute(0, 3, 1, 2) / 255.0 - torch.tensor(mean).view(1, 3, 1, 1)) \
                / torch.tensor(std).view(1, 3, 1, 1)
            load_onnx_into(model, a.init_onnx, x.float())
            d = check_reference(model, os.path.join(os.path.dirname(a.init_onnx), 'reference'))
            log(f'initialised from {a.init_onnx}; max |diff| to its reference outputs {d}')
        else:
            allimg = np.concatenate([tr[s]['images'].reshape(-1, 3) for s in SETS]).astype(np.float64) / 255
            mean, std = allimg.mean(0).tolist(), allimg.std(0).tolist()
    dev = torch.device(a.device)
    if a.distill_from:
        add_teacher_maps(tr, a.distill_from, a.distill_views, log, dev)
    model.to(dev)
    nparam = count_params(model)
    log(f'CellUNet channels {ch} params {nparam}; mean {np.round(mean, 6).tolist()} std {np.round(std, 6).tolist()}')

    # class weights as v1: (median foreground frequency / frequency)^0.5 on CoNSeP, background 1
    cnt = np.bincount(tr['consep']['type'].ravel(), minlength=5)[:5].astype(np.float64)
    fg = cnt[1:] / cnt[1:].sum()
    w = np.concatenate([[1.0], np.sqrt(np.median(fg) / fg)])
    cw = torch.tensor(w, dtype=torch.float32).to(dev)
    log(f'type weights {np.round(w, 3).tolist()}')

    warm = 200
    t_train = time.time()

    def lr_at(step):
        frac = min(1.0, (time.time() - t_train) / (60 * a.time_budget_min))
        base = a.lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * frac)))
        return base * min(1.0, 0.1 + 0.9 * step / warm)

    names = list(SETS)
    probs = per_set_numbers(a.set_shares, '--set-shares') if a.set_shares else np.array([SET_P[s] for s in names])
    if probs.sum() <= 0:
        raise SystemExit(f'--set-shares needs {len(names)} non-negative numbers ({",".join(names)})')
    probs = probs / probs.sum()
    log(f'batch shares {dict(zip(names, np.round(probs, 3).tolist()))}; selection score weights {SCORE_W} (+ CoNSeP mPQ3)')

    if a.sources:
        from sources import training_sources
        src = {s: training_sources(s) for s in names}
        log('crops from whole source images: ' + ', '.join(f'{s} {len(src[s])}' for s in names))
        sample = make_source_sampler(src, names, probs, a.crop, scale_range, od_scale)
    else:
        sample = make_sampler(tr, names, probs, a.crop, scale_range, od_scale)

    def augmented_batches(r, n):
        for _ in range(n):
            yield to_input(np.stack([sample(r)[0] for _ in range(a.batch)]), mean, std).to(dev)

    train_only = [p for p in a.train_only.split(',') if p]
    if train_only:
        # A frozen trunk keeps the outlines exactly as they are; its BatchNorm statistics are fixed once (the
        # running averages of a run's last batches are noisy, see validate()), so validation needs no re-estimate.
        if a.bn_batches > 0:
            model = with_reestimated_bn(model, augmented_batches(np.random.default_rng(1_000_003 + a.seed), a.bn_batches))
        for n, p in model.named_parameters():
            p.requires_grad = any(n.startswith(t) for t in train_only)
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if not trainable:
            raise SystemExit(f'--train-only {a.train_only}: no parameter name starts with that')
        log(f'training only {len(trainable)} tensors ({sum(p.numel() for p in model.parameters() if p.requires_grad)} '
            f'parameters): {trainable}; the rest frozen, BatchNorm statistics fixed')
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=1e-4)

    def validate():
        """(results, score, the model as validated): the model itself, or (--bn-batches) a copy with re-estimated
        BatchNorm statistics. The running averages moved the score by +-0.02 between two epochs at a learning rate
        of 6e-6 (stage w4); the same batches at every validation (own generator) make validations comparable."""
        m = model if a.bn_batches <= 0 or train_only else \
            with_reestimated_bn(model, augmented_batches(np.random.default_rng(1_000_003 + a.seed), a.bn_batches))
        res, sc = validation(m, va, mean, std)
        return res, sc, m

    if a.bn_batches > 0 and not train_only:
        log(f'validation with BatchNorm statistics re-estimated on {a.bn_batches} fixed augmented batches')
    ck_meta = {'mean': mean, 'std': std, 'channels': list(ch), 'mpp': 0.25 if fine_out else 0.5, 'factor': factor,
               'typeBranch': type_branch, 'fineInput': fine, 'fineOutput': fine_out}
    if a.no_start_val:
        best, history = (-np.inf, 0), []
        log('no validation of the starting weights (--no-start-val): the last validation is the best so far')
    else:
        res0, sc0, m0 = validate()
        log(f'val at start: score {sc0:.4f} ' + json.dumps({s: {'bPQ': res0[s]['bPQ_tileMean'], 'mPQ3': res0[s]['mPQ3']} for s in SETS}))
        best = (sc0, 0)
        torch.save({'model': cpu_state(m0), 'epoch': 0, **ck_meta}, os.path.join(run_dir, 'best.pt'))
        history = [{'epoch': 0, 'val': {s: {'bPQ': res0[s]['bPQ_tileMean'], 'mPQ3': res0[s]['mPQ3']} for s in SETS}, 'val_score': round(sc0, 4)}]
    step, ep = 0, 0
    stop = False
    batches = crop_batches(sample, a.batch, a.workers, a.seed) if a.workers > 0 else None
    while not stop:
        ep += 1
        model.train(not train_only)  # a frozen trunk keeps its BatchNorm statistics
        if train_only and fine_out and any(t.startswith('top_') for t in train_only):
            for mod in (model.top_enc, model.top_dec):  # a new top learns its own statistics
                mod.train()
        t0 = time.time()
        sums = np.zeros(5)
        for _ in range(a.steps_per_epoch):
            img, yf, yt, yc, ycontact, *teach = next(batches) if batches is not None else stack_crops([sample(rng) for _ in range(a.batch)])
            x = to_input(img.numpy(), mean, std).to(dev)
            yf, yt, yc = yf.to(dev) * 5.0, yt.to(dev), yc.to(dev)
            wf = 1.0 + a.contact_weight * ycontact.to(dev)
            for g in opt.param_groups:
                g['lr'] = lr_at(step)
            step += 1
            pf, pc, pt = model(x)
            lf = (((pf - yf) ** 2).mean(1) * wf).sum() / wf.sum()
            lc = F.binary_cross_entropy_with_logits(pc[:, 0], yc)
            lk, lu = type_loss(pt, yt, cw)
            loss = 0.5 * lf + lc + lk + a.unknown_weight * lu
            if teach:
                loss = (1 - a.distill_weight) * loss + a.distill_weight * distill_loss(pf, pc, pt, *(t.to(dev) for t in teach))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += [loss.item(), lf.item(), lc.item(), lk.item(), lu.item()]
        sums /= a.steps_per_epoch
        rec = {'epoch': ep, 'steps': step, 'loss': round(sums[0], 4), 'flow_mse': round(sums[1], 4), 'cellprob_bce': round(sums[2], 4),
               'type_ce': round(sums[3], 4), 'unknown_fg': round(sums[4], 4), 'lr': round(opt.param_groups[0]['lr'], 6),
               'epoch_s': round(time.time() - t0, 1)}
        per_ep = (time.time() - t_train) / ep
        stop = (time.time() - t_train + 0.5 * per_ep) > 60 * a.time_budget_min
        if ep % a.val_every == 0 or stop:
            res, sc, m = validate()
            rec['val'] = {s: {'bPQ': res[s]['bPQ_tileMean'], 'mPQ3': res[s]['mPQ3']} for s in SETS}
            rec['val_score'] = round(sc, 4)
            if sc > best[0]:
                best = (sc, ep)
                torch.save({'model': cpu_state(m), 'epoch': ep, **ck_meta}, os.path.join(run_dir, 'best.pt'))
        torch.save({'model': cpu_state(model), 'opt': opt.state_dict(), 'epoch': ep, **ck_meta}, os.path.join(run_dir, 'last.pt'))
        history.append(rec)
        log(json.dumps(rec))
    train_wall = time.time() - t_start
    log(f'training done: {ep} epochs of {a.steps_per_epoch} steps, wall {train_wall / 60:.1f} min; '
        f'best val score {best[0]:.4f} at epoch {best[1]} (epoch 0 = the starting weights)')

    ck = torch.load(os.path.join(run_dir, 'best.pt'), map_location='cpu')
    model.to('cpu').load_state_dict(ck['model'])
    stage_rec = {'stage': a.stage, 'command': ' '.join(sys.argv), 'epochs': ep, 'steps': step, 'bestEpoch': best[1],
                 'bestValScore': round(best[0], 4), 'trainingWallSeconds': round(train_wall),
                 'init': a.resume or a.init_onnx or 'random', 'lr': a.lr, 'budgetMin': a.time_budget_min,
                 'setShares': dict(zip(names, np.round(probs, 3).tolist())), 'bnBatches': a.bn_batches,
                 'crop': a.crop, 'batch': a.batch, 'sources': a.sources, 'trainOnly': train_only,
                 'typeBranchFrom': a.type_branch_from, 'device': a.device, 'workers': a.workers,
                 'contactWeight': a.contact_weight, 'trainTiles': a.train_tiles or None, 'fineInput': fine, 'fineOutput': fine_out, 'cleanShare': a.clean_share,
                 'p20x': a.p_20x if fine else None,
                 'distillFrom': a.distill_from or None, 'distillViews': a.distill_views if a.distill_from else None,
                 'distillWeight': a.distill_weight if a.distill_from else None}
    stages = prev.get('stages', []) + [stage_rec]
    meta = {**ck_meta, 'stages': stages}
    save_compact(os.path.join(a.out, 'checkpoint-fp16.pt'), model, meta)
    log(f'compact checkpoint {os.path.join(a.out, "checkpoint-fp16.pt")}')
    with open(os.path.join(a.out, f'training-log-{a.stage}.json'), 'w') as fh:
        json.dump({**stage_rec, 'parameters': nparam, 'validationImages': VAL_IMAGES,
                   'scoreWeights': SCORE_W, 'history': history}, fh, indent=1)
    with open(os.path.join(a.out, f'training-log-{a.stage}.txt'), 'w') as fh:
        fh.write('\n'.join(lines) + '\n')
    if not a.no_export:
        from finish_v2 import finish_model
        finish_model(a.out, log_name=f'training-log-{a.stage}')


if __name__ == '__main__':
    main()
