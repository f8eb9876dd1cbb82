/** True for a loopback host or peer address (127.0.0.0/8, ::1, localhost; IPv4-mapped IPv6 included). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^::ffff:/, '');
  return h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
