/**
 * Splits a tile's detections into job/detections messages that stay small enough for every client
 * library: at most `maxCount` features and `maxBytes` of UTF-8 JSON per batch (Python's websockets
 * refuses messages over 1 MiB by default; a 500-feature batch of large cells reached 1.13 MB).
 */
export function batchDetections<T>(features: T[], maxCount: number, maxBytes: number): T[][] {
  const batches: T[][] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const f of features) {
    const size = Buffer.byteLength(JSON.stringify(f)) + 1; // + the comma between features
    // A feature larger than maxBytes on its own still goes out, alone.
    if (batch.length > 0 && (batch.length >= maxCount || bytes + size > maxBytes)) { batches.push(batch); batch = []; bytes = 0; }
    batch.push(f);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
