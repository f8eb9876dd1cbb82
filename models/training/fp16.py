"""Half-precision variant of a Cell Bridge model folder: float16 weights and activations, float32
inputs and outputs (a Cast after each input and before each output, "keep_io_types"), so the card,
the daemon and the clients are unchanged. Worth it on GPUs (CUDA, WebGPU); slower on the CPU.

  /usr/bin/python3 models/training/fp16.py models/cellbridge-he-v1 models/cellbridge-he-v1-fp16

Writes OUT/model.onnx and OUT/card.json (same card, name = OUT's folder name, description marked fp16).
Needs only onnx and numpy (tested with onnx 1.12). Tensors that ONNX requires in float32 whatever the
model's precision stay float32: Resize/Upsample scales and roi.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (op_type, input index) pairs whose tensor must stay float32.
FLOAT32_ONLY = {('Resize', 1), ('Resize', 2), ('Upsample', 1)}
FP16_MAX = 65504.0


def float32_only_names(graph):
    keep = set()
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name and (node.op_type, i) in FLOAT32_ONLY:
                keep.add(name)
    return keep


def to_fp16(tensor):
    arr = numpy_helper.to_array(tensor).astype(np.float32)
    clipped = np.clip(arr, -FP16_MAX, FP16_MAX)
    out = numpy_helper.from_array(clipped.astype(np.float16), tensor.name)
    return out, int(np.count_nonzero(clipped != arr))


def convert(model):
    graph = model.graph
    keep = float32_only_names(graph)
    stats = {'initializers': 0, 'constants': 0, 'casts': 0, 'clipped': 0, 'kept_fp32': 0}

    for i, init in enumerate(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        if init.name in keep:
            stats['kept_fp32'] += 1
            continue
        new, clipped = to_fp16(init)
        graph.initializer[i].CopyFrom(new)
        stats['initializers'] += 1
        stats['clipped'] += clipped

    for node in graph.node:
        if node.op_type == 'Constant' and node.output[0] not in keep:
            for attr in node.attribute:
                if attr.name == 'value' and attr.t.data_type == TensorProto.FLOAT:
                    new, clipped = to_fp16(attr.t)
                    attr.t.CopyFrom(new)
                    stats['constants'] += 1
                    stats['clipped'] += clipped
        elif node.op_type == 'Cast' and node.output[0] not in keep:
            for attr in node.attribute:
                if attr.name == 'to' and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
                    stats['casts'] += 1
        elif node.op_type in ('ConstantOfShape', 'EyeLike', 'RandomNormal', 'RandomUniform'):
            raise SystemExit(f'{node.op_type} ({node.name}) is not handled by this script')

    def rename_input(old, new):
        for node in graph.node:
            for k, name in enumerate(node.input):
                if name == old:
                    node.input[k] = new

    # float32 graph inputs: Cast to float16 first.
    head = []
    for inp in graph.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT or inp.name in {t.name for t in graph.initializer}:
            continue
        casted = inp.name + '_fp16'
        rename_input(inp.name, casted)
        head.append(helper.make_node('Cast', [inp.name], [casted], name=inp.name + '_to_fp16', to=TensorProto.FLOAT16))

    # float32 graph outputs: the producer writes NAME_fp16, a Cast writes NAME in float32.
    tail = []
    for out in graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = out.name + '_fp16'
        for node in graph.node:
            for k, name in enumerate(node.output):
                if name == out.name:
                    node.output[k] = inner
        rename_input(out.name, inner)
        tail.append(helper.make_node('Cast', [inner], [out.name], name=out.name + '_to_fp32', to=TensorProto.FLOAT))

    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    # Intermediate types changed: let onnx infer them again.
    del graph.value_info[:]
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('src', help='model folder with card.json (float32 model)')
    ap.add_argument('out', help='folder to write (created)')
    ap.add_argument('--name', help='model name in the new card (default: the out folder name)')
    args = ap.parse_args(argv)

    with open(os.path.join(args.src, 'card.json')) as fh:
        card = json.load(fh)
    model = onnx.load(os.path.join(args.src, card['file']))
    stats = convert(model)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)

    os.makedirs(args.out, exist_ok=True)
    name = args.name or os.path.basename(os.path.normpath(args.out))
    onnx.save(model, os.path.join(args.out, 'model.onnx'))
    card = dict(card, name=name, file='model.onnx',
                description=card.get('description', '') + ' Half-precision (fp16) weights; float32 inputs and outputs.')
    card.pop('cpuFile', None)  # the int8 CPU copy belongs to the source model (and fp16 is for GPUs)
    with open(os.path.join(args.out, 'card.json'), 'w') as fh:
        json.dump(card, fh, indent=2)
        fh.write('\n')
    print(json.dumps({'out': args.out, 'name': name, **stats}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
