/**
 * onnxruntime-node, with its telemetry off. onnxruntime 1.2x+ on Linux otherwise writes a device id
 * and queued usage events under ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ and a
 * /tmp/mat-debug-PID.log for upload to Microsoft: a daemon that sees patient slides must not. The
 * native library reads ORT_DISABLE_TELEMETRY when it loads, so every module of the daemon imports
 * onnxruntime through this file, which sets it first (worker threads share the process environment).
 */
process.env.ORT_DISABLE_TELEMETRY = '1';
// eslint-disable-next-line @typescript-eslint/no-require-imports
import ort = require('onnxruntime-node');
export = ort;
