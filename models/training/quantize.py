"""Write an int8 copy of a model for the CPU (`card.cpuFile`): static quantization (QDQ, int8 weights per
output channel, uint8 activations, MinMax ranges) calibrated on training tiles that validation never
reads, then checked against the float model on the held-out images.

Needs the onnxruntime Python package, which the system Python here does not have (and whose numpy does not
suit Debian's scipy), so it runs in its own virtual environment:
  python3 -m venv /tmp/ortq && /tmp/ortq/bin/pip install onnxruntime onnx sympy ml_dtypes scipy pillow
  /tmp/ortq/bin/python models/training/quantize.py --model models/cellbridge-he-v2
It reads the training caches of datasets.py (built on first use by any training script) and writes
`model-int8.onnx` next to `model.onnx` and names it in the card (`"cpuFile": "model-int8.onnx"`), which
makes the daemon run it on the CPU provider.

Left in float: the first convolution and the three 1x1 output heads (under 1 % of the multiply-adds).
Quantizing the first convolution alone flips the cell-probability sign on 3-6 % of held-out pixels and
the class of 6-16 %; everything else together costs ~0.1 % (session 9, models/README "int8 on the CPU").
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datasets  # noqa: E402

CALIBRATION = (('consep', 48), ('monuseg', 24), ('cpm15', 8))  # tiles per set, drawn from the training images


def float_nodes(path):
    """The convolutions that stay float: those reading the graph's input (the first) and those writing its
    outputs (the 1x1 heads), found in the graph rather than by name, so that any exported CellUNet works."""
    import onnx
    g = onnx.load(path).graph
    ends = {i.name for i in g.input} | {o.name for o in g.output}
    return [n.name for n in g.node if n.op_type == 'Conv' and (n.input[0] in ends or any(o in ends for o in n.output))]


def normalise(tiles, card):
    n = card['input']['normalization']
    mean = np.array(n['mean'], np.float32)[:, None, None]
    std = np.array(n['std'], np.float32)[:, None, None]
    x = tiles.astype(np.float32).transpose(0, 3, 1, 2) * n['scale']
    return ((x - mean) / std).astype(np.float32)


def calibration_tiles(card, seed):
    rng = np.random.default_rng(seed)
    out = []
    for name, n in CALIBRATION:
        train, _ = datasets.split_val(name, datasets.load_set(name, 'train'))
        out.append(normalise(train['images'][rng.choice(len(train['names']), n, replace=False)], card))
    return np.concatenate(out)


def held_out_tiles(card):
    return {name: normalise(datasets.split_val(name, datasets.load_set(name, 'train'))[1]['images'], card)
            for name, _ in CALIBRATION}


def compare(float_path, int8_path, tiles, threshold):
    """Per held-out set: flow MAE, share of pixels whose cell-probability side of the threshold or class changes."""
    import onnxruntime as ort
    a_s = ort.InferenceSession(float_path, providers=['CPUExecutionProvider'])
    b_s = ort.InferenceSession(int8_path, providers=['CPUExecutionProvider'])
    rows = {}
    for name, x in tiles.items():
        fl, cp, ty, n = 0.0, 0.0, 0.0, 0
        for k in range(0, len(x), 16):
            a = a_s.run(None, {'image': x[k:k + 16]})
            b = b_s.run(None, {'image': x[k:k + 16]})
            m = len(x[k:k + 16])
            fl += np.abs(a[0] - b[0]).mean() * m
            cp += ((a[1] > threshold) != (b[1] > threshold)).mean() * m
            ty += (a[2].argmax(1) != b[2].argmax(1)).mean() * m
            n += m
        rows[name] = {'tiles': n, 'flowMAE': round(float(fl / n), 4), 'cellprobSideChanged': round(float(cp / n), 5), 'classChanged': round(float(ty / n), 5)}
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True, help='model folder with card.json and its float file')
    ap.add_argument('--out', default='model-int8.onnx', help='file name inside the model folder')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    card = json.load(open(os.path.join(a.model, 'card.json')))
    src = os.path.join(a.model, card['file'])
    dst = os.path.join(a.model, a.out)
    calib = calibration_tiles(card, a.seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {card['input']['name']: x[None]}

    with tempfile.TemporaryDirectory() as tmp:
        # the pre-processing and the calibrator leave temporary files in the working directory
        cwd = os.getcwd()
        src, dst = os.path.abspath(src), os.path.abspath(dst)
        os.chdir(tmp)
        try:
            pre = os.path.join(tmp, 'pre.onnx')
            quant_pre_process(src, pre, skip_symbolic_shape=True)
            keep_float = float_nodes(pre)
            quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float)
        finally:
            os.chdir(cwd)
    threshold = card['postprocess'].get('cellprobThreshold', 0.0)
    report = {'file': os.path.relpath(dst), 'calibrationTiles': int(len(calib)), 'bytes': os.path.getsize(dst),
              'heldOut': compare(src, dst, held_out_tiles(card), threshold)}
    # the card names the file (right after `file`) and says how it was made
    card = {k: v for k, v in card.items() if k != 'cpuFile'}
    at = list(card).index('file') + 1
    card = dict([*card.items()][:at] + [('cpuFile', a.out)] + [*card.items()][at:])
    card.setdefault('provenance', {})['cpuFile'] = {
        'method': 'onnxruntime static quantization, QDQ, int8 weights per output channel, uint8 activations, MinMax ranges',
        'script': 'models/training/quantize.py', 'calibrationTiles': {n: k for n, k in CALIBRATION}, 'seed': a.seed,
        'keptFloat': keep_float, 'heldOutAgainstFile': report['heldOut']}
    with open(os.path.join(a.model, 'card.json'), 'w') as f:
        json.dump(card, f, indent=2)
        f.write('\n')
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
