/**
 * Child process (IsolatedChecks): the start-up's test inferences, the provider probe and each model
 * file's first load. A GPU driver or execution provider that aborts here ends this process, and the
 * daemon skips that provider (or marks the model failed) with the reason, instead of dying at start.
 */
import { serveWorker } from '../workers/pool';
import { workerSide } from '../workers/process-worker';
import { checkModelFile, type Card } from './model-file';
import { probeProvider, type ProbeModel, type ProviderName } from './providers';

export type ProviderCheckTask =
  | { kind: 'probe'; provider: ProviderName; model: ProbeModel }
  | { kind: 'file'; provider: string; path: string; card: Card };

const side = workerSide();
if (side) {
  serveWorker<ProviderCheckTask, null>(side.port, async (task) => {
    if (task.kind === 'probe') await probeProvider(task.provider, task.model);
    else await checkModelFile(task.path, task.card, task.provider);
    return { result: null };
  });
}
