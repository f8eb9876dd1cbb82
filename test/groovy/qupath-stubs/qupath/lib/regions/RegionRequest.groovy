package qupath.lib.regions

/** Stand-in for RegionRequest.createInstance(path, downsample, x, y, width, height). */
class RegionRequest {

    String path
    double downsample
    int x
    int y
    int width
    int height

    static RegionRequest createInstance(String path, double downsample, int x, int y, int width, int height) {
        return new RegionRequest(path: path, downsample: downsample, x: x, y: y, width: width, height: height)
    }

}
