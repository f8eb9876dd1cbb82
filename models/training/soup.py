"""Weight averaging (a 'model soup') of two checkpoints of one architecture: validation score per mix.
usage: soup.py A B [ALPHAS [SAVE_ALPHA OUT]]   (A, B: compact fp16 checkpoints or run best.pt/last.pt;
  mix = (1-a)*A + a*B; ALPHAS comma-separated, default 0,0.5,1; the mix at SAVE_ALPHA is saved to OUT)"""
import os, sys, json
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from datasets import load_set, split_val, SETS
from train_v2 import float_weights, load_network, validation, save_compact

torch.set_num_threads(2)
net, ckA = load_network(sys.argv[1])  # A's architecture (channel widths, type branch); B must share it
A, B = float_weights(ckA), float_weights(torch.load(sys.argv[2], map_location='cpu'))
alphas = [float(x) for x in (sys.argv[3] if len(sys.argv) > 3 else '0,0.5,1').split(',')]
va = {s: split_val(s, load_set(s, 'train'))[1] for s in SETS}
for a in alphas:
    net.load_state_dict({k: ((1 - a) * A[k] + a * B[k]) if A[k].is_floating_point() else B[k] for k in A})
    res, sc = validation(net, va, ckA['mean'], ckA['std'])
    print(json.dumps({'alpha': a, 'score': round(sc, 4), **{s: {'bPQ': res[s]['bPQ_tileMean'], 'mPQ3': res[s]['mPQ3']} for s in SETS}}), flush=True)
    if len(sys.argv) > 4 and a == float(sys.argv[4]):
        save_compact(sys.argv[5], net, {k: v for k, v in ckA.items() if k not in ('model', 'model_fp16', 'opt')})
        print('saved', sys.argv[5])
