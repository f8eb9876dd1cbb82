/**
 * Access control (issue #7): browser origins, the token, non-loopback hosts, model names that try
 * to leave the models folder. Over real sockets against the real daemon.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, encodeTileFrame, PixelFormat } from '../protocol';
import { CLI, startDaemon, type RunningDaemon } from './helpers/daemon';
import { makeSyntheticModelsDir, syntheticCard } from './helpers/synthetic-model';
import { gridScene } from './helpers/synthetic-scene';
import { RawPeer, runSceneJob, sceneJob } from './hardening-helpers.test';

const TOKEN = 'test-token-5f2a9c';
const ALLOWED = 'https://allowed.example';

describe('security: access control', function () {
  let daemon: RunningDaemon;
  const scene = gridScene(200, 200, 11);

  before(async () => {
    const models = makeSyntheticModelsDir((root) => {
      // A card whose file points out of its folder is listed as failed, never opened.
      const dir = join(root, 'escape');
      mkdirSync(dir);
      writeFileSync(join(dir, 'card.json'), JSON.stringify(syntheticCard({ name: 'escape', file: '../synthetic/model.onnx' })));
    });
    daemon = await startDaemon({ modelsDir: models, args: ['--device', 'cpu', '--log-level', 'warn', '--token', TOKEN, '--allow-origin', ALLOWED] });
  });
  after(async () => { await daemon?.stop(); });

  it('refuses WebSocket upgrades from browser origins that are not allowed (403), before any work', async () => {
    for (const origin of ['https://evil.example', 'null', 'http://127.0.0.1:8000', 'file://']) {
      await assert.rejects(RawPeer.open(daemon.url, { origin, headers: { authorization: `Bearer ${TOKEN}` } }), (e: { status?: number }) => e.status === 403, origin);
    }
    const ok = await RawPeer.open(daemon.url, { origin: ALLOWED, headers: { authorization: `Bearer ${TOKEN}` } });
    assert.ok((await ok.initialize()).result);
    await ok.close();
  });

  it('refuses a wrong token header at the upgrade (401)', async () => {
    await assert.rejects(RawPeer.open(daemon.url, { headers: { authorization: 'Bearer wrong' } }), (e: { status?: number }) => e.status === 401);
  });

  it('without the token: initialize gets -32004 and the connection is closed; nothing runs before', async () => {
    for (const extra of [{}, { token: 'wrong-token' }, { token: 42 }]) {
      const p = await RawPeer.open(daemon.url);
      const early = await p.request(1, 'job/start', sceneJob(scene));
      assert.equal(early.error.code, ErrorCodes.NotInitialized);
      p.send(encodeTileFrame({ format: PixelFormat.RGB8, jobId: 1, tileId: 0, width: 1, height: 1 }, new Uint8Array(3)));
      assert.ok(await p.until(() => p.rejectedFrames === 1), 'frame before initialize rejected');
      const r = await p.initialize(extra);
      assert.equal(r.error.code, ErrorCodes.Unauthorized, JSON.stringify(r));
      assert.match(r.error.message, /token/);
      assert.ok(await p.until(() => p.closed !== null, 3000), 'closed after Unauthorized');
      assert.equal(p.closed!.code, 1008);
      assert.match(p.closed!.reason, /unauthorized/);
    }
  });

  it('with the token in initialize or as a header, jobs run', async () => {
    const viaInit = await runSceneJob(daemon.url, scene, {}, { token: TOKEN });
    assert.equal(viaInit.completed.status, 'completed');
    const p = await RawPeer.open(daemon.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.ok((await p.initialize()).result, 'header alone authorizes');
    await p.close();
  });

  it('resolves model names only inside the models folder', async () => {
    const p = await RawPeer.open(daemon.url);
    await p.initialize({ token: TOKEN });
    const names = ['../synthetic', '../../etc/passwd', '/etc/passwd', 'synthetic/../synthetic', '..', '.', 'synthetic/', './synthetic',
      '..\\synthetic', '%2e%2e%2fsynthetic', 'synthetic\u0000', 'C:\\Windows\\win.ini', '__proto__', 'constructor', 'synthetic/model.onnx', 'x'.repeat(5000)];
    let id = 10;
    for (const model of names) {
      const r = await p.request(id++, 'job/start', sceneJob(scene, { model }));
      assert.equal(r.error?.code, ErrorCodes.UnknownModel, `${model.slice(0, 40)} → ${JSON.stringify(r).slice(0, 200)}`);
      assert.ok(r.error.message.length < 1000);
    }
    const list = await p.request(id++, 'models/list');
    const escape = list.result.find((m: { name: string }) => m.name === 'escape');
    assert.equal(escape.status, 'failed');
    assert.match(escape.error, /inside the model folder/);
    const r = await p.request(id++, 'job/start', sceneJob(scene, { model: 'escape' }));
    assert.equal(r.error.code, ErrorCodes.ModelFailed);
    await p.close();
  });

  it('refuses to start on a non-loopback host without a token', () => {
    const env = { ...process.env };
    delete env.CELLBRIDGE_TOKEN;
    const r = spawnSync(process.execPath, [CLI, 'serve', '--host', '0.0.0.0', '--port', '0', '--models', makeSyntheticModelsDir(), '--device', 'cpu'], { env, encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 without a token/);
    assert.doesNotMatch(r.stdout, /listening/);
  });
});
