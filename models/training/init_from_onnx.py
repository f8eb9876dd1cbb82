"""Initialise a CellUNet from a shipped ONNX model (v1's checkpoint was never committed; its ONNX is).

torch's ONNX export folded each BatchNorm into the conv before it (weight W', bias b'). We put W'
back into the conv and make the BatchNorm reproduce "+ b'" exactly in eval mode and closely in train
mode: with mu, var = the per-channel statistics of W'x over a batch of training images,
running_mean = mu, running_var = var, gamma = sqrt(var + eps), beta = mu + b'.
Then eval BN(z) = (z - mu) + mu + b' = z + b' (the ONNX model's function, checked by the caller
against the reference tensors) and train-mode BN, which normalises by the batch statistics, starts
near the same function.
"""
import numpy as np
import torch
import torch.nn as nn


def load_onnx_into(model, onnx_path, calib_x):
    import onnx
    from onnx import numpy_helper
    m = onnx.load(onnx_path)
    init = {i.name: numpy_helper.to_array(i).copy() for i in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == 'Conv']
    heads = {'flows', 'cellprob', 'type_head'}
    body = [n for n in convs if not n.input[1].split('.')[0] in heads]
    pairs = []  # (conv, bn) in forward order
    for mod in list(model.enc) + list(model.dec):
        for cbr in mod:
            pairs.append((cbr[0], cbr[1]))
    if len(pairs) != len(body):
        raise ValueError(f'ONNX has {len(body)} body convs, model has {len(pairs)}')
    biases = []
    with torch.no_grad():
        for (conv, bn), node in zip(pairs, body):
            w = init[node.input[1]]
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f'{node.input[1]}: {w.shape} vs {tuple(conv.weight.shape)}')
            conv.weight.copy_(torch.from_numpy(w))
            b = torch.from_numpy(init[node.input[2]])
            biases.append(b)
            bn.weight.fill_(1.0); bn.bias.copy_(b); bn.running_mean.zero_(); bn.running_var.fill_(1.0 - bn.eps)
        for h in heads:
            getattr(model, h).weight.copy_(torch.from_numpy(init[h + '.weight']))
            getattr(model, h).bias.copy_(torch.from_numpy(init[h + '.bias']))
    # statistics of each conv's output (the BN input) with the BNs acting as "+ b'"
    stats = {}
    hooks = [bn.register_forward_pre_hook(lambda mod, inp, k=k: stats.__setitem__(k, (
        inp[0].mean((0, 2, 3)), inp[0].var((0, 2, 3), unbiased=False)))) for k, (_, bn) in enumerate(pairs)]
    model.eval()
    with torch.no_grad():
        model(calib_x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for k, (_, bn) in enumerate(pairs):
            mu, var = stats[k]
            bn.running_mean.copy_(mu); bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps)); bn.bias.copy_(mu + biases[k])
    return model


def check_reference(model, ref_dir, tol=1e-3):
    """Max abs difference of the model's outputs to the ONNX reference tensors (input.npy, output_*.npy)."""
    x = torch.from_numpy(np.load(f'{ref_dir}/input.npy'))
    model.eval()
    with torch.no_grad():
        f, c, t = model(x)
    d = {k: float(np.abs(v.numpy() - np.load(f'{ref_dir}/output_{k}.npy')).max()) for k, v in
         (('flows', f), ('cellprob', c), ('type', t))}
    if max(d.values()) > tol:
        raise ValueError(f'initialisation does not reproduce the ONNX reference: {d}')
    return d


if __name__ == '__main__':
    import sys, os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model import CellUNet
    mdl = CellUNet()
    load_onnx_into(mdl, sys.argv[1], torch.randn(4, 3, 96, 96))
    print(check_reference(mdl, os.path.join(os.path.dirname(sys.argv[1]), 'reference'), tol=1e9))
