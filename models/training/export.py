"""Export a trained CellUNet to ONNX (opset 17, dynamic batch/H/W), write card.json and the
PyTorch reference tensors for the parity test. Usable standalone on a checkpoint:
  /usr/bin/python3 models/training/export.py --ckpt models/training/runs/cellbridge-he-v1/best.pt --out models/cellbridge-he-v1
"""
import os
# OpenMP threads must sleep, not spin, while waiting: on a shared, oversubscribed CPU the default
# active wait made each training step ~10x slower (measured 2.1 vs 0.23 CPU-s per step).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse
import inspect
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import CellUNet, count_params  # noqa: E402

CLASSES = [
    {'index': 1, 'name': 'Other', 'color': [255, 165, 0]},         # orange
    {'index': 2, 'name': 'Inflammatory', 'color': [0, 200, 0]},    # green
    {'index': 3, 'name': 'Epithelial', 'color': [220, 0, 0]},      # red
    {'index': 4, 'name': 'Spindle', 'color': [0, 90, 255]},        # blue
]


def onnx_export(model, path, size=128):
    model.eval()
    x = torch.zeros(1, 3, size, size)
    kw = dict(input_names=['image'], output_names=['flows', 'cellprob', 'type'], opset_version=17,
              do_constant_folding=True,
              dynamic_axes={n: {0: 'batch', 2: 'height', 3: 'width'} for n in ('image', 'flows', 'cellprob', 'type')})
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kw['dynamo'] = False  # PyTorch 2.x: keep the TorchScript exporter (dynamic_axes semantics)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, **kw)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def make_card(mean, std, post, prov, mpp=0.5):
    return {
        'cardVersion': 1,
        'name': 'cellbridge-he-v1',
        'version': '1.0.0',
        'description': 'Cell Bridge default H&E nucleus model: compact U-Net (16-32-64-128-128) trained on CoNSeP at '
                       f'{mpp} um/px; Cellpose-style flows + cell probability + 4-class type head '
                       '(Other, Inflammatory, Epithelial, Spindle).',
        'file': 'model.onnx',
        'input': {
            'name': 'image', 'layout': 'NCHW', 'channels': 3, 'micronsPerPixel': mpp,
            'readSize': 256, 'modelSize': 256, 'dynamicSize': True, 'multipleOf': 16,
            'resize': 'bilinear-antialias',
            'normalization': {'kind': 'meanstd', 'scale': 1 / 255, 'mean': [round(float(v), 6) for v in mean],
                              'std': [round(float(v), 6) for v in std]},
            'padValue': 255,
        },
        'outputs': {
            'flows': {'name': 'flows', 'dyChannel': 0, 'dxChannel': 1},
            'cellProbability': {'name': 'cellprob', 'channel': 0, 'kind': 'logit'},
            'type': {'name': 'type', 'backgroundChannel': 0, 'kind': 'logits'},
        },
        'classes': CLASSES,
        'postprocess': {
            'mode': 'cellpose', 'niter': 200, 'flowScale': 5,
            'cellprobThreshold': post.get('cellprobThreshold', 0),
            'seedMinCount': 10, 'claimMinCount': 2, 'growIterations': 5,
            'minSize': post.get('minSize', 10), 'fillHoles': True, 'maxSizeFraction': 0.4,
            # the tuned flow-error check (Cellpose's flow_threshold), when tuning chose one
            **({'flowThreshold': post['flowThreshold']} if post.get('flowThreshold') else {}),
            # the tuned faint-cell filter (bridge/postprocess/faint.ts), when tuning chose one
            **({'meanCellprobThreshold': post['meanCellprobThreshold']} if post.get('meanCellprobThreshold') is not None else {}),
        },
        'tiling': {'overlap': 64},
        'provenance': prov,
    }


def write_reference(model, out_dir, x_norm):
    """x_norm float32 [1,3,H,W] already normalised."""
    ref = os.path.join(out_dir, 'reference')
    os.makedirs(ref, exist_ok=True)
    model.eval()
    with torch.no_grad():
        f, c, t = model(torch.from_numpy(x_norm))
    np.save(os.path.join(ref, 'input.npy'), x_norm.astype(np.float32))
    np.save(os.path.join(ref, 'output_flows.npy'), f.numpy().astype(np.float32))
    np.save(os.path.join(ref, 'output_cellprob.npy'), c.numpy().astype(np.float32))
    np.save(os.path.join(ref, 'output_type.npy'), t.numpy().astype(np.float32))


def export_all(model, out_dir, mean, std, post, prov, ref_image_uint8, mpp=0.5):
    """ref_image_uint8: [H,W,3] uint8 at model resolution (a real test tile)."""
    os.makedirs(out_dir, exist_ok=True)
    model = model.cpu().eval()
    onnx_path = os.path.join(out_dir, 'model.onnx')
    onnx_export(model, onnx_path)
    prov = dict(prov)
    prov.setdefault('trainingData', 'CoNSeP train split (Graham et al., HoVer-Net 2019)')
    prov.setdefault('licence', 'trained on CoNSeP (research use); cite HoVer-Net. Not for redistribution in a product.')
    prov['onnxBytes'] = os.path.getsize(onnx_path)
    prov['parameters'] = count_params(model)
    card = make_card(mean, std, post, prov, mpp)
    with open(os.path.join(out_dir, 'card.json'), 'w') as fh:
        json.dump(card, fh, indent=2)
        fh.write('\n')
    x = ref_image_uint8.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    x = (x - np.array(mean, np.float32)[None, :, None, None]) / np.array(std, np.float32)[None, :, None, None]
    write_reference(model, out_dir, x.astype(np.float32))
    return card


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    torch.set_num_threads(2)
    ck = torch.load(a.ckpt, map_location='cpu')
    m = CellUNet()
    m.load_state_dict(ck['model'])
    from data import load_split
    test = load_split('test', ck.get('factor', 2))
    ref_img = test['images'][int(ck.get('ref_index', 0))]
    export_all(m, a.out, ck['mean'], ck['std'], ck.get('post', {}), ck.get('prov', {}), ref_img, ck.get('mpp', 0.5))
    print('exported', a.out)
