/** Protocol version: MAJOR.MINOR. A client and server talk when MAJOR matches; MINOR adds optional fields only. */
export const PROTOCOL_VERSION = '1.1';
export const PROTOCOL_MAJOR = 1;

export function isCompatibleProtocol(version: unknown): boolean {
  if (typeof version !== 'string') return false;
  const m = /^(\d+)\.(\d+)$/.exec(version);
  return m !== null && Number(m[1]) === PROTOCOL_MAJOR;
}
