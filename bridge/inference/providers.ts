/**
 * Execution provider selection. onnxruntime does not fall back by itself (a session asked for
 * ['cuda','cpu'] throws when CUDA cannot load), so each candidate is tried in turn with a real
 * session and a real inference, and the reasons for skipping are kept for the user.
 *
 * `--device auto` tries CUDA, then WebGPU, then the CPU. An explicit `--device cuda|webgpu` that
 * cannot run is an error (ProviderUnavailable, exit 1) with the reason, never a silent fallback.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from './ort';

export type DeviceRequest = 'auto' | 'cpu' | 'webgpu' | 'cuda';
export type ProviderName = 'cpu' | 'webgpu' | 'cuda';
export const DEVICE_CHOICES: DeviceRequest[] = ['auto', 'cpu', 'webgpu', 'cuda'];
/** The order `--device auto` tries. */
export const AUTO_ORDER: ProviderName[] = ['cuda', 'webgpu', 'cpu'];

export interface ProviderChoice {
  name: ProviderName;
  /** CPU model (os.cpus), GPU name (nvidia-smi) or 'unknown'. */
  deviceName?: string;
  skipped: { provider: string; reason: string }[];
}

export class ProviderUnavailable extends Error {}

export interface ProbeModel { path: string; inputName: string; dims: number[] }

/** Short, single-line reason from onnxruntime's often multi-line native errors. */
export function summariseError(err: unknown): string {
  const text = (err as Error)?.message ?? String(err);
  let line = text.split('\n').map((s) => s.trim()).filter(Boolean).join(' ');
  // WebGPU errors start with a C++ lambda signature and an assertion; keep the sentence after it.
  const adapter = line.indexOf('Failed to get a WebGPU adapter');
  if (adapter > 0) line = line.slice(adapter);
  return line.replace(/\/onnxruntime_src\/\S+\s*/g, '').slice(0, 300);
}

/** Folder of onnxruntime-node's native libraries (where ONNXRUNTIME_NODE_INSTALL=cuda12 puts the CUDA provider). */
export function ortBinDir(): string {
  const pkg = join(dirname(require.resolve('onnxruntime-node')), '..');
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

const CUDA_LIB: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'libonnxruntime_providers_cuda.so', win32: 'onnxruntime_providers_cuda.dll',
};

/**
 * Whether the dynamic loader can find a shared library (Linux): LD_LIBRARY_PATH, the loader's cache
 * (/etc/ld.so.cache names every library it knows) and the usual folders.
 */
export function sharedLibraryFound(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const dirs = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), '/lib', '/usr/lib', '/lib64', '/usr/lib64', `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`];
  if (dirs.some((d) => existsSync(join(d, name)))) return true;
  try { return readFileSync('/etc/ld.so.cache').includes(name); } catch { return false; }
}

/**
 * Cheap reasons not to try a provider at all (a session would only fail, and print a native error:
 * Dawn writes "Warning: Couldn't load Vulkan" straight to stderr, past any --quiet).
 * `binDir` and `libraryFound` are parameters for tests.
 */
export function precheck(provider: ProviderName, binDir: string = ortBinDir(), libraryFound: (name: string) => boolean = sharedLibraryFound): string | null {
  if (provider === 'webgpu') {
    if (process.platform === 'linux' && !libraryFound('libvulkan.so.1')) {
      return 'the Vulkan loader libvulkan.so.1 is not installed (WebGPU needs a GPU with a Vulkan driver and the loader, e.g. Debian/Ubuntu package libvulkan1)';
    }
    return null;
  }
  if (provider !== 'cuda') return null;
  const lib = CUDA_LIB[process.platform];
  if (!lib || process.arch !== 'x64') return `onnxruntime-node has no CUDA provider for ${process.platform}/${process.arch}`;
  if (!existsSync(join(binDir, lib))) {
    return `onnxruntime-node was installed without its CUDA 12 provider libraries (${lib} is missing in ${binDir}); ` +
      'reinstall it with ONNXRUNTIME_NODE_INSTALL=cuda12, or use the cellbridge:gpu Docker image';
  }
  return null;
}

/** Adds what the user can do to a provider's raw error. */
export function explain(provider: ProviderName, reason: string): string {
  if (provider === 'webgpu' && /adapter/i.test(reason)) {
    return `${reason} (WebGPU needs a GPU with a Vulkan driver and the Vulkan loader libvulkan.so.1; in Docker add the ` +
      '"graphics" driver capability)';
  }
  if (provider === 'cuda' && /load|shared library|CUDA driver|no CUDA-capable device|cudaGetDeviceCount/i.test(reason)) {
    if (process.platform === 'linux' && !existsSync('/dev/nvidiactl') && !existsSync('/dev/dxg')) {
      return `${reason} (no NVIDIA GPU is visible: /dev/nvidiactl is missing; in Docker run with --gpus all)`;
    }
    return `${reason} (CUDA needs the NVIDIA driver and the CUDA 12 + cuDNN 9 runtime libraries; the cellbridge:gpu image has them)`;
  }
  return reason;
}

export async function probeProvider(provider: ProviderName, model: ProbeModel): Promise<void> {
  const session = await ort.InferenceSession.create(model.path, { executionProviders: [provider] });
  try {
    const n = model.dims.reduce((a, b) => a * b, 1);
    await session.run({ [model.inputName]: new ort.Tensor('float32', new Float32Array(n), model.dims) });
  } finally {
    await session.release();
  }
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8', windowsHide: true }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** First visible NVIDIA GPU's name from nvidia-smi (honours a numeric/UUID CUDA_VISIBLE_DEVICES), or null. */
export async function nvidiaGpuName(env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const first = env.CUDA_VISIBLE_DEVICES?.split(',')[0]?.trim();
  const select = first && /^(\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-fA-F-]+)$/.test(first) ? ['-i', first] : [];
  try {
    const out = await run('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader', ...select], 5000);
    return out.split('\n').map((s) => s.trim()).find(Boolean) ?? null;
  } catch {
    return null;
  }
}

/** What can be learned about the device a provider runs on; 'unknown' when nothing can. */
export async function deviceNameOf(provider: ProviderName): Promise<string> {
  if (provider === 'cpu') return cpus()[0]?.model?.trim() || 'unknown';
  // onnxruntime-node does not report the CUDA device or the WebGPU adapter; nvidia-smi names NVIDIA GPUs.
  return (await nvidiaGpuName()) ?? 'unknown';
}

export interface SelectOptions {
  /** Replaces the real test inference (tests). */
  probe?: (provider: ProviderName, model: ProbeModel) => Promise<void>;
  /** Replaces the pre-checks (tests). */
  precheck?: (provider: ProviderName) => string | null;
}

export async function selectProvider(request: DeviceRequest, model: ProbeModel | null, options: SelectOptions = {}): Promise<ProviderChoice> {
  const order: ProviderName[] = request === 'auto' ? AUTO_ORDER : [request];
  const probe = options.probe ?? probeProvider;
  const check = options.precheck ?? ((p: ProviderName) => precheck(p));
  const skipped: ProviderChoice['skipped'] = [];
  const chosen = async (name: ProviderName): Promise<ProviderChoice> => ({ name, deviceName: await deviceNameOf(name), skipped });
  for (const p of order) {
    if (model === null) {
      // Nothing to test with: the CPU always works; a GPU cannot be vouched for.
      if (p === 'cpu') return chosen('cpu');
      skipped.push({ provider: p, reason: 'no ready model to test it with' });
      continue;
    }
    const pre = check(p);
    if (pre) { skipped.push({ provider: p, reason: pre }); continue; }
    try {
      await probe(p, model);
      return chosen(p);
    } catch (err) {
      skipped.push({ provider: p, reason: explain(p, summariseError(err)) });
    }
  }
  const why = skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ');
  throw new ProviderUnavailable(`execution provider "${request}" is not available here (${why}). Use --device auto or --device cpu.`);
}

/** One line for people: "cpu (AMD EPYC); skipped cuda: ...; webgpu: ...". */
export function describeChoice(choice: { name: string; deviceName?: string; skipped: { provider: string; reason: string }[] }): string {
  const device = choice.deviceName ? ` (${choice.deviceName})` : '';
  const skipped = choice.skipped.length ? `; skipped ${choice.skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ')}` : '';
  return `${choice.name}${device}${skipped}`;
}
