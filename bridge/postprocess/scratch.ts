/**
 * Per-thread scratch buffers for the per-tile work arrays of post-processing: each worker handles one
 * tile at a time, so a buffer named by its call site is reused from tile to tile instead of being
 * allocated (and collected) every time. A buffer must not escape the call that took it (never
 * returned, never kept), and a name is used by one call site only.
 */
const int32 = new Map<string, Int32Array>();
const uint8 = new Map<string, Uint8Array>();

/** n Int32 values, zeroed when `zero` (else contents are left over from an earlier tile). */
export function scratchInt32(name: string, n: number, zero = true): Int32Array {
  let b = int32.get(name);
  if (!b || b.length < n) { b = new Int32Array(Math.max(n, 1)); int32.set(name, b); return b.subarray(0, n); }
  const v = b.subarray(0, n);
  if (zero) v.fill(0);
  return v;
}

export function scratchUint8(name: string, n: number, zero = true): Uint8Array {
  let b = uint8.get(name);
  if (!b || b.length < n) { b = new Uint8Array(Math.max(n, 1)); uint8.set(name, b); return b.subarray(0, n); }
  const v = b.subarray(0, n);
  if (zero) v.fill(0);
  return v;
}
