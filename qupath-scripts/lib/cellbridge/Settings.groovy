package cellbridge

import groovy.transform.CompileStatic

/**
 * Where the daemon is and how to run, resolved from (first wins):
 * script arguments ({@code -a key=value} on QuPath's command line), Java system properties
 * ({@code -Dcellbridge.key=value}), environment variables ({@code CELLBRIDGE_KEY}), the file
 * {@code cellbridge.properties} next to the scripts, then the defaults below.
 */
@CompileStatic
class Settings {

    static final String DEFAULT_SERVER = 'ws://127.0.0.1:8765/'
    static final String PROPERTIES_FILE = 'cellbridge.properties'
    static final List<String> KEYS = ['server', 'token', 'model', 'roi', 'objectType', 'pixelSize',
                                      'maxTilesInFlight', 'connectTimeoutSeconds', 'idleTimeoutSeconds',
                                      'minArea', 'simplify', 'save',
                                      'install', 'autostart', 'startTimeoutSeconds', 'node', 'daemonArgs',
                                      'daemonLog', 'caCertificate', 'parallel', 'tta', 'keepFaint', ].asImmutable()
    static final List<String> ROI_MODES = ['selected', 'all', 'image'].asImmutable()

    /** WebSocket URL of the daemon, e.g. ws://127.0.0.1:8765/ */
    String server = DEFAULT_SERVER
    /** Daemon token (when it was started with one); null when none. */
    String token
    /** Model name; null: the daemon's default model. */
    String model
    /** selected | all | image; null: the script's own default. */
    String roi
    /** cell | detection */
    String objectType = 'cell'
    /** µm/px to assume when the image has no pixel size; null: ask or fail. */
    Double pixelSize
    int maxTilesInFlight = 4
    int connectTimeoutSeconds = 5
    /** A running job fails when the daemon sends nothing for this long. */
    int idleTimeoutSeconds = 600
    /** Drop cells smaller than this (µm², px² without pixel size); 0 keeps all. */
    double minArea = 0
    /** Outline simplification tolerance, full-resolution px; 0 keeps pixel-edge outlines. */
    double simplify = 0
    /** Test-time augmentation: views of each tile the model averages (1, 2, 4, 8); 0: the model's own default. */
    int tta = 0
    /** Keep the faint cells the model's faint-cell filter leaves out (postprocess.meanCellprobThreshold null; protocol 2.3). */
    boolean keepFaint = false
    /** Save the image after detection in batch mode (QuPath's command line without -s). */
    boolean save = true
    /** Cell Bridge install folder (holding dist/bridge/cli.js), to start the daemon from; null: look in the default places. */
    File install
    /** Start the daemon when none answers on a loopback address. */
    boolean autostart = true
    /** How long to wait for a daemon the scripts started (model loading, device checks). */
    int startTimeoutSeconds = 120
    /** Node.js executable; null: found on the PATH or in the usual install places. */
    String node
    /** Extra arguments for `cellbridge serve` when the scripts start it, separated by spaces (e.g. --device cpu). */
    String daemonArgs
    /** Log file of a daemon the scripts start; null: ~/.cellbridge/daemon-PORT.log. */
    File daemonLog
    /** The scripts folder these settings were read from (cellbridge.properties), or null. */
    File home
    /** PEM file of a private CA to trust for wss:// (besides Java's trust store); null: Java's trust store only. */
    String caCertificate
    /** Run for project: images in flight at once, each on its own connection; 1: one after another. */
    int parallel = 1

    /**
     * @param args script arguments: "key=value" strings (QuPath's {@code args}); others ignored
     * @param scriptsDir folder holding cellbridge.properties (may be null)
     * @param env environment (System.getenv())
     * @param sys system properties (System.properties)
     */
    static Settings resolve(Object args, File scriptsDir, Map<String, String> env, Properties sys) {
        Map<String, String> values = [:]
        File file = scriptsDir == null ? null : new File(scriptsDir, PROPERTIES_FILE)
        if (file?.isFile()) {
            Properties props = new Properties()
            file.withReader('UTF-8') { Reader r -> props.load(r) }
            KEYS.each { String k -> putIfText(values, k, props.getProperty(k)) }
        }
        KEYS.each { String k -> putIfText(values, k, env?.get('CELLBRIDGE_' + upperSnake(k))) }
        KEYS.each { String k -> putIfText(values, k, sys?.getProperty('cellbridge.' + k)) }
        parseArgs(args).each { String k, String v -> putIfText(values, k, v) }
        Settings s = fromMap(values)
        s.home = scriptsDir
        return s
    }

    /** "key=value" arguments to a map; accepts "--key=value" too. Unknown keys are an error. */
    static Map<String, String> parseArgs(Object args) {
        Map<String, String> out = [:]
        if (args == null) {
            return out
        }
        List<Object> list = args instanceof Object[] ? (args as Object[]).toList() : (args as List<Object>)
        list.each { Object a ->
            String s = String.valueOf(a).trim()
            s = s.startsWith('--') ? s.substring(2) : s
            int eq = s.indexOf('=')
            if (eq <= 0) {
                throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                    "Script argument '${a}' is not of the form key=value (e.g. -a model=cellbridge-he-v1). " +
                    "Known keys: ${KEYS.join(', ')}.")
            }
            String key = s.substring(0, eq).trim()
            if (!KEYS.contains(key)) {
                throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                    "Unknown script argument '${key}'. Known keys: ${KEYS.join(', ')}.")
            }
            out[key] = s.substring(eq + 1).trim()
        }
        return out
    }

    static Settings fromMap(Map<String, String> values) {
        Settings s = new Settings()
        if (values.server) {
            s.server = normalizeServer(values.server)
        }
        s.token = values.token ?: null
        s.model = values.model ?: null
        if (values.roi) {
            String mode = values.roi.toLowerCase(Locale.ROOT)
            if (!ROI_MODES.contains(mode)) {
                throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                    "roi=${values.roi} is not one of ${ROI_MODES.join(', ')}.")
            }
            s.roi = mode
        }
        if (values.objectType) {
            String type = values.objectType.toLowerCase(Locale.ROOT)
            if (!(type in ['cell', 'detection'])) {
                throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                    "objectType=${values.objectType} is not 'cell' or 'detection'.")
            }
            s.objectType = type
        }
        s.pixelSize = values.pixelSize ? positive('pixelSize', values.pixelSize) : null
        s.maxTilesInFlight = values.maxTilesInFlight ? (int) positive('maxTilesInFlight', values.maxTilesInFlight) : 4
        s.connectTimeoutSeconds = values.connectTimeoutSeconds ?
            (int) positive('connectTimeoutSeconds', values.connectTimeoutSeconds) : 5
        s.idleTimeoutSeconds = values.idleTimeoutSeconds ?
            (int) positive('idleTimeoutSeconds', values.idleTimeoutSeconds) : 600
        s.minArea = values.minArea ? nonNegative('minArea', values.minArea) : 0d
        s.simplify = values.simplify ? nonNegative('simplify', values.simplify) : 0d
        if (values.tta) {
            String t = values.tta.trim()
            if (!(t in ['1', '2', '4', '8'])) {
                throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                    "tta=${values.tta} is not 1, 2, 4 or 8 (views of each tile the model averages).")
            }
            s.tta = Integer.parseInt(t)
        }
        s.save = flag('save', values.save, true)
        s.keepFaint = flag('keepFaint', values.keepFaint, false)
        s.install = values.install ? new File(expandHome(values.install)) : null
        s.autostart = flag('autostart', values.autostart, true)
        s.startTimeoutSeconds = values.startTimeoutSeconds ?
            (int) positive('startTimeoutSeconds', values.startTimeoutSeconds) : 120
        s.node = values.node ? expandHome(values.node) : null
        s.daemonArgs = values.daemonArgs ?: null
        s.daemonLog = values.daemonLog ? new File(expandHome(values.daemonLog)) : null
        s.caCertificate = values.caCertificate ? expandHome(values.caCertificate) : null
        s.parallel = values.parallel ? (int) positive('parallel', values.parallel) : 1
        if (s.parallel > 64) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING, "parallel=${values.parallel}: at most 64 images at once.")
        }
        return s
    }

    /** "~/x" → the user's home + "/x" (properties files are written by hand). */
    static String expandHome(String path) {
        return path == '~' || path.startsWith('~/') || path.startsWith('~\\') ?
            System.getProperty('user.home') + path.substring(1) : path
    }

    /** "host", "host:port", "ws://host:port/", "http://host:port" all become a ws:// URL (wss://, https://: wss://). */
    static String normalizeServer(String text) {
        String t = text.trim()
        if (t.startsWith('http://')) {
            t = 'ws://' + t.substring(7)
        } else if (t.startsWith('https://')) {
            t = 'wss://' + t.substring(8)
        } else if (!t.startsWith('ws://') && !t.startsWith('wss://')) {
            t = 'ws://' + t
        }
        URI uri
        try {
            uri = new URI(t)
        } catch (URISyntaxException e) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                "server=${text} is not a valid address; use host:port, e.g. 127.0.0.1:8765.", e)
        }
        if (!uri.host) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                "server=${text} has no host name; use host:port, e.g. 127.0.0.1:8765.")
        }
        int port = uri.port > 0 ? uri.port : 8765
        String path = uri.rawPath ?: '/'
        return "${uri.scheme}://${uri.host}:${port}${path}"
    }

    private static void putIfText(Map<String, String> values, String key, String value) {
        if (value != null && !value.trim().isEmpty()) {
            values[key] = value.trim()
        }
    }

    private static String upperSnake(String key) {
        return key.replaceAll(/([A-Z])/, '_$1').toUpperCase(Locale.ROOT)
    }

    /** true/yes/1/on or false/no/0/off (any case); empty or absent: the default; anything else is an error. */
    private static boolean flag(String key, String value, boolean byDefault) {
        String v = value?.trim()?.toLowerCase(Locale.ROOT)
        if (!v) {
            return byDefault
        }
        if (v in ['true', 'yes', '1', 'on']) {
            return true
        }
        if (v in ['false', 'no', '0', 'off']) {
            return false
        }
        throw new CellBridgeException(ErrorCodes.BAD_SETTING, "${key}=${value} is not true or false.")
    }

    private static double positive(String key, String value) {
        double v = number(key, value)
        if (!(v > 0)) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING, "${key}=${value} must be a number above 0.")
        }
        return v
    }

    private static double nonNegative(String key, String value) {
        double v = number(key, value)
        if (v < 0) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING, "${key}=${value} must be 0 or more.")
        }
        return v
    }

    private static double number(String key, String value) {
        try {
            double v = Double.parseDouble(value)
            if (Double.isNaN(v) || Double.isInfinite(v)) {
                throw new NumberFormatException(value)
            }
            return v
        } catch (NumberFormatException e) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING, "${key}=${value} is not a number.", e)
        }
    }

}
