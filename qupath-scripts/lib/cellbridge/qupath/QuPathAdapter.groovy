package cellbridge.qupath

import cellbridge.CellBridgeClient
import cellbridge.CellBridgeException
import cellbridge.DetectionWorkflow
import cellbridge.ErrorCodes
import cellbridge.ImageReport
import cellbridge.Json
import cellbridge.Messages
import cellbridge.ParallelImages
import cellbridge.RegionResult
import cellbridge.Results
import cellbridge.Settings
import javafx.application.Platform
import javafx.geometry.Insets
import javafx.scene.Scene
import javafx.scene.control.Alert
import javafx.scene.control.Button
import javafx.scene.control.ButtonType
import javafx.scene.control.Label
import javafx.scene.control.ProgressBar
import javafx.scene.control.TextInputDialog
import javafx.scene.layout.VBox
import javafx.stage.Stage
import qupath.lib.common.ColorTools
import qupath.lib.gui.scripting.QPEx
import qupath.lib.io.GsonTools
import qupath.lib.objects.PathObject
import qupath.lib.objects.classes.PathClass
import qupath.lib.regions.RegionRequest

import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CompletableFuture

/*
 * The only file that touches QuPath. Everything else (protocol, frames, flow control, results,
 * messages) is in the plain-Groovy classes beside it, which the tests run without QuPath.
 *
 * QuPath API used here, beyond standard Java/Groovy/JavaFX: QPEx.getCurrentImageData,
 * QPEx.getProjectEntry (+ getImageName, saveImageData), QPEx.exportObjectsToGeoJson, QPEx.getQuPath
 * (+ installCommand, getImageData), ImageData.getServer/getHierarchy, PathObjectHierarchy.getAnnotationObjects/
 * getSelectionModel().getSelectedObjects/addObjects/fireHierarchyChangedEvent,
 * ImageServer.isRGB/getPath/getWidth/getHeight/getPixelCalibration/getMetadata().getName/readRegion,
 * PixelCalibration.hasPixelSizeMicrons/getAveragedPixelSizeMicrons, RegionRequest.createInstance,
 * GsonTools.parseObjectsFromGeoJSON (the whole-image annotation; cells: QuPathObjects), PathClass.fromString, ColorTools.packRGB,
 * PathObject.isAnnotation/getName/getChildObjects/clearChildObjects/addChildObjects/getMeasurements.
 * The current image is taken once (QPEx.getCurrentImageData in scripts, which QuPath binds to the image
 * being processed, also in "Run for project"; QuPathGUI.getImageData for the menu item); everything
 * else goes through that ImageData, never through "current image" statics from another thread.
 */

/**
 * Entry points of the scripts in the Cell Bridge folder (static methods, called after the bootstrap
 * lines), and the "host" of {@link DetectionWorkflow} (an instance per image: reads pixels, applies results).
 */
class QuPathAdapter {

    static final String WHOLE_IMAGE_NAME = 'Cell Bridge: whole image'

    /**
     * Interactive detection on the selected annotations (offers all annotations when none is selected).
     * Returns nothing, so that QuPath prints no "Result:" line: the outcome is printed and shown already.
     */
    static void detectCells(Script script, File home) {
        boolean gui = QPEx.getQuPath() != null && batchSize(script) <= 1
        detectInImage(scriptArgs(script), home, QPEx.getCurrentImageData(), gui)
    }

    @SuppressWarnings('CatchException') // the boundary of the menu thread: report everything
    static ImageReport detectInImage(List<String> args, File home, Object imageData, boolean gui) {
        Settings settings
        try {
            settings = Settings.resolve(args, home, System.getenv(), System.getProperties())
        } catch (CellBridgeException e) {
            return finish(ImageReport.failed(null, e.code, e.message), gui)
        }
        if (imageData == null) {
            return finish(ImageReport.failed(null, ErrorCodes.NOTHING_TO_DO, 'Open an image first.'), gui)
        }
        def hierarchy = imageData.getHierarchy()
        List<PathObject> all = hierarchy.getAnnotationObjects() as List<PathObject>
        List<PathObject> targets
        String mode = settings.roi ?: 'selected'
        if (mode == 'image') {
            targets = null
        } else if (mode == 'all') {
            targets = all
        } else {
            targets = hierarchy.getSelectionModel().getSelectedObjects()
                .findAll { PathObject o -> o.isAnnotation() } as List<PathObject>
            if (targets.isEmpty()) {
                String question = "No annotation is selected. Detect cells in all ${all.size()} annotation(s) of this image?"
                if (all && gui && !Fx.confirm('Cell Bridge', question)) {
                    return ImageReport.cancelled(null)
                }
                targets = all
            }
        }
        if (targets?.isEmpty()) {
            return finish(ImageReport.failed(null, ErrorCodes.NOTHING_TO_DO, Messages.noAnnotations()), gui)
        }
        try {
            return finish(run(settings, imageData, targets, gui), gui)
        } catch (Exception e) {
            return finish(ImageReport.failed(null, ErrorCodes.INTERNAL_ERROR, "Cell Bridge failed: ${e}"), gui)
        }
    }

    /**
     * One image of a batch ("Run for project", or QuPath's command line with -p): every annotation,
     * or the whole image when it has none. Never throws: a failure is reported and the batch goes on.
     */
    static void runForProject(Script script, File home) {
        runForImage(script, home)
    }

    /** {@link #runForProject}, returning the report (printed as one CELLBRIDGE_REPORT JSON line too). */
    @SuppressWarnings('CatchException') // a failure on one image is reported and the batch goes on
    static ImageReport runForImage(Script script, File home) {
        ImageReport report
        try {
            Settings settings = Settings.resolve(scriptArgs(script), home, System.getenv(), System.getProperties())
            if (settings.parallel > 1) {
                return runProjectInParallel(script, settings)
            }
            def imageData = QPEx.getCurrentImageData()
            if (imageData == null) {
                throw new CellBridgeException(ErrorCodes.NOTHING_TO_DO, 'No image is open.')
            }
            report = run(settings, imageData, batchTargets(settings, imageData), false)
            def entry = QPEx.getProjectEntry()
            if (report.success && settings.save && entry != null) {
                entry.saveImageData(imageData)
            }
        } catch (CellBridgeException e) {
            report = ImageReport.failed(currentImageName(), e.code, e.message)
        } catch (Exception e) {
            report = ImageReport.failed(currentImageName(), ErrorCodes.INTERNAL_ERROR, "Cell Bridge failed: ${e}")
        }
        printReport(report)
        return report
    }

    /** The annotations a batch run detects in (null: the whole image), by the roi setting (default all). */
    private static List<PathObject> batchTargets(Settings settings, Object imageData) {
        def hierarchy = imageData.getHierarchy()
        String mode = settings.roi ?: 'all'
        List<PathObject> targets = null
        if (mode == 'all') {
            targets = hierarchy.getAnnotationObjects() as List<PathObject>
            targets = targets.isEmpty() ? null : targets
        } else if (mode == 'selected') {
            targets = hierarchy.getSelectionModel().getSelectedObjects()
                .findAll { PathObject o -> o.isAnnotation() } as List<PathObject>
            if (targets.isEmpty()) {
                throw new CellBridgeException(ErrorCodes.NOTHING_TO_DO,
                    'roi=selected, but nothing is selected in this image (use roi=all or roi=image in batch runs).')
            }
        }
        return targets
    }

    private static void printReport(ImageReport report) {
        println((report.success ? 'Cell Bridge: ' : 'Cell Bridge FAILED: ') + report.summaryLine() +
            (report.server ? " [${report.server}${report.attempts > 1 ? ', attempt ' + report.attempts : ''}]" : ''))
        println('CELLBRIDGE_REPORT ' + Json.write(report.toMap()))
    }

    /**
     * parallel=N: the batch's first image runs every image of the project, N at a time, each on its own
     * connection (ParallelImages: an image whose daemon went away runs once more on another one), and saves
     * each image whose job completed; the batch's later images were done by then and are skipped.
     */
    private static ImageReport runProjectInParallel(Script script, Settings settings) {
        def project = QPEx.getProject()
        def current = QPEx.getProjectEntry()
        if (project == null) {
            throw new CellBridgeException(ErrorCodes.NOTHING_TO_DO,
                'parallel=N runs the images of a project: use Run for project, or QuPath script -p project.qpproj.')
        }
        if ((batchIndex(script) ?: 0) > 0) {
            println("Cell Bridge: ${current?.getImageName()}: done by the parallel run (parallel=${settings.parallel}) " +
                "that started with this batch's first image")
            return new ImageReport(image: current?.getImageName() as String, status: 'skipped')
        }
        List entries = project.getImageList() as List
        // Taken on this thread: QuPath binds the batch's image to the script's thread, not to the pool's.
        def currentData = QPEx.getCurrentImageData()
        println("Cell Bridge: ${entries.size()} images, ${settings.parallel} at a time, through ${settings.server}")
        Object lock = new Object()
        Closure<ImageReport> runOne = { Object entry, int attempt -> runProjectEntry(entry, current, currentData, settings) }
        Closure done = { Object entry, ImageReport r -> synchronized (lock) { printReport(r) } }
        Closure log = { String line -> println("Cell Bridge: ${line}") }
        List<ImageReport> reports = ParallelImages.run(entries, settings.parallel, runOne, done, log)
        int ok = reports.count { ImageReport r -> r.success } as int
        int retried = reports.count { ImageReport r -> r.attempts > 1 } as int
        println("Cell Bridge: parallel run: ${ok}/${reports.size()} images completed" +
            (retried ? ", ${retried} run again after their daemon went away" : ''))
        int mine = entries.findIndexOf { Object e -> current != null && e.getID() == current.getID() }
        return mine >= 0 ? reports[mine] : reports[0]
    }

    /** One image of a parallel run: the open one (the batch's first) as it is, the others read from the project. */
    @SuppressWarnings('CatchException') // a failure on one image is reported and the others go on
    private static ImageReport runProjectEntry(Object entry, Object current, Object currentData, Settings settings) {
        String name = entry.getImageName() as String
        try {
            boolean isCurrent = current != null && entry.getID() == current.getID()
            def imageData = isCurrent && currentData != null ? currentData : entry.readImageData()
            ImageReport report = run(settings, imageData, batchTargets(settings, imageData), false)
            report.image = report.image ?: name
            if (report.success && settings.save) {
                entry.saveImageData(imageData)
            }
            return report
        } catch (CellBridgeException e) {
            return ImageReport.failed(name, e.code, e.message)
        } catch (Exception e) {
            return ImageReport.failed(name, ErrorCodes.INTERNAL_ERROR, "Cell Bridge failed: ${e}")
        }
    }

    /** Adds Extensions > Cell Bridge menu items (call from a startup script). */
    static void installMenu(File home) {
        def qupath = QPEx.getQuPath()
        if (qupath == null) {
            return
        }
        qupath.installCommand('Extensions>Cell Bridge>Detect cells', {
            // on the FX thread: take the image of the active viewer now, then work in the background
            def imageData = qupath.getImageData()
            Thread.start('cellbridge-detect') { detectInImage([], home, imageData, true) }
        } as Runnable)
        qupath.installCommand('Extensions>Cell Bridge>Check connection', {
            Thread.start('cellbridge-check') { checkConnection(home) }
        } as Runnable)
        qupath.installCommand('Extensions>Cell Bridge>Stop daemon', {
            Thread.start('cellbridge-stop') { stopDaemon([], home) }
        } as Runnable)
    }

    /** Connects, shows the daemon, its device and models (or why it cannot connect). */
    static void checkConnection(File home) {
        String text
        try {
            Settings settings = Settings.resolve([], home, System.getenv(), System.getProperties())
            CellBridgeClient client = CellBridgeClient.open(settings)
            try {
                Map init = client.initializeResult
                String models = client.models.collect { Map m ->
                    String mpp = m.micronsPerPixel ? ', ' + m.micronsPerPixel + ' µm/px' : ''
                    String file = m.file ? ', ' + m.file : ''  // the ONNX file it runs (protocol 2.2): the int8 copy on a CPU
                    "${m.name} ${m.version} (${m.status}${mpp}${file})"
                }.join('\n  ')
                String instance = init.serverInfo?.instance ? " (daemon ${init.serverInfo.instance})" : ''
                text = "Connected to ${init.serverInfo?.name} ${init.serverInfo?.version} at ${settings.server}${instance}\n" +
                    "Device: ${init.executionProvider?.name ?: '?'}\nModels:\n  ${models}"
            } finally {
                client.close()
            }
            Fx.info('Cell Bridge', text)
        } catch (CellBridgeException e) {
            Fx.error('Cell Bridge', e.message)
        }
    }

    /**
     * Stops the daemon of the settings (server/stop; only a daemon on this computer agrees). Returns the
     * message shown (printed without a window).
     */
    static String stopDaemon(List<String> args, File home) {
        String text
        boolean ok = false
        try {
            Settings settings = Settings.resolve(args, home, System.getenv(), System.getProperties())
            CellBridgeClient client
            try {
                client = CellBridgeClient.open(settings)
            } catch (CellBridgeException e) {
                if (e.code != ErrorCodes.DAEMON_NOT_RUNNING) {
                    throw e
                }
                text = "No Cell Bridge daemon runs at ${settings.server}: nothing to stop."
                Fx.info('Cell Bridge', text)
                return text
            }
            try {
                client.stopServer()
                ok = true
                text = "The Cell Bridge daemon at ${settings.server} is stopping. The next Detect cells starts it again " +
                    '(when the scripts know where Cell Bridge is installed).'
            } finally {
                client.close()
            }
        } catch (CellBridgeException e) {
            text = "Cell Bridge: the daemon could not be stopped: ${e.message}"
        }
        if (ok) {
            Fx.info('Cell Bridge', text)
        } else {
            Fx.error('Cell Bridge', text)
        }
        return text
    }

    private static ImageReport run(Settings settings, Object imageData, List<PathObject> targets, boolean gui) {
        QuPathAdapter adapter = new QuPathAdapter(imageData, targets, gui)
        DetectionWorkflow workflow = new DetectionWorkflow(settings)
        workflow.log = { String line -> println("Cell Bridge: ${line}") }
        if (gui) {
            adapter.window = ProgressWindow.open('Cell Bridge: detecting cells') { workflow.cancel() }
        }
        try {
            return workflow.runSafely(adapter)
        } finally {
            adapter.window?.dispose()
        }
    }

    private static ImageReport finish(ImageReport report, boolean gui) {
        println((report.success ? 'Cell Bridge: ' : 'Cell Bridge: not done: ') + report.summaryLine())
        if (gui && report.status == 'failed') {
            Fx.error('Cell Bridge', report.message)
        }
        return report
    }

    private static String currentImageName() {
        return QPEx.getProjectEntry()?.getImageName()
    }

    /** QuPath's script arguments (-a key=value on the command line); none in the GUI. */
    static List<String> scriptArgs(Script script) {
        Object a = attribute(script, 'args')
        return a == null ? [] : (a as List).collect { String.valueOf(it) }
    }

    static int batchSize(Script script) {
        Object n = attribute(script, 'qupath.script.batchSize')
        return n == null ? 1 : n as int
    }

    /** Index of this image in QuPath's batch (Run for project, -p); null outside a batch. */
    static Integer batchIndex(Script script) {
        Object n = attribute(script, 'qupath.script.batchIndex')
        return n == null ? null : n as Integer
    }

    private static Object attribute(Script script, String name) {
        Object value = null
        try {
            value = script?.getProperty(name)
        } catch (MissingPropertyException ignored) {
            value = null // not bound: not run by QuPath's script runner, or an older QuPath
        }
        return value
    }

    // -- the host of DetectionWorkflow: one instance per image ---------------------------------

    final Object imageData
    final Object server
    final Object hierarchy
    /** null: the whole image. */
    final List<PathObject> targets
    final boolean gui
    ProgressWindow window
    private long lastLogged

    QuPathAdapter(Object imageData, List<PathObject> targets, boolean gui) {
        this.imageData = imageData
        this.server = imageData.getServer()
        this.hierarchy = imageData.getHierarchy()
        this.targets = targets
        this.gui = gui
    }

    Map imageInfo() {
        if (!server.isRGB()) {
            throw new CellBridgeException(ErrorCodes.UNSUPPORTED_IMAGE, Messages.notRgb(server.getMetadata().getName()))
        }
        def cal = server.getPixelCalibration()
        Double mpp = cal.hasPixelSizeMicrons() ? cal.getAveragedPixelSizeMicrons() as Double : null
        // the project entry's name when this is the image being processed; else the server's
        def entry = QPEx.getProjectEntry()
        String name = entry != null && QPEx.getCurrentImageData() == imageData ? entry.getImageName() : null
        name = name ?: server.getMetadata().getName()
        // the pyramid levels QuPath reads without resizing: the daemon picks one and resamples itself
        List<Double> downsamples = (server.getPreferredDownsamples() as List).collect { it as Double }
        return [name: name, width: server.getWidth(), height: server.getHeight(), micronsPerPixel: mpp,
                downsamples: downsamples]
    }

    List<Map> regions() {
        if (targets == null) {
            PathObject existing = hierarchy.getAnnotationObjects().find { PathObject a -> a.getName() == WHOLE_IMAGE_NAME }
            int w = server.getWidth()
            int h = server.getHeight()
            return [[id: 'image', label: 'whole image', target: existing,
                     geometry: [type: 'Polygon', coordinates: [[[0, 0], [w, 0], [w, h], [0, h], [0, 0]]]], ]]
        }
        List<Map> out = []
        targets.eachWithIndex { PathObject a, int i ->
            out << [id: "a${i}".toString(), label: a.getName() ?: "annotation ${i + 1}", target: a, geometry: geometryOf(a)]
        }
        return out
    }

    /** The annotation's ROI as GeoJSON, written by QuPath itself (holes, ellipses, brushes included). */
    private static Map geometryOf(PathObject annotation) {
        Path tmp = Files.createTempFile('cellbridge-roi-', '.geojson')
        try {
            QPEx.exportObjectsToGeoJson([annotation], tmp.toString(), 'FEATURE_COLLECTION')
            Map fc = Json.parse(tmp.toFile()) as Map
            List features = fc.features as List
            return features ? (features[0] as Map).geometry as Map : [:]
        } finally {
            Files.deleteIfExists(tmp)
        }
    }

    /** The plan's region at a pyramid level's own downsample: QuPath crops it, never resizes. */
    Object readTile(Map tile, double downsample) {
        RegionRequest request = RegionRequest.createInstance(server.getPath(), downsample,
            tile.x as int, tile.y as int, tile.width as int, tile.height as int)
        return server.readRegion(request)
    }

    void progress(String text, double fraction) {
        window?.update(text, fraction)
        long now = System.currentTimeMillis()
        if (!gui && now - lastLogged > 10_000L) {
            lastLogged = now
            println("Cell Bridge: ${text}")
        }
    }

    Double askPixelSize(String imageName, Double suggestion) {
        if (!gui) {
            return null
        }
        return Fx.askNumber('Cell Bridge: pixel size',
            "'${imageName}' has no pixel size. Pixel size to assume, in µm per pixel " +
                '(0.25 at 40x, 0.5 at 20x):', suggestion)
    }

    /** All or nothing: parses every result first, then changes the hierarchy, one event per annotation. */
    void apply(List<RegionResult> results, Map modelCard) {
        (modelCard.classes as List<Map>).each { Map c ->
            List rgb = c.color as List
            PathClass.fromString(c.name as String, ColorTools.packRGB(rgb[0] as int, rgb[1] as int, rgb[2] as int))
        }
        Map<RegionResult, List<PathObject>> parsed = [:]
        results.each { RegionResult r ->
            parsed[r] = QuPathObjects.fromFeatures(r.features)
        }
        parsed.each { RegionResult r, List<PathObject> objects ->
            PathObject parent = r.target as PathObject
            if (parent == null) {
                parent = wholeImageAnnotation(r.geometry)
                hierarchy.addObjects([parent])
            }
            List<PathObject> keep = parent.getChildObjects().findAll { PathObject child ->
                !Results.isCellBridgeObject(child.getMeasurements())
            } as List<PathObject>
            parent.clearChildObjects()
            parent.addChildObjects(keep + objects)
            Map<String, Number> m = parent.getMeasurements()
            Results.summaryKeys(m.keySet()).each { String k -> m.remove(k) }
            r.summary.each { String k, Double v -> m.put(k, v) }
            hierarchy.fireHierarchyChangedEvent(this, parent)
        }
    }

    private static PathObject wholeImageAnnotation(Map geometry) {
        String json = Json.write([type: 'Feature', geometry: geometry,
                                  properties: [objectType: 'annotation', name: WHOLE_IMAGE_NAME, isLocked: true]])
        return GsonTools.parseObjectsFromGeoJSON(json)[0] as PathObject
    }

}

/** A small always-on-top progress window with a Cancel button (JavaFX, updated from any thread). */
class ProgressWindow {

    private Stage stage
    private Label label
    private ProgressBar bar
    private volatile long lastUpdate

    static ProgressWindow open(String title, Closure onCancel) {
        ProgressWindow w = new ProgressWindow()
        Fx.runAndWait {
            w.label = new Label('Connecting…')
            w.bar = new ProgressBar(-1d)
            w.bar.prefWidth = 360
            Button cancel = new Button('Cancel')
            cancel.onAction = { event ->
                cancel.disable = true
                w.label.text = 'Cancelling…'
                Thread.start('cellbridge-cancel') { onCancel.call() }
            }
            VBox box = new VBox(10d, w.label, w.bar, cancel)
            box.padding = new Insets(14d)
            w.stage = new Stage()
            w.stage.title = title
            w.stage.alwaysOnTop = true
            w.stage.scene = new Scene(box)
            w.stage.onCloseRequest = { event -> Thread.start('cellbridge-cancel') { onCancel.call() } }
            w.stage.show()
        }
        return w
    }

    void update(String text, double fraction) {
        long now = System.currentTimeMillis()
        if (now - lastUpdate < 200 && fraction < 1d) {
            return
        }
        lastUpdate = now
        Platform.runLater {
            label.text = text
            bar.progress = fraction
        }
    }

    void dispose() {
        Platform.runLater { stage?.close() }
    }

}

/** Blocking JavaFX dialogs usable from a background thread. */
final class Fx {

    private Fx() { }

    @SuppressWarnings('CatchThrowable') // whatever the FX code throws is handed to the waiting thread
    static <T> T runAndWait(Closure<T> body) {
        if (Platform.isFxApplicationThread()) {
            return body.call()
        }
        CompletableFuture<T> f = new CompletableFuture<>()
        Platform.runLater {
            try {
                f.complete(body.call())
            } catch (Throwable e) {
                f.completeExceptionally(e)
            }
        }
        return f.get()
    }

    static boolean confirm(String title, String text) {
        return runAndWait {
            Alert alert = new Alert(Alert.AlertType.CONFIRMATION, text, ButtonType.OK, ButtonType.CANCEL)
            alert.title = title
            alert.headerText = null
            alert.showAndWait().orElse(ButtonType.CANCEL) == ButtonType.OK
        }
    }

    static void error(String title, String text) {
        show(Alert.AlertType.ERROR, title, text)
    }

    static void info(String title, String text) {
        show(Alert.AlertType.INFORMATION, title, text)
    }

    private static void show(Alert.AlertType type, String title, String text) {
        if (QPEx.getQuPath() == null) {
            println("${title}: ${text}")
            return
        }
        runAndWait {
            Alert alert = new Alert(type, text, ButtonType.OK)
            alert.title = title
            alert.headerText = null
            alert.resizable = true
            alert.showAndWait()
        }
    }

    static Double askNumber(String title, String text, Double suggestion) {
        return runAndWait {
            TextInputDialog dialog = new TextInputDialog(suggestion == null ? '' : suggestion.toString())
            dialog.title = title
            dialog.headerText = null
            dialog.contentText = text
            String answer = dialog.showAndWait().orElse('').trim()
            Double v = answer.isDouble() ? answer.toDouble() : null
            return v != null && v > 0 ? v : null
        }
    }

}
