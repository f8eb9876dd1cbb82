// Runs qupath-scripts/Detect_cells.groovy the way QuPath 0.6.0 runs a script (QuPathScriptRunner, real
// QuPath classes from ../shared/qupath-headless) on TIFFs opened as QuPath opens them, each with one
// selected annotation, and writes the cells (class, centroid, outline) and the run times as JSON.
// With a CLI command, each QuPath run is followed by one run of that command (side by side, same clock).
// Only classes QuPath ships are used here (Gson, not groovy.json).
//
// Usage (see bench/qupath-headless.ts):
//   run-groovy.sh -cp ../shared/qupath-headless HeadlessDetect.groovy SPEC.json OUT.json
//   SPEC: {repo, server, ring: [[x,y],...], runs, images: [{path, mpp, cli: [argv...] | null}]}
import com.google.gson.GsonBuilder
import qupath.lib.images.ImageData
import qupath.lib.images.servers.ImageServerMetadata
import qupath.lib.images.servers.ImageServerProvider
import qupath.lib.objects.PathObjects
import qupath.lib.regions.ImagePlane
import qupath.lib.roi.ROIs

import java.awt.image.BufferedImage

def gson = new GsonBuilder().create()
Map spec = gson.fromJson(new File(args[0]).getText('UTF-8'), Map)
File out = new File(args[1])
File script = new File(spec.repo as String, 'qupath-scripts/Detect_cells.groovy')
List ring = spec.ring as List
int runs = (spec.runs ?: 1) as int

List results = (spec.images as List<Map>).collect { Map im ->
    double mpp = im.mpp as double
    def support = ImageServerProvider.getPreferredUriImageSupport(BufferedImage, new File(im.path as String).toURI().toString())
    def imageServer = support.getBuilders()[0].build()
    def imageData = new ImageData<BufferedImage>(imageServer)
    imageData.updateServerMetadata(new ImageServerMetadata.Builder(imageServer.getMetadata())
        .pixelSizeMicrons(mpp, mpp).build())
    def roi = ROIs.createPolygonROI(ring.collect { it[0] as double } as double[], ring.collect { it[1] as double } as double[],
        ImagePlane.getDefaultPlane())
    def annotation = PathObjects.createAnnotationObject(roi)
    imageData.getHierarchy().addObject(annotation)
    imageData.getHierarchy().getSelectionModel().setSelectedObject(annotation)

    List<Double> qupathMs = []
    List<Double> cliMs = []
    List<String> cliOut = []
    for (int i = 0; i < runs; i++) {
        long t0 = System.nanoTime()
        QuPathScriptRunner.run(imageData: imageData, file: script, args: ["server=${spec.server}".toString()])
        qupathMs << (System.nanoTime() - t0) / 1e6d
        if (im.cli) {
            long t1 = System.nanoTime()
            Process p = new ProcessBuilder(im.cli as List<String>).redirectErrorStream(false).start()
            String stdout = p.inputStream.getText('UTF-8')
            String stderr = p.errorStream.getText('UTF-8')
            int code = p.waitFor()
            cliMs << (System.nanoTime() - t1) / 1e6d
            if (code != 0) {
                throw new IllegalStateException("CLI exited with ${code}: ${stderr}")
            }
            cliOut << stdout.trim()
        }
    }
    List cells = annotation.getChildObjects().findAll { it.isDetection() }.collect { cell ->
        def r = cell.getROI()
        [cls: cell.getPathClass()?.toString(), x: r.getCentroidX(), y: r.getCentroidY(), area: r.getArea()]
    }
    imageServer.close()
    [path: im.path, mpp: imageData.getServer().getPixelCalibration().getAveragedPixelSizeMicrons(),
     server: imageServer.getClass().getSimpleName(), downsamples: imageServer.getPreferredDownsamples() as List,
     qupathMs: qupathMs, cliMs: cliMs, cliOut: cliOut, cells: cells, ]
}
out.setText(gson.toJson(results), 'UTF-8')
println "HEADLESS_DONE ${results.collect { it.cells.size() }} cells"
