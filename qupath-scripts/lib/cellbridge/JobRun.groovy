package cellbridge

import java.awt.image.BufferedImage
import java.nio.ByteBuffer
import java.util.concurrent.BlockingQueue
import java.util.concurrent.CompletableFuture
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import java.util.concurrent.TimeoutException

/**
 * One job on the daemon: sends the tiles it asks for (flow control is the daemon's: only tiles in
 * job/requestTiles are sent, each once, re-sent once after a frame/rejected), collects detections
 * per ROI, and ends with a {@link JobOutcome}. Detections are handed out only when the daemon says
 * {@code completed}; a cancelled or failed job yields none, so nothing is half-applied.
 */
class JobRun {

    final CellBridgeClient client
    long jobId = -1
    double downsample = 1d
    /** The pyramid level's downsample to read tiles at (protocol 2: no resizing on this side). */
    double readDownsample = 1d
    String pixelFormat = 'argb32'
    String model
    int tilesTotal
    /** Tile plans by id. */
    final Map<Long, Map> tiles = new ConcurrentHashMap<>()
    /** Last job/progress params. */
    volatile Map lastProgress
    volatile boolean cancelRequested

    private final Closure readTile
    private final Closure onProgress
    private final BlockingQueue<Long> requested = new LinkedBlockingQueue<>()
    private final Map<String, List<Map>> detections = [:]
    private final CompletableFuture<Map> completed = new CompletableFuture<>()
    private final Map<Long, Integer> rejections = new ConcurrentHashMap<>()
    private volatile String localError
    private volatile int localErrorCode
    private volatile long cancelRequestedAt
    private Thread sender
    private int tilesSent

    JobRun(CellBridgeClient client, Closure readTile, Closure onProgress) {
        this.client = client
        this.readTile = readTile
        this.onProgress = onProgress
    }

    /** Views of each tile the model averaged (protocol 2.1 plan's testTimeAugmentation; 1 from older daemons). */
    int views = 1

    /** Called with the job/start result (on the listener thread, before any notification of the job). */
    void planned(Map result) {
        jobId = result.jobId as long
        downsample = result.downsample as double
        readDownsample = (result.readDownsample ?: 1d) as double
        pixelFormat = (result.pixelFormat ?: 'argb32') as String
        model = result.model as String
        views = (result.testTimeAugmentation ?: 1) as int
        // Large plans (more than limits.maxPlanTilesInline tiles) are not listed: each tile's
        // rectangle then comes with the job/requestTiles that asks for it.
        List<Map> plan = (result.tiles ?: []) as List<Map>
        tilesTotal = result.tileCount != null ? result.tileCount as int : plan.size()
        plan.each { Map t -> tiles.put(t.id as long, t) }
    }

    void start() {
        sender = Thread.startDaemon("cellbridge-job-${jobId}-tiles") { sendLoop() }
    }

    boolean isDone() {
        return completed.isDone()
    }

    int getTilesSent() {
        return tilesSent
    }

    // -- notifications (listener thread) ---------------------------------------------------------

    void onRequestTiles(Map params) {
        if (cancelRequested || completed.isDone()) {
            return
        }
        (params.tiles as List<Map>)?.each { Map t -> tiles.put(t.id as long, t) }
        (params.tileIds as List).each { requested.offer(it as long) }
    }

    @SuppressWarnings('CatchRuntimeException') // a broken progress display must not stop the job
    void onProgressNotification(Map params) {
        lastProgress = params
        if (onProgress != null && !cancelRequested) {
            try {
                onProgress.call(params)
            } catch (RuntimeException e) {
                client.log("progress display failed: ${e.message}")
            }
        }
    }

    void onDetections(Map params) {
        synchronized (detections) {
            List<Map> list = detections.get(params.roiId as String)
            if (list == null) {
                list = []
                detections.put(params.roiId as String, list)
            }
            list.addAll((params.features ?: []) as List<Map>)
        }
    }

    void onCompleted(Map params) {
        requested.clear()
        completed.complete(params)
    }

    void onFrameRejected(Map params) {
        if (params.tileId == null) {
            return
        }
        long tileId = params.tileId as long
        int n = rejections.merge(tileId, 1, Integer.&sum)
        if (n >= 2) {
            fail(ErrorCodes.BAD_TILE_FRAME, Messages.rejectedTooOften((int) tileId, params.message as String))
        } else if (!cancelRequested) {
            requested.offer(tileId)
        }
    }

    void connectionLost(String message) {
        completed.complete([status: 'failed', error: [code: ErrorCodes.CONNECTION_LOST, message: message],
                            tilesDone: lastProgress?.tilesDone ?: 0, tilesTotal: tilesTotal, local: true])
    }

    // -- control ----------------------------------------------------------------------------------

    /** Asks the daemon to stop; returns at once. {@link #await} then ends with status cancelled. */
    void cancel() {
        if (cancelRequested || completed.isDone()) {
            return
        }
        cancelRequested = true
        cancelRequestedAt = System.currentTimeMillis()
        requested.clear()
        if (client.isOpen()) {
            client.cancelJobAsync(jobId)
        } else {
            completed.complete([status: 'cancelled', local: true])
        }
    }

    private void fail(int code, String message) {
        if (localError == null) {
            localError = message
            localErrorCode = code
        }
        cancel()
    }

    /**
     * Waits for the end of the job. Fails the job when the daemon sends nothing for
     * client.idleTimeoutSeconds, and gives up on the daemon cancelGraceSeconds after a cancel.
     */
    JobOutcome await() {
        Map result = null
        while (result == null) {
            try {
                result = completed.get(500, TimeUnit.MILLISECONDS)
            } catch (TimeoutException ignored) {
                long now = System.currentTimeMillis()
                if (cancelRequested && now - cancelRequestedAt > client.cancelGraceSeconds * 1000L) {
                    completed.complete([status: 'cancelled', local: true])
                    client.close()
                } else if (!cancelRequested && now - client.lastMessageAt > client.idleTimeoutSeconds * 1000L) {
                    fail(ErrorCodes.NO_ANSWER, Messages.noAnswer(client.url, client.idleTimeoutSeconds))
                }
            }
        }
        sender?.join(5000)
        client.forgetJob(jobId)
        return outcome(result)
    }

    private JobOutcome outcome(Map result) {
        String status = result.status as String
        Map error = result.error as Map
        if (localError != null) {
            return new JobOutcome(status: 'failed', code: localErrorCode, message: localError, completed: result)
        }
        if (cancelRequested) {
            // also when the daemon finished before it saw job/cancel: the user asked for nothing to change
            return new JobOutcome(status: 'cancelled', code: ErrorCodes.CANCELLED, message: Messages.cancelled(),
                completed: result)
        }
        if (status == 'completed') {
            Map<String, List<Map>> copy = [:]
            synchronized (detections) {
                copy.putAll(detections)
            }
            return new JobOutcome(status: status, message: null, completed: result, featuresByRoi: copy)
        }
        int code = (error?.code ?: ErrorCodes.INTERNAL_ERROR) as int
        String message = code == ErrorCodes.CONNECTION_LOST ? error.message as String :
            Messages.jobFailed(Messages.forServerError(error, 'The job'))
        return new JobOutcome(status: 'failed', code: code, message: message, completed: result)
    }

    // -- sender thread ----------------------------------------------------------------------------

    @SuppressWarnings('CatchException') // any reader failure (I/O, decoding, out of memory of a codec) fails the job cleanly
    private void sendLoop() {
        while (!completed.isDone()) {
            Long id = requested.poll(250, TimeUnit.MILLISECONDS)
            if (id == null || cancelRequested) {
                continue
            }
            Map tile = tiles.get(id)
            if (tile == null) {
                client.log("daemon asked for unknown tile ${id}")
                continue
            }
            ByteBuffer frame
            try {
                frame = frameFor(id, tile)
            } catch (Exception e) {
                fail(ErrorCodes.PIXEL_READ_FAILED, Messages.pixelReadFailed(id as int, e.message ?: e.class.simpleName))
                continue
            }
            if (cancelRequested) {
                continue // cancelled while reading: the daemon would ignore the frame anyway
            }
            try {
                client.sendBinary(frame)
                tilesSent++
            } catch (CellBridgeException e) {
                client.log("sending tile ${id} failed: ${e.message}")
                return
            }
        }
    }

    private ByteBuffer frameFor(long id, Map tile) {
        int w = tile.readWidth as int
        int h = tile.readHeight as int
        Object pixels = readTile.call(tile, readDownsample)
        int[] argb
        if (pixels instanceof int[]) {
            argb = (int[]) pixels
        } else if (pixels instanceof BufferedImage) {
            BufferedImage img = (BufferedImage) pixels
            argb = TileFrames.toArgb(img, w, h, readDownsample > 1d ? 1 : 0)
            w = img.width
            h = img.height
        } else {
            throw new IllegalStateException("the tile reader returned ${pixels?.class?.name}, not an image")
        }
        return TileFrames.pack(jobId, id, w, h, argb, pixelFormat)
    }

}
