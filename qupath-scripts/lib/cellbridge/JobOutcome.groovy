package cellbridge

/** How a job ended. {@code featuresByRoi} is filled only when status is 'completed'. */
class JobOutcome {

    String status
    int code
    /** For the user; null when completed. */
    String message
    /** The job/completed params (counts, countsByRoi, timings), or a local stand-in. */
    Map completed
    Map<String, List<Map>> featuresByRoi = [:]

    boolean isSuccess() {
        return status == 'completed'
    }

    int getCellCount() {
        return (featuresByRoi.values()*.size().sum() ?: 0) as int
    }

}
