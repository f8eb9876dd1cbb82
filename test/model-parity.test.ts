/**
 * Parity with a real third-party model: bioimage.io "UNet 2D Nuclei Broad" through the project's
 * session loader, .npy reader and normalisation reproduces the published output to 1e-4.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../bridge/inference/npy';
import { openSession, runFloat } from '../bridge/inference/onnx-session';
import { normalizePlanes } from '../bridge/inference/preprocess';
import { SHARED_DATA } from './helpers/daemon';

const DIR = join(SHARED_DATA, 'models', 'bioimage-unet2d-nuclei-broad');

describe('model loader parity with a real third-party ONNX model', function () {
  before(function () {
    if (!existsSync(join(DIR, 'weights.onnx'))) {
      console.log(`      (skipped: ${join(DIR, 'weights.onnx')} is absent; the shared test data is not on this machine)`);
      this.skip();
    }
  });

  it('reproduces test_output.npy from test_input.npy to 1e-4 (zero-mean unit-variance input, sigmoid output)', async () => {
    const input = readNpy(join(DIR, 'test_input.npy'));
    const expected = readNpy(join(DIR, 'test_output.npy'));
    assert.deepEqual(input.shape, [1, 1, 512, 512]);
    const plane = Float32Array.from(input.data as Float32Array);
    normalizePlanes([plane], { kind: 'zscore', eps: 1e-6 });
    const session = await openSession(join(DIR, 'weights.onnx'), { provider: 'cpu' });
    const out = await runFloat(session, session.inputNames[0], plane, input.shape);
    await session.release();
    const logits = out[session.outputNames[0]];
    assert.deepEqual([...logits.dims], expected.shape);
    const want = expected.data as Float32Array;
    let maxErr = 0;
    for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(1 / (1 + Math.exp(-logits.data[i])) - want[i]));
    assert.ok(maxErr <= 1e-4, `max abs error ${maxErr}`);
    // The output is not trivial: it separates nuclei from background.
    const fg = want.filter((v) => v > 0.5).length / want.length;
    assert.ok(fg > 0.02 && fg < 0.9, `foreground fraction ${fg}`);
  });
});
