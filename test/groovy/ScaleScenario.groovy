// Issue 14 through the QuPath scripts on the real QuPath 0.6.0 classes (../shared/qupath-headless): Run for
// project with parallel=N over wss:// (nginx, TLS with a private CA trusted by caCertificate= in the
// cellbridge.properties of an installed copy of the scripts, as docs/scaling.md says). Run by
// test/scale-nginx.test.ts with ../shared/qupath-headless/run-groovy.sh:
//   ScaleScenario.groovy CONFIG.json
// CONFIG: {headless, scripts (the installed copy), work, mpp, images: [{name, tiff}], phases: [{name, args: [...]}],
//          wss, token, otherCa (a CA that did not sign the proxy's certificate)}
// Each phase makes a fresh project of the images, runs "QuPath script -p project.qpproj -a ARGS... -s
// Run_for_project.groovy", reloads the project from disk and records every image's cells. Prints
// "PHASE name" when a phase starts, and at the end one line "RESULT {json}".

import com.google.gson.GsonBuilder
import com.google.gson.reflect.TypeToken
import java.awt.image.BufferedImage
import qupath.lib.images.servers.ImageServerMetadata
import qupath.lib.images.servers.ImageServerProvider
import qupath.lib.projects.ProjectIO
import qupath.lib.projects.Projects
import qupath.lib.scripting.QP

def gson = new GsonBuilder().serializeSpecialFloatingPointValues().create()
Map config = gson.fromJson(new File(args[0]).getText('UTF-8'), new TypeToken<Map<String, Object>>() { }.type)
File headless = new File(config.headless as String)
Class runner = new GroovyClassLoader(this.class.classLoader).parseClass(new File(headless, 'QuPathScriptRunner.groovy'))
QP.getCoreClasses() // as QuPath does before loading a project
double mpp = config.mpp as double

Closure makeProject = { String phase ->
    File dir = new File(config.work as String, "project-${phase}")
    dir.mkdirs()
    def project = Projects.createProject(dir, BufferedImage)
    (config.images as List<Map>).each { Map image ->
        def support = ImageServerProvider.getPreferredUriImageSupport(BufferedImage, new File(image.tiff as String).toURI().toString())
        def entry = project.addImage(support.builders[0])
        entry.setImageName(image.name as String)
        def data = entry.readImageData()
        data.updateServerMetadata(new ImageServerMetadata.Builder(data.server.metadata).pixelSizeMicrons(mpp, mpp).build())
        entry.saveImageData(data)
    }
    project.syncChanges()
    return new File(dir, 'project.qpproj')
}

Map out = [:]

// wss:// without trusting the proxy's CA: a clear message that names caCertificate (Java's trust store alone,
// and another CA's certificate).
def lib = new GroovyClassLoader(this.class.classLoader)
lib.addClasspath(new File(config.scripts as String, 'lib').path)
Class clientClass = lib.loadClass('cellbridge.CellBridgeClient')
out.untrusted = [null, config.otherCa].collect { Object ca ->
    def client = clientClass.newInstance(config.wss as String, config.token as String)
    client.caCertificate = ca as String
    try {
        client.connect()
        client.close()
        return 'connected'
    } catch (Exception e) {
        return e.message
    }
}
(config.phases as List<Map>).each { Map phase ->
    File projectFile = makeProject(phase.name as String)
    println("PHASE ${phase.name}")
    PrintStream saved = System.out
    ByteArrayOutputStream buf = new ByteArrayOutputStream()
    System.setOut(new PrintStream(new TeeStream(saved, buf), true, 'UTF-8'))
    long t0 = System.currentTimeMillis()
    try {
        List<String> argv = ['-p', projectFile.path]
        (phase.args as List<String>).each { argv += ['-a', it] }
        runner.scriptCommand(argv + ['-s', new File(config.scripts as String, 'Run_for_project.groovy').path])
    } finally {
        System.setOut(saved)
    }
    List<String> lines = buf.toString('UTF-8').readLines()
    def project = ProjectIO.loadProject(projectFile, BufferedImage)
    Map cells = [:]
    project.imageList.each { entry ->
        def data = entry.readImageData()
        // A cell as its class and outline: equal outlines mean the same cell, whatever its object id.
        cells[entry.imageName] = data.hierarchy.detectionObjects.findAll { it.measurements.containsKey('cellbridge') }.collect {
            def r = it.ROI
            "${it.pathClass?.name}|${Math.round(r.centroidX * 100) / 100}|${Math.round(r.centroidY * 100) / 100}|${r.area}|${r.numPoints}"
        }.sort()
    }
    out[phase.name] = [seconds: (System.currentTimeMillis() - t0) / 1000d, cells: cells,
                       reports: lines.findAll { it.startsWith('CELLBRIDGE_REPORT ') }.collect {
                           gson.fromJson(it.substring('CELLBRIDGE_REPORT '.length()), Map)
                       },
                       lines: lines.findAll { it.startsWith('Cell Bridge') }, ]
}
println('RESULT ' + gson.toJson(out))

/** Writes to two streams: the scenario reads the scripts' lines while the test still sees them live. */
class TeeStream extends OutputStream {

    final OutputStream a
    final OutputStream b

    TeeStream(OutputStream a, OutputStream b) {
        this.a = a
        this.b = b
    }

    @Override
    void write(int x) {
        a.write(x)
        b.write(x)
    }

    @Override
    void write(byte[] bytes, int off, int len) {
        a.write(bytes, off, len)
        b.write(bytes, off, len)
    }

    @Override
    void flush() {
        a.flush()
        b.flush()
    }

}
