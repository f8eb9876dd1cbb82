/** `cellbridge health`: connects and initializes like a real client; exit 0 when the daemon serves. */
import { CellBridgeClient } from '../client/client';
import { DEFAULT_PORT } from '../config';
import { numFlag, parseCommand } from './args';
import { HEALTH } from './specs';

export async function health(argv: string[]): Promise<number> {
  const parsed = parseCommand(HEALTH, argv);
  if (parsed.help) return 0;
  const values = parsed.values as { server?: string; token?: string; 'timeout-s'?: string };
  const url = values.server ?? `ws://127.0.0.1:${process.env.CELLBRIDGE_PORT ?? DEFAULT_PORT}/`;
  const timeoutMs = (numFlag(values['timeout-s'], 'timeout-s', 0.1, 3600) ?? 5) * 1000;
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
