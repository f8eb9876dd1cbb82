package cellbridge

import groovy.transform.CompileStatic

/** The user-facing texts, in one place so that they stay consistent and testable. */
@CompileStatic
final class Messages {

    /** How to start the daemon; shown whenever it cannot be reached. */
    static final String START_HINT =
        'Start it with `npx cellbridge serve` in the Cell Bridge install folder ' +
        '(or with Docker, after building the image as docs/docker.md says: ' +
        '`docker run -d --init -p 127.0.0.1:8765:8765 -e CELLBRIDGE_TOKEN=SECRET cellbridge:cpu`, ' +
        "and token=SECRET in ${Settings.PROPERTIES_FILE}), then run this script again. If the daemon runs on " +
        "another computer or port, set server=HOST:PORT in ${Settings.PROPERTIES_FILE} next to the Cell Bridge scripts. " +
        'To let the scripts start it themselves, set install=FOLDER (the Cell Bridge install folder) in ' +
        "${Settings.PROPERTIES_FILE}."

    private Messages() { }

    static String daemonNotRunning(String url, String detail) {
        return "Cannot reach the Cell Bridge daemon at ${url} (${detail}). ${START_HINT}"
    }

    static String startingDaemon(File install) {
        return "Starting the Cell Bridge daemon (${install.path}); the first start takes a few seconds…"
    }

    static String daemonStartFailed(File install, File logFile, String why, String logTail) {
        return "Cell Bridge could not start its daemon from ${install.path}: ${why}. " +
            (logTail ? "Last lines of ${logFile.path}:\n${logTail}\n" : "See ${logFile.path}. ") +
            "To start it by hand: `npx cellbridge serve` in ${install.path}."
    }

    static String daemonBusy(String url) {
        return "The Cell Bridge daemon at ${url} refused the connection for now (HTTP 503): it is stopping, or too many " +
            'clients are connected. Try again in a minute; if it keeps happening, restart the daemon.'
    }

    static String notADaemon(String url, String detail) {
        return "Something answers at ${url}, but it is not a Cell Bridge daemon (${detail}). " +
            "Check server=HOST:PORT in ${Settings.PROPERTIES_FILE}. ${START_HINT}"
    }

    static String connectionLost(String url, String detail) {
        return "The connection to the Cell Bridge daemon at ${url} was lost (${detail}): the daemon was stopped " +
            "or crashed. Nothing was added to the image. ${START_HINT}"
    }

    static String versionMismatch(String clientVersion, String serverVersion, String serverMessage) {
        String base = "These QuPath scripts speak Cell Bridge protocol ${clientVersion}, the daemon speaks " +
            "${serverVersion ?: 'another version'}. Install the qupath-scripts folder from the same Cell Bridge " +
            'release as the daemon (or update the daemon).'
        return serverMessage ? "${base} Daemon: ${serverMessage}" : base
    }

    static String unauthorized(String serverMessage) {
        return 'The Cell Bridge daemon refused the token' + (serverMessage ? " (${serverMessage})" : '') +
            ". Set token=... in ${Settings.PROPERTIES_FILE} (or -a token=... / the CELLBRIDGE_TOKEN " +
            'environment variable) to the token the daemon was started with.'
    }

    static String unknownModel(String model, Collection<String> available) {
        String list = available ? available.join(', ') : 'none'
        return "The Cell Bridge daemon has no model named '${model}'. Available models: ${list}. " +
            "Set model=NAME in ${Settings.PROPERTIES_FILE} or pass -a model=NAME."
    }

    static String modelFailed(String model, String error) {
        return "The model '${model}' could not be loaded by the daemon: ${error ?: 'no reason given'}. " +
            'Check the model files in the daemon\'s models folder, or choose another model.'
    }

    static String noModels() {
        return 'The Cell Bridge daemon has no usable model. Put a model folder into its models directory ' +
            '(see `npx cellbridge serve --help`) and restart it.'
    }

    static String missingPixelSize(String imageName) {
        return "The image '${imageName}' has no pixel size (µm per pixel), and the model needs one. " +
            'Set it in QuPath (Image tab > Pixel width/height) or pass -a pixelSize=0.5 ' +
            "(or pixelSize=... in ${Settings.PROPERTIES_FILE}) to state the size to assume."
    }

    static String notRgb(String imageName) {
        return "'${imageName}' is not an RGB image. Cell Bridge models read brightfield RGB (H&E) images; " +
            'check the image type, or convert the image to RGB.'
    }

    static String emptyRoi(String what) {
        return "${what} has no area inside the image: draw an area annotation (rectangle, ellipse, polygon, brush) " +
            'over tissue and run again.'
    }

    static String noAnnotations() {
        return 'This image has no annotations. Draw an annotation around the tissue to analyse and run again ' +
            '(or use "Run for project" with roi=image to analyse whole images).'
    }

    static String noAnswer(String url, int seconds) {
        return "The Cell Bridge daemon at ${url} did not answer within ${seconds} s. It may be overloaded; " +
            'try again, or restart it.'
    }

    static String pixelReadFailed(int tileId, String detail) {
        return "Reading the pixels of tile ${tileId} from the image failed (${detail}). Nothing was added. " +
            'Check that the image file is still reachable.'
    }

    static String cancelled() {
        return 'Cancelled: nothing was added or changed.'
    }

    static String jobFailed(String detail) {
        return "Cell detection failed: ${detail} Nothing was added."
    }

    static String rejectedTooOften(int tileId, String detail) {
        return "The daemon refused the pixels of tile ${tileId} twice (${detail}). This is a bug in the scripts " +
            'or the daemon; please report it. Nothing was added.'
    }

    /** The text for a JSON-RPC error object from the daemon (its message is written for users). */
    static String forServerError(Map error, String context) {
        int code = (error?.code ?: 0) as int
        String msg = error?.message as String
        switch (code) {
            case ErrorCodes.TIMEOUT:
                return "${msg} (the image could not be read fast enough; try again)"
            case ErrorCodes.SHUTTING_DOWN:
                return "${msg ?: 'The daemon is shutting down.'} ${START_HINT}"
            case ErrorCodes.LIMIT_EXCEEDED:
                return "${msg} Analyse smaller annotations (draw them around the tissue of interest), or split the region."
            default:
                return msg ?: "${context} failed with error ${code} (${ErrorCodes.name(code)})."
        }
    }

    /** "Tiles 3/40 · 512 cells · about 1 min 5 s left" */
    static String progress(Map p) {
        StringBuilder sb = new StringBuilder()
        sb << "Tiles ${p.tilesDone ?: 0}/${p.tilesTotal ?: '?'}"
        sb << " · ${String.format(Locale.ROOT, '%,d', (p.cells ?: 0) as long)} cells"
        if (p.etaMs != null) {
            sb << " · about ${duration(p.etaMs as long)} left"
        }
        return sb.toString()
    }

    static String duration(long ms) {
        long s = Math.round(ms / 1000d)
        if (s < 60) {
            return "${s} s"
        }
        long m = s.intdiv(60) as long
        if (m < 60) {
            return "${m} min ${s % 60} s"
        }
        return "${m.intdiv(60)} h ${m % 60} min"
    }

}
