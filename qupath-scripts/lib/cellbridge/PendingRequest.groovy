package cellbridge

import java.util.concurrent.CompletableFuture

/** A request waiting for its response. */
class PendingRequest {

    String method
    Closure onResult
    final CompletableFuture<Object> future = new CompletableFuture<>()

}
