package cellbridge

import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.Future

/**
 * Runs images N at a time (Run for project with parallel=N). Each image opens its own connection
 * (DetectionWorkflow.runSafely), so behind a load balancer the images spread over the daemons. An image
 * whose daemon went away mid-job (connection lost, daemon stopping or refusing) runs once more, on a new
 * connection: results are applied only for a completed job, so nothing is lost or added twice.
 */
class ParallelImages {

    /** Failures that say the daemon went away, not that the image is bad. */
    static final List<Integer> RETRIED = [ErrorCodes.CONNECTION_LOST, ErrorCodes.SHUTTING_DOWN,
                                          ErrorCodes.DAEMON_BUSY, ErrorCodes.DAEMON_NOT_RUNNING, ].asImmutable()

    static boolean retryable(ImageReport report) {
        return !report.success && report.status != 'cancelled' && RETRIED.contains(report.code)
    }

    /**
     * @param items one per image, handed to {@code runOne}
     * @param runOne {@code { item, int attempt -> ImageReport }}: runs one image (never throws)
     * @param done {@code { item, ImageReport -> }}: called once per image with its final report, on its worker thread
     * @return the reports, in the order of {@code items}
     */
    static List<ImageReport> run(List items, int parallel, Closure<ImageReport> runOne, Closure done = null, Closure log = null) {
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, Math.min(parallel, items.size()))) { Runnable r ->
            Thread t = new Thread(r, 'cellbridge-parallel')
            t.daemon = true
            return t
        }
        try {
            List<Future<ImageReport>> futures = items.collect { Object item ->
                pool.submit({
                    ImageReport report = runOne(item, 1)
                    if (retryable(report)) {
                        log?.call("${report.image}: ${report.message} Running it again on another connection.")
                        report = runOne(item, 2)
                        report.attempts = 2
                    }
                    done?.call(item, report)
                    return report
                } as java.util.concurrent.Callable<ImageReport>)
            }
            return futures*.get()
        } finally {
            pool.shutdownNow()
        }
    }

}
