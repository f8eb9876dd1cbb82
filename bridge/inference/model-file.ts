/**
 * Opening the ONNX file a model runs, once, before any job: a corrupt file is reported at start, not
 * mid-job, and an int8 `cpuFile` that does not load costs only its speed-up. Shared by the daemon
 * (server.verifyModels) and `npm run eval`, so both run the same file for the same card.
 */
import * as ort from './ort';
import type { RegisteredModel } from './model-registry';
import { summariseError } from './providers';

export type Card = NonNullable<RegisteredModel['card']>;

/** Loads the file with the provider and checks it has the card's input and outputs; throws with the reason. */
export async function checkModelFile(path: string, card: Card, provider: string): Promise<void> {
  const s = await ort.InferenceSession.create(path, { executionProviders: [provider] });
  const missing = [card.input.name].filter((n) => !s.inputNames.includes(n))
    .concat([card.outputs.flows.name, card.outputs.type.name, ...(card.outputs.cellProbability ? [card.outputs.cellProbability.name] : [])].filter((n) => !s.outputNames.includes(n)));
  await s.release();
  if (missing.length > 0) throw new Error(`the ONNX file has no input/output named ${missing.join(', ')} (it has inputs ${s.inputNames.join(', ')}; outputs ${s.outputNames.join(', ')})`);
}

/**
 * The file `m` can run with `provider`: `m.onnxPath` (chosen by ModelRegistry.useProvider or runFileFor)
 * when it loads; when that is the int8 `cpuFile` and it does not load, the card's `file`, after
 * `onFallback(reason)`. Throws when the file to run does not load.
 */
export async function loadableRunFile(m: Pick<RegisteredModel, 'onnxPath' | 'filePath' | 'card'>, provider: string,
  onFallback: (reason: string) => void, check: typeof checkModelFile = checkModelFile): Promise<string> {
  if (!m.onnxPath || !m.card) throw new Error('the model has no file to run');
  try {
    await check(m.onnxPath, m.card, provider);
    return m.onnxPath;
  } catch (err) {
    if (m.onnxPath === m.filePath || !m.filePath) throw err;
    onFallback(summariseError(err));
    await check(m.filePath, m.card, provider);
    return m.filePath;
  }
}
