/**
 * `cellbridge health`: connects and initializes like a real client, then asks `server/health`; exit 0
 * only when the daemon can serve: a model is ready and every worker pool can run work ("ok"), 1 when
 * it answers but cannot ("degraded": e.g. every post-processing worker stuck), 1 when it does not answer.
 */
import { ResponseError } from 'vscode-jsonrpc';
import { ErrorCodes, type HealthResult } from '../../protocol';
import { CellBridgeClient } from '../client/client';
import { DEFAULT_PORT } from '../config';
import { numFlag, parseCommand, readCa } from './args';
import { HEALTH } from './specs';

export async function health(argv: string[]): Promise<number> {
  const parsed = parseCommand(HEALTH, argv);
  if (parsed.help) return 0;
  const values = parsed.values as { server?: string; token?: string; ca?: string; 'timeout-s'?: string };
  const url = values.server ?? `ws://127.0.0.1:${process.env.CELLBRIDGE_PORT ?? DEFAULT_PORT}/`;
  const timeoutMs = (numFlag(values['timeout-s'], 'timeout-s', 0.1, 3600) ?? 5) * 1000;
  const timer = setTimeout(() => { process.stderr.write(`cellbridge health: no answer from ${url} within ${timeoutMs / 1000} s\n`); process.exit(1); }, timeoutMs);
  try {
    const client = await CellBridgeClient.connect(url, { token: values.token ?? process.env.CELLBRIDGE_TOKEN, clientName: 'cellbridge-health', ca: readCa(values.ca) });
    const r = client.initializeResult!;
    const ready = r.models.filter((m) => m.status === 'ready').length;
    let h: HealthResult | null = null;
    try {
      h = await client.sendRequest('server/health') as HealthResult;
    } catch (err) {
      // A daemon before protocol 1.1 has no server/health: its initialize is all there is to check.
      if (!(err instanceof ResponseError && err.code === ErrorCodes.MethodNotFound)) throw err;
    }
    const problems = h ? h.problems : ready > 0 ? [] : ['no model is ready'];
    const ok = problems.length === 0;
    process.stdout.write(JSON.stringify({
      ok, status: ok ? 'ok' : 'degraded', problems, server: r.serverInfo, instance: r.serverInfo.instance ?? null, host: r.serverInfo.host ?? null, provider: r.executionProvider.name, modelsReady: ready, models: r.models.length,
      // which ONNX file runs each ready model (protocol 2.2; e.g. the int8 copy on the CPU)
      modelFiles: Object.fromEntries(r.models.filter((m) => m.status === 'ready' && m.file).map((m) => [m.name, m.file])),
      ...(h ? { pools: h.pools.map((p) => ({ name: p.name, size: p.size, busy: p.busy, queued: p.queued, ok: p.ok })) } : {}),
    }) + '\n');
    if (!ok) process.stderr.write(`cellbridge health: degraded: ${problems.join('; ')}\n`);
    await client.close();
    return ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`cellbridge health: ${(err as Error).message}\n`);
    return 1;
  } finally {
    clearTimeout(timer);
  }
}
