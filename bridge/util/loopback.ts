/** True for a loopback host or peer address (127.0.0.0/8, ::1, localhost; IPv4-mapped IPv6 included). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^::ffff:/, '');
  return h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * The client address a reverse proxy says it forwarded for (X-Forwarded-For, else Forwarded, else X-Real-IP),
 * trimmed to 200 characters; undefined for a direct connection. Only for logs and to know that a
 * connection came through a proxy: the peer chooses these headers, so they never grant anything.
 */
export function forwardedFor(headers: Record<string, string | string[] | undefined>): string | undefined {
  for (const name of ['x-forwarded-for', 'forwarded', 'x-real-ip']) {
    const v = headers[name];
    if (v === undefined) continue;
    const text = (Array.isArray(v) ? v.join(', ') : v).trim();
    if (text) return text.slice(0, 200);
  }
  return undefined;
}
