/**
 * The attacks of issue #11, each as a bounded loopback function that measures what it did to the
 * daemon: what the attacker got, whether a well-behaved client working alongside kept getting the
 * same cells (and how long its jobs took), and the daemon's peak RSS. Used with assertions by
 * test/hardening-attacks.test.ts and, without them, by bench/attacks.ts to compare builds.
 */
import { Socket } from 'node:net';
import { CellBridgeClient } from '../../bridge/client/client';
import type { StartJobParams } from '../../protocol';
import { cellKeys, RawPeer, rssBytes, sceneJob, sleep, square } from '../hardening-helpers.test';
import { cropScene, type Scene } from './synthetic-scene';

const MiB = 1024 * 1024;

export interface AttackReport {
  attack: string;
  /** What the attacker got (codes, counts, sizes), attack-specific. */
  attacker: Record<string, unknown>;
  /** Jobs the well-behaved client completed during the attack, and whether each had the reference cells. */
  goodJobs: number;
  goodIdentical: boolean;
  /** Slowest well-behaved job (ms) during the attack; Infinity when one did not end in the window. */
  goodMaxMs: number;
  peakRssMb: number;
  seconds: number;
}

/** Samples the daemon's RSS every 50 ms; `stop` gives the peak in MiB. Aborts (kills the daemon) above `killAboveMb`. */
export function rssMonitor(pid: number, killAboveMb = 4000): { peakMb: () => number; stop: () => number } {
  let peak = 0;
  const t = setInterval(() => {
    try {
      const mb = rssBytes(pid) / MiB;
      peak = Math.max(peak, mb);
      if (mb > killAboveMb) process.kill(pid, 'SIGKILL'); // a measurement must not take the machine down
    } catch { /* exited */ }
  }, 50);
  return { peakMb: () => peak, stop: () => { clearInterval(t); return Math.round(peak); } };
}

/**
 * A well-behaved client (connected before the attack starts) running the scene job again and again
 * until stopped. `stop` waits at most `graceMs` for the job in progress.
 */
export async function goodClient(url: string, scene: Scene, reference: string[], connect: { token?: string } = {}) {
  const client = await CellBridgeClient.connect(url, connect);
  let running = true;
  let jobs = 0, identical = true, maxMs = 0;
  let current: Promise<void> = Promise.resolve();
  let startedAt = 0;
  const loop = (async () => {
    while (running) {
      startedAt = performance.now();
      current = client.runJob(sceneJob(scene), async (t) => cropScene(scene, t.x, t.y, t.width, t.height)).then((o) => {
        if (o.completed.status !== 'completed' || JSON.stringify(cellKeys(o)) !== JSON.stringify(reference)) identical = false;
        jobs++;
        maxMs = Math.max(maxMs, performance.now() - startedAt);
      }, () => { identical = false; });
      await current;
    }
  })();
  return {
    async stop(graceMs = 10_000): Promise<{ jobs: number; identical: boolean; maxMs: number }> {
      running = false;
      const ended = await Promise.race([loop.then(() => true), sleep(graceMs).then(() => false)]);
      if (!ended) maxMs = Infinity;
      client.socket.terminate();
      return { jobs, identical, maxMs: Math.round(maxMs) };
    },
  };
}

/** Runs `attack` with the good client alongside and the RSS monitor on. */
export async function measure(name: string, daemon: { url: string; process: { pid?: number } }, scene: Scene, reference: string[],
  attack: () => Promise<Record<string, unknown>>, opts: { token?: string; minGoodMs?: number } = {}): Promise<AttackReport> {
  const rss = rssMonitor(daemon.process.pid!);
  const t0 = performance.now();
  const good = await goodClient(daemon.url, scene, reference, opts.token ? { token: opts.token } : {});
  let attacker: Record<string, unknown>;
  try {
    attacker = await attack();
    // The good client gets at least one full job after the attack too.
    await sleep(opts.minGoodMs ?? 300);
  } finally {
    // (attacker errors propagate after the good client is stopped)
  }
  const g = await good.stop();
  return { attack: name, attacker, goodJobs: g.jobs, goodIdentical: g.identical, goodMaxMs: g.maxMs, peakRssMb: rss.stop(), seconds: +((performance.now() - t0) / 1000).toFixed(1) };
}

/** JSON text of `value` where the string "@DEEP@" is replaced by `depth` nested arrays (JSON.stringify cannot write those). */
export function withDeep(value: unknown, depth: number, kind: 'array' | 'object' = 'array'): string {
  const deep = kind === 'array' ? '['.repeat(depth) + '1' + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  return JSON.stringify(value).replace('"@DEEP@"', deep);
}

const request = (id: string | number, method: string, params: unknown) => ({ jsonrpc: '2.0', id, method, params });

/** The answer to a request sent as raw text, or null. */
async function answer(p: RawPeer, id: string, ms = 60_000): Promise<any> {
  const key = JSON.stringify(id);
  await p.until(() => p.responses.has(key), ms);
  return p.responses.get(key) ?? null;
}

/** Scene pixels for any rectangle (wrapping around the scene): plausible tiles for images larger than the scene. */
export function wrapCrop(scene: Scene, x: number, y: number, w: number, h: number): Uint8Array {
  if (x + w <= scene.width && y + h <= scene.height) return cropScene(scene, x, y, w, h);
  const out = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    const sy = (y + r) % scene.height;
    for (let c = 0; c < w; c++) {
      const o = 3 * (sy * scene.width + ((x + c) % scene.width));
      out[3 * (r * w + c)] = scene.rgb[o]; out[3 * (r * w + c) + 1] = scene.rgb[o + 1]; out[3 * (r * w + c) + 2] = scene.rgb[o + 2];
    }
  }
  return out;
}

function tileFrame(jobId: number, id: number, t: { x: number; y: number; width: number; height: number; readWidth: number; readHeight: number }, scene: Scene): Buffer {
  const header = Buffer.alloc(24);
  header.write('CBT1', 0, 'latin1'); header[4] = 1; header[5] = 1;
  header.writeUInt32BE(jobId, 8); header.writeUInt32BE(id, 12); header.writeUInt32BE(t.readWidth, 16); header.writeUInt32BE(t.readHeight, 20);
  return Buffer.concat([header, Buffer.from(wrapCrop(scene, t.x, t.y, t.readWidth, t.readHeight))]);
}

async function initialized(url: string, token?: string): Promise<RawPeer> {
  const p = await RawPeer.open(url);
  const r = await p.initialize(token ? { token } : {});
  if (!r.result) throw new Error(`initialize failed: ${JSON.stringify(r)}`);
  return p;
}

/** Sends every tile the daemon asks for (scene pixels); for attacks that need jobs to reach the workers. */
function feedTiles(p: RawPeer, scene: Scene, plans: Map<number, { tiles?: { id: number; x: number; y: number; width: number; height: number; readWidth: number; readHeight: number }[] }>, max = Infinity): () => number {
  let sent = 0, next = 0;
  const tick = setInterval(() => {
    for (; next < p.messages.length; next++) {
      const m = p.messages[next];
      if (m.method !== 'job/requestTiles') continue;
      const plan = plans.get(m.params.jobId);
      m.params.tileIds.forEach((id: number, k: number) => {
        const t = m.params.tiles?.[k] ?? plan?.tiles?.find((x) => x.id === id);
        if (!t || sent >= max) return;
        sent++;
        p.send(tileFrame(m.params.jobId, id, t, scene));
      });
    }
  }, 20);
  return () => { clearInterval(tick); return sent; };
}

// ------------------------------------------------------------------------------------------------
// 1. Prototype keys in options, with a value that cannot be structured-cloned (10,000-deep nesting)

export async function attackPrototypeOptions(url: string, scene: Scene): Promise<Record<string, unknown>> {
  const p = await initialized(url);
  const codes: Record<string, unknown> = Object.create(null); // "__proto__" is a plain key here
  const plans = new Map<number, any>();
  const stopFeed = feedTiles(p, scene, plans, 2);
  for (const [i, key] of ['constructor', 'toString'].entries()) {
    const job = sceneJob(scene, { options: { pixelFormat: 'rgb8', maxTilesInFlight: 1, postprocess: { [key]: '@DEEP@' } as never } });
    p.send(withDeep(request(`p${i}`, 'job/start', job), 10_000));
    const r = await answer(p, `p${i}`, 10_000);
    codes[key] = r?.error?.code ?? 'result';
    if (r?.result) plans.set(r.result.jobId, r.result);
  }
  for (const key of ['__proto__', 'valueOf', 'hasOwnProperty', 'isPrototypeOf']) {
    const text = JSON.stringify(request(`k-${key}`, 'job/start', sceneJob(scene, { options: { pixelFormat: 'rgb8', postprocess: { [key]: 1 } as never } })));
    p.send(text);
    const r = await answer(p, `k-${key}`, 10_000);
    codes[key] = r?.error?.code ?? 'result';
  }
  await sleep(1500);
  const tilesSent = stopFeed();
  await p.close();
  return { codes, tilesSent };
}

// ------------------------------------------------------------------------------------------------
// 2. An ROI with a 10,000-deep extra property

export async function attackDeepRoi(url: string, scene: Scene): Promise<Record<string, unknown>> {
  const p = await initialized(url);
  const other = await initialized(url);
  const job: StartJobParams = sceneJob(scene);
  (job.rois[0] as unknown as Record<string, unknown>).extra = '@DEEP@';
  const t0 = performance.now();
  p.send(withDeep(request('deep', 'job/start', job), 10_000, 'object'));
  await sleep(50);
  // Another client's job/start meanwhile: how long does planning make it wait?
  const t1 = performance.now();
  const o = await other.request('o', 'job/start', sceneJob(scene), 60_000).catch(() => null);
  const otherStartMs = Math.round(performance.now() - t1);
  const r = await answer(p, 'deep');
  const attackerMs = Math.round(performance.now() - t0);
  await Promise.all([p.close(), other.close()]);
  return { code: r?.error?.code ?? (r?.result ? 'result' : 'none'), attackerMs, otherJobStartMs: otherStartMs, otherOk: !!o?.result };
}

// ------------------------------------------------------------------------------------------------
// 3. Heavy (accepted) options and tiles sent as fast as asked: does the post-processing queue grow?

export async function attackBacklog(url: string, scene: Scene, seconds: number, statsUrl: string): Promise<Record<string, unknown>> {
  const p = await initialized(url);
  const stats = await initialized(statsUrl);
  const heavyTries = [
    { niter: 2000, seedMinCount: 0, claimMinCount: 0, flowScale: 1e308 },
    { niter: 1000, seedMinCount: 1, claimMinCount: 0, flowScale: 0.1 },
  ];
  const plans = new Map<number, any>();
  let options: unknown = null;
  for (const post of heavyTries) {
    for (let j = 0; j < 4; j++) {
      const r = await p.request(`h${JSON.stringify(post)}${j}`, 'job/start', sceneJob(scene, {
        image: { name: 'backlog', width: 4000, height: 4000, micronsPerPixel: 0.5 },
        rois: [{ id: 'r', geometry: square(0, 0, 4000, 4000) }],
        options: { pixelFormat: 'rgb8', maxTilesInFlight: 16, postprocess: post },
      }));
      if (r.result) { plans.set(r.result.jobId, r.result); options = post; }
    }
    if (plans.size > 0) break;
  }
  // Tiles of the 4000x4000 image come from the scene, wrapped (wrapCrop).
  const stopFeed = feedTiles(p, scene, plans, Infinity);
  let peakQueue = 0, peakInFlight = 0;
  const deadline = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < deadline) {
    const s = (await stats.request(`s${n++}`, 'debug/stats')).result;
    peakQueue = Math.max(peakQueue, s.queued.postprocess + s.busy.postprocess);
    peakInFlight = Math.max(peakInFlight, s.tilesInFlight ?? 0);
    await sleep(250);
  }
  const sent = stopFeed();
  await Promise.all([p.close(), stats.close()]);
  return { options, jobs: plans.size, tilesSent: sent, peakPostprocessBacklog: peakQueue, peakTilesInFlight: peakInFlight };
}

// ------------------------------------------------------------------------------------------------
// 4. A self-intersecting ROI of 20,000 vertices (every edge crosses thousands of others)

export function zigzag(n: number, size: number): number[][] {
  // A star polygon: vertex k on a circle at angle k * (n/2 - 1) * 2π/n; consecutive edges nearly span the circle.
  const step = Math.floor(n / 2) - 1;
  const pts = Array.from({ length: n }, (_, k) => {
    const a = (2 * Math.PI * ((k * step) % n)) / n;
    return [size / 2 + (size / 2 - 1) * Math.cos(a), size / 2 + (size / 2 - 1) * Math.sin(a)];
  });
  pts.push(pts[0]);
  return pts;
}

export async function attackKinks(url: string, scene: Scene, vertices = 20_000): Promise<Record<string, unknown>> {
  const p = await initialized(url);
  const t0 = performance.now();
  const text = JSON.stringify(request('k', 'job/start', sceneJob(scene, { rois: [{ id: 'star', geometry: { type: 'Polygon', coordinates: [zigzag(vertices, Math.min(scene.width, scene.height))] } }] })));
  p.send(text);
  const r = await answer(p, 'k');
  const ms = Math.round(performance.now() - t0);
  await p.close();
  return { vertices, requestKb: Math.round(text.length / 1024), code: r?.error?.code ?? (r ? 'result' : 'none'), ms, message: r?.error?.message?.slice(0, 80) };
}

// ------------------------------------------------------------------------------------------------
// 5. Pre-authentication: idle sockets, big frames, token guesses, raw TCP

export async function attackIdleSockets(url: string, count: number, token?: string): Promise<Record<string, unknown>> {
  const idle: RawPeer[] = [];
  let refused = 0;
  for (let i = 0; i < count; i++) {
    try { idle.push(await RawPeer.open(url)); } catch { refused++; }
  }
  // A real client arriving now (no Authorization header: it authenticates in initialize).
  const t0 = performance.now();
  let fresh = 'ok';
  try {
    const c = await CellBridgeClient.connect(url, token ? { token } : {});
    await c.close();
  } catch (err) { fresh = (err as Error).message.slice(0, 80); }
  const freshMs = Math.round(performance.now() - t0);
  const stillOpen = idle.filter((p) => !p.closed).length;
  await Promise.all(idle.map((p) => p.close()));
  return { idleOpened: idle.length, refused, stillOpenWhenFreshCame: stillOpen, freshClient: fresh, freshMs };
}

export async function attackBigFrames(url: string, sockets: number, bytes: number): Promise<Record<string, unknown>> {
  const peers: RawPeer[] = [];
  for (let i = 0; i < sockets; i++) { try { peers.push(await RawPeer.open(url)); } catch { /* refused */ } }
  const frame = Buffer.alloc(bytes, 7);
  for (const p of peers) p.send(frame);
  await Promise.all(peers.map((p) => p.until(() => p.closed !== null, 3000)));
  const closed = peers.filter((p) => p.closed);
  const codes = [...new Set(closed.map((p) => p.closed!.code))];
  await Promise.all(peers.map((p) => p.close()));
  return { sockets: peers.length, mbEach: Math.round(bytes / MiB), closedWithin3s: closed.length, closeCodes: codes };
}

export async function attackTokenGuesses(url: string, guesses: number): Promise<Record<string, unknown>> {
  const p = await RawPeer.open(url);
  for (let i = 0; i < guesses; i++) p.send(request(`g${i}`, 'initialize', { clientInfo: { name: 'guess' }, protocolVersion: '2.0', token: `guess-${i}` }));
  await p.until(() => p.closed !== null, 5000);
  await sleep(200);
  const answered = [...p.responses.keys()].filter((k) => k.startsWith('"g')).length;
  await p.close();
  return { sent: guesses, answered, closed: p.closed?.code ?? null };
}

export async function attackRawTcp(port: number, count: number, holdMs: number): Promise<Record<string, unknown>> {
  const sockets: Socket[] = [];
  let closedByServer = 0;
  await Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve) => {
    const s = new Socket();
    s.on('error', () => undefined);
    s.on('close', () => { closedByServer++; });
    s.connect(port, '127.0.0.1', () => resolve());
    s.setTimeout(3000, () => resolve());
    sockets.push(s);
  })));
  await sleep(holdMs);
  const open = count - closedByServer;
  for (const s of sockets) s.destroy();
  return { opened: count, stillOpenAfterMs: holdMs, open };
}

// ------------------------------------------------------------------------------------------------
// 6. A legal plan of ~249,000 tiles (or any square region of `side` px at the far corner of a slide
// of `imageSide` px, so that every coordinate has as many digits as the slide allows)

export async function attackBigPlan(url: string, scene: Scene, side = 47_900, imageSide = side): Promise<Record<string, unknown>> {
  const p = await initialized(url);
  const other = await initialized(url);
  // 128-px tiles, 32 px overlap at downsample 1: stride 96 px; 47,900² px ≈ 249,000 tiles.
  const o = imageSide - side;
  const job = sceneJob(scene, { image: { name: 'big', width: imageSide, height: imageSide, micronsPerPixel: 0.5 }, rois: [{ id: 'all', geometry: square(o, o, imageSide, imageSide) }] });
  let bytes = 0;
  p.ws.on('message', (d: Buffer, binary: boolean) => { if (!binary && d.length > bytes) bytes = d.length; });
  const t0 = performance.now();
  p.send(request('big', 'job/start', job));
  // Meanwhile another client pings: how long is it held up?
  let maxPingMs = 0;
  let i = 0;
  while (!p.responses.has('"big"') && performance.now() - t0 < 60_000) {
    const t = performance.now();
    await other.request(`ping${i++}`, 'models/list', undefined, 60_000);
    maxPingMs = Math.max(maxPingMs, performance.now() - t);
    await sleep(20);
  }
  const r = p.responses.get('"big"');
  const responseMs = Math.round(performance.now() - t0);
  const second = await p.request('big2', 'job/start', job, 60_000);
  await Promise.all([p.close(), other.close()]);
  return {
    tiles: r?.result?.tileCount ?? r?.result?.tiles?.length, listed: r?.result?.tiles?.length ?? 0, responseBytes: bytes, responseKb: Math.round(bytes / 1024), responseMs, otherMaxPingMs: Math.round(maxPingMs),
    secondJob: second?.error ? `${second.error.code} ${second.error.data?.limit ?? ''}` : 'result',
  };
}

/** A client that keeps its job alive by sending one tile every `everyMs`: how long does the job live? */
export async function attackDribble(url: string, scene: Scene, everyMs: number, watchMs: number, token?: string): Promise<Record<string, unknown>> {
  const p = await initialized(url, token);
  const side = 2000;
  const r = await p.request('d', 'job/start', sceneJob(scene, { image: { name: 'dribble', width: side, height: side, micronsPerPixel: 0.5 }, rois: [{ id: 'r', geometry: square(0, 0, side, side) }], options: { pixelFormat: 'rgb8', maxTilesInFlight: 1 } }));
  const jobId = r.result.jobId;
  const t0 = performance.now();
  let sent = 0;
  const sentIds = new Set<number>();
  const timer = setInterval(() => {
    const req = [...p.messages].reverse().find((m) => m.method === 'job/requestTiles' && m.params.jobId === jobId);
    if (!req) return;
    const id = req.params.tileIds[0];
    if (req.params.tileIds.length === 0 || sentIds.has(id)) return;
    sentIds.add(id);
    const t = req.params.tiles?.[0] ?? r.result.tiles.find((x: { id: number }) => x.id === id);
    p.send(tileFrame(jobId, id, t, scene));
    sent++;
  }, everyMs);
  const ended = await p.until(() => p.messages.some((m) => m.method === 'job/completed' && m.params.jobId === jobId), watchMs);
  clearInterval(timer);
  const done = p.messages.find((m) => m.method === 'job/completed' && m.params.jobId === jobId);
  await p.close();
  return { tilesSent: sent, endedWithinMs: ended ? Math.round(performance.now() - t0) : null, status: done?.params.status ?? 'still running', code: done?.params.error?.code, tilesTotal: r.result.tileCount ?? r.result.tiles.length };
}

// ------------------------------------------------------------------------------------------------
// 7. Options that multiply the CPU cost of a tile

export async function attackHeavyOptions(url: string, scene: Scene): Promise<Record<string, unknown>> {
  const c = await CellBridgeClient.connect(url);
  const run = async (postprocess: Record<string, number>) => {
    try {
      const o = await c.runJob(sceneJob(scene, { options: { pixelFormat: 'rgb8', postprocess } }), async (t) => cropScene(scene, t.x, t.y, t.width, t.height));
      return { postprocessMsPerTile: Math.round(o.completed.timings.postprocessMs / Math.max(1, o.completed.tilesDone)), status: o.completed.status };
    } catch (err) { return { error: (err as { code?: number }).code ?? (err as Error).message }; }
  };
  const base = await run({});
  const heavy = await run({ niter: 2000, seedMinCount: 0, claimMinCount: 0 });
  const huge = await run({ flowScale: 1e308, seedMinCount: 0 });
  await c.close();
  return { defaults: base, niter2000seed0: heavy, flowScale1e308: huge };
}
