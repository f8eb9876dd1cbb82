/**
 * Pure tensor preparation: tile pixels → model input, model output → maps of the tile.
 * No I/O; typed arrays only.
 */
import type { InputSpec, ModelCard, Normalization } from './model-card';
import type { TileMaps } from '../postprocess/types';

/** Separable resampling with a triangle (bilinear) kernel; widened when shrinking = antialias (as PyTorch's antialias=True). */
export function resizePlane(src: Float32Array, sw: number, sh: number, dw: number, dh: number, antialias: boolean, dst?: Float32Array): Float32Array {
  const out = dst ?? new Float32Array(dw * dh);
  if (sw === dw && sh === dh) { out.set(src.subarray(0, sw * sh)); return out; }
  const tmp = new Float32Array(dw * sh);
  const hx = weights(sw, dw, antialias);
  for (let y = 0; y < sh; y++) {
    const row = y * sw;
    for (let x = 0; x < dw; x++) {
      let acc = 0;
      const s = hx.start[x], n = hx.count[x], o = hx.offset[x];
      for (let k = 0; k < n; k++) acc += src[row + s + k] * hx.w[o + k];
      tmp[y * dw + x] = acc;
    }
  }
  const hy = weights(sh, dh, antialias);
  for (let y = 0; y < dh; y++) {
    const s = hy.start[y], n = hy.count[y], o = hy.offset[y];
    for (let x = 0; x < dw; x++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += tmp[(s + k) * dw + x] * hy.w[o + k];
      out[y * dw + x] = acc;
    }
  }
  return out;
}

interface Weights { start: Int32Array; count: Int32Array; offset: Int32Array; w: Float32Array }

function weights(inSize: number, outSize: number, antialias: boolean): Weights {
  const scale = inSize / outSize;
  const support = antialias && scale > 1 ? scale : 1;
  const start = new Int32Array(outSize), count = new Int32Array(outSize), offset = new Int32Array(outSize);
  const all: number[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support));
    const hi = Math.min(inSize, Math.ceil(center + support));
    let sum = 0;
    const ws: number[] = [];
    for (let j = lo; j < hi; j++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - center) / support));
      ws.push(w); sum += w;
    }
    start[i] = lo; count[i] = ws.length; offset[i] = all.length;
    for (const w of ws) all.push(sum > 0 ? w / sum : 0);
  }
  return { start, count, offset, w: Float32Array.from(all) };
}

/** Normalises channel planes in place (0..255 values for 'meanstd'; any values for 'zscore'). */
export function normalizePlanes(channels: Float32Array[], n: Normalization): void {
  if (n.kind === 'meanstd') {
    channels.forEach((p, c) => {
      const scale = n.scale, mean = n.mean[c], inv = 1 / n.std[c];
      for (let i = 0; i < p.length; i++) p[i] = (p[i] * scale - mean) * inv;
    });
    return;
  }
  // Zero mean, unit variance over all channels, as bioimage.io's zero_mean_unit_variance.
  let sum = 0, count = 0;
  for (const p of channels) for (let i = 0; i < p.length; i++) { sum += p[i]; count++; }
  const mean = sum / count;
  let sq = 0;
  for (const p of channels) for (let i = 0; i < p.length; i++) sq += (p[i] - mean) ** 2;
  const inv = 1 / (Math.sqrt(sq / count) + n.eps);
  for (const p of channels) for (let i = 0; i < p.length; i++) p[i] = (p[i] - mean) * inv;
}

/** Spatial size of the tensor fed to the model for a tile of w x h pixels. */
export function paddedSize(spec: InputSpec, w: number, h: number): { pw: number; ph: number } {
  if (spec.modelSize !== spec.readSize || !spec.dynamicSize) return { pw: spec.readSize, ph: spec.readSize };
  const m = Math.max(1, spec.multipleOf);
  return { pw: Math.max(m, Math.ceil(w / m) * m), ph: Math.max(m, Math.ceil(h / m) * m) };
}

export interface PreparedInput {
  data: Float32Array;
  dims: number[];
  /** Size of the padded tile before any model resize. */
  pw: number;
  ph: number;
}

/** RGB8 tile (w*h*3, row-major) → normalised model input, padded at the right and bottom. */
export function prepareInput(rgb: Uint8Array, w: number, h: number, spec: InputSpec): PreparedInput {
  if (w > spec.readSize || h > spec.readSize) throw new Error(`tile ${w}x${h} exceeds the model's read size ${spec.readSize}`);
  const { pw, ph } = paddedSize(spec, w, h);
  if (spec.channels === 3 && spec.layout === 'NCHW' && spec.modelSize === spec.readSize && spec.normalization.kind === 'meanstd') {
    return { data: prepareMeanStdNchw(rgb, w, h, pw, ph, spec.padValue, spec.normalization), dims: [1, 3, ph, pw], pw, ph };
  }
  const planes = [new Float32Array(pw * ph), new Float32Array(pw * ph), new Float32Array(pw * ph)];
  const pad = spec.padValue;
  for (const p of planes) p.fill(pad);
  for (let y = 0; y < h; y++) {
    let si = y * w * 3;
    let di = y * pw;
    for (let x = 0; x < w; x++, si += 3, di++) {
      planes[0][di] = rgb[si]; planes[1][di] = rgb[si + 1]; planes[2][di] = rgb[si + 2];
    }
  }
  let channels: Float32Array[] = spec.channels === 1
    ? [planes[0].map((v, i) => (v + planes[1][i] + planes[2][i]) / 3)]
    : planes;
  normalizePlanes(channels, spec.normalization);
  let size = { w: pw, h: ph };
  if (spec.modelSize !== spec.readSize) {
    const aa = spec.resize === 'bilinear-antialias';
    channels = channels.map((p) => resizePlane(p, pw, ph, spec.modelSize, spec.modelSize, aa));
    size = { w: spec.modelSize, h: spec.modelSize };
  }
  const c = channels.length;
  const plane = size.w * size.h;
  const data = new Float32Array(c * plane);
  if (spec.layout === 'NCHW') {
    channels.forEach((p, i) => data.set(p, i * plane));
    return { data, dims: [1, c, size.h, size.w], pw, ph };
  }
  for (let i = 0; i < plane; i++) for (let k = 0; k < c; k++) data[i * c + k] = channels[k][i];
  return { data, dims: [1, size.h, size.w, c], pw, ph };
}

/**
 * The common case in one pass (no intermediate planes): RGB8 → normalised NCHW float32 with the
 * padding at the right and bottom. Same arithmetic as the general path: identical values.
 */
function prepareMeanStdNchw(rgb: Uint8Array, w: number, h: number, pw: number, ph: number, pad: number,
  n: Extract<Normalization, { kind: 'meanstd' }>): Float32Array {
  const plane = pw * ph;
  const data = new Float32Array(3 * plane);
  const scale = n.scale;
  for (let c = 0; c < 3; c++) {
    const mean = n.mean[c], inv = 1 / n.std[c];
    const o = c * plane;
    const padded = (Math.fround(pad) * scale - mean) * inv;
    for (let y = 0; y < h; y++) {
      let si = y * w * 3 + c;
      const row = o + y * pw;
      for (let x = 0; x < w; x++, si += 3) data[row + x] = (rgb[si] * scale - mean) * inv;
      if (pw > w) data.fill(padded, row + w, row + pw);
    }
    if (ph > h) data.fill(padded, o + h * pw, o + plane);
  }
  return data;
}

/** Maps of one tile, cropped to the tile's own size, channel-major: what post-processing takes. */
export type TileOutputMaps = TileMaps;

export interface RawOutput { data: Float32Array; dims: readonly number[] }

/** Takes one channel of an NCHW output, resized back to the padded tile size, cropped to w x h. */
function channelOf(out: RawOutput, channel: number, pw: number, ph: number, w: number, h: number, antialias: boolean): Float32Array {
  const [, C, H, W] = out.dims;
  if (channel >= C) throw new Error(`output has ${C} channels, card names channel ${channel}`);
  let plane = out.data.subarray(channel * H * W, (channel + 1) * H * W);
  if (H !== ph || W !== pw) plane = resizePlane(plane, W, H, pw, ph, antialias);
  const crop = new Float32Array(w * h);
  for (let y = 0; y < h; y++) crop.set(plane.subarray(y * pw, y * pw + w), y * w);
  return crop;
}

export function extractMaps(card: ModelCard, outputs: Record<string, RawOutput>, pw: number, ph: number, w: number, h: number): TileOutputMaps {
  const get = (name: string): RawOutput => {
    const o = outputs[name];
    if (!o) throw new Error(`model produced no output named "${name}" (card ${card.name})`);
    if (o.dims.length !== 4) throw new Error(`output "${name}" has ${o.dims.length} dims, expected NCHW`);
    return o;
  };
  const aa = card.input.resize === 'bilinear-antialias';
  const flows = get(card.outputs.flows.name);
  const type = get(card.outputs.type.name);
  const typeChannels = type.dims[1];
  const typeLogits = new Float32Array(typeChannels * w * h);
  for (let c = 0; c < typeChannels; c++) typeLogits.set(channelOf(type, c, pw, ph, w, h, aa), c * w * h);
  const cp = card.outputs.cellProbability;
  return {
    width: w,
    height: h,
    dy: channelOf(flows, card.outputs.flows.dyChannel, pw, ph, w, h, aa),
    dx: channelOf(flows, card.outputs.flows.dxChannel, pw, ph, w, h, aa),
    cellprob: cp ? channelOf(get(cp.name), cp.channel, pw, ph, w, h, aa) : undefined,
    cellprobKind: cp?.kind,
    typeLogits,
    typeChannels,
    typeKind: card.outputs.type.kind,
  };
}
