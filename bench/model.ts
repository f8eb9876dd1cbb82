/**
 * Model only: tiles/s of the default model at the daemon's tile size, per provider and engine
 * configuration (sessions x intra-op threads), on real tiles of CMU-1. Each timed tile is what an
 * inference worker does: pixels → tensor, session.run, outputs → maps.
 */
import * as ort from '../bridge/inference/ort';
import { sessionOptions } from '../bridge/inference/inference-worker';
import { extractMaps, prepareInput, type RawOutput, type TileOutputMaps } from '../bridge/inference/preprocess';
import type { ReadyModel, SlideTile } from './common';
import { median, r2 } from './common';

export interface ModelConfig { sessions: number; threads: number }

export interface ModelResult extends ModelConfig {
  provider: string;
  tiles: number;
  tilesPerSecond: number;
  /** Median wall time of one tile in one session (what the job reports as inferenceMs). */
  msPerTile: number;
}

async function runTile(session: ort.InferenceSession, model: ReadyModel, t: SlideTile): Promise<TileOutputMaps> {
  const { card } = model;
  const input = prepareInput(t.rgb, t.tile.outputWidth, t.tile.outputHeight, card.input);
  const out = await session.run({ [card.input.name]: new ort.Tensor('float32', input.data, input.dims) });
  const raw: Record<string, RawOutput> = {};
  for (const [name, v] of Object.entries(out)) raw[name] = { data: v.data as Float32Array, dims: v.dims };
  const maps = extractMaps(card, raw, input.pw, input.ph, t.tile.outputWidth, t.tile.outputHeight);
  for (const v of Object.values(out)) v.dispose?.();
  return maps;
}

export async function openSessions(model: ReadyModel, provider: string, cfg: ModelConfig): Promise<ort.InferenceSession[]> {
  const sessions: ort.InferenceSession[] = [];
  for (let i = 0; i < cfg.sessions; i++) sessions.push(await ort.InferenceSession.create(model.onnxPath, sessionOptions(provider, cfg.threads)));
  return sessions;
}

/** Runs `runs` tiles (cycling over `tiles`) through cfg.sessions sessions concurrently. */
export async function modelOnly(model: ReadyModel, tiles: SlideTile[], provider: string, cfg: ModelConfig, runs: number): Promise<ModelResult> {
  const sessions = await openSessions(model, provider, cfg);
  try {
    for (const s of sessions) for (let k = 0; k < 2; k++) await runTile(s, model, tiles[k % tiles.length]); // warm-up
    let next = 0;
    const per: number[] = [];
    const started = performance.now();
    await Promise.all(sessions.map(async (s) => {
      while (next < runs) {
        const t = tiles[next++ % tiles.length];
        const t0 = performance.now();
        await runTile(s, model, t);
        per.push(performance.now() - t0);
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    return { provider, ...cfg, tiles: runs, tilesPerSecond: r2(runs / seconds), msPerTile: r2(median(per)) };
  } finally {
    for (const s of sessions) await s.release();
  }
}

/** The model's output maps for each tile (for the post-processing benchmark). */
export async function recordOutputs(model: ReadyModel, tiles: SlideTile[], provider: string, threads: number): Promise<TileOutputMaps[]> {
  const [session] = await openSessions(model, provider, { sessions: 1, threads });
  try {
    const maps: TileOutputMaps[] = [];
    for (const t of tiles) maps.push(await runTile(session, model, t));
    return maps;
  } finally {
    await session.release();
  }
}

/** Why a provider cannot run here, or null when it can. */
export async function providerUnavailable(model: ReadyModel, provider: string): Promise<string | null> {
  try {
    const s = await ort.InferenceSession.create(model.onnxPath, sessionOptions(provider, 1));
    await s.release();
    return null;
  } catch (err) {
    return (err as Error).message.split('\n')[0].slice(0, 300);
  }
}

export interface TileSizeResult { side: number; threads: number; msPerTile: number; runs: number }

/**
 * CPU time of one inference per square tile size (models/README.md quotes it): real CMU-1 pixels,
 * tiled up to `side` by repetition, `runs` timed runs after 2 warm-ups, median.
 */
export async function tileSizes(model: ReadyModel, tile: SlideTile, sides: number[], threads: number[], runs: number): Promise<TileSizeResult[]> {
  const { card } = model;
  const src = tile.rgb, sw = tile.tile.outputWidth, sh = tile.tile.outputHeight;
  const out: TileSizeResult[] = [];
  for (const th of threads) {
    const [session] = await openSessions(model, 'cpu', { sessions: 1, threads: th });
    try {
      for (const side of sides) {
        const rgb = new Uint8Array(side * side * 3);
        for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) {
          const s = 3 * ((y % sh) * sw + (x % sw)), d = 3 * (y * side + x);
          rgb[d] = src[s]; rgb[d + 1] = src[s + 1]; rgb[d + 2] = src[s + 2];
        }
        const input = prepareInput(rgb, side, side, { ...card.input, readSize: Math.max(side, card.input.readSize), modelSize: Math.max(side, card.input.modelSize) });
        const feeds = { [card.input.name]: new ort.Tensor('float32', input.data, input.dims) };
        const per: number[] = [];
        for (let k = 0; k < runs + 2; k++) {
          const t0 = performance.now();
          const r = await session.run(feeds);
          if (k >= 2) per.push(performance.now() - t0);
          for (const v of Object.values(r)) v.dispose?.();
        }
        out.push({ side, threads: th, msPerTile: r2(median(per)), runs });
      }
    } finally {
      await session.release();
    }
  }
  return out;
}
