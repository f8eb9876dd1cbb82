/**
 * JSON-RPC error codes. -32700..-32600 are JSON-RPC 2.0's own; -32000..-32099 are reserved by the
 * specification for implementation-defined server errors, which is where ours live.
 * Every error also carries a human-readable `message` meant to be shown to the user as is.
 */
export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,

  /** A request other than `initialize` arrived before `initialize` succeeded. */
  NotInitialized: -32002,
  /** Protocol MAJOR version differs. */
  VersionMismatch: -32003,
  /** Token missing or wrong; the connection is closed after this answer. */
  Unauthorized: -32004,
  /** `initialize` sent twice. */
  AlreadyInitialized: -32005,

  UnknownModel: -32010,
  /** ROI geometry invalid: not a polygon, self-intersecting, NaN coordinates, outside the image. */
  InvalidRoi: -32011,
  /** ROI has zero area, or lies wholly outside the image. */
  EmptyRoi: -32012,
  /** The image has no pixel size and the model needs one. */
  MissingPixelSize: -32013,
  UnknownJob: -32014,
  /** A binary tile frame was malformed, of the wrong size, or not asked for. */
  BadTileFrame: -32015,
  /**
   * A configured limit was exceeded. The message names the limit; `data` is
   * `{limit: "maxJobsPerClient" | "maxRoisPerJob" | "maxRoiVertices" | "maxRoiAreaPixels" | "maxTilesPerJob" | "planTimeoutMs", value: number}`.
   */
  LimitExceeded: -32016,
  /** The model failed to load or to run. */
  ModelFailed: -32020,
  /** The job was cancelled (used in job/completed). */
  Cancelled: -32021,
  /** The server is shutting down. */
  ShuttingDown: -32022,
  /** A tile did not arrive within the per-tile timeout. */
  Timeout: -32023,
  /** The image file is not readable (CLI `segment`). */
  UnsupportedImage: -32030,
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export function errorName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCodes)) if (value === code) return name;
  return 'UnknownError';
}
