/**
 * The option table of every `cellbridge` sub-command: the one source for parsing (parseArgs
 * options), `--help` and the CLI reference in docs/cli-reference.md (npm run docs:cli).
 * Plain data, no I/O: the reference writer imports it without loading onnxruntime.
 */
import { DEFAULT_LIMITS, DEFAULT_PORT, type ServerLimitsConfig } from '../config';

export interface OptionSpec {
  /** Long name, without the leading dashes. */
  name: string;
  short?: string;
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** Placeholder for the value in usage lines (N, DIR, FILE, a|b|c). */
  value?: string;
  /** The default, as the user reads it. */
  default?: string;
  /** Environment variable read when the flag is absent. */
  env?: string;
  required?: boolean;
  help: string;
  /** serve's limit flags: [config key, min, max, multiplier from the flag's unit to the config's]. */
  limit?: [keyof ServerLimitsConfig, number, number, number];
}

export interface CommandSpec {
  name: string;
  /** Positional arguments as shown in the usage line ('' when none). */
  args: string;
  /** How many positional arguments it takes (with `variadic`, at least this many). */
  positionals: number;
  variadic?: boolean;
  summary: string;
  options: OptionSpec[];
  /** Paragraphs after the option list. */
  notes?: string[];
  examples?: string[];
}

/** Same list as DEVICE_CHOICES in inference/providers.ts (a test checks), without loading onnxruntime. */
export const DEVICES = ['auto', 'cpu', 'webgpu', 'cuda'] as const;
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

const HELP: OptionSpec = { name: 'help', short: 'h', type: 'boolean', help: 'show this help and exit' };

const limit = (name: string, key: keyof ServerLimitsConfig, min: number, max: number, unit: number, help: string): OptionSpec => ({
  name, type: 'string', value: 'N', default: String(DEFAULT_LIMITS[key] / unit), help, limit: [key, min, max, unit],
});

export const SERVE: CommandSpec = {
  name: 'serve',
  args: '',
  positionals: 0,
  summary: 'Run the daemon: QuPath scripts and other clients connect to it over JSON-RPC on a WebSocket. Runs until Ctrl+C (SIGINT) or SIGTERM.',
  options: [
    { name: 'host', type: 'string', value: 'HOST', default: '127.0.0.1', env: 'CELLBRIDGE_HOST', help: 'interface to listen on; any address other than loopback requires a token' },
    { name: 'port', type: 'string', value: 'N', default: String(DEFAULT_PORT), env: 'CELLBRIDGE_PORT', help: 'port to listen on; 0 picks a free port (printed on stdout)' },
    { name: 'models', type: 'string', value: 'DIR', default: 'models/', env: 'CELLBRIDGE_MODELS', help: 'folder of models, one sub-folder per model with its card.json' },
    { name: 'model', type: 'string', value: 'NAME', default: 'models/default.json', env: 'CELLBRIDGE_MODEL', help: 'default model for jobs that name none' },
    { name: 'device', type: 'string', value: DEVICES.join('|'), default: 'auto', env: 'CELLBRIDGE_DEVICE', help: 'where the model runs: auto tries CUDA, then WebGPU, then the CPU, each with a real test inference; naming one fails clearly when it is unavailable' },
    { name: 'token', type: 'string', value: 'SECRET', env: 'CELLBRIDGE_TOKEN', help: 'shared secret every client must present (use a long random one: openssl rand -hex 32)' },
    { name: 'allow-origin', type: 'string', multiple: true, value: 'ORIGIN', env: 'CELLBRIDGE_ALLOW_ORIGIN', help: 'a browser origin allowed to connect; all others are refused (the variable takes a comma-separated list)' },
    { name: 'log-level', type: 'string', value: LOG_LEVELS.join('|'), default: 'info', env: 'CELLBRIDGE_LOG_LEVEL', help: 'JSON log lines on stderr' },
    { name: 'inference-workers', type: 'string', value: 'N', default: '1 (CPU), 2 (WebGPU, CUDA)', help: 'onnxruntime sessions running at once (WebGPU with --inference-isolation thread: at most 1)' },
    { name: 'inference-isolation', type: 'string', value: 'thread|process', default: 'thread (CPU), process (GPU)', env: 'CELLBRIDGE_INFERENCE_ISOLATION', help: 'run each onnxruntime session in a worker thread, or in a child process so that a GPU driver that aborts ends that worker (replaced, its tile retried once) instead of the daemon' },
    { name: 'postprocess-workers', type: 'string', value: 'N', default: 'cores − 1', help: 'worker threads for post-processing' },
    { name: 'threads', type: 'string', value: 'N', default: 'cores (CPU), cores/4 (GPU)', help: 'onnxruntime threads per session' },
    { name: 'full-precision', type: 'boolean', env: 'CELLBRIDGE_FULL_PRECISION', help: 'on the CPU, run each model\'s full-precision file, not the int8 copy its card names (cpuFile): ~1.4x slower, for comparisons' },
    limit('max-message-mb', 'maxMessageBytes', 1, 99, 1024 * 1024, 'largest WebSocket message a client may send, MiB (larger: connection closed, code 1009)'),
    limit('max-clients', 'maxClients', 1, 10_000, 1, 'initialized connections (more: upgrade refused with HTTP 503, or error -32016 to initialize)'),
    limit('max-preauth-connections', 'maxPreAuthConnections', 1, 1000, 1, 'connections that have not initialized yet, a separate quota (more: the oldest is closed, code 1008)'),
    limit('max-preauth-kb', 'maxPreAuthMessageBytes', 1, 1024, 1024, 'largest message before initialize succeeded, KiB (larger: connection closed, code 1009)'),
    limit('max-jobs-per-client', 'maxJobsPerClient', 1, 1000, 1, 'jobs of one connection running at once (more: error -32016)'),
    limit('max-tiles-in-flight', 'maxTilesInFlight', 1, 256, 1, 'upper bound for a job\'s options.maxTilesInFlight (a larger request is lowered to it; the plan says the value used)'),
    limit('max-tiles-per-client', 'maxTilesInFlightPerClient', 1, 4096, 1, 'tiles asked for and not yet through post-processing, over all jobs of one connection'),
    limit('max-tiles-in-flight-total', 'maxTilesInFlightTotal', 1, 100_000, 1, 'tiles asked for and not yet through post-processing, over all connections'),
    limit('max-tiles-per-job', 'maxTilesPerJob', 1, 10_000_000, 1, 'planned tiles of one job (more: error -32016)'),
    limit('max-planned-tiles-per-client', 'maxPlannedTilesPerClient', 1, 100_000_000, 1, 'planned tiles of the running jobs of one connection together (more: error -32016)'),
    limit('max-plan-tiles-inline', 'maxPlanTilesInline', 0, 1_000_000, 1, 'tiles listed in the job/start answer; larger plans send each tile\'s rectangle with its job/requestTiles only'),
    limit('max-rois-per-job', 'maxRoisPerJob', 1, 1_000_000, 1, 'ROIs in one job/start (more: error -32016)'),
    limit('max-roi-vertices', 'maxRoiVertices', 3, 10_000_000, 1, 'vertices over all ROIs of one job (more: error -32016)'),
    limit('max-roi-megapixels', 'maxRoiAreaPixels', 1, 1_000_000, 1_000_000, 'total ROI area of one job, full-resolution megapixels (more: error -32016)'),
    limit('tile-timeout-s', 'tileTimeoutMs', 1, 86_400, 1000, 'a requested tile must arrive within this time, or the job fails (-32023)'),
    limit('plan-timeout-s', 'planTimeoutMs', 1, 3600, 1000, 'checking the ROIs and planning the tiles of one job (more: error -32016)'),
    limit('plan-memory-mb', 'planMemoryMb', 32, 65_536, 1, 'heap of the planning worker, MB (more: error -32016, the worker is replaced)'),
    limit('job-timeout-s', 'jobTimeoutMs', 1, 30 * 86_400, 1000, 'a job running longer than this fails (-32023), however steadily its tiles arrive'),
    limit('task-timeout-s', 'taskTimeoutMs', 1, 86_400, 1000, 'one inference or post-processing task; longer: the worker is replaced and the job fails (-32023)'),
    limit('init-timeout-s', 'initializeTimeoutMs', 1, 3600, 1000, 'time from connecting to initialize (more: connection closed, code 1008)'),
    limit('idle-timeout-s', 'idleTimeoutMs', 0, 7 * 86_400, 1000, 'a connection with no running job that sends nothing for this long is closed; 0 = never'),
    limit('ping-interval-s', 'pingIntervalMs', 0, 3600, 1000, 'WebSocket ping period; a peer that misses a pong is dropped; 0 = no pings'),
    limit('max-send-buffer-mb', 'maxSendBufferBytes', 1, 4096, 1024 * 1024, 'MiB queued for a client that does not read (more: connection closed, code 1008)'),
    { name: 'shutdown-grace-s', type: 'string', value: 'N', default: '10', env: 'CELLBRIDGE_SHUTDOWN_GRACE_S', help: 'on SIGTERM/SIGINT, time running jobs get to finish before they are cancelled' },
    { name: 'instance', type: 'string', value: 'NAME', default: 'HOST:PORT/PID', env: 'CELLBRIDGE_INSTANCE', help: 'the name initialize (serverInfo.instance) and cellbridge health report, to tell daemons behind a load balancer apart' },
    HELP,
  ],
  notes: [
    'On start it prints one JSON line on stdout: {"event":"listening","url":"ws://127.0.0.1:8765/","provider":"cpu",...}, and one line for people on stderr.',
  ],
  examples: [
    'cellbridge serve',
    'cellbridge serve --device cpu --port 8766',
    'CELLBRIDGE_TOKEN=$(openssl rand -hex 32) cellbridge serve --host 0.0.0.0',
  ],
};

export const SEGMENT: CommandSpec = {
  name: 'segment',
  args: 'IMAGE...',
  positionals: 1,
  variadic: true,
  summary: 'Segment and classify the cells of image files (Aperio .svs, pyramidal TIFF, OME-TIFF, or any image libvips reads) into GeoJSON files QuPath imports. Uses a running daemon (--server) or starts one in-process.',
  options: [
    { name: 'out', short: 'o', type: 'string', value: 'OUT.geojson', required: true, help: 'GeoJSON FeatureCollection to write; it appears only when the job completed. With several jobs (several images, or --job-per-roi): a directory, one IMAGE[.ROI_ID].geojson per job' },
    { name: 'roi', type: 'string', value: 'FILE', default: 'the whole image', help: 'GeoJSON with the regions to segment (FeatureCollection, Feature or bare Polygon/MultiPolygon, full-resolution pixels)' },
    { name: 'server', type: 'string', value: 'URL', default: 'an in-process daemon', help: 'a running daemon, e.g. ws://127.0.0.1:8765/, or wss://HOST:PORT/ through a TLS proxy such as deploy/\'s nginx' },
    { name: 'ca', type: 'string', value: 'CA.pem', env: 'CELLBRIDGE_CA', help: 'certificate of a private CA to trust for wss:// (e.g. the ca.crt of deploy/make-certs.sh)' },
    { name: 'parallel', type: 'string', value: 'N', default: '1', help: 'jobs in flight at once, each on its own connection (behind a load balancer: spread over the daemons); a job whose daemon dies runs once more on another connection' },
    { name: 'job-per-roi', type: 'boolean', help: 'one job per ROI of --roi instead of one job per image' },
    { name: 'token', type: 'string', value: 'SECRET', env: 'CELLBRIDGE_TOKEN', help: 'the daemon\'s token' },
    { name: 'model', type: 'string', value: 'NAME', default: 'the daemon\'s default', help: 'model to use' },
    { name: 'models', type: 'string', value: 'DIR', default: 'models/', help: 'models folder of the in-process daemon' },
    { name: 'device', type: 'string', value: DEVICES.join('|'), default: 'auto', help: 'execution provider of the in-process daemon' },
    { name: 'full-precision', type: 'boolean', help: 'in-process daemon on the CPU: run the model\'s full-precision file, not its int8 cpuFile (slower)' },
    { name: 'inference-isolation', type: 'string', value: 'thread|process', default: 'thread (CPU), process (GPU)', help: 'in-process daemon: onnxruntime sessions in a worker thread or in a child process (see cellbridge serve)' },
    { name: 'mpp', type: 'string', value: 'UM_PER_PX', help: 'pixel size (µm/px) to assume when the image has none' },
    { name: 'object-type', type: 'string', value: 'cell|detection', default: 'cell', help: 'QuPath object type of the results' },
    { name: 'tiles-in-flight', type: 'string', value: 'N', default: '6', help: 'tiles read ahead of the model' },
    { name: 'simplify', type: 'string', value: 'PX', default: '0', help: 'outline simplification tolerance, full-resolution px (0 = exact pixel-edge outlines)' },
    { name: 'tta', type: 'string', value: '1|2|4|8', default: 'the model card\'s, else 1', help: 'test-time augmentation: the model sees each tile in this many mirrored/transposed views and averages them (more accurate, that many times the inference time)' },
    { name: 'keep-faint', type: 'boolean', help: 'keep the faint cells the model\'s faint-cell filter leaves out (card postprocess.meanCellprobThreshold; mostly specks, some pale real nuclei); needs a daemon of protocol 2.3 or later' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'print only the JSON summary line (and errors): no progress, no provider warnings' },
    HELP,
  ],
  notes: [
    'Progress goes to stderr; the last line on stdout is a JSON summary: {"status":"completed","cells":…,"counts":{…},"seconds":…}. Exit status 0 when the job completed, 1 when it failed, 2 for a usage error.',
    'Several jobs: one JSON line per job (with instance, the daemon that ran it, and attempts), then {"batch":{"jobs":…,"completed":…,"failed":…,"retried":…,"byInstance":{…}}}. Exit status 0 when every job completed.',
        'JPEG 2000-compressed slides (some Aperio .svs) are refused with a clear error: libvips cannot decode them. Convert them or segment from QuPath, which reads the pixels itself.',
  ],
  examples: [
    'cellbridge segment slide.svs --out cells.geojson',
    'cellbridge segment slide.svs --roi region.geojson --out cells.geojson --server ws://127.0.0.1:8765/',
    'cellbridge segment a.svs b.svs c.svs --out results/ --parallel 6 --server wss://cellbridge.example.org:8443/ --ca ca.crt',
  ],
};

export const HEALTH: CommandSpec = {
  name: 'health',
  args: '',
  positionals: 0,
  summary: 'Check a daemon: connects and initializes like a client, then asks server/health; exit 0 when it answers "ok" (a ready model, every worker pool able to run work), 1 when it is "degraded" or does not answer. Prints one JSON line, with the instance (and host) of the daemon that answered.',
  options: [
    { name: 'server', type: 'string', value: 'URL', default: `ws://127.0.0.1:${DEFAULT_PORT}/`, env: 'CELLBRIDGE_PORT', help: 'the daemon (without --server, the port comes from CELLBRIDGE_PORT when set)' },
    { name: 'token', type: 'string', value: 'SECRET', env: 'CELLBRIDGE_TOKEN', help: 'the daemon\'s token' },
    { name: 'ca', type: 'string', value: 'CA.pem', env: 'CELLBRIDGE_CA', help: 'certificate of a private CA to trust for wss://' },
    { name: 'timeout-s', type: 'string', value: 'S', default: '5', help: 'give up after this many seconds' },
    HELP,
  ],
  examples: ['cellbridge health', 'cellbridge health --server ws://gpu-box:8765/ --token "$CELLBRIDGE_TOKEN"'],
};

export const OVERLAY: CommandSpec = {
  name: 'overlay',
  args: 'IMAGE CELLS.geojson',
  positionals: 2,
  summary: 'Draw detections (the GeoJSON that segment writes) over a region of the image into a PNG (or JPEG), with a colour legend (class, colour, number of cells in the picture).',
  options: [
    { name: 'out', short: 'o', type: 'string', value: 'OUT.png', required: true, help: 'picture to write: PNG, or JPEG when the name ends in .jpg (smaller, for documents)' },
    { name: 'region', type: 'string', value: 'X,Y,W,H', default: 'the whole image', help: 'full-resolution rectangle to draw; the part outside the image is clipped off (negative X or Y: write --region=-50,-50,400,400)' },
    { name: 'scale', type: 'string', value: 'S', default: '2', help: 'output pixels per image pixel, 0.25 to 4 (sizes are rounded)' },
    { name: 'no-legend', type: 'boolean', help: 'leave out the legend' },
    HELP,
  ],
  notes: ['Prints one JSON line: {"out":…,"width":…,"height":…,"region":[x,y,w,h],"cells":…,"counts":{…}}.'],
  examples: ['cellbridge overlay slide.svs cells.geojson --region 800,1200,400,400 --scale 2 --out overlay.png'],
};

export const COMMANDS: CommandSpec[] = [SERVE, SEGMENT, HEALTH, OVERLAY];
