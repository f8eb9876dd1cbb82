// Transport benchmark of the QuPath Groovy client (qupath-scripts/lib, loaded as the QuPath scripts load it):
// one job over a blank SIDE x SIDE image against a daemon running the synthetic model, rgb8 frames.
// Run on QuPath 0.6's class path (no groovy-json there: Gson), as bench/transport.ts does:
//   java -cp "../shared/qupath-headless/lib/*" groovy.ui.GroovyMain bench/groovy/Transport.groovy REPO URL SIDE
// Prints one line: RESULT {"tiles":…,"bytes":…,"seconds":…}

import com.google.gson.Gson

File root = new File(args[0]).canonicalFile
String url = args[1]
int side = args[2] as int
GroovyClassLoader loader = new GroovyClassLoader(this.class.classLoader)
loader.addClasspath(new File(root, 'qupath-scripts/lib').absolutePath)
Class clientClass = loader.loadClass('cellbridge.CellBridgeClient')

Map runJob(Class clientClass, String url, int side) {
    def client = clientClass.newInstance(url, null)
    client.connect()
    client.initialize()
    Map<Integer, int[]> blank = [:]
    long bytes = 0
    Map image = [name: 'transport', width: side, height: side, micronsPerPixel: 0.5d]
    List<Map> rois = [[id: 'all', geometry: [type: 'Polygon', coordinates: [[[0, 0], [side, 0], [side, side], [0, side], [0, 0]]]]]]
    long t0 = System.nanoTime()
    def job = client.startJob(image, rois, null, [pixelFormat: 'rgb8', maxTilesInFlight: 16], { Map tile, double downsample ->
        int n = (tile.readWidth as int) * (tile.readHeight as int)
        int[] px = blank.computeIfAbsent(n) { int k -> new int[k] }
        bytes += 3L * n
        return px
    })
    def outcome = job.await()
    double seconds = (System.nanoTime() - t0) / 1e9d
    client.close()
    if (outcome.status != 'completed') {
        throw new IllegalStateException("transport job ${outcome.status}: ${outcome.message}")
    }
    return [tiles: outcome.completed.tilesDone, bytes: bytes, seconds: seconds]
}

runJob(clientClass, url, 1024) // warm-up (JIT, class loading)
println 'RESULT ' + new Gson().toJson(runJob(clientClass, url, side))
