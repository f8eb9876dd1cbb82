"""Widen a trained CellUNet without changing what it computes (Net2WiderNet, Chen et al. 2016), so a
wider model starts training from the trained one instead of from scratch.

Each conv's output channels grow by copying existing channels (the first `old` keep their place, the
new ones copy randomly chosen old ones, BatchNorm statistics and affine parameters copied with them);
every layer that reads those channels divides the weights of a copied channel by its number of copies.
The decoder reads [upsampled x, skip] concatenated: both halves are remapped. A little noise on the
new copies breaks their symmetry (so they can learn different things); with --noise 0 the widened
model gives the same outputs as the original up to float rounding (checked at the end).

  /usr/bin/python3 models/training/widen.py models/cellbridge-he-v2/checkpoint-fp16.pt \
      --channels 24,48,96,192,192 --out models/training/runs/widened-fp16.pt
  # then train it (train_v2.py builds the model from --channels and loads the checkpoint)
  /usr/bin/python3 models/training/train_v2.py --resume models/training/runs/widened-fp16.pt \
      --channels 24,48,96,192,192 --out models/cellbridge-he-v3 --stage s1 --lr 1e-3 --time-budget-min 80
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import CellUNet, count_params  # noqa: E402
from train_v2 import load_compact, save_compact  # noqa: E402


def mapping(old, new, rng):
    """Index of the old channel each new channel copies, and how many copies each old channel has."""
    g = np.concatenate([np.arange(old), rng.integers(0, old, new - old)])
    return g, np.bincount(g, minlength=old).astype(np.float32)


def widen_conv_out(conv, bn, g):
    conv.weight.data = conv.weight.data[g].clone()
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        t = getattr(bn, name)
        t.data = t.data[g].clone()
    bn.num_features = len(g)
    conv.out_channels = len(g)


def widen_conv_in(conv, parts):
    """parts: list of (g, counts) for consecutive input groups (None for a group kept as it is: width n)."""
    w = conv.weight.data
    chunks, at = [], 0
    for part in parts:
        if isinstance(part, int):
            chunks.append(w[:, at:at + part]); at += part
            continue
        g, counts = part
        old = len(counts)
        src = w[:, at:at + old]
        chunks.append(src[:, g] / torch.from_numpy(counts[g]).view(1, -1, 1, 1))
        at += old
    conv.weight.data = torch.cat(chunks, 1).clone()
    conv.in_channels = conv.weight.shape[1]


def widen(src, new_ch, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    old_ch = [blk[0][0].out_channels for blk in src.enc]
    dst = CellUNet(tuple(old_ch))
    dst.load_state_dict(src.state_dict())
    maps = []  # per encoder level: (g, counts) of its two convs' outputs
    cin_part = 3
    for lvl, blk in enumerate(dst.enc):
        (c1, b1, _), (c2, b2, _) = blk[0], blk[1]
        ga = mapping(old_ch[lvl], new_ch[lvl], rng)
        widen_conv_in(c1, [cin_part])
        widen_conv_out(c1, b1, ga[0])
        widen_conv_in(c2, [ga])
        gb = mapping(old_ch[lvl], new_ch[lvl], rng)
        widen_conv_out(c2, b2, gb[0])
        maps.append(gb)
        cin_part = gb
    # decoder: block i reads [upsampled previous output, skip of level L-2-i]
    prev = maps[-1]
    levels = list(range(len(old_ch) - 2, -1, -1))
    for blk, lvl in zip(dst.dec, levels):
        (c1, b1, _), (c2, b2, _) = blk[0], blk[1]
        ga = mapping(old_ch[lvl], new_ch[lvl], rng)
        widen_conv_in(c1, [prev, maps[lvl]])
        widen_conv_out(c1, b1, ga[0])
        widen_conv_in(c2, [ga])
        gb = mapping(old_ch[lvl], new_ch[lvl], rng)
        widen_conv_out(c2, b2, gb[0])
        prev = gb
    for head in (dst.flows, dst.cellprob, dst.type_head):
        widen_conv_in(head, [prev])
    if noise > 0:
        with torch.no_grad():
            for m in dst.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.add_(torch.randn_like(m.weight) * noise * m.weight.std())
    out = CellUNet(tuple(new_ch))
    out.load_state_dict(dst.state_dict())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('checkpoint', help='compact checkpoint (checkpoint-fp16.pt) of the model to widen')
    ap.add_argument('--channels', required=True, help='new widths, e.g. 24,48,96,192,192 (each >= the old one)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--noise', type=float, default=0.01, help='relative noise on the widened weights (0: exact copy of the function)')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    probe = torch.load(a.checkpoint, map_location='cpu')
    old_ch = tuple(probe.get('channels', (16, 32, 64, 128, 128)))
    new_ch = tuple(int(c) for c in a.channels.split(','))
    if len(new_ch) != len(old_ch) or any(n < o for n, o in zip(new_ch, old_ch)):
        raise SystemExit(f'--channels must have {len(old_ch)} widths, each at least {old_ch}')
    src = CellUNet(old_ch)
    meta = load_compact(a.checkpoint, src)
    src.eval()
    exact = widen(src, new_ch, a.seed, 0.0).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        d = max(float((p - q).abs().max()) for p, q in zip(src(x), exact(x)))
    print(f'{old_ch} ({count_params(src)} parameters) -> {new_ch} ({count_params(exact)}); max |output difference| '
          f'without noise {d:.2e}', flush=True)
    if d > 1e-3:
        raise SystemExit('the widened model does not compute the same function: not written')
    out = widen(src, new_ch, a.seed, a.noise) if a.noise > 0 else exact
    meta = {k: v for k, v in meta.items() if k != 'model_fp16'}
    meta['channels'] = list(new_ch)
    meta['widenedFrom'] = {'checkpoint': a.checkpoint, 'channels': list(old_ch), 'noise': a.noise, 'seed': a.seed}
    save_compact(a.out, out, meta)
    print(f'wrote {a.out}')


if __name__ == '__main__':
    main()
