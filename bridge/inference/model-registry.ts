/**
 * Finds the models in the models folder: every sub-folder holding a `card.json`. A model whose card
 * or file is broken is still listed, as failed with the reason, so that clients can tell the user.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve, sep } from 'node:path';
import type { ModelCard } from './model-card';
import { validateCard } from './card-validate';

export interface RegisteredModel {
  name: string;
  dir: string;
  card: ModelCard | null;
  /** The ONNX file jobs run: the card's `file`, or its `cpuFile` once `useProvider('cpu')` chose it. */
  onnxPath: string | null;
  /** The card's `file` (full precision). */
  filePath: string | null;
  /** The card's optional `cpuFile` (an int8 copy for the CPU provider), null when it names none. */
  cpuFilePath: string | null;
  status: 'ready' | 'failed';
  error?: string;
}

export class ModelRegistry {
  private readonly models = new Map<string, RegisteredModel>();
  readonly defaultModel: string | null;

  constructor(readonly root: string, preferredDefault?: string) {
    this.root = resolve(root);
    if (!existsSync(this.root)) throw new Error(`models folder ${this.root} does not exist`);
    for (const entry of readdirSync(this.root).sort()) {
      const dir = join(this.root, entry);
      if (!statSync(dir).isDirectory() || !existsSync(join(dir, 'card.json'))) continue;
      this.models.set(entry, loadOne(entry, dir));
    }
    let def = preferredDefault ?? readDefaultName(this.root);
    if (def && !this.models.has(def)) def = undefined;
    this.defaultModel = def ?? [...this.models.values()].find((m) => m.status === 'ready')?.name ?? null;
  }

  list(): RegisteredModel[] { return [...this.models.values()]; }

  /** Looks a model up by name only: names with path separators or dots never reach the file system. */
  get(name: string): RegisteredModel | undefined {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) || name.includes('..')) return undefined;
    return this.models.get(name);
  }

  /**
   * Chooses the file each model runs with the execution provider: on the CPU its `cpuFile` when the card
   * names one (int8: ~1.4x faster on AVX2, see models/README "int8 on the CPU"), unless `fullPrecision`;
   * elsewhere its `file`. GPU providers keep the float file: their speed does not need int8.
   */
  useProvider(provider: string, fullPrecision = false): void {
    for (const m of this.models.values()) if (m.filePath) m.onnxPath = runFileFor(m, provider, fullPrecision);
  }

  /** Back to the card's `file` for one model (its `cpuFile` would not load). */
  useFullPrecision(name: string): void {
    const m = this.models.get(name);
    if (m?.filePath) m.onnxPath = m.filePath;
  }

  markFailed(name: string, error: string): void {
    const m = this.models.get(name);
    if (m) { m.status = 'failed'; m.error = error; }
  }
}

/** The name of the ONNX file a ready model runs (ModelInfo.file), undefined for a failed one. */
export function runFileName(m: Pick<RegisteredModel, 'status' | 'onnxPath'>): string | undefined {
  return m.status === 'ready' && m.onnxPath ? basename(m.onnxPath) : undefined;
}

/** The file a model runs with a provider (see ModelRegistry.useProvider). */
export function runFileFor(m: Pick<RegisteredModel, 'filePath' | 'cpuFilePath'>, provider: string, fullPrecision: boolean): string | null {
  return provider === 'cpu' && !fullPrecision && m.cpuFilePath ? m.cpuFilePath : m.filePath;
}

function readDefaultName(root: string): string | undefined {
  const f = join(root, 'default.json');
  if (!existsSync(f)) return undefined;
  try { return JSON.parse(readFileSync(f, 'utf8')).default; } catch { return undefined; }
}

function loadOne(name: string, dir: string): RegisteredModel {
  try {
    const card = validateCard(JSON.parse(readFileSync(join(dir, 'card.json'), 'utf8')), `${name}/card.json`);
    if (card.name !== name) throw new Error(`${name}/card.json: name "${card.name}" differs from its folder name "${name}"`);
    const inside = (key: 'file' | 'cpuFile', file: string): string => {
      const p = resolve(dir, file);
      if (!p.startsWith(resolve(dir) + sep)) throw new Error(`${name}/card.json: ${key} must stay inside the model folder`);
      if (!existsSync(p)) throw new Error(`${name}: model file ${file} is missing`);
      return p;
    };
    const onnxPath = inside('file', card.file);
    const cpuFilePath = card.cpuFile === undefined ? null : inside('cpuFile', card.cpuFile);
    return { name, dir, card, onnxPath, filePath: onnxPath, cpuFilePath, status: 'ready' };
  } catch (err) {
    return { name, dir, card: null, onnxPath: null, filePath: null, cpuFilePath: null, status: 'failed', error: (err as Error).message };
  }
}
