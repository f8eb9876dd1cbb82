import { join } from 'node:path';

/** The repository's models/ folder (dist/bridge/cli → ../../../models). */
export function defaultModelsDir(): string {
  return join(__dirname, '..', '..', '..', 'models');
}
