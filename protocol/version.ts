/**
 * Protocol version: MAJOR.MINOR. A client and server talk when MAJOR matches; MINOR adds optional fields only.
 * 2.0 (includes 1.1's tileCount and large plans): clients send tiles at a pyramid level they read without resizing (the plan's readDownsample,
 * readWidth x readHeight); the daemon alone resamples to the model's resolution. A 1.x client is
 * refused with VersionMismatch (it would resize the pixels itself).
 * 2.1: options.testTimeAugmentation and the plan's testTimeAugmentation (views of each tile averaged).
 * 2.2: ModelInfo.file (the ONNX file that runs the model: an int8 copy on the CPU).
 * 2.3: options.postprocess.meanCellprobThreshold (faint-cell filter; null turns the card's off).
 */
export const PROTOCOL_VERSION = '2.3';
export const PROTOCOL_MAJOR = 2;

export function isCompatibleProtocol(version: unknown): boolean {
  if (typeof version !== 'string') return false;
  const m = /^(\d+)\.(\d+)$/.exec(version);
  return m !== null && Number(m[1]) === PROTOCOL_MAJOR;
}
