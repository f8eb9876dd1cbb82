// The QuPath layer (entry scripts, bootstrap, lib/cellbridge/qupath/QuPathAdapter.groovy) on the REAL QuPath
// classes of ../shared/qupath-headless (QuPath 0.6.0 core, headless), against the real daemon. The scripts run
// through that folder's QuPathScriptRunner, a port of QuPath's own script runner: default imports, bindings,
// a ScriptEngine on the application class loader (so the scripts see exactly this JVM's class path, which the
// mocha test makes QuPath's), and "QuPath script -p project -s" for Run for project.
// A real project: a TIFF of the test scene opened by QuPath's ImageJ server, annotations, saved, reloaded.
// Evaluated by DaemonTests.groovy ('qupath' scenario) with the binding: root (File), config (Map), pixels (byte[]),
// headless (File: ../shared/qupath-headless). Returns a map of observations.

import java.awt.image.BufferedImage
import javax.imageio.ImageIO

import qupath.lib.images.servers.ImageServerMetadata
import qupath.lib.images.servers.ImageServerProvider
import qupath.lib.objects.PathObject
import qupath.lib.objects.PathObjects
import qupath.lib.objects.classes.PathClass
import qupath.lib.projects.ProjectIO
import qupath.lib.projects.Projects
import qupath.lib.regions.ImagePlane
import qupath.lib.roi.ROIs
import qupath.lib.scripting.QP

Class runner = new GroovyClassLoader(this.class.classLoader).parseClass(new File(headless, 'QuPathScriptRunner.groovy'))
QP.getCoreClasses() // as QuPath does before loading a project

int width = config.width as int
int height = config.height as int
File work = new File(config.outDir as String, "qupath-${System.nanoTime()}")
File projectDir = new File(work, 'project')
projectDir.mkdirs()

/** The scene as an RGB TIFF (what QuPath's ImageJ server reads), named `name`. */
Closure writeTiff = { String name ->
    BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB)
    int[] row = new int[width]
    for (int y = 0; y < height; y++) {
        int o = y * width * 3
        for (int x = 0; x < width; x++) {
            row[x] = ((pixels[o] & 0xff) << 16) | ((pixels[o + 1] & 0xff) << 8) | (pixels[o + 2] & 0xff)
            o += 3
        }
        img.setRGB(0, y, width, 1, row, 0, width)
    }
    File f = new File(work, name)
    if (!ImageIO.write(img, 'tiff', f)) {
        throw new IllegalStateException('no TIFF writer in this Java')
    }
    return f
}

def project = Projects.createProject(projectDir, BufferedImage)
Closure addImage = { String name, Closure withData ->
    File tif = writeTiff(name)
    def support = ImageServerProvider.getPreferredUriImageSupport(BufferedImage, tif.toURI().toString())
    def entry = project.addImage(support.builders[0])
    entry.setImageName(name)
    def data = entry.readImageData()
    data.updateServerMetadata(new ImageServerMetadata.Builder(data.server.metadata)
        .pixelSizeMicrons(config.mpp as double, config.mpp as double).build())
    withData.call(data)
    entry.saveImageData(data)
    return entry
}
Closure rect = { double x, double y, double w, double h, String name ->
    PathObject a = PathObjects.createAnnotationObject(ROIs.createRectangleROI(x, y, w, h, ImagePlane.getDefaultPlane()))
    a.setName(name)
    return a
}

// image 1: two annotations; A1 already holds a user's detection and a cell of an earlier Cell Bridge run
addImage('scene-qupath.tif') { data ->
    def a1 = rect(20, 20, 280, 450, 'A1')
    def a2 = rect(310, 20, 280, 450, 'A2')
    def mine = PathObjects.createDetectionObject(ROIs.createEllipseROI(40, 40, 10, 10, ImagePlane.getDefaultPlane()))
    mine.setName('mine')
    mine.getMeasurements().put('Area', 5d)
    def old = PathObjects.createCellObject(ROIs.createEllipseROI(60, 60, 12, 12, ImagePlane.getDefaultPlane()), null)
    old.setName('old run')
    old.getMeasurements().put('cellbridge', 1d)
    a1.addChildObjects([mine, old])
    a1.getMeasurements().put('Cell Bridge: Num Gamma', 3d)
    a1.getMeasurements().put('My score', 7d)
    data.hierarchy.addObjects([a1, a2])
}
// image 2: no annotation (Run for project takes the whole image)
addImage('no-annotations.tif') { data -> }
project.syncChanges()
File projectFile = new File(projectDir, 'project.qpproj')

File scripts = new File(root, 'qupath-scripts')
List<String> daemonArgs = ["server=${config.server}".toString(), 'model=synthetic']
Closure reload = { -> ProjectIO.loadProject(projectFile, BufferedImage) }
Closure open = { def p, String name -> p.imageList.find { it.imageName == name }.readImageData() }
Closure annotation = { def data, String name -> data.hierarchy.annotationObjects.find { it.name == name } }
Closure cellsOf = { PathObject o -> o.childObjects.findAll { it.isCell() } }
Closure ourCells = { PathObject o -> o.childObjects.findAll { it.measurements.containsKey('cellbridge') } }
Closure summaryOf = { PathObject o -> o.measurements.findAll { k, v -> k.startsWith('Cell Bridge: ') } }
Closure captureOut = { Closure body ->
    PrintStream saved = System.out
    ByteArrayOutputStream buf = new ByteArrayOutputStream()
    System.setOut(new PrintStream(buf, true, 'UTF-8'))
    try {
        body.call()
    } finally {
        System.setOut(saved)
    }
    String text = buf.toString('UTF-8')
    print(text) // still shown in the test's output
    return text
}
Map out = [:]

// 1. Run for project, as "QuPath script -p project.qpproj -a ... -s Run_for_project.groovy"; then the project is
//    reloaded from disk and the cells are looked for there
Map command = null
String log1 = captureOut {
    List<String> argv = ['-p', projectFile.path]
    daemonArgs.each { argv += ['-a', it] }
    command = runner.scriptCommand(argv + ['-s', new File(scripts, 'Run_for_project.groovy').path])
}
def p1 = reload()
def d1 = open(p1, 'scene-qupath.tif')
PathObject a1 = annotation(d1, 'A1')
PathObject a2 = annotation(d1, 'A2')
def allCells = cellsOf(a1) + cellsOf(a2)
out.first = [images: command.images, errors: command.errors.collectEntries { k, v -> [k, v.toString()] },
             reportLines: log1.readLines().findAll { it.startsWith('Cell Bridge: ') || it.startsWith('Cell Bridge FAILED') },
             resultPrinted: log1.readLines().any { it.contains('Script result: ') } ? log1.readLines().find { it.contains('Script result: ') } : null,
             a1Children: a1.childObjects.size(), a1Cells: cellsOf(a1).size(), a2Cells: cellsOf(a2).size(),
             userDetectionKept: a1.childObjects.any { it.name == 'mine' && it.isDetection() && !it.isCell() },
             oldCellGone: !a1.childObjects.any { it.name == 'old run' },
             allNewMarked: allCells.every { it.measurements.get('cellbridge') == 1d },
             withNucleus: allCells.count { it.nucleusROI != null },
             classNames: allCells.collect { it.pathClass?.name }.unique().sort(),
             a1Measurements: new LinkedHashMap(a1.measurements), mpp: d1.server.pixelCalibration.averagedPixelSizeMicrons,
             classes: ['Alpha', 'Beta'].collectEntries { [it, PathClass.fromString(it).color] }, ]
def d2 = open(p1, 'no-annotations.tif')
def whole = d2.hierarchy.annotationObjects.toList()
out.wholeImage = [annotations: whole.size(), name: whole ? whole[0].name : null, locked: whole ? whole[0].isLocked() : null,
                  cells: whole ? cellsOf(whole[0]).size() : 0, summary: whole ? summaryOf(whole[0]) : [:]]

// 2. Run for project again: replaced, not accumulated; the whole-image annotation is reused
Set idsBefore = allCells*.ID*.toString() as Set
captureOut {
    List<String> argv = ['-p', projectFile.path]
    daemonArgs.each { argv += ['-a', it] }
    runner.scriptCommand(argv + ['-s', new File(scripts, 'Run_for_project.groovy').path])
}
def p2 = reload()
def d1b = open(p2, 'scene-qupath.tif')
def d2b = open(p2, 'no-annotations.tif')
PathObject a1b = annotation(d1b, 'A1')
PathObject a2b = annotation(d1b, 'A2')
out.second = [a1Cells: cellsOf(a1b).size(), a2Cells: cellsOf(a2b).size(), marked: ourCells(a1b).size() + ourCells(a2b).size(),
              userDetectionKept: a1b.childObjects.any { it.name == 'mine' },
              sameIds: ((cellsOf(a1b) + cellsOf(a2b))*.ID*.toString() as Set) == idsBefore,
              wholeAnnotations: d2b.hierarchy.annotationObjects.size(), wholeCells: cellsOf(d2b.hierarchy.annotationObjects[0]).size()]

// 3. Detect cells on the selected annotation (A2) of the open image, as from QuPath's script editor
d1b.hierarchy.selectionModel.setSelectedObject(a2b)
def a1Objects = a1b.childObjects.toList()
def a2Objects = a2b.childObjects.toList()
Object result = null
String log3 = captureOut {
    result = runner.run(project: p2, imageData: d1b, file: new File(scripts, 'Detect_cells.groovy'), args: daemonArgs as String[])
}
out.third = [result: result == null ? null : result.toString(), resultType: result?.getClass()?.name,
             lines: log3.readLines().findAll { it.startsWith('Cell Bridge') },
             a1Untouched: a1b.childObjects.toList() == a1Objects,
             a2Replaced: !a2b.childObjects.toList().any { a2Objects.contains(it) } && cellsOf(a2b).size() == a2Objects.size()]
p2.imageList.find { it.imageName == 'scene-qupath.tif' }.saveImageData(d1b)
def d1c = open(reload(), 'scene-qupath.tif')
out.third.savedA2Cells = cellsOf(annotation(d1c, 'A2')).size()

// 4. The daemon is not there (and autostart=false, else the scripts would start one from this repo): each image
//    FAILED with a clear line, nothing changed, the batch goes on
ServerSocket probe = new ServerSocket(0)
int port = probe.localPort
probe.close()
String log4 = captureOut {
    runner.scriptCommand(['-p', projectFile.path, '-a', "server=127.0.0.1:${port}".toString(), '-a', 'autostart=false',
                          new File(scripts, 'Run_for_project.groovy').path])
}
def d1d = open(reload(), 'scene-qupath.tif')
out.absent = [failedLines: log4.readLines().findAll { it.startsWith('Cell Bridge FAILED: ') },
              unchanged: cellsOf(annotation(d1d, 'A1')).size() == out.second.a1Cells]

// 5. No daemon runs; the scripts know the install (install=this repo): Detect cells starts the daemon (detached,
//    logging to a file, with the token), detects; a second run reuses it; a wrong token is refused by it; the
//    menu's Stop daemon (QuPathAdapter.stopDaemon) stops it
ServerSocket probe2 = new ServerSocket(0)
int port2 = probe2.localPort
probe2.close()
File daemonLog = new File(config.autostartLog as String)
List<String> autoArgs = ["server=127.0.0.1:${port2}", "install=${root.path}", "node=${config.node}", "daemonLog=${daemonLog.path}",
                         'model=synthetic', 'token=autostart-secret-42',
                         "daemonArgs=--models ${config.modelsDir} --device cpu --log-level info"]*.toString()
Closure detectAuto = { List<String> a ->
    PathObject target = annotation(d1d, 'A2')
    d1d.hierarchy.selectionModel.setSelectedObject(target)
    long t0 = System.currentTimeMillis()
    String text = captureOut { runner.run(project: p2, imageData: d1d, file: new File(scripts, 'Detect_cells.groovy'), args: a as String[]) }
    [ms: System.currentTimeMillis() - t0, lines: text.readLines().findAll { it.startsWith('Cell Bridge') }, cells: cellsOf(target).size()]
}
Map run1 = detectAuto(autoArgs)
Map run2 = detectAuto(autoArgs)
Map wrongToken = detectAuto(autoArgs.collect { it.startsWith('token=') ? 'token=not-the-token' : it })
List<String> logLines = daemonLog.isFile() ? daemonLog.readLines('UTF-8') : []
GroovyClassLoader adapterLoader = new GroovyClassLoader(this.class.classLoader)
adapterLoader.addClasspath(new File(scripts, 'lib').path)
String stopText = adapterLoader.loadClass('cellbridge.qupath.QuPathAdapter').stopDaemon(autoArgs, scripts)
boolean closed = false
for (int i = 0; i < 100 && !closed; i++) {
    try {
        new Socket('127.0.0.1', port2).close()
        Thread.sleep(200)
    } catch (IOException ignored) {
        closed = true
    }
}
String stopAgain = adapterLoader.loadClass('cellbridge.qupath.QuPathAdapter').stopDaemon(autoArgs, scripts)
List<String> logAfter = daemonLog.isFile() ? daemonLog.readLines('UTF-8') : []
out.autostart = [first: run1, second: run2, wrongToken: wrongToken, starts: logLines.count { it.startsWith('---- pid ') },
                 listening: logLines.count { it.startsWith('{"event":"listening"') }, tokenOnCommandLine: logLines.any { it.contains('autostart-secret-42') },
                 stopText: stopText, portClosed: closed, stopAgain: stopAgain,
                 stopLogged: logAfter.any { it.contains('stop requested by a client') }, logTail: logAfter.takeRight(15)]
return out
