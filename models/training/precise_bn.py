"""Re-estimate BatchNorm running statistics ('precise BN') of a checkpoint and score it on the held-out images.
The running stats a training run ends with are an exponential average (momentum 0.1) of its last ~20
augmented batches; here they become the plain mean over many batches (train_v2.with_reestimated_bn, which
`train_v2.py --bn-batches` uses before every validation).
usage: precise_bn.py CKPT MODE[,MODE..] [--save MODE OUT]
  MODE: clean  - every training tile at model resolution, no augmentation (what inference sees), batches of 8
        aug<N> - N augmented training batches of 8 crops as in train_v2 (shares consep 0.85 / monuseg 0.1 / cpm15 0.05)
        none   - the checkpoint's own statistics"""
import os, sys, json
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import torch
from datasets import load_set, split_val, SETS
from train_v2 import load_network, make_sampler, to_input, with_reestimated_bn, validation, save_compact

torch.set_num_threads(2)
net, ck = load_network(sys.argv[1])  # its channel widths and type branch, as every other script
modes = sys.argv[2].split(',')
save = sys.argv[sys.argv.index('--save') + 1:sys.argv.index('--save') + 3] if '--save' in sys.argv else None
tr, va = {}, {}
for s in SETS:
    tr[s], va[s] = split_val(s, load_set(s, 'train'))


def batches(mode):
    if mode == 'clean':
        allimg = np.concatenate([tr[s]['images'] for s in SETS])
        for i in range(0, len(allimg), 8):
            yield to_input(allimg[i:i + 8], ck['mean'], ck['std'])
        return
    # train_v2's defaults: 96² crops, scale 0.75-1.33, optical density 0.8-3.5
    sample = make_sampler(tr, list(SETS), np.array([0.85, 0.1, 0.05]), 96, (0.75, 1.33), (0.8, 3.5))
    rng = np.random.default_rng(7)
    for _ in range(int(mode[3:])):
        yield to_input(np.stack([sample(rng)[0] for _ in range(8)]), ck['mean'], ck['std'])


for mode in modes:
    m = net if mode == 'none' else with_reestimated_bn(net, batches(mode))
    res, sc = validation(m, va, ck['mean'], ck['std'])
    print(json.dumps({'mode': mode, 'score': round(sc, 4), **{s: {'bPQ': res[s]['bPQ_tileMean'], 'mPQ3': res[s]['mPQ3']} for s in SETS}}), flush=True)
    if save and save[0] == mode:
        save_compact(save[1], m, {k: v for k, v in ck.items() if k not in ('model', 'model_fp16', 'opt')})
        print('saved', save[1], flush=True)
