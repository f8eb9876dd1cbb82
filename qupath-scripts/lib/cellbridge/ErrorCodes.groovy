package cellbridge

import groovy.transform.CompileStatic

/**
 * Error codes of protocol 1.0 (protocol/errors.ts), plus the client's own codes for problems
 * that never reach the daemon (positive numbers, so they cannot clash with JSON-RPC codes).
 */
@CompileStatic
final class ErrorCodes {

    static final int PARSE_ERROR = -32700
    static final int INVALID_REQUEST = -32600
    static final int METHOD_NOT_FOUND = -32601
    static final int INVALID_PARAMS = -32602
    static final int INTERNAL_ERROR = -32603
    static final int NOT_INITIALIZED = -32002
    static final int VERSION_MISMATCH = -32003
    static final int UNAUTHORIZED = -32004
    static final int ALREADY_INITIALIZED = -32005
    static final int UNKNOWN_MODEL = -32010
    static final int INVALID_ROI = -32011
    static final int EMPTY_ROI = -32012
    static final int MISSING_PIXEL_SIZE = -32013
    static final int UNKNOWN_JOB = -32014
    static final int BAD_TILE_FRAME = -32015
    static final int LIMIT_EXCEEDED = -32016
    static final int MODEL_FAILED = -32020
    static final int CANCELLED = -32021
    static final int SHUTTING_DOWN = -32022
    static final int TIMEOUT = -32023
    static final int UNSUPPORTED_IMAGE = -32030

    /** The daemon cannot be reached (nothing listens at the address). */
    static final int DAEMON_NOT_RUNNING = 1
    /** The connection broke while a request or a job was running. */
    static final int CONNECTION_LOST = 2
    /** Something answered, but it does not speak the Cell Bridge protocol. */
    static final int NOT_A_DAEMON = 3
    /** Reading the pixels of a tile failed on the client side. */
    static final int PIXEL_READ_FAILED = 4
    /** The daemon did not answer in time. */
    static final int NO_ANSWER = 5
    /** Nothing to do: no annotation, no area. */
    static final int NOTHING_TO_DO = 6
    /** A setting (script argument, properties file) has a wrong value. */
    static final int BAD_SETTING = 7
    /** The daemon refused the connection for now (HTTP 503: stopping, or too many clients). */
    static final int DAEMON_BUSY = 8

    private static final Map<Integer, String> NAMES = [
        (PARSE_ERROR): 'ParseError', (INVALID_REQUEST): 'InvalidRequest', (METHOD_NOT_FOUND): 'MethodNotFound',
        (INVALID_PARAMS): 'InvalidParams', (INTERNAL_ERROR): 'InternalError', (NOT_INITIALIZED): 'NotInitialized',
        (VERSION_MISMATCH): 'VersionMismatch', (UNAUTHORIZED): 'Unauthorized',
        (ALREADY_INITIALIZED): 'AlreadyInitialized', (UNKNOWN_MODEL): 'UnknownModel', (INVALID_ROI): 'InvalidRoi',
        (EMPTY_ROI): 'EmptyRoi', (MISSING_PIXEL_SIZE): 'MissingPixelSize', (UNKNOWN_JOB): 'UnknownJob',
        (BAD_TILE_FRAME): 'BadTileFrame', (LIMIT_EXCEEDED): 'LimitExceeded', (MODEL_FAILED): 'ModelFailed',
        (CANCELLED): 'Cancelled', (SHUTTING_DOWN): 'ShuttingDown', (TIMEOUT): 'Timeout',
        (UNSUPPORTED_IMAGE): 'UnsupportedImage', (DAEMON_NOT_RUNNING): 'DaemonNotRunning',
        (CONNECTION_LOST): 'ConnectionLost', (NOT_A_DAEMON): 'NotADaemon', (PIXEL_READ_FAILED): 'PixelReadFailed',
        (NO_ANSWER): 'NoAnswer', (NOTHING_TO_DO): 'NothingToDo', (BAD_SETTING): 'BadSetting', (DAEMON_BUSY): 'DaemonBusy',
    ].asImmutable()

    private ErrorCodes() { }

    static String name(int code) {
        return NAMES.get(code) ?: 'UnknownError'
    }

}
