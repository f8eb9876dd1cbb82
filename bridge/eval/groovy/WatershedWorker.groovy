// QuPath's own "Cell detection" (qupath.imagej.detect.cells.WatershedCellDetection, no deep learning) as
// an evaluation baseline: bridge/eval/watershed-segmenter.ts starts this once on the headless QuPath
// runtime and sends one JSON request per line on stdin; each answer is one JSON line on stdout.
//   request: {raw: FILE (RGB bytes, row-major), width, height, mpp, params: {threshold: .., ...}, out: FILE,
//             geojson: FILE (optional: the detections as QuPath exports them, GsonTools, a JSON array of features)}
//   answer:  {ok: true, cells: N, detectMs: the plugin's own time} after writing the nucleus label map to `out` (int32 little-endian,
//            0 = background, cell k = k), or {ok: false, error: MESSAGE}
// Nuclei are painted the way QuPath exports a label image (LabeledImageServer fills each ROI's shape).
// Only classes QuPath ships are used (Gson, not groovy.json).
import com.google.gson.GsonBuilder
import qupath.lib.images.ImageData
import qupath.lib.io.GsonTools
import qupath.lib.images.servers.ImageServerMetadata
import qupath.lib.images.servers.WrappedBufferedImageServer
import qupath.lib.objects.PathCellObject
import qupath.lib.objects.PathObjects
import qupath.lib.regions.ImagePlane
import qupath.lib.roi.ROIs
import qupath.lib.scripting.QP

import java.awt.Color
import java.awt.RenderingHints
import java.awt.image.BufferedImage
import java.nio.ByteBuffer
import java.nio.ByteOrder

// QuPath 0.6's defaults for brightfield (the Cell detection dialog), nuclei only: no cell expansion.
Map DEFAULTS = [
    detectionImageBrightfield: 'Hematoxylin OD', requestedPixelSizeMicrons: 0.5, backgroundRadiusMicrons: 8.0,
    backgroundByReconstruction: true, medianRadiusMicrons: 0.0, sigmaMicrons: 1.5, minAreaMicrons: 10.0,
    maxAreaMicrons: 400.0, threshold: 0.1, maxBackground: 2.0, watershedPostProcess: true, excludeDAB: false,
    cellExpansionMicrons: 0.0, includeNuclei: true, smoothBoundaries: true, makeMeasurements: false,
]

def gson = new GsonBuilder().serializeNulls().create()
def stdin = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
def stdout = new PrintStream(new FileOutputStream(FileDescriptor.out), true, 'UTF-8')
System.setOut(System.err) // QuPath's plugin runner logs; keep stdout for answers
stdout.println(gson.toJson([ready: true]))

String line
while ((line = stdin.readLine()) != null) {
    if (line.trim().isEmpty()) continue
    Map answer
    try {
        Map req = gson.fromJson(line, Map)
        int w = req.width as int, h = req.height as int
        double mpp = req.mpp as double
        byte[] rgb = new File(req.raw as String).bytes
        if (rgb.length != w * h * 3) throw new IllegalArgumentException("expected ${w * h * 3} bytes, got ${rgb.length}")
        def img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB)
        int[] px = new int[w * h]
        for (int i = 0; i < w * h; i++) {
            px[i] = ((rgb[3 * i] & 0xff) << 16) | ((rgb[3 * i + 1] & 0xff) << 8) | (rgb[3 * i + 2] & 0xff)
        }
        img.setRGB(0, 0, w, h, px, 0, w)
        def server = new WrappedBufferedImageServer('tile', img)
        def imageData = new ImageData<BufferedImage>(server, ImageData.ImageType.BRIGHTFIELD_H_E)
        imageData.updateServerMetadata(new ImageServerMetadata.Builder(server.getMetadata()).pixelSizeMicrons(mpp, mpp).build())
        def annotation = PathObjects.createAnnotationObject(ROIs.createRectangleROI(0, 0, w, h, ImagePlane.getDefaultPlane()))
        imageData.getHierarchy().addObject(annotation)
        imageData.getHierarchy().getSelectionModel().setSelectedObject(annotation)
        Map params = new LinkedHashMap(DEFAULTS)
        if (req.params) params.putAll(req.params as Map)
        long t0 = System.nanoTime()
        QP.runPlugin('qupath.imagej.detect.cells.WatershedCellDetection', imageData, gson.toJson(params))
        double detectMs = (System.nanoTime() - t0) / 1e6d
        def detections = annotation.getChildObjects().findAll { it.isDetection() }
        if (req.geojson) {
            new File(req.geojson as String).setText(GsonTools.getInstance().toJson(detections), 'UTF-8')
        }
        def nuclei = detections.collect {
            it instanceof PathCellObject && it.getNucleusROI() != null ? it.getNucleusROI() : it.getROI()
        }
        // Paint label k in colour k (no anti-aliasing), then read the ids back.
        def lab = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB)
        def g = lab.createGraphics()
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_OFF)
        nuclei.eachWithIndex { roi, k ->
            g.setColor(new Color(k + 1))
            g.fill(roi.getShape())
        }
        g.dispose()
        int[] ids = lab.getRGB(0, 0, w, h, null, 0, w)
        def buf = ByteBuffer.allocate(4 * w * h).order(ByteOrder.LITTLE_ENDIAN)
        for (int v : ids) buf.putInt(v & 0xffffff)
        new File(req.out as String).bytes = buf.array()
        answer = [ok: true, cells: nuclei.size(), detectMs: detectMs]
        server.close()
    } catch (Throwable e) {
        answer = [ok: false, error: e.toString()]
    }
    stdout.println(gson.toJson(answer))
}
