"""The training data in a form small enough to travel to a lent GPU machine (a call carries at most 64 MiB with
the working tree; ../shared/data is not there and the training caches are ~0.9 GB).

  /usr/bin/python3 models/training/gpu_pack.py --out .gpu-data      # ~35 MB, git-ignored
  # on the GPU machine (carry .gpu-data): datasets.py reads it instead of ../shared/data and rebuilds the
  # targets (flows) into a cache of its own
  CELLBRIDGE_DATA=.gpu-data CELLBRIDGE_TRAINING_CACHE=/tmp/cb-cache python3 models/training/train_v2.py --device cuda ...

Writes <out>/<set>/train/{images,instances,labels.json} for the three training sets, as datasets.load_set
expects them. Only train splits travel (training and validation read nothing else). Instance maps stay PNG
(lossless); the tiles are re-encoded as JPEG (--quality, default 92) where the originals are PNG (MoNuSeg,
CPM-15): a small change next to the JPEG re-compression (quality 35-95) the augmentation applies anyway, but a
change: validation figures on the packed data differ slightly from those on ../shared/data.
"""
import argparse
import json
import os
import shutil
import sys

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from datasets import SHARED, SETS  # noqa: E402


def pack_set(name, out, quality):
    src = os.path.join(SHARED, name, 'train')
    dst = os.path.join(out, name, 'train')
    os.makedirs(os.path.join(dst, 'images'), exist_ok=True)
    os.makedirs(os.path.join(dst, 'instances'), exist_ok=True)
    shutil.copy(os.path.join(src, 'labels.json'), dst)
    files = sorted(os.listdir(os.path.join(src, 'images')))
    exts = {os.path.splitext(f)[1] for f in files}
    if len(exts) != 1:
        raise SystemExit(f'{src}/images: one image format expected, found {sorted(exts)}')
    for f in files:
        stem, ext = os.path.splitext(f)
        if ext.lower() in ('.jpg', '.jpeg'):
            shutil.copy(os.path.join(src, 'images', f), os.path.join(dst, 'images', f))
        else:
            Image.open(os.path.join(src, 'images', f)).convert('RGB').save(
                os.path.join(dst, 'images', stem + '.jpg'), quality=quality, subsampling=0)
        shutil.copy(os.path.join(src, 'instances', stem + '.png'), os.path.join(dst, 'instances', stem + '.png'))
    return len(files)


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='.gpu-data')
    ap.add_argument('--quality', type=int, default=92)
    a = ap.parse_args()
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    counts = {s: pack_set(s, a.out, a.quality) for s in SETS}
    with open(os.path.join(a.out, 'README.txt'), 'w') as fh:
        fh.write('Training data packed by models/training/gpu_pack.py (train splits only; see its docstring).\n'
                 + json.dumps({'tiles': counts, 'jpegQuality': a.quality}) + '\n')
    print(json.dumps({'out': a.out, 'tiles': counts, 'bytes': folder_bytes(a.out)}))


if __name__ == '__main__':
    main()
