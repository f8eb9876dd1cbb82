/**
 * Execution provider selection. onnxruntime does not fall back by itself (a session asked for
 * ['cuda','cpu'] throws when CUDA cannot load), so each candidate is tried in turn with a real
 * session and a real inference, and the reasons for skipping are kept for the user.
 */
import * as ort from 'onnxruntime-node';

export type DeviceRequest = 'auto' | 'cpu' | 'webgpu' | 'cuda';
export const DEVICE_CHOICES: DeviceRequest[] = ['auto', 'cpu', 'webgpu', 'cuda'];

export interface ProviderChoice {
  name: 'cpu' | 'webgpu' | 'cuda';
  deviceName?: string;
  skipped: { provider: string; reason: string }[];
}

export class ProviderUnavailable extends Error {}

export interface ProbeModel { path: string; inputName: string; dims: number[] }

/** Short, single-line reason from onnxruntime's often multi-line native errors. */
export function summariseError(err: unknown): string {
  const text = (err as Error)?.message ?? String(err);
  const line = text.split('\n').map((s) => s.trim()).filter(Boolean).join(' ');
  return line.replace(/\/onnxruntime_src\/\S+\s*/g, '').slice(0, 300);
}

export async function probeProvider(provider: 'cpu' | 'webgpu' | 'cuda', model: ProbeModel): Promise<void> {
  const session = await ort.InferenceSession.create(model.path, { executionProviders: [provider] });
  try {
    const n = model.dims.reduce((a, b) => a * b, 1);
    await session.run({ [model.inputName]: new ort.Tensor('float32', new Float32Array(n), model.dims) });
  } finally {
    await session.release();
  }
}

export async function selectProvider(request: DeviceRequest, model: ProbeModel | null): Promise<ProviderChoice> {
  const order: ('cpu' | 'webgpu' | 'cuda')[] = request === 'auto' ? ['cuda', 'webgpu', 'cpu'] : [request];
  const skipped: ProviderChoice['skipped'] = [];
  for (const p of order) {
    if (p === 'cpu' && request === 'auto' && model === null) return { name: 'cpu', skipped };
    if (model === null) {
      if (p === 'cpu') return { name: 'cpu', skipped };
      skipped.push({ provider: p, reason: 'no ready model to test it with' });
      continue;
    }
    try {
      await probeProvider(p, model);
      return { name: p, skipped };
    } catch (err) {
      skipped.push({ provider: p, reason: summariseError(err) });
    }
  }
  const why = skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ');
  throw new ProviderUnavailable(`execution provider "${request}" is not available here (${why}). Use --device auto or --device cpu.`);
}
