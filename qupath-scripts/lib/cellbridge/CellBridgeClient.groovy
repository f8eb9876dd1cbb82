package cellbridge

import java.net.http.HttpClient
import java.net.http.HttpTimeoutException
import java.net.http.WebSocket
import java.net.http.WebSocketHandshakeException
import java.nio.ByteBuffer
import java.nio.channels.UnresolvedAddressException
import java.time.Duration
import java.util.concurrent.CompletableFuture
import java.util.concurrent.CompletionException
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.ExecutionException
import java.util.concurrent.TimeUnit
import java.util.concurrent.TimeoutException
import java.util.concurrent.atomic.AtomicInteger

/**
 * A Cell Bridge protocol 1.0 client on java.net.http's WebSocket (bundled with QuPath's runtime):
 * connection, {@code initialize} handshake, JSON-RPC requests, notifications, and jobs
 * ({@link JobRun}: flow control, tile frames, cancel). Plain Java/Groovy: no QuPath class is used
 * here, so everything runs in the tests.
 *
 * Threads: the WebSocket listener thread only parses and stores (it never sends); each job has one
 * sender thread that reads and sends the tiles the daemon asks for; all sends go through one lock
 * because java.net.http allows one outstanding send at a time.
 */
class CellBridgeClient implements Closeable {

    static final String PROTOCOL_VERSION = '2.3'
    static final String CLIENT_NAME = 'qupath-cellbridge'
    static final String CLIENT_VERSION = '0.1.0'

    final String url
    final String token
    /** PEM file of a private CA trusted for wss:// (Settings.caCertificate); null: Java's trust store. */
    String caCertificate
    /** The version sent in initialize (tests change it to check the version-mismatch message). */
    String protocolVersion = PROTOCOL_VERSION
    int connectTimeoutSeconds = 5
    int requestTimeoutSeconds = 60
    int idleTimeoutSeconds = 600
    /** How long to wait for job/completed after job/cancel before giving up on the daemon. */
    int cancelGraceSeconds = 30
    /** Diagnostics sink: {@code { String line -> }}. */
    Closure log = { String line -> }

    /** The result of {@code initialize}: serverInfo, models, defaultModel, limits, ... */
    Map initializeResult
    /** Params of the daemon's server/shutdown notification, when one came. */
    volatile Map shutdownNotice
    volatile long lastMessageAt = System.currentTimeMillis()

    private WebSocket ws
    private final Object sendLock = new Object()
    private final AtomicInteger nextId = new AtomicInteger(1)
    private final Map<Integer, PendingRequest> pending = new ConcurrentHashMap<>()
    private final Map<Long, JobRun> jobs = new ConcurrentHashMap<>()
    /** job/start requests without an answer yet; while there are some, notifications of unknown jobs are kept. */
    private final AtomicInteger startsPending = new AtomicInteger()
    /** Notifications that named a job before its job/start answer was handled (listener thread only). */
    private final List<List> early = []
    private volatile String closedReason
    private volatile boolean closing

    CellBridgeClient(String url, String token = null) {
        this.url = url
        this.token = token
    }

    /** Connects and initializes; throws {@link CellBridgeException} with a message for the user. */
    static CellBridgeClient open(Settings settings, Closure log = null) {
        CellBridgeClient client = new CellBridgeClient(settings.server, settings.token)
        client.connectTimeoutSeconds = settings.connectTimeoutSeconds
        client.idleTimeoutSeconds = settings.idleTimeoutSeconds
        client.caCertificate = settings.caCertificate
        if (log != null) {
            client.log = log
        }
        try {
            client.connect()
            client.initialize()
        } catch (CellBridgeException e) {
            client.close()
            throw e
        }
        return client
    }

    void connect() {
        int t = connectTimeoutSeconds
        HttpClient.Builder httpBuilder = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(t))
        if (caCertificate && url.startsWith('wss://')) {
            httpBuilder.sslContext(Tls.trusting(caCertificate))
        }
        HttpClient http = httpBuilder.build()
        WebSocket.Builder builder = http.newWebSocketBuilder().connectTimeout(Duration.ofSeconds(t))
        try {
            ws = builder.buildAsync(URI.create(url), new ClientListener(this)).get(t + 2, TimeUnit.SECONDS)
        } catch (TimeoutException e) {
            throw new CellBridgeException(ErrorCodes.DAEMON_NOT_RUNNING,
                Messages.daemonNotRunning(url, "no answer within ${t} s"), e)
        } catch (ExecutionException | CompletionException e) {
            throw connectError(unwrap(e))
        } catch (IllegalArgumentException e) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING, "The server address '${url}' is not usable: ${e.message}", e)
        }
    }

    private CellBridgeException connectError(Throwable cause) {
        String tls = Tls.handshakeProblem(url, cause, caCertificate)
        if (tls != null) {
            // a settings problem (which CA to trust), not a daemon to start or a connection to retry
            return new CellBridgeException(ErrorCodes.BAD_SETTING, tls, cause)
        }
        if (cause instanceof WebSocketHandshakeException) {
            int status = ((WebSocketHandshakeException) cause).response?.statusCode() ?: 0
            if (status == 401) {
                return new CellBridgeException(ErrorCodes.UNAUTHORIZED, Messages.unauthorized('HTTP 401'), cause)
            }
            if (status == 503) {
                return new CellBridgeException(ErrorCodes.DAEMON_BUSY, Messages.daemonBusy(url), cause)
            }
            return new CellBridgeException(ErrorCodes.NOT_A_DAEMON,
                Messages.notADaemon(url, "HTTP status ${status} instead of a WebSocket"), cause)
        }
        String detail
        if (cause instanceof ConnectException) {
            detail = 'connection refused: nothing is listening there'
        } else if (cause instanceof HttpTimeoutException) {
            detail = "no answer within ${connectTimeoutSeconds} s"
        } else if (cause instanceof UnresolvedAddressException || cause instanceof UnknownHostException) {
            detail = 'unknown host name'
        } else {
            detail = cause.message ?: cause.class.simpleName
        }
        return new CellBridgeException(ErrorCodes.DAEMON_NOT_RUNNING, Messages.daemonNotRunning(url, detail), cause)
    }

    /** Sends {@code initialize} and checks the protocol version. */
    Map initialize() {
        Map params = [clientInfo: [name: CLIENT_NAME, version: CLIENT_VERSION], protocolVersion: protocolVersion]
        if (token) {
            params.token = token
        }
        Map result
        try {
            result = request('initialize', params, null, Math.max(10, connectTimeoutSeconds * 2)) as Map
        } catch (CellBridgeException e) {
            switch (e.code) {
                case ErrorCodes.VERSION_MISMATCH:
                    throw new CellBridgeException(e.code, Messages.versionMismatch(protocolVersion, null, e.message), e)
                case ErrorCodes.UNAUTHORIZED:
                    throw new CellBridgeException(e.code, Messages.unauthorized(e.message), e)
                case ErrorCodes.NO_ANSWER:
                    throw new CellBridgeException(ErrorCodes.NOT_A_DAEMON,
                        Messages.notADaemon(url, 'no answer to initialize'), e)
                default:
                    throw e
            }
        }
        if (!(result instanceof Map) || !(result.models instanceof List)) {
            throw new CellBridgeException(ErrorCodes.NOT_A_DAEMON, Messages.notADaemon(url, 'unexpected answer to initialize'))
        }
        String serverVersion = result.protocolVersion as String
        if (major(serverVersion) != major(protocolVersion)) {
            throw new CellBridgeException(ErrorCodes.VERSION_MISMATCH,
                Messages.versionMismatch(protocolVersion, serverVersion, null))
        }
        initializeResult = result
        return result
    }

    static Integer major(String version) {
        def m = version =~ /^(\d+)\.(\d+)$/
        return m.matches() ? Integer.valueOf(m.group(1)) : null
    }

    List<Map> getModels() {
        return (initializeResult?.models ?: []) as List<Map>
    }

    Map getLimits() {
        return (initializeResult?.limits ?: [:]) as Map
    }

    /**
     * The model card to use: the named one, or the daemon's default. Throws a user message when it
     * does not exist or failed to load.
     */
    Map chooseModel(String name) {
        List<Map> all = models
        List<String> ready = all.findAll { it.status != 'failed' }*.name as List<String>
        String wanted = name ?: (initializeResult?.defaultModel as String) ?: (ready ? ready[0] : null)
        if (wanted == null) {
            throw new CellBridgeException(ErrorCodes.MODEL_FAILED, Messages.noModels())
        }
        Map card = all.find { it.name == wanted }
        if (card == null) {
            throw new CellBridgeException(ErrorCodes.UNKNOWN_MODEL, Messages.unknownModel(wanted, ready))
        }
        if (card.status == 'failed') {
            throw new CellBridgeException(ErrorCodes.MODEL_FAILED, Messages.modelFailed(wanted, card.error as String))
        }
        return card
    }

    /**
     * Starts a job. {@code readTile} is called on the job's sender thread with (tile plan map,
     * the plan's readDownsample: a pyramid level listed in image.downsamples) and returns a
     * BufferedImage or an int[] of packed ARGB pixels of exactly readWidth x readHeight, never
     * resized (protocol 2: the daemon alone resamples to the model's resolution).
     * {@code onProgress} gets each job/progress params map.
     */
    JobRun startJob(Map image, List<Map> rois, String model, Map options, Closure readTile, Closure onProgress = null) {
        JobRun job = new JobRun(this, readTile, onProgress)
        Map params = [image: image, rois: rois, options: options ?: [:]]
        if (model) {
            params.model = model
        }
        startsPending.incrementAndGet()
        try {
            request('job/start', params, { Map result ->
                job.planned(result)
                jobs.put(result.jobId as long, job)
                replayEarly(result.jobId as long)
            }, requestTimeoutSeconds)
        } catch (CellBridgeException e) {
            switch (e.code) {
                case ErrorCodes.UNKNOWN_MODEL:
                    throw new CellBridgeException(e.code,
                        Messages.unknownModel(model, models.findAll { it.status != 'failed' }*.name as List<String>), e)
                case ErrorCodes.MISSING_PIXEL_SIZE:
                    throw new CellBridgeException(e.code, Messages.missingPixelSize(image.name as String), e)
                case ErrorCodes.MODEL_FAILED:
                    throw new CellBridgeException(e.code, Messages.modelFailed(model, e.message), e)
                case ErrorCodes.EMPTY_ROI:
                    throw new CellBridgeException(e.code, "${e.message} ${Messages.emptyRoi('The region')}", e)
                default:
                    throw e
            }
        } finally {
            startsPending.decrementAndGet()
        }
        job.start()
        return job
    }

    /**
     * The daemon answers job/start before it asks for the job's first tile (protocol/README does not
     * promise this order, so notifications that arrive first are kept and handed over here).
     */
    private void replayEarly(long jobId) {
        List<List> mine = early.findAll { List e -> (e[1] as Map).jobId as long == jobId }
        early.removeAll(mine)
        mine.each { List e -> handleNotification(e[0] as String, e[1] as Map) }
    }

    /** A blocking JSON-RPC request; daemon errors become CellBridgeException(code, message). */
    Object request(String method, Map params, Closure onResult = null, int timeoutSeconds = requestTimeoutSeconds) {
        CompletableFuture<Object> future = requestAsync(method, params, onResult)
        try {
            return future.get(timeoutSeconds, TimeUnit.SECONDS)
        } catch (TimeoutException e) {
            throw new CellBridgeException(ErrorCodes.NO_ANSWER, Messages.noAnswer(url, timeoutSeconds), e)
        } catch (ExecutionException e) {
            Throwable cause = unwrap(e)
            if (cause instanceof CellBridgeException) {
                throw (CellBridgeException) cause
            }
            throw new CellBridgeException(ErrorCodes.CONNECTION_LOST, Messages.connectionLost(url, cause.message), cause)
        }
    }

    /** Sends a request; the future completes with the result or a CellBridgeException. */
    CompletableFuture<Object> requestAsync(String method, Map params, Closure onResult = null) {
        int id = nextId.getAndIncrement()
        PendingRequest p = new PendingRequest(method: method, onResult: onResult)
        pending.put(id, p)
        try {
            sendText(Json.write([jsonrpc: '2.0', id: id, method: method, params: params ?: [:]]))
        } catch (CellBridgeException e) {
            pending.remove(id)
            p.future.completeExceptionally(e)
        }
        return p.future
    }

    void sendText(String text) {
        synchronized (sendLock) {
            checkOpen()
            try {
                ws.sendText(text, true).get(60, TimeUnit.SECONDS)
            } catch (ExecutionException | TimeoutException | IllegalStateException e) {
                throw lost(e)
            }
        }
    }

    void sendBinary(ByteBuffer frame) {
        synchronized (sendLock) {
            checkOpen()
            try {
                ws.sendBinary(frame, true).get(60, TimeUnit.SECONDS)
            } catch (ExecutionException | TimeoutException | IllegalStateException e) {
                throw lost(e)
            }
        }
    }

    boolean isOpen() {
        return ws != null && closedReason == null
    }

    String getClosedReason() {
        return closedReason
    }

    private void checkOpen() {
        if (ws == null) {
            throw new CellBridgeException(ErrorCodes.CONNECTION_LOST, Messages.connectionLost(url, 'not connected'))
        }
        if (closedReason != null) {
            throw new CellBridgeException(ErrorCodes.CONNECTION_LOST, Messages.connectionLost(url, closedReason))
        }
    }

    private CellBridgeException lost(Throwable e) {
        Throwable cause = unwrap(e)
        return new CellBridgeException(ErrorCodes.CONNECTION_LOST,
            Messages.connectionLost(url, closedReason ?: cause.message ?: cause.class.simpleName), cause)
    }

    /** Asks the daemon to stop (server/stop: loopback clients only); returns once it has agreed. */
    void stopServer() {
        request('server/stop', [:])
    }

    /** Fire-and-forget job/cancel (never blocks the caller, e.g. a Cancel button). */
    void cancelJobAsync(long jobId) {
        Thread.startDaemon("cellbridge-cancel-${jobId}") {
            try {
                requestAsync('job/cancel', [jobId: jobId]).get(requestTimeoutSeconds, TimeUnit.SECONDS)
            } catch (ExecutionException | TimeoutException | InterruptedException e) {
                log("job/cancel for job ${jobId}: ${unwrap(e).message}")
            }
        }
    }

    void forgetJob(long jobId) {
        jobs.remove(jobId)
    }

    @Override
    void close() {
        closing = true
        WebSocket socket = ws
        if (socket == null) {
            return
        }
        try {
            if (!socket.isOutputClosed()) {
                synchronized (sendLock) {
                    socket.sendClose(WebSocket.NORMAL_CLOSURE, 'done').get(2, TimeUnit.SECONDS)
                }
            }
        } catch (ExecutionException | TimeoutException | IllegalStateException | InterruptedException ignored) {
            log('close handshake did not finish; aborting the connection')
        } finally {
            socket.abort()
            connectionGone('closed by the client')
        }
    }

    // -- receiving (listener thread) ------------------------------------------------------------

    void handleText(String text) {
        lastMessageAt = System.currentTimeMillis()
        Object parsed
        try {
            parsed = Json.parse(text)
        } catch (Json.ParseException e) {
            log("ignored a text frame that is not JSON: ${e.message}")
            return
        }
        if (!(parsed instanceof Map)) {
            return
        }
        Map msg = (Map) parsed
        if (msg.containsKey('id') && (msg.containsKey('result') || msg.containsKey('error'))) {
            handleResponse(msg)
        } else if (msg.method instanceof String) {
            handleNotification(msg.method as String, (msg.params ?: [:]) as Map)
        }
    }

    @SuppressWarnings('CatchRuntimeException') // a failing callback must fail its request, not the listener
    private void handleResponse(Map msg) {
        PendingRequest p = msg.id == null ? null : pending.remove(msg.id as Integer)
        if (p == null) {
            if (msg.error) {
                log("daemon error without a matching request: ${msg.error}")
            }
            return
        }
        if (msg.error != null) {
            Map error = msg.error as Map
            p.future.completeExceptionally(new CellBridgeException((error.code ?: ErrorCodes.INTERNAL_ERROR) as int,
                Messages.forServerError(error, p.method)))
            return
        }
        try {
            p.onResult?.call(msg.result)
            p.future.complete(msg.result)
        } catch (RuntimeException e) {
            p.future.completeExceptionally(e)
        }
    }

    private void handleNotification(String method, Map params) {
        if (method == 'server/shutdown') {
            shutdownNotice = params
            log("daemon is shutting down: ${params.reason}")
            return
        }
        JobRun job = params.jobId == null ? null : jobs.get(params.jobId as long)
        if (job == null && params.jobId != null && startsPending.get() > 0 && early.size() < 10_000) {
            early << [method, params]
            return
        }
        if (startsPending.get() == 0 && early) {
            early.clear()
        }
        switch (method) {
            case 'job/requestTiles':
                job?.onRequestTiles(params)
                break
            case 'job/progress':
                job?.onProgressNotification(params)
                break
            case 'job/detections':
                job?.onDetections(params)
                break
            case 'job/completed':
                job?.onCompleted(params)
                break
            case 'frame/rejected':
                log("frame rejected: ${params}")
                job?.onFrameRejected(params)
                break
            default:
                break // MINOR versions may add notifications: ignore unknown ones
        }
    }

    void connectionGone(String reason) {
        if (closedReason != null) {
            return
        }
        closedReason = reason
        String message = Messages.connectionLost(url, reason)
        pending.keySet().each { Integer id ->
            pending.remove(id)?.future?.completeExceptionally(new CellBridgeException(ErrorCodes.CONNECTION_LOST, message))
        }
        jobs.values().each { JobRun job -> job.connectionLost(message) }
    }

    static Throwable unwrap(Throwable e) {
        Throwable t = e
        while ((t instanceof ExecutionException || t instanceof CompletionException) && t.cause != null) {
            t = t.cause
        }
        return t
    }

}
