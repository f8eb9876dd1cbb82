/**
 * Shared helpers of the hardening tests (fuzz-, concurrency-, security-, faults-*.test.ts): a raw
 * WebSocket peer that counts what the daemon answers, the daemon's RSS, a standard job. No tests here.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { CellBridgeClient, type JobOutcome } from '../bridge/client/client';
import type { DetectionFeature, StartJobParams } from '../protocol';
import { cropScene, type Scene } from './helpers/synthetic-scene';

export interface Closed { code: number; reason: string }

/** A WebSocket that collects every JSON message the server sends, indexed for counting. */
export class RawPeer {
  readonly messages: any[] = [];
  /** Responses by id (the first one; `duplicates` counts any further). */
  readonly responses = new Map<string, any>();
  duplicates = 0;
  nullIdErrors = 0;
  rejectedFrames = 0;
  closed: Closed | null = null;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, binary) => {
      if (binary) return;
      const m = JSON.parse(data.toString());
      this.messages.push(m);
      if ('id' in m && !('method' in m)) {
        if (m.id === null) this.nullIdErrors++;
        else {
          const key = JSON.stringify(m.id);
          if (this.responses.has(key)) this.duplicates++; else this.responses.set(key, m);
        }
      } else if (m.method === 'frame/rejected') this.rejectedFrames++;
      this.wake();
    });
    ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; this.wake(); });
    ws.on('error', () => undefined);
  }

  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<RawPeer> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode} ${res.statusMessage}`), { status: res.statusCode })));
    });
    return new RawPeer(ws);
  }

  private wake(): void { this.waiters.splice(0).forEach((w) => w()); }

  send(data: string | Uint8Array | object): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(typeof data === 'string' || data instanceof Uint8Array ? data : JSON.stringify(data));
  }

  /** Waits until pred holds (true) or ms pass (false). Returns early when the socket closes. */
  async until(pred: () => boolean, ms = 10_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (pred()) return true;
      if (this.closed || Date.now() > deadline) return pred();
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 100); });
    }
  }

  async request(id: number | string, method: string, params?: unknown, ms = 10_000): Promise<any> {
    this.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    const key = JSON.stringify(id);
    if (!(await this.until(() => this.responses.has(key), ms))) {
      throw new Error(`no answer to ${method} #${id}${this.closed ? ` (closed ${this.closed.code} ${this.closed.reason})` : ''}`);
    }
    return this.responses.get(key);
  }

  async initialize(extra: Record<string, unknown> = {}): Promise<any> {
    return this.request('init', 'initialize', { clientInfo: { name: 'raw-peer' }, protocolVersion: '2.0', ...extra });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.ws.close();
    return this.until(() => this.closed !== null, 3000).then(() => { if (!this.closed) this.ws.terminate(); });
  }
}

/** Resident set size of a process, bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

export const square = (x0: number, y0: number, x1: number, y1: number) => ({ type: 'Polygon' as const, coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]] });

export function sceneJob(scene: Scene, extra: Partial<StartJobParams> = {}): StartJobParams {
  return {
    image: { name: 'hardening-scene', width: scene.width, height: scene.height, micronsPerPixel: 0.5 },
    rois: [{ id: 'r', geometry: square(8, 8, scene.width - 8, scene.height - 8) }],
    model: 'synthetic',
    options: { pixelFormat: 'rgb8', maxTilesInFlight: 4 },
    ...extra,
  };
}

/** Runs one job on its own connection with the scene's true pixels. */
export async function runSceneJob(url: string, scene: Scene, extra: Partial<StartJobParams> = {}, connect: { token?: string } = {}): Promise<JobOutcome> {
  const client = await CellBridgeClient.connect(url, connect);
  try {
    return await client.runJob(sceneJob(scene, extra), async (t) => cropScene(scene, t.x, t.y, t.width, t.height));
  } finally {
    await client.close();
  }
}

/** A job's cells as comparable, order-free keys (stable id, outline, class, measurements). */
export function cellKeys(outcome: JobOutcome): string[] {
  const all: DetectionFeature[] = [...outcome.features.values()].flat();
  return all.map((f) => JSON.stringify([f.id, f.geometry, f.properties.classification.name, f.properties.measurements])).sort();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
