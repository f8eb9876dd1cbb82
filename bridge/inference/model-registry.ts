/**
 * Finds the models in the models folder: every sub-folder holding a `card.json`. A model whose card
 * or file is broken is still listed, as failed with the reason, so that clients can tell the user.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { ModelCard } from './model-card';
import { validateCard } from './card-validate';

export interface RegisteredModel {
  name: string;
  dir: string;
  card: ModelCard | null;
  onnxPath: string | null;
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

  markFailed(name: string, error: string): void {
    const m = this.models.get(name);
    if (m) { m.status = 'failed'; m.error = error; }
  }
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
    const onnxPath = resolve(dir, card.file);
    if (!onnxPath.startsWith(resolve(dir) + sep)) throw new Error(`${name}/card.json: file must stay inside the model folder`);
    if (!existsSync(onnxPath)) throw new Error(`${name}: model file ${card.file} is missing`);
    return { name, dir, card, onnxPath, status: 'ready' };
  } catch (err) {
    return { name, dir, card: null, onnxPath: null, status: 'failed', error: (err as Error).message };
  }
}
