"""Folders that `npm run eval` reads, holding only the held-out training images (datasets.VAL_IMAGES): the
daemon's own pipeline scored on validation, so that a change to the model file, the post-processing or the
resampling can be chosen without reading a test split (session 9 chose the int8 CPU file this way).

  /usr/bin/python3 models/training/val_folders.py --out /tmp/cellbridge-val
  npm run eval -- --data /tmp/cellbridge-val/consep/val      # and monuseg/val, cpm15/val (binary only)

Each OUT/<set>/val/ has images/ and instances/ as symbolic links into ../shared/data/<set>/train and a
labels.json cut down to those tiles; OUT/<set>/source_images.json is copied beside it (MoNuSeg, CPM-15), so
the per-image figures stitch the tiles back as for the test splits. Nothing is copied into the repository.
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from datasets import SETS, SHARED, VAL_IMAGES, image_of  # noqa: E402


def build(out, shared=SHARED):
    counts = {}
    for name in SETS:
        src = os.path.join(shared, name, 'train')
        if not os.path.isdir(src):
            raise SystemExit(f'{src} not found (see ../shared/data/README)')
        dst = os.path.join(out, name, 'val')
        for sub in ('images', 'instances'):
            os.makedirs(os.path.join(dst, sub), exist_ok=True)
        labels = json.load(open(os.path.join(src, 'labels.json')))
        keep = []
        for f in sorted(os.listdir(os.path.join(src, 'images'))):
            tile = os.path.splitext(f)[0]
            if image_of(tile) not in VAL_IMAGES[name]:
                continue
            keep.append(tile)
            for sub, file in (('images', f), ('instances', tile + '.png')):
                link = os.path.join(dst, sub, file)
                if not os.path.lexists(link):
                    os.symlink(os.path.abspath(os.path.join(src, sub, file)), link)
        labels['tiles'] = {k: v for k, v in labels.get('tiles', {}).items() if k in set(keep)}
        with open(os.path.join(dst, 'labels.json'), 'w') as fh:
            json.dump(labels, fh)
        layout = os.path.join(shared, name, 'source_images.json')
        if os.path.exists(layout):
            shutil.copyfile(layout, os.path.join(out, name, 'source_images.json'))
        counts[name] = len(keep)
    return counts


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True, help='folder to write (outside the repository)')
    a = ap.parse_args()
    for name, n in build(os.path.abspath(a.out)).items():
        print(f'{name}: {n} held-out tiles in {os.path.join(a.out, name, "val")}')
