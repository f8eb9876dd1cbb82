package cellbridge

import java.net.http.WebSocket
import java.nio.ByteBuffer
import java.util.concurrent.CompletionStage

/** Reassembles fragmented text messages and hands whole ones to the client. */
class ClientListener implements WebSocket.Listener {

    private final CellBridgeClient client
    private final StringBuilder text = new StringBuilder()

    ClientListener(CellBridgeClient client) {
        this.client = client
    }

    @Override
    void onOpen(WebSocket webSocket) {
        webSocket.request(1)
    }

    @Override
    @SuppressWarnings('CatchRuntimeException') // the listener thread must survive any bad message
    CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
        text.append(data)
        if (last) {
            String whole = text
            text.setLength(0)
            try {
                client.handleText(whole)
            } catch (RuntimeException e) {
                client.log("error while handling a message: ${e}")
            }
        }
        webSocket.request(1)
        return null
    }

    @Override
    CompletionStage<?> onBinary(WebSocket webSocket, ByteBuffer data, boolean last) {
        webSocket.request(1)
        return null
    }

    @Override
    CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
        client.connectionGone("closed by the daemon, code ${statusCode}${reason ? ': ' + reason : ''}")
        return null
    }

    @Override
    void onError(WebSocket webSocket, Throwable error) {
        client.connectionGone(error.message ?: error.class.simpleName)
    }

}
