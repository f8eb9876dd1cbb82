// The QuPath layer (entry scripts + lib/cellbridge/qupath/QuPathAdapter.groovy) run headless on the
// stand-ins in qupath-stubs/, against the real daemon. Evaluated by DaemonTests.groovy ('qupath' scenario)
// with the binding: root (File), config (Map), pixels (byte[]). Returns a map of observations.

import java.awt.Graphics2D
import java.awt.RenderingHints
import java.awt.image.BufferedImage

File stubs = new File(root, 'test/groovy/qupath-stubs')
GroovyClassLoader quPathLoader = new GroovyClassLoader(this.class.classLoader)
quPathLoader.addClasspath(stubs.path)
Class QPEx = quPathLoader.loadClass('qupath.lib.gui.scripting.QPEx')
Class PathObject = quPathLoader.loadClass('qupath.lib.objects.PathObject')
Class PathClass = quPathLoader.loadClass('qupath.lib.objects.classes.PathClass')

/** An image server over raw RGB bytes: readRegion honours x, y, width, height and downsample. */
class FakeServer {

    byte[] rgb
    int width
    int height
    Double mpp
    String name
    int reads

    String getPath() {
        return "file:/fake/${name}"
    }

    boolean isRGB() {
        return true
    }

    Expando getPixelCalibration() {
        return new Expando(hasPixelSizeMicrons: { -> mpp != null }, getAveragedPixelSizeMicrons: { -> mpp ?: Double.NaN })
    }

    Expando getMetadata() {
        return new Expando(getName: { -> name })
    }

    BufferedImage readRegion(Object request) {
        reads++
        int x = request.x, y = request.y, w = request.width, h = request.height
        BufferedImage full = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB)
        int[] row = new int[w]
        for (int j = 0; j < h; j++) {
            int o = ((y + j) * width + x) * 3
            for (int i = 0; i < w; i++) {
                row[i] = ((rgb[o] & 0xff) << 16) | ((rgb[o + 1] & 0xff) << 8) | (rgb[o + 2] & 0xff)
                o += 3
            }
            full.setRGB(0, j, w, 1, row, 0, w)
        }
        int outW = (int) Math.round(w / request.downsample)
        int outH = (int) Math.round(h / request.downsample)
        if (outW == w && outH == h) {
            return full
        }
        BufferedImage scaled = new BufferedImage(outW, outH, BufferedImage.TYPE_INT_RGB)
        Graphics2D g = scaled.createGraphics()
        g.setRenderingHint(RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_BILINEAR)
        g.drawImage(full, 0, 0, outW, outH, null)
        g.dispose()
        return scaled
    }

}

/** The object hierarchy: a root object, a selection, counted events. */
class FakeHierarchy {

    Object root
    List selected = []
    int events
    int added

    Collection getAnnotationObjects() {
        List out = []
        Closure walk
        walk = { o -> o.getChildObjects().each { c -> if (c.isAnnotation()) { out << c }; walk(c) } }
        walk(root)
        return out
    }

    Expando getSelectionModel() {
        return new Expando(getSelectedObjects: { -> selected })
    }

    void addObjects(Collection objects) {
        root.addChildObjects(objects)
        added += objects.size()
    }

    void fireHierarchyChangedEvent(Object source, Object changed) {
        events++
    }

}

Closure rect = { double x0, double y0, double x1, double y1 ->
    [type: 'Polygon', coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]]
}
Closure newImage = { String name ->
    def server = new FakeServer(rgb: pixels, width: config.width as int, height: config.height as int, mpp: config.mpp as Double, name: name)
    def hierarchy = new FakeHierarchy(root: PathObject.newInstance(type: 'root'))
    def entry = new Expando(saves: 0)
    entry.getImageName = { -> name }
    entry.saveImageData = { d -> entry.saves = entry.saves + 1 }
    def imageData = new Expando(getServer: { -> server }, getHierarchy: { -> hierarchy })
    [server: server, hierarchy: hierarchy, entry: entry, imageData: imageData]
}
Closure makeCurrent = { Map img ->
    QPEx.currentImageData = img.imageData
    QPEx.projectEntry = img.entry
    QPEx.quPath = null // headless, like QuPath's command line
}
Closure scriptArgs = { List<String> extra = [] ->
    (["server=${config.server}", 'model=synthetic'] + extra).collect { it.toString() } as String[]
}
Closure runEntryScript = { String fileName, String[] args ->
    File f = new File(root, "qupath-scripts/${fileName}")
    Binding b = new Binding()
    b.setVariable('args', args)
    b.setVariable('qupath.script.file', f.path) // what QuPath 0.4+ binds for a script file
    new GroovyShell(quPathLoader, b).evaluate(f)
}
Closure cellsOf = { o -> o.getChildObjects().findAll { it.type == 'cell' } }
Closure marked = { o -> o.getChildObjects().findAll { it.getMeasurements().containsKey('cellbridge') } }

Map out = [:]

// -- image 1: two annotations; A1 already holds a user's detection and a cell of an earlier Cell Bridge run --
Map img = newImage('scene-qupath.png')
def a1 = PathObject.newInstance(name: 'A1', geometry: rect(20, 20, 300, 470))
def a2 = PathObject.newInstance(name: 'A2', geometry: rect(310, 20, 590, 470))
img.hierarchy.root.addChildObjects([a1, a2])
def userDetection = PathObject.newInstance(type: 'detection', name: 'mine')
userDetection.measurements.put('Area', 5)
def oldCell = PathObject.newInstance(type: 'cell', name: 'old run')
oldCell.measurements.put('cellbridge', 1)
a1.addChildObjects([userDetection, oldCell])
a1.measurements.put('Cell Bridge: Num Gamma', 3)
a1.measurements.put('My score', 7)
makeCurrent(img)

// 1. Run for project, through the real entry script (bootstrap included)
def report1 = runEntryScript('Run_for_project.groovy', scriptArgs())
out.first = [status: report1.status, message: report1.message, cells: report1.cells, regions: report1.regions,
             a1Children: a1.getChildObjects().size(), a1Cells: cellsOf(a1).size(), a2Cells: cellsOf(a2).size(),
             userDetectionKept: a1.getChildObjects().contains(userDetection), oldCellGone: !a1.getChildObjects().contains(oldCell),
             allNewMarked: (cellsOf(a1) + cellsOf(a2)).every { it.getMeasurements().cellbridge == 1 },
             a1Measurements: new LinkedHashMap(a1.getMeasurements()), saves: img.entry.saves ?: 0, events: img.hierarchy.events,
             classes: PathClass.CLASSES.collectEntries { k, v -> [k, v.color] }, reads: img.server.reads, ]

// 2. Again, through the library directly (same classes as the scripts): replaced, not accumulated
// the bootstrap's own class loader (it compiled lib/ already): the report's class came from it
Class QuPathAdapter = report1.getClass().classLoader.loadClass('cellbridge.qupath.QuPathAdapter')
out.first.bootstrapLoader = report1.getClass().classLoader.getClass().name
Closure scriptWith = { String[] args ->
    Binding b = new Binding()
    b.setVariable('args', args)
    new Script(b) { Object run() { null } }
}
File home = new File(root, 'qupath-scripts')
def a1Before = a1.getChildObjects().toList()
def report2 = QuPathAdapter.runForProject(scriptWith(scriptArgs()), home)
out.second = [status: report2.status, a1Cells: cellsOf(a1).size(), a2Cells: cellsOf(a2).size(),
              userDetectionKept: a1.getChildObjects().contains(userDetection),
              sameIds: cellsOf(a1)*.id.toSet() == a1Before.findAll { it.type == 'cell' }*.id.toSet(),
              marked: marked(a1).size() + marked(a2).size(), saves: img.entry.saves]

// 3. Detect cells on the selection (A2 only): A1 is not touched at all
img.hierarchy.selected = [a2]
def a1Objects = a1.getChildObjects().toList()
def a2Objects = a2.getChildObjects().toList()
def report3 = QuPathAdapter.detectCells(scriptWith(scriptArgs()), home)
out.third = [status: report3.status, message: report3.message, regions: report3.regions*.label,
             a1Untouched: a1.getChildObjects().toList() == a1Objects,
             a2Replaced: !a2.getChildObjects().toList().any { a2Objects.contains(it) } && cellsOf(a2).size() == a2Objects.size()]

// 4. An image without annotations: the whole image, in a locked annotation made once and reused
Map img2 = newImage('no-annotations.png')
makeCurrent(img2)
def report4 = QuPathAdapter.runForProject(scriptWith(scriptArgs()), home)
def whole1 = img2.hierarchy.getAnnotationObjects().toList()
def report5 = QuPathAdapter.runForProject(scriptWith(scriptArgs(['roi=image'])), home)
def whole2 = img2.hierarchy.getAnnotationObjects().toList()
out.wholeImage = [status: [report4.status, report5.status], message: report4.message, annotations: [whole1.size(), whole2.size()],
                  name: whole1 ? whole1[0].getName() : null, locked: whole1 ? whole1[0].locked : null,
                  sameAnnotation: whole1 && whole2 && whole1[0].is(whole2[0]),
                  cells: whole2 ? cellsOf(whole2[0]).size() : 0, reportCells: report5.cells, saves: img2.entry.saves,
                  summary: whole2 ? whole2[0].getMeasurements().findAll { k, v -> k.startsWith('Cell Bridge: ') } : [:]]

// 5. The daemon is not there: a failed report, no exception, nothing changed, nothing saved
ServerSocket probe = new ServerSocket(0)
int port = probe.localPort
probe.close()
makeCurrent(img)
def before = a1.getChildObjects().toList() + a2.getChildObjects().toList()
int savesBefore = img.entry.saves
def report6 = QuPathAdapter.runForProject(scriptWith(["server=127.0.0.1:${port}".toString()] as String[]), home)
out.absent = [status: report6.status, codeName: report6.toMap().codeName, message: report6.message,
              unchanged: (a1.getChildObjects().toList() + a2.getChildObjects().toList()) == before,
              saved: img.entry.saves != savesBefore]

return out
