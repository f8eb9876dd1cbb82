// Runs qupath-scripts/Detect_cells.groovy the way QuPath 0.6.0 runs a script (QuPathScriptRunner, real
// QuPath classes from ../shared/qupath-headless) on a TIFF opened as QuPath opens it, with one selected
// annotation, and writes the resulting cells (class, outline, centroid) and the run times as JSON.
// Only classes QuPath ships are used here (Gson, not groovy.json).
//
// Usage (see test/qupath-parity.test.ts and bench/qupath.ts):
//   run-groovy.sh -cp ../shared/qupath-headless HeadlessDetect.groovy REPO IMAGE.tif MPP ROI.json SERVER OUT.json RUNS
import com.google.gson.GsonBuilder
import qupath.lib.images.ImageData
import qupath.lib.images.servers.ImageServerMetadata
import qupath.lib.images.servers.ImageServerProvider
import qupath.lib.objects.PathObjects
import qupath.lib.regions.ImagePlane
import qupath.lib.roi.ROIs

import java.awt.image.BufferedImage

File repo = new File(args[0])
File image = new File(args[1])
double mpp = args[2] as double
List<List<Number>> ring = new GsonBuilder().create().fromJson(new File(args[3]).getText('UTF-8'), List)
String server = args[4]
File out = new File(args[5])
int runs = args.length > 6 ? args[6] as int : 1

def support = ImageServerProvider.getPreferredUriImageSupport(BufferedImage, image.toURI().toString())
def imageServer = support.getBuilders()[0].build()
def imageData = new ImageData<BufferedImage>(imageServer)
imageData.updateServerMetadata(new ImageServerMetadata.Builder(imageServer.getMetadata())
    .pixelSizeMicrons(mpp, mpp).build())

def roi = ROIs.createPolygonROI(ring.collect { it[0] as double } as double[], ring.collect { it[1] as double } as double[],
    ImagePlane.getDefaultPlane())
def annotation = PathObjects.createAnnotationObject(roi)
imageData.getHierarchy().addObject(annotation)
imageData.getHierarchy().getSelectionModel().setSelectedObject(annotation)

File script = new File(repo, 'qupath-scripts/Detect_cells.groovy')
List<Double> millis = []
for (int i = 0; i < runs; i++) {
    long t0 = System.nanoTime()
    QuPathScriptRunner.run(imageData: imageData, file: script, args: ["server=${server}".toString()])
    millis << (System.nanoTime() - t0) / 1e6d
}

List cells = annotation.getChildObjects().findAll { it.isDetection() }.collect { cell ->
    def r = cell.getROI()
    [cls: cell.getPathClass()?.toString(), x: r.getCentroidX(), y: r.getCentroidY(), area: r.getArea(),
     points: r.getAllPoints().collect { p -> [p.getX(), p.getY()] }, ]
}
out.setText(new GsonBuilder().create().toJson([
    server: [name: imageServer.getClass().getSimpleName(), width: imageServer.getWidth(), height: imageServer.getHeight(),
             mpp: imageData.getServer().getPixelCalibration().getAveragedPixelSizeMicrons(),
             downsamples: imageData.getServer().getPreferredDownsamples() as List, ],
    millis: millis, cells: cells,
]), 'UTF-8')
println "HEADLESS_DONE ${cells.size()} cells, runs ${millis.collect { Math.round(it) }} ms"
