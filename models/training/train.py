"""Train the Cell Bridge default model (cellbridge-he-v1) on CoNSeP train, export ONNX + card.

  nice -n 5 /usr/bin/python3 models/training/train.py --out models/cellbridge-he-v1 --epochs 90 --seed 0

Checkpoints go to models/training/runs/<name>/ (last.pt every epoch, best.pt by validation score),
so a run can be stopped and exported with export.py. The test split is used only by evaluate.py.
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
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from data import load_split  # noqa: E402
from augment import geometric, colour  # noqa: E402
from model import CellUNet, count_params  # noqa: E402
from postprocess_ref import cluster, finish, PQ, gt_classes  # noqa: E402
from export import export_all  # noqa: E402

# Whole CoNSeP train images held out for validation (16 tiles each).
VAL_IMAGES = ('train_3', 'train_12', 'train_22')


def image_of(tile):
    return tile.rsplit('_', 1)[0]


def predict(model, images_u8, mean, std, bs=16):
    model.eval()
    outs = []
    dev = next(model.parameters()).device  # where the model is (train_v2 --device); outputs come back as numpy
    m = torch.tensor(mean).view(1, 3, 1, 1).to(dev); s = torch.tensor(std).view(1, 3, 1, 1).to(dev)
    with torch.no_grad():
        for i in range(0, len(images_u8), bs):
            x = torch.from_numpy(images_u8[i:i + bs].astype(np.float32)).permute(0, 3, 1, 2).to(dev) / 255.0
            f, c, t = model((x - m) / s)
            outs.append((f.cpu().numpy(), c.cpu().numpy()[:, 0], t.cpu().numpy()))
    return [np.concatenate([o[k] for o in outs]) for k in range(3)]


def evaluate(preds, inst, typ, thresholds=(0.0,), min_sizes=(10,)):
    """Returns {(thr, min_size): PQ result}."""
    flows, cellprob, tlog = preds
    res = {}
    for thr in thresholds:
        raw = []
        for i in range(len(inst)):
            raw.append(cluster(flows[i], cellprob[i], thr))
        for ms in min_sizes:
            pq = PQ()
            for i in range(len(inst)):
                lab, cls = finish(raw[i], flows[i], tlog[i], 5.0, ms, True)
                g = inst[i].astype(np.int32)
                pq.add(g, gt_classes(g, typ[i]), lab, cls)
            res[(thr, ms)] = pq.result()
    return res


def score(r):
    """bPQ (mean over tiles, as the project's eval) + mean PQ of Inflammatory, Epithelial, Spindle."""
    return r['bPQ_tileMean'] + r['mPQ3']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(HERE, '..', 'cellbridge-he-v1'))
    ap.add_argument('--epochs', type=int, default=90)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--factor', type=int, default=2, help='downscale of the 40x tiles: 2 -> 0.5 um/px')
    ap.add_argument('--val-every', type=int, default=5)
    ap.add_argument('--max-minutes', type=float, default=0, help='stop early (then export best) after this')
    ap.add_argument('--time-budget-min', type=float, default=0,
                    help='wall-clock schedule: cosine LR over this many minutes of training, then stop '
                         '(epoch count then depends on machine speed; it is recorded in the log). '
                         '0 = epoch-based cosine over --epochs (fully deterministic)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--crop', type=int, default=0, help='train on random crops of this size (0 = whole tiles)')
    ap.add_argument('--run', default='cellbridge-he-v1')
    ap.add_argument('--init', default='', help='start from this checkpoint (fine-tuning) instead of random weights')
    ap.add_argument('--od-scale', default='1,1', help='LO,HI: global optical-density augmentation range (1,1 = off)')
    a = ap.parse_args()
    od_scale = tuple(float(v) for v in a.od_scale.split(','))

    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    rng = np.random.default_rng(a.seed)
    mpp = 0.25 * a.factor
    run_dir = os.path.join(HERE, 'runs', a.run)
    os.makedirs(run_dir, exist_ok=True)
    log_lines = []

    def log(msg):
        line = f'[{time.time() - t_start:7.1f}s] {msg}'
        print(line, flush=True)
        log_lines.append(line)

    d = load_split('train', a.factor)
    is_val = np.array([image_of(n) in VAL_IMAGES for n in d['names']])
    tr = {k: v[~is_val] for k, v in d.items()}
    va = {k: v[is_val] for k, v in d.items()}
    log(f'train tiles {len(tr["names"])}, val tiles {len(va["names"])} (images {VAL_IMAGES}), {mpp} um/px, '
        f'size {tr["images"].shape[1:3]}')
    mean = (tr['images'].reshape(-1, 3).astype(np.float64) / 255).mean(0).tolist()
    std = (tr['images'].reshape(-1, 3).astype(np.float64) / 255).std(0).tolist()
    log(f'mean {np.round(mean, 6).tolist()} std {np.round(std, 6).tolist()}')

    # class weights for the type head: (median fg freq / freq)^0.5, background 1
    cnt = np.bincount(tr['type'].ravel(), minlength=5).astype(np.float64)
    fg = cnt[1:] / cnt[1:].sum()
    w = np.concatenate([[1.0], np.sqrt(np.median(fg) / fg)])
    cw = torch.tensor(w, dtype=torch.float32)
    log(f'type pixel counts {cnt.astype(int).tolist()} weights {np.round(w, 3).tolist()}')

    model = CellUNet()
    if a.init:
        model.load_state_dict(torch.load(a.init, map_location='cpu')['model'])
    nparam = count_params(model)
    log(f'CellUNet params {nparam}')
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    steps_per_epoch = len(tr['names']) // a.batch
    total_steps = a.epochs * steps_per_epoch
    warm = 2 * steps_per_epoch
    t_train = time.time()

    def lr_at(step):
        if step < warm:
            return a.lr * (0.1 + 0.9 * step / warm)
        if a.time_budget_min:
            frac = min(1.0, (time.time() - t_train) / (60 * a.time_budget_min))
        else:
            frac = min(1.0, (step - warm) / max(1, total_steps - warm))
        return a.lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * frac)))

    step = 0
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    history = []
    best = (-1.0, None)
    epochs_done = 0
    for ep in range(1, a.epochs + 1):
        model.train()
        t0 = time.time()
        perm = rng.permutation(len(tr['names']))
        sums = np.zeros(4)
        for b in range(steps_per_epoch):
            idx = perm[b * a.batch:(b + 1) * a.batch]
            xs, fs, cs, ts = [], [], [], []
            for i in idx:
                im0, fl0, ty0, in0 = tr['images'][i], tr['flows'][i], tr['type'][i], tr['inst'][i]
                if a.crop:
                    H0, W0 = ty0.shape
                    y, x_ = rng.integers(0, H0 - a.crop + 1), rng.integers(0, W0 - a.crop + 1)
                    sl = (slice(y, y + a.crop), slice(x_, x_ + a.crop))
                    im0, fl0, ty0, in0 = im0[sl], fl0[(slice(None),) + sl], ty0[sl], in0[sl]
                img, fl, (ty, ins) = geometric(rng, im0, fl0, [ty0, in0])
                xs.append(colour(rng, img, od_scale)); fs.append(fl); ts.append(ty); cs.append(ins > 0)
            x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2) / 255.0
            x = (x - mean_t) / std_t
            yf = torch.from_numpy(np.stack(fs)) * 5.0
            yc = torch.from_numpy(np.stack(cs).astype(np.float32))
            yt = torch.from_numpy(np.stack(ts).astype(np.int64))
            for g in opt.param_groups:
                g['lr'] = lr_at(step)
            step += 1
            pf, pc, pt = model(x)
            lf = F.mse_loss(pf, yf)
            lc = F.binary_cross_entropy_with_logits(pc[:, 0], yc)
            lt = F.cross_entropy(pt, yt, weight=cw)
            loss = 0.5 * lf + lc + lt
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += [loss.item(), lf.item(), lc.item(), lt.item()]
        sums /= steps_per_epoch
        epochs_done = ep
        rec = {'epoch': ep, 'loss': round(sums[0], 4), 'flow_mse': round(sums[1], 4), 'cellprob_bce': round(sums[2], 4),
               'type_ce': round(sums[3], 4), 'lr': round(opt.param_groups[0]['lr'], 6), 'epoch_s': round(time.time() - t0, 1)}
        elapsed_min = (time.time() - t_start) / 60
        stop = bool(a.max_minutes and elapsed_min > a.max_minutes)
        if a.time_budget_min:
            per_ep = (time.time() - t_train) / ep
            # stop when the next epoch would end past the budget (LR is then at its floor)
            stop = stop or (time.time() - t_train + 0.5 * per_ep) > 60 * a.time_budget_min
        if ep % a.val_every == 0 or ep == a.epochs or stop:
            r = evaluate(predict(model, va['images'], mean, std), va['inst'], va['type'])[(0.0, 10)]
            sc = score(r)
            rec['val'] = {k: (r[k]['PQ'] if isinstance(r[k], dict) else r[k]) for k in r}
            rec['val_score'] = round(sc, 4)
            if sc > best[0]:
                best = (sc, ep)
                torch.save({'model': model.state_dict(), 'epoch': ep, 'mean': mean, 'std': std, 'factor': a.factor,
                            'mpp': mpp}, os.path.join(run_dir, 'best.pt'))
        torch.save({'model': model.state_dict(), 'epoch': ep, 'mean': mean, 'std': std, 'factor': a.factor, 'mpp': mpp},
                   os.path.join(run_dir, 'last.pt'))
        history.append(rec)
        log(json.dumps(rec))
        if stop:
            log(f'stopping after {elapsed_min:.1f} min (time budget / --max-minutes)')
            break
    train_wall = time.time() - t_start
    log(f'training done: {epochs_done} epochs, wall {train_wall / 60:.1f} min; best val score {best[0]:.4f} at epoch {best[1]}')

    # Load the best checkpoint; tune cellprob threshold / minSize on the held-out train images.
    ck = torch.load(os.path.join(run_dir, 'best.pt'), map_location='cpu')
    model.load_state_dict(ck['model'])
    from tune import tune, post_dict, summary
    best_post, grid = tune(predict(model, va['images'], mean, std), va['inst'], va['type'], log)
    post = post_dict(best_post)
    log(f'chosen postprocess: {post}')
    val_final = summary(grid[best_post])
    prov = {
        'trainingData': 'CoNSeP train split (Graham et al., HoVer-Net 2019), 27 images cut into 432 tiles of 256x256 at 40x, '
                        f'downscaled {a.factor}x to {mpp} um/px; images {list(VAL_IMAGES)} (48 tiles) held out for validation',
        'licence': 'trained on CoNSeP (research use); cite HoVer-Net. Not for redistribution in a product.',
        'architecture': 'U-Net, 5 levels 16-32-64-128-128, 2x(conv3x3-BN-ReLU) per level, max-pool down, nearest up, '
                        '1x1 heads flows(2) cellprob(1) type(5)',
        'targets': 'Cellpose heat-diffusion flows (dY,dX unit field x5), foreground probability, 5-class type map',
        'loss': '0.5*MSE(flows) + BCE(cellprob) + weighted CE(type)',
        'typeClassWeights': [round(float(v), 3) for v in w],
        'epochs': epochs_done, 'bestEpoch': best[1], 'seed': a.seed, 'batch': a.batch, 'trainCrop': a.crop or None, 'init': a.init or None, 'odScale': list(od_scale), 'optimizer': f'AdamW wd 1e-4, lr {a.lr}, 2-epoch warm-up then cosine to 1% '
                     + (f'over a {a.time_budget_min} min wall-clock budget' if a.time_budget_min else f'over {a.epochs} epochs'),
        'trainingWallSeconds': round(train_wall), 'hardware': f'CPU, {a.threads} threads, torch {torch.__version__}',
        'validation': {'split': 'held-out CoNSeP train images ' + ','.join(VAL_IMAGES), 'resolution': f'{mpp} um/px',
                       'metric': 'bPQ = mean over tiles of per-tile binary PQ; per-class PQ summed over tiles; IoU > 0.5; '
                                 'Python reference post-processing (models/training/postprocess_ref.py) at model resolution',
                       'results': val_final},
    }
    test = load_split('test', a.factor)
    ref_index = int(np.argmax([len(np.unique(i)) for i in test['inst'][:16]]))
    card = export_all(model, a.out, mean, std, post, prov, test['images'][ref_index], mpp)
    torch.save({**ck, 'post': post, 'prov': card['provenance'], 'ref_index': ref_index}, os.path.join(run_dir, 'best.pt'))
    log(f'exported {a.out}: model.onnx {card["provenance"]["onnxBytes"]} bytes, reference tile {test["names"][ref_index]}')
    total = time.time() - t_start
    with open(os.path.join(a.out, 'training-log.json'), 'w') as fh:
        json.dump({'command': ' '.join(sys.argv), 'trainingWallSeconds': round(train_wall), 'totalWallSeconds': round(total),
                   'parameters': nparam, 'epochs': epochs_done, 'bestEpoch': best[1], 'validationImages': list(VAL_IMAGES),
                   'postprocessGrid': {f'thr={k[0]},minSize={k[1]},flowThreshold={k[2]}': summary(grid[k]) for k in sorted(grid)},
                   'chosenPostprocess': post, 'validationAtChosen': val_final, 'history': history}, fh, indent=1)
    with open(os.path.join(a.out, 'training-log.txt'), 'w') as fh:
        fh.write('\n'.join(log_lines) + '\n')
    log(f'total wall {total / 60:.1f} min')


if __name__ == '__main__':
    main()
