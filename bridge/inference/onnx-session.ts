/** The one place that opens onnxruntime sessions (workers, start-up checks and tests use it). */
import * as ort from './ort';

export interface SessionOptions { provider: string; intraOpThreads?: number }

/** Session options per provider. */
export function sessionOptions(provider: string, intraOpThreads?: number): ort.InferenceSession.SessionOptions {
  // WebGPU: NHWC layout for convolutions measured faster than NCHW (shared/reference/gpu.md: 53 vs 48 tiles/s).
  const ep: ort.InferenceSession.ExecutionProviderConfig = provider === 'webgpu' ? { name: 'webgpu', preferredLayout: 'NHWC' } : provider;
  return {
    executionProviders: [ep],
    ...(intraOpThreads ? { intraOpNumThreads: intraOpThreads } : {}),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // Idle onnxruntime threads sleep instead of spinning: in the daemon they share the cores with
    // post-processing, slide reading and the socket, which spinning threads would starve.
    ...(process.env.CELLBRIDGE_ORT_SPIN === '1' ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
}

export function openSession(path: string, o: SessionOptions): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, sessionOptions(o.provider, o.intraOpThreads));
}

/** Runs one float32 input and returns every output as {data, dims}. */
export async function runFloat(session: ort.InferenceSession, inputName: string, data: Float32Array, dims: number[]): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
  const out = await session.run({ [inputName]: new ort.Tensor('float32', data, dims) });
  const result: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
  for (const [name, t] of Object.entries(out)) result[name] = { data: t.data as Float32Array, dims: t.dims };
  return result;
}
