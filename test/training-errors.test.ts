/**
 * The training tools' pure helpers that session 10's findings rest on (models/README, "Where the missed
 * nuclei go", "Contact-weighted flow loss"): augment.contact_pixels (which pixels the contact-weighted
 * flow loss weighs), augment.geometric_with (a teacher's maps follow the targets, stage d1) and
 * errors.tile_errors (how an unmatched nucleus is counted: merged, not found, poor) and errors.recall_by_area
 * (the recall by nucleus size of session 14's fit-on-training-images analysis),
 * run with the Python the training runs on, on hand-made label maps whose answers are known.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const TRAINING = join(__dirname, '..', '..', 'models', 'training');

function python(code: string): unknown {
  const r = spawnSync('/usr/bin/python3', ['-c', code], { encoding: 'utf8', cwd: TRAINING, env: { ...process.env, PYTHONPATH: TRAINING } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('models/training: contact pixels, teacher maps and error counts', function () {
  this.timeout(60_000);
  before(function () {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import scipy, numpy, PIL'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      // Pending, not failed: these helpers need Debian's python3-scipy, python3-numpy and python3-pil (.ci/run installs them).
      console.log('      (skipped: /usr/bin/python3 cannot import scipy, numpy and PIL; install python3-scipy python3-numpy python3-pil)');
      this.skip();
    }
  });

  it('contact_pixels marks the pixels of a nucleus with another nucleus within 2 px, never background or a lone nucleus', () => {
    const out = python(`
import json, numpy as np
from augment import contact_pixels
a = np.zeros((10, 10), int)
a[1:4, 1:4] = 1; a[1:4, 4:7] = 2      # two touching nuclei
a[7:10, 0:2] = 3                      # a lone one, 4 rows below nucleus 1
a[7:10, 5:7] = 4; a[7:10, 8:10] = 5   # two nuclei 1 px apart
print(json.dumps(contact_pixels(a).astype(int).tolist()))`) as number[][];
    // nuclei 1 and 2: the two columns on each side of their shared border; 4 and 5: the column next to the gap
    const expect = [
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
      [0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
      [0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 1, 0, 1, 0],
      [0, 0, 0, 0, 0, 0, 1, 0, 1, 0],
      [0, 0, 0, 0, 0, 0, 1, 0, 1, 0],
    ];
    assert.deepEqual(out, expect);
  });

  it('geometric_with moves a teacher\'s flows and maps exactly as the targets (distillation), drawing what geometric draws', () => {
    const out = python(`
import json, numpy as np
from augment import geometric, geometric_with
g = np.random.default_rng(3)
img = g.integers(0, 255, (12, 12, 3)).astype(np.uint8)
fl = g.normal(size=(2, 12, 12)).astype(np.float32)
ty = g.integers(0, 5, (12, 12))
pairs, moved = True, 0
for seed in range(16):
    i2, f2, m2, ef, em = geometric_with(np.random.default_rng(seed), img, fl, [ty], fl.copy(), [ty.copy(), np.stack([ty] * 5, -1)])
    pairs &= np.array_equal(f2, ef) and np.array_equal(m2[0], em[0]) and np.array_equal(m2[0], em[1][..., 0])
    moved += not np.array_equal(f2, fl)
r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
a, b = geometric(r1, img, fl, [ty]), geometric_with(r2, img, fl, [ty])
same = np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and b[3] is None and r1.random() == r2.random()
print(json.dumps({'pairs': bool(pairs), 'moved': int(moved), 'same': bool(same)}))`) as { pairs: boolean; moved: number; same: boolean };
    assert.equal(out.pairs, true);
    assert.ok(out.moved >= 12, `only ${out.moved} of 16 draws rotated or flipped`);
    assert.equal(out.same, true);
  });

  it('tile_errors: a merged pair, a nucleus not found (below the threshold), a poor outline and a false positive', () => {
    const out = python(`
import json, numpy as np
from errors import tile_errors
gt = np.zeros((20, 20), int); typ = np.zeros((20, 20), int)
gt[1:5, 1:5] = 1; gt[1:5, 5:9] = 2; typ[1:9, 1:9] = 3   # two epithelial nuclei ...
pred = np.zeros((20, 20), int); pred[1:5, 1:9] = 1     # ... found as one cell: both merged
gt[10:14, 1:5] = 3; typ[10:14, 1:5] = 4                # a spindle nucleus nobody found
gt[10:16, 10:16] = 4; typ[10:16, 10:16] = 2            # an inflammatory one, outline too large
pred[9:18, 9:18] = 2
gt[1:5, 12:16] = 5; pred[1:5, 12:16] = 3               # a match
pred[17:20, 1:4] = 4                                   # a false positive
fg = pred > 0
print(json.dumps(tile_errors(gt, pred, fg, typ)))`) as Record<string, number | number[]>;
    assert.deepEqual(out, { gt: 5, tp: 1, merged: 2, notFound: 1, notFoundBelowThreshold: 1, poor: 1, fp: 3, notFoundByClass: [0, 0, 0, 0, 1] });
  });

  it('recall_by_area: matched and true nuclei per area bin (<10, 10-20, 20-40, 40-80, 80-160, >=160 px)', () => {
    const out = python(`
import json, numpy as np
from errors import recall_by_area
gt = np.zeros((40, 40), int); pred = np.zeros((40, 40), int)
gt[0:3, 0:3] = 1                                   # 9 px, missed
gt[5:9, 0:4] = 2; pred[5:9, 0:4] = 1               # 16 px, found
gt[10:16, 0:6] = 3                                  # 36 px, missed
gt[20:33, 20:33] = 4; pred[20:33, 20:33] = 2       # 169 px, found
print(json.dumps(recall_by_area(gt, pred)))`) as number[];
    assert.deepEqual(out, [0, 1, 0, 0, 0, 1, /* totals */ 1, 1, 1, 0, 0, 1]);
  });
});
