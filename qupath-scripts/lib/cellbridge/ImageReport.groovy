package cellbridge

/** What happened to one image: shown to the user and printed as one JSON line in batch runs. */
class ImageReport {

    String image
    /** completed | cancelled | failed */
    String status
    int code
    String message
    int cells
    Map counts = [:]
    List<Map> regions = []
    List<String> skipped = []
    int tilesTotal
    long millis
    String model
    /** The model's ONNX file the daemon ran (protocol 2.2): model-int8.onnx on a CPU; null from older daemons. */
    String modelFile
    /** The daemon that ran the job (initialize's serverInfo.instance): which replica, behind a load balancer. */
    String server
    /** 2 when the image ran again on another connection because its daemon went away (parallel runs). */
    int attempts = 1

    static ImageReport failed(String image, int code, String message) {
        return new ImageReport(image: image, status: 'failed', code: code, message: message)
    }

    static ImageReport cancelled(String image) {
        return new ImageReport(image: image, status: 'cancelled', code: ErrorCodes.CANCELLED, message: Messages.cancelled())
    }

    boolean isSuccess() {
        return status == 'completed'
    }

    Map toMap() {
        return [image: image, status: status, code: code, codeName: code ? ErrorCodes.name(code) : null,
                message: message, cells: cells, counts: counts, regions: regions, skipped: skipped,
                tilesTotal: tilesTotal, millis: millis, model: model, modelFile: modelFile, server: server, attempts: attempts, ]
    }

    String summaryLine() {
        if (success) {
            String perClass = counts.collect { k, v -> "${k} ${v}" }.join(', ')
            return "${image}: ${cells} cells in ${regions.size()} region(s)${perClass ? ' (' + perClass + ')' : ''}, " +
                "${Messages.duration(millis)}"
        }
        return image ? "${image}: ${message}" : message
    }

}
