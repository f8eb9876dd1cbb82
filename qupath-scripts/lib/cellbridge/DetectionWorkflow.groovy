package cellbridge

/**
 * Runs cell detection on one image through a "host" that knows the image (QuPath, through
 * cellbridge.qupath.QuPathAdapter; a test double in the tests). The host is duck-typed:
 * <pre>
 *   Map imageInfo()                      [name, width, height, micronsPerPixel (null when unknown),
 *                                         downsamples (pyramid levels read without resizing; optional)]
 *   List&lt;Map&gt; regions()                 [[id, geometry (GeoJSON, full-res px), label, target], ...]
 *   Object readTile(Map tile, double ds)  BufferedImage (or int[] ARGB) of tile.readWidth x readHeight:
 *                                         the region at pyramid level ds, never resized
 *   void progress(String text, double fraction)
 *   Double askPixelSize(String imageName, Double suggestion)   null when not answered
 *   void apply(List&lt;RegionResult&gt; results, Map modelCard)    all or nothing
 * </pre>
 * Everything that can go wrong becomes an {@link ImageReport} with a message for the user; the host
 * is asked to apply results only when the daemon reported the job completed.
 */
class DetectionWorkflow {

    final Settings settings
    Closure log = { String line -> }

    private volatile JobRun job
    private volatile boolean cancelled

    DetectionWorkflow(Settings settings) {
        this.settings = settings
    }

    /** Cancel from any thread (a Cancel button): tells the daemon, nothing is applied. */
    void cancel() {
        cancelled = true
        job?.cancel()
    }

    boolean isCancelled() {
        return cancelled
    }

    /** Connects, runs and closes; never throws (errors are in the report). */
    @SuppressWarnings('CatchException') // the boundary: whatever happens becomes a report for the user
    ImageReport runSafely(Object host) {
        CellBridgeClient client = null
        String imageName = null
        try {
            imageName = host.imageInfo()?.name as String
            host.progress("Connecting to ${settings.server}", -1d)
            client = connect(host)
            return run(client, host)
        } catch (CellBridgeException e) {
            return e.code == ErrorCodes.CANCELLED ? ImageReport.cancelled(imageName) :
                ImageReport.failed(imageName, e.code, e.message)
        } catch (Exception e) {
            log("unexpected error: ${e}")
            return ImageReport.failed(imageName, ErrorCodes.INTERNAL_ERROR,
                "Cell Bridge stopped on an unexpected error: ${e}. Nothing was added.")
        } finally {
            client?.close()
        }
    }

    /**
     * Connects; when nothing answers on this computer and a Cell Bridge install is known, starts the daemon
     * (the host's progress says so) and connects once it is ready. A daemon started by an earlier run is reused.
     */
    CellBridgeClient connect(Object host) {
        try {
            return CellBridgeClient.open(settings, log)
        } catch (CellBridgeException e) {
            DaemonLauncher launcher = e.code == ErrorCodes.DAEMON_NOT_RUNNING ? DaemonLauncher.forSettings(settings) : null
            if (launcher == null || cancelled) {
                throw e
            }
            launcher.log = log
            String text = Messages.startingDaemon(launcher.install)
            log(text)
            host.progress(text, -1d)
            return launcher.startAndConnect { -> cancelled }
        }
    }

    /** Runs one image on an open client. Throws CellBridgeException for problems found before the job. */
    ImageReport run(CellBridgeClient client, Object host) {
        Map card = client.chooseModel(settings.model)
        Map info = host.imageInfo() as Map
        String name = info.name as String
        Double mpp = info.micronsPerPixel as Double
        Double assumed = null
        if (mpp == null && card.micronsPerPixel != null) {
            assumed = settings.pixelSize ?: host.askPixelSize(name, card.micronsPerPixel as Double) as Double
            if (assumed == null) {
                throw new CellBridgeException(ErrorCodes.MISSING_PIXEL_SIZE, Messages.missingPixelSize(name))
            }
        }

        List<Map> usable = []
        List<String> skipped = []
        (host.regions() as List<Map>).each { Map r ->
            Map g = Results.areaGeometry(r.geometry as Map)
            if (Results.area(g) <= 0) {
                skipped << (r.label as String)
            } else {
                usable << (r + [geometry: g])
            }
        }
        if (skipped) {
            log("skipped (no area): ${skipped.join(', ')}")
        }
        if (!usable) {
            String what = skipped ? "The annotation '${skipped[0]}'" : 'The selected region'
            throw new CellBridgeException(ErrorCodes.EMPTY_ROI, Messages.emptyRoi(what))
        }
        if (cancelled) {
            return ImageReport.cancelled(name)
        }

        Map options = [pixelFormat: 'argb32', objectType: settings.objectType,
                       maxTilesInFlight: Math.min(settings.maxTilesInFlight,
                           (client.limits.maxTilesInFlight ?: settings.maxTilesInFlight) as int), ]
        if (assumed != null) {
            options.assumeMicronsPerPixel = assumed
        }
        if (settings.minArea > 0) {
            options.minAreaMicrons = settings.minArea
        }
        if (settings.simplify > 0) {
            options.simplifyTolerance = settings.simplify
        }
        if (settings.tta > 0) {
            options.testTimeAugmentation = settings.tta
        }
        if (settings.keepFaint) {
            // null (written as JSON null) turns the model card's faint-cell filter off for this job
            options.postprocess = [meanCellprobThreshold: null]
            log('faint cells kept (keepFaint=true)')
        }
        Map image = [name: name, width: info.width, height: info.height, micronsPerPixel: mpp]
        if (info.downsamples) {
            image.downsamples = info.downsamples
        }
        List<Map> rois = usable.collect { Map r -> [id: r.id, geometry: r.geometry] }

        host.progress("Starting ${card.name} on ${usable.size()} region(s)", 0d)
        long t0 = System.currentTimeMillis()
        Closure readTile = { Map tile, double ds -> host.readTile(tile, ds) }
        Closure onProgress = { Map p ->
            double fraction = (p.tilesTotal ?: 0) > 0 ? (p.tilesDone as double) / (p.tilesTotal as double) : -1d
            host.progress(Messages.progress(p), fraction)
        }
        JobRun started = client.startJob(image, rois, card.name as String, options, readTile, onProgress)
        job = started
        if (cancelled) {
            started.cancel()
        }
        JobOutcome outcome = started.await()
        if (started.views > 1) {
            log("${started.model}: ${started.views} views of each tile averaged (tta=${started.views})")
        }
        if (!outcome.success) {
            return new ImageReport(image: name, status: outcome.status, code: outcome.code, message: outcome.message,
                tilesTotal: started.tilesTotal, millis: System.currentTimeMillis() - t0, server: instanceOf(client))
        }

        if (cancelled) {
            return ImageReport.cancelled(name) // Cancel pressed just as the job ended: still nothing is applied
        }
        Double effectiveMpp = mpp ?: assumed
        List<String> classNames = (card.classes as List<Map>)*.name as List<String>
        List<RegionResult> results = usable.collect { Map r ->
            List<Map> features = Results.mark(outcome.featuresByRoi.get(r.id as String) ?: [])
            new RegionResult(id: r.id as String, label: r.label as String, target: r.target, geometry: r.geometry as Map,
                features: features,
                summary: Results.summary(features, r.geometry as Map, effectiveMpp, classNames, settings.objectType))
        }
        host.progress("Adding ${outcome.cellCount} ${settings.objectType}s", 1d)
        host.apply(results, card)
        return new ImageReport(image: name, status: 'completed', cells: outcome.cellCount,
            counts: (outcome.completed.counts ?: [:]) as Map, regions: results*.describe(),
            tilesTotal: started.tilesTotal, millis: System.currentTimeMillis() - t0, model: card.name as String,
            modelFile: card.file as String, skipped: skipped, server: instanceOf(client))
    }

    private static String instanceOf(CellBridgeClient client) {
        return (client.initializeResult?.serverInfo as Map)?.instance as String
    }

}
