/** `cellbridge health`: connects and initializes like a real client; exit 0 when the daemon serves. */
import { parseArgs } from 'node:util';
import { CellBridgeClient } from '../client/client';
import { DEFAULT_PORT } from '../config';

export const HEALTH_USAGE = `cellbridge health [--server ws://127.0.0.1:${DEFAULT_PORT}/] [--token T] [--timeout-s 5]`;

export async function health(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { server: { type: 'string' }, token: { type: 'string' }, 'timeout-s': { type: 'string' } }, strict: true });
  const url = values.server ?? `ws://127.0.0.1:${process.env.CELLBRIDGE_PORT ?? DEFAULT_PORT}/`;
  const timeoutMs = Number(values['timeout-s'] ?? 5) * 1000;
  const timer = setTimeout(() => { process.stderr.write(`cellbridge health: no answer from ${url} within ${timeoutMs / 1000} s\n`); process.exit(1); }, timeoutMs);
  try {
    const client = await CellBridgeClient.connect(url, { token: values.token ?? process.env.CELLBRIDGE_TOKEN, clientName: 'cellbridge-health' });
    const r = client.initializeResult!;
    const ready = r.models.filter((m) => m.status === 'ready').length;
    process.stdout.write(JSON.stringify({ ok: ready > 0, server: r.serverInfo, provider: r.executionProvider.name, modelsReady: ready, models: r.models.length }) + '\n');
    await client.close();
    return ready > 0 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`cellbridge health: ${(err as Error).message}\n`);
    return 1;
  } finally {
    clearTimeout(timer);
  }
}
