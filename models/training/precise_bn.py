"""Re-estimate BatchNorm running statistics ('precise BN') of a checkpoint and score it on the held-out images.
The running stats a training run ends with are an exponential average (momentum 0.1) of its last ~20
augmented batches; here they become the plain mean over many batches.
usage: precise_bn.py CKPT MODE[,MODE..] [--save MODE OUT]
  MODE: clean  - every training tile at model resolution, no augmentation (what inference sees), batches of 8
        aug<N> - N augmented training batches as in train_v2 (shares consep 0.85 / monuseg 0.1 / cpm15 0.05)
        none   - the checkpoint's own statistics"""
import os, sys, json
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import torch
import torch.nn as nn
from datasets import load_set, split_val, SETS
from model import CellUNet
from augment import geometric, colour, rescale, degrade
from train_v2 import evaluate, score, predict, save_compact

torch.set_num_threads(2)
ck = torch.load(sys.argv[1], map_location='cpu')
base = {k: (v.float() if v.is_floating_point() else v) for k, v in (ck.get('model_fp16') or ck['model']).items()}
modes = sys.argv[2].split(',')
save = sys.argv[sys.argv.index('--save') + 1:sys.argv.index('--save') + 3] if '--save' in sys.argv else None
net = CellUNet(tuple(ck['channels']))
mean_t = torch.tensor(ck['mean']).view(1, 3, 1, 1); std_t = torch.tensor(ck['std']).view(1, 3, 1, 1)
tr, va = {}, {}
for s in SETS:
    tr[s], va[s] = split_val(s, load_set(s, 'train'))

def norm(x):
    return (torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0 - mean_t) / std_t

def batches(mode):
    if mode == 'clean':
        allimg = np.concatenate([tr[s]['images'] for s in SETS])
        for i in range(0, len(allimg), 8):
            yield norm(allimg[i:i + 8])
        return
    n = int(mode[3:]); rng = np.random.default_rng(7)
    names = list(SETS); p = np.array([0.85, 0.1, 0.05])
    for _ in range(n):
        b = []
        for _ in range(8):
            s = names[rng.choice(3, p=p)]; d = tr[s]; i = rng.integers(len(d['names']))
            img, fl, (ty, ins) = rescale(rng, d['img40'][i], d['images'][i], d['flows'][i], [d['type'][i], d['inst'][i]], (0.75, 1.33))
            H, W = ty.shape; y, x_ = rng.integers(0, H - 95), rng.integers(0, W - 95)
            sl = (slice(y, y + 96), slice(x_, x_ + 96))
            img, fl, (ty, ins) = geometric(rng, img[sl], fl[(slice(None),) + sl], [ty[sl], ins[sl]])
            b.append(degrade(rng, colour(rng, img, (0.8, 3.5))))
        yield norm(np.stack(b))

for mode in modes:
    net.load_state_dict(base)
    if mode != 'none':
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats(); m.momentum = None
        net.train()
        with torch.no_grad():
            for x in batches(mode):
                net(x)
    net.eval()
    res = {s: evaluate(predict(net, va[s]['images'], ck['mean'], ck['std']), va[s]['inst'], va[s]['type']) for s in SETS}
    print(json.dumps({'mode': mode, 'score': round(score(res), 4), **{s: {'bPQ': res[s]['bPQ_tileMean'], 'mPQ3': res[s]['mPQ3']} for s in SETS}}), flush=True)
    if save and save[0] == mode:
        save_compact(save[1], net, {k: v for k, v in ck.items() if k not in ('model', 'model_fp16', 'opt')})
        print('saved', save[1], flush=True)
