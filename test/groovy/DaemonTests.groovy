// Scenarios of the Cell Bridge Groovy client against a REAL daemon (started by the mocha test).
// The QuPath image is replaced by RawImageHost: raw RGB pixels dumped by the mocha test with sharp,
// read the way QuPath's RegionRequest does (x, y, width, height, downsample).
//
// Run: java -cp "<QuPath's class path>" groovy.ui.GroovyMain test/groovy/DaemonTests.groovy REPO_ROOT CONFIG.json SCENARIO...
// Scenarios 'badToken' and 'killed' use the second daemon, config.kill = {server, token}; 'killed' prints
// READY_TO_KILL once it has read two tiles, and the mocha test then SIGKILLs that daemon.
// Prints one line "RESULT {json}" with one entry per scenario; the mocha test asserts on it.

import java.awt.Graphics2D
import java.awt.RenderingHints
import java.awt.image.BufferedImage

File root = new File(args[0]).canonicalFile
List<String> scenarios = (args.length > 2 ? args[2..-1] : []) as List<String>
Class support = evaluate(new File(root, 'test/groovy/TestSupport.groovy'))
def t = support.newInstance(root)
Class Settings = t.cls('Settings')
Class Workflow = t.cls('DetectionWorkflow')
Class Client = t.cls('CellBridgeClient')
// JSON through lib's cellbridge.Json (Gson): groovy-json is not on QuPath's class path, nor on this JVM's
Class Json = t.cls('Json')
// CONFIG "-": read from stdin, so the JVM can start and compile lib/ while the test still prepares the daemons
Map config = (args[1] == '-' ? Json.parse(new InputStreamReader(System.in, 'UTF-8')) : Json.parse(new File(args[1]))) as Map

/** A stand-in for QuPath's image + hierarchy: raw RGB bytes, regions given by the test. */
class RawImageHost {

    byte[] rgb
    int width
    int height
    String name
    Double mpp
    List<Map> regions
    Double pixelSizeAnswer
    Closure onRead
    long readDelayMs
    int applyCalls
    List<Map> applied = []
    List<Long> tilesRead = Collections.synchronizedList([])
    List<String> progressLines = Collections.synchronizedList([])
    int pixelSizeQuestions

    Map imageInfo() {
        return [name: name, width: width, height: height, micronsPerPixel: mpp]
    }

    List<Map> regions() {
        return regions
    }

    /** Like server.readRegion(RegionRequest.createInstance(path, ds, x, y, w, h)). */
    Object readTile(Map tile, double downsample) {
        tilesRead << (tile.id as long)
        onRead?.call(tile)
        if (readDelayMs > 0) {
            Thread.sleep(readDelayMs)
        }
        int x = tile.x as int
        int y = tile.y as int
        int w = tile.width as int
        int h = tile.height as int
        if (x < 0 || y < 0 || x + w > width || y + h > height) {
            throw new IllegalArgumentException("region ${x},${y} ${w}x${h} is outside the ${width}x${height} image")
        }
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
        int outW = (int) Math.round(w / downsample)
        int outH = (int) Math.round(h / downsample)
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

    void progress(String text, double fraction) {
        progressLines << text
    }

    Double askPixelSize(String imageName, Double suggestion) {
        pixelSizeQuestions++
        return pixelSizeAnswer
    }

    void apply(List results, Map card) {
        applyCalls++
        results.each { r ->
            applied << [id: r.id, label: r.label, features: r.features, summary: r.summary]
        }
    }

}

byte[] pixels = new File(config.raw as String).bytes
Closure newHost = { Map overrides = [:] ->
    new RawImageHost([rgb: pixels, width: config.width as int, height: config.height as int, name: config.imageName,
                      mpp: config.mpp as Double, regions: config.rois as List<Map>, ] + overrides)
}
Closure settingsFor = { List<String> extra = [] ->
    List<String> a = ["server=${config.server}".toString()]
    if (config.model) {
        a << "model=${config.model}".toString()
    }
    if (config.pixelSize) {
        a << "pixelSize=${config.pixelSize}".toString()
    }
    if (config.token) {
        a << "token=${config.token}".toString()
    }
    a.addAll(extra)
    // later keys win in parseArgs' map, so extra overrides
    Settings.resolve(a, null, [:], new Properties())
}
Closure runWorkflow = { Object settings, Object host, Closure configure = null ->
    def wf = Workflow.newInstance(settings)
    List<String> logLines = Collections.synchronizedList([])
    wf.log = { String line -> logLines << line }
    configure?.call(wf)
    long t0 = System.currentTimeMillis()
    def report = wf.runSafely(host)
    return [report: report.toMap(), applyCalls: host.applyCalls, tilesRead: host.tilesRead.toList(),
            progress: host.progressLines.size(), log: logLines.toList(), ms: System.currentTimeMillis() - t0,
            pixelSizeQuestions: host.pixelSizeQuestions, ]
}

Map out = [:]
scenarios.each { String name ->
    try {
        switch (name) {
            case 'detect':
            case ~/detect:.+/:
                // "detect:KEY" runs on config.images.KEY (another image, ROI or model) instead of the main one
                String key = name.contains(':') ? name.split(':', 2)[1] : null
                Map image = key ? config.images[key] as Map : [:]
                def host = newHost(image.subMap(['width', 'height', 'name', 'mpp', 'regions']).findAll { it.value != null })
                if (image.raw) {
                    host.rgb = new File(image.raw as String).bytes
                }
                Map r = runWorkflow(settingsFor(image.model ? ["model=${image.model}".toString()] : []), host)
                File f = new File(config.outDir as String, key ? "groovy-features-${key}.json" : 'groovy-features.json')
                f.text = Json.write(host.applied)
                r.featuresFile = f.path
                out[name] = r
                break
            case 'detections':
                def host = newHost()
                Map r = runWorkflow(settingsFor(['objectType=detection']), host)
                r.objectTypes = host.applied.collectMany { it.features }.collect { it.get('properties').objectType }.unique()
                r.withNucleus = host.applied.collectMany { it.features }.count { it.nucleusGeometry != null }
                r.summaryKeys = host.applied ? host.applied[0].summary.keySet().toList() : []
                out[name] = r
                break
            case 'tta':
                // tta=2 reaches the daemon as options.testTimeAugmentation; the plan says what was used
                out[name] = runWorkflow(settingsFor(['tta=2']), newHost())
                break
            case 'keepFaint':
                // keepFaint=true reaches the daemon as options.postprocess.meanCellprobThreshold = null
                out[name] = runWorkflow(settingsFor(['keepFaint=true']), newHost())
                break
            case 'askPixelSize':
                // the image has no pixel size: the host is asked, its answer is used
                def host = newHost(mpp: null, pixelSizeAnswer: config.modelMpp as Double)
                def s = settingsFor()
                s.pixelSize = null
                out[name] = runWorkflow(s, host)
                break
            case 'missingPixelSize':
                def host = newHost(mpp: null, pixelSizeAnswer: null)
                def s = settingsFor()
                s.pixelSize = null
                out[name] = runWorkflow(s, host)
                break
            case 'cancel':
                def wfRef = null
                def host = newHost(readDelayMs: 300)
                host.onRead = { Map tile ->
                    if (host.tilesRead.size() == 1) {
                        wfRef.cancel()
                    }
                }
                out[name] = runWorkflow(settingsFor(['maxTilesInFlight=1']), host) { wf -> wfRef = wf }
                break
            case 'killed':
                def host = newHost(readDelayMs: 400)
                host.onRead = { Map tile ->
                    if (host.tilesRead.size() == 2) {
                        println 'READY_TO_KILL'
                        System.out.flush()
                    }
                }
                def s = settingsFor(['maxTilesInFlight=1', "server=${config.kill.server}".toString()])
                s.token = config.kill.token
                out[name] = runWorkflow(s, host)
                break
            case 'qupath':
                // the QuPath layer itself (entry scripts, bootstrap, adapter) on the real QuPath classes
                Binding b = new Binding()
                b.setVariable('headless', new File(config.qupathHeadless as String))
                b.setVariable('root', root)
                b.setVariable('config', config)
                b.setVariable('pixels', pixels)
                out[name] = new GroovyShell(this.class.classLoader, b).evaluate(new File(root, 'test/groovy/QuPathScenario.groovy'))
                break
            case 'classpath':
                // what the scripts' class loader sees: this JVM's class path (the mocha test makes it QuPath's)
                Map probe = [:]
                ['groovy.json.JsonOutput', 'groovy.text.SimpleTemplateEngine', 'groovy.sql.Sql', 'groovy.xml.XmlSlurper',
                 'com.google.gson.Gson', 'qupath.lib.objects.PathObject', 'org.codehaus.groovy.jsr223.GroovyScriptEngineImpl'].each { String c ->
                    try {
                        Class.forName(c, false, t.loader)
                        probe[c] = true
                    } catch (ClassNotFoundException ignored) {
                        probe[c] = false
                    }
                }
                // every class of lib/ and the three entry scripts compile on this class path (this Groovy)
                File lib = new File(root, 'qupath-scripts/lib')
                List<String> compiled = []
                Map<String, String> compileErrors = [:]
                lib.eachFileRecurse { File f ->
                    if (f.name.endsWith('.groovy')) {
                        String cls = lib.toPath().relativize(f.toPath()).toString().replace(File.separator, '.') - ~/\.groovy$/
                        try {
                            t.loader.loadClass(cls)
                            compiled << cls
                        } catch (Throwable e) {
                            compileErrors[cls] = e.toString()
                        }
                    }
                }
                ['Detect_cells.groovy', 'Run_for_project.groovy', 'Cell_Bridge_menu.groovy'].each { String s ->
                    try {
                        new GroovyShell(t.loader).parse(new File(root, "qupath-scripts/${s}"))
                        compiled << s
                    } catch (Throwable e) {
                        compileErrors[s] = e.toString()
                    }
                }
                out[name] = [groovy: GroovySystem.version, java: System.getProperty('java.version'),
                             compiled: compiled.sort(), compileErrors: compileErrors,
                             classPath: System.getProperty('java.class.path').split(File.pathSeparator).toList(), loads: probe]
                break
            case 'unknownModel':
                out[name] = runWorkflow(settingsFor(['model=no-such-model']), newHost())
                break
            case 'emptyRoi':
                // a zero-area polygon (caught by the client) and one wholly outside the image (daemon's EmptyRoi)
                def flat = newHost(regions: [[id: 'flat', label: 'flat line', geometry:
                    [type: 'Polygon', coordinates: [[[10, 10], [50, 10], [90, 10], [10, 10]]]]]])
                def outside = newHost(regions: [[id: 'out', label: 'outside', geometry:
                    [type: 'Polygon', coordinates: [[[-500, -500], [-400, -500], [-400, -400], [-500, -400], [-500, -500]]]]]])
                out[name] = [flat: runWorkflow(settingsFor(), flat), outside: runWorkflow(settingsFor(), outside)]
                break
            case 'versionMismatch':
                def c = Client.newInstance(config.server as String, config.token as String)
                c.protocolVersion = '3.0'
                try {
                    c.connect()
                    c.initialize()
                    out[name] = [thrown: false]
                } catch (Exception e) {
                    out[name] = [thrown: true, code: e.hasProperty('code') ? e.code : null, message: e.message]
                } finally {
                    c.close()
                }
                break
            case 'unit':
                // the daemon-free checks, in this JVM: prints its own line "UNIT_RESULT {json}"
                Binding b = new Binding()
                b.setVariable('args', [root.path] as String[])
                b.setVariable('resultPrefix', 'UNIT_RESULT ')
                new GroovyShell(this.class.classLoader, b).evaluate(new File(root, 'test/groovy/UnitTests.groovy'))
                out[name] = [ran: true]
                break
            case 'badToken':
                // against the second daemon (config.kill), which runs with a token
                def s = settingsFor(["server=${config.kill.server}".toString()])
                s.token = 'wrong-token'
                out[name] = runWorkflow(s, newHost())
                break
            case 'absent':
                ServerSocket probe = new ServerSocket(0)
                int port = probe.localPort
                probe.close()
                out[name] = runWorkflow(settingsFor(["server=127.0.0.1:${port}".toString()]), newHost())
                break
            default:
                out[name] = [error: "unknown scenario ${name}"]
        }
    } catch (Throwable e) {
        StringWriter sw = new StringWriter()
        e.printStackTrace(new PrintWriter(sw))
        out[name] = [error: e.toString(), stack: sw.toString().readLines().take(15).join('\n')]
    }
}
println 'RESULT ' + Json.write(out)
System.out.flush()
