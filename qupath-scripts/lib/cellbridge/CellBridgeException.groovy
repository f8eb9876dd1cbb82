package cellbridge

import groovy.transform.CompileStatic

/**
 * An error meant for the user: {@link #getMessage()} is a complete, actionable sentence that a
 * script shows as is (dialog, log, batch report). {@code code} is the protocol error code when the
 * daemon sent one, otherwise one of the local codes in {@link ErrorCodes}.
 */
@CompileStatic
class CellBridgeException extends RuntimeException {

    final int code

    CellBridgeException(int code, String message, Throwable cause = null) {
        super(message, cause)
        this.code = code
    }

    String getCodeName() {
        return ErrorCodes.name(code)
    }

}
