// Unit checks of qupath-scripts/lib that need no daemon: settings, tile frames, results, messages,
// connection errors. Also run by DaemonTests.groovy's 'unit' scenario.
// Run: java -cp "<QuPath's class path>" groovy.ui.GroovyMain test/groovy/UnitTests.groovy REPO_ROOT
// (no groovy-json there: JSON goes through lib's cellbridge.Json, on Gson)

import java.awt.image.BufferedImage
import java.nio.ByteBuffer

File root = new File(args[0]).canonicalFile
Class support = evaluate(new File(root, 'test/groovy/TestSupport.groovy'))
def t = support.newInstance(root)
Class Settings = t.cls('Settings')
Class TileFrames = t.cls('TileFrames')
Class Results = t.cls('Results')
Class Messages = t.cls('Messages')
Class ErrorCodes = t.cls('ErrorCodes')
Class Client = t.cls('CellBridgeClient')
Class CellBridgeException = t.cls('CellBridgeException')
Class Json = t.cls('Json')

t.check('settings: defaults') {
    def s = Settings.resolve([], null, [:], new Properties())
    t.eq(s.server, 'ws://127.0.0.1:8765/')
    t.eq(s.token, null)
    t.eq(s.objectType, 'cell')
    t.eq(s.maxTilesInFlight, 4)
    t.eq(s.save, true)
}

t.check('settings: server forms are normalised') {
    t.eq(Settings.normalizeServer('gpu-box'), 'ws://gpu-box:8765/')
    t.eq(Settings.normalizeServer('gpu-box:9000'), 'ws://gpu-box:9000/')
    t.eq(Settings.normalizeServer('http://10.0.0.5:9000'), 'ws://10.0.0.5:9000/')
    t.eq(Settings.normalizeServer('wss://host.example/cb'), 'wss://host.example:8765/cb')
    t.eq(Settings.normalizeServer(' ws://127.0.0.1:8765/ '), 'ws://127.0.0.1:8765/')
}

t.check('settings: args > system properties > environment > properties file') {
    File dir = File.createTempDir()
    new File(dir, 'cellbridge.properties').text = 'server=filehost:1\ntoken=filetoken\nmodel=filemodel\nroi=all\n'
    Properties sys = new Properties()
    sys.setProperty('cellbridge.model', 'sysmodel')
    sys.setProperty('cellbridge.roi', 'image')
    Map env = [CELLBRIDGE_TOKEN: 'envtoken', CELLBRIDGE_MODEL: 'envmodel', CELLBRIDGE_MAX_TILES_IN_FLIGHT: '8']
    def s = Settings.resolve(['roi=selected', '--pixelSize=0.25'] as String[], dir, env, sys)
    t.eq(s.server, 'ws://filehost:1/')
    t.eq(s.token, 'envtoken')
    t.eq(s.model, 'sysmodel')
    t.eq(s.roi, 'selected')
    t.eq(s.pixelSize, 0.25d)
    t.eq(s.maxTilesInFlight, 8)
    dir.deleteDir()
}

t.check('settings: bad values give a message naming the key') {
    def e1 = t.expectThrows(CellBridgeException) { Settings.resolve(['roi=everything'], null, [:], new Properties()) }
    t.ok(e1.message.contains('roi=everything') && e1.message.contains('selected, all, image'), e1.message)
    def e2 = t.expectThrows(CellBridgeException) { Settings.resolve(['pixelSize=-1'], null, [:], new Properties()) }
    t.ok(e2.message.contains('pixelSize'), e2.message)
    def e3 = t.expectThrows(CellBridgeException) { Settings.resolve(['colour=red'], null, [:], new Properties()) }
    t.ok(e3.message.contains('Unknown script argument') && e3.message.contains('model'), e3.message)
    def e4 = t.expectThrows(CellBridgeException) { Settings.resolve(['model'], null, [:], new Properties()) }
    t.ok(e4.message.contains('key=value'), e4.message)
    t.eq(e4.code, ErrorCodes.BAD_SETTING)
    def e5 = t.expectThrows(CellBridgeException) { Settings.resolve(['tta=3'], null, [:], new Properties()) }
    t.ok(e5.message.contains('tta=3') && e5.message.contains('1, 2, 4 or 8'), e5.message)
    t.eq(Settings.resolve(['tta=8'], null, [:], new Properties()).tta, 8)
    t.eq(Settings.resolve([], null, [:], new Properties()).tta, 0)
    t.eq(Settings.resolve(['keepFaint=true'], null, [:], new Properties()).keepFaint, true)
    t.eq(Settings.resolve(['keepFaint=no'], null, [:], new Properties()).keepFaint, false)
    t.eq(Settings.resolve([], null, [:], new Properties()).keepFaint, false)
    // every yes/no setting reads the same words, and a word it does not know is an error, not a silent default
    t.eq(Settings.resolve(['save=OFF', 'autostart=no', 'keepFaint=Yes'], null, [:], new Properties()).with { [save, autostart, keepFaint] },
        [false, false, true])
    t.eq(Settings.resolve(['save=', 'autostart= '], null, [:], new Properties()).with { [save, autostart] }, [true, true])
    ['save', 'autostart', 'keepFaint'].each { key ->
        def e = t.expectThrows(CellBridgeException) { Settings.resolve(["${key}=maybe".toString()], null, [:], new Properties()) }
        t.ok(e.message.contains("${key}=maybe") && e.message.contains('true or false'), e.message)
        t.eq(e.code, ErrorCodes.BAD_SETTING)
    }
    // the option that turns the filter off must reach the daemon as a JSON null, not be left out
    t.eq(Json.write([postprocess: [meanCellprobThreshold: null]]), '{"postprocess":{"meanCellprobThreshold":null}}')
}

t.check('frames: ARGB32 header and pixels are big-endian, as the protocol lays out') {
    int[] px = [0xff102030, 0x00a0b0c0, 0x7f010203, 0xffffffff] as int[]
    ByteBuffer f = TileFrames.pack(7L, 0xfffffffeL, 2, 2, px, 'argb32')
    byte[] b = new byte[f.remaining()]
    f.duplicate().get(b)
    t.eq(b.length, 24 + 16)
    t.eq(new String(b, 0, 4, 'US-ASCII'), 'CBT1')
    t.eq(b[4], (byte) 1, 'header version')
    t.eq(b[5], (byte) 2, 'format ARGB32')
    t.eq(b[6] as int, 0)
    t.eq(b[7] as int, 0)
    t.eq(b[8..11].collect { it & 0xff }, [0, 0, 0, 7], 'job id')
    t.eq(b[12..15].collect { it & 0xff }, [0xff, 0xff, 0xff, 0xfe], 'tile id uint32')
    t.eq(b[16..19].collect { it & 0xff }, [0, 0, 0, 2], 'width')
    t.eq(b[20..23].collect { it & 0xff }, [0, 0, 0, 2], 'height')
    t.eq(b[24..27].collect { it & 0xff }, [0xff, 0x10, 0x20, 0x30], 'first pixel')
    t.eq(b[28..31].collect { it & 0xff }, [0x00, 0xa0, 0xb0, 0xc0], 'second pixel')
    def h = TileFrames.readHeader(f)
    t.eq(h.tileId, 0xfffffffeL)
    t.eq(h.bytes, 40)
}

t.check('frames: RGB8 drops alpha, 3 bytes per pixel') {
    int[] px = [0xff102030, 0x00a0b0c0] as int[]
    ByteBuffer f = TileFrames.pack(1, 2, 2, 1, px, 'rgb8')
    byte[] b = new byte[f.remaining()]
    f.get(b)
    t.eq(b.length, 24 + 6)
    t.eq(b[5], (byte) 1, 'format RGB8')
    t.eq(b[24..29].collect { it & 0xff }, [0x10, 0x20, 0x30, 0xa0, 0xb0, 0xc0])
}

t.check('frames: wrong pixel count or format is refused before sending') {
    t.expectThrows(IllegalArgumentException) { TileFrames.pack(1, 1, 2, 2, new int[3], 'argb32') }
    t.expectThrows(IllegalArgumentException) { TileFrames.pack(1, 1, 0, 2, new int[0], 'argb32') }
    t.expectThrows(IllegalArgumentException) { TileFrames.pack(1, 1, 1, 1, new int[1], 'bgr') }
}

t.check('frames: BufferedImage of the planned size is passed through; another size is refused, never resized') {
    BufferedImage img = new BufferedImage(3, 2, BufferedImage.TYPE_INT_RGB)
    img.setRGB(0, 0, 0x123456)
    img.setRGB(2, 1, 0xabcdef)
    int[] same = TileFrames.toArgb(img, 3, 2)
    t.eq(same.length, 6)
    t.eq(same[0] & 0xffffff, 0x123456)
    t.eq(same[5] & 0xffffff, 0xabcdef)
    BufferedImage solid = new BufferedImage(5, 5, BufferedImage.TYPE_3BYTE_BGR)
    def g = solid.createGraphics()
    g.color = new java.awt.Color(200, 100, 50)
    g.fillRect(0, 0, 5, 5)
    g.dispose()
    t.expectThrows(IllegalStateException) { TileFrames.toArgb(solid, 4, 6) }
    t.expectThrows(IllegalStateException) { TileFrames.toArgb(solid, 5, 6) } // no slack at full resolution
    t.eq(TileFrames.toArgb(solid, 5, 6, 1).length, 25) // a pyramid level's edge tile, 1 px short: sent as read
    t.expectThrows(IllegalStateException) { TileFrames.toArgb(solid, 5, 7, 1) }
}

t.check('results: polygon area with a hole, multipolygon, open rings') {
    Map square = [type: 'Polygon', coordinates: [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]]
    t.eq(Results.area(square), 100d)
    Map holed = [type: 'Polygon', coordinates: [[[0, 0], [10, 0], [10, 10], [0, 10]], [[2, 2], [2, 4], [4, 4], [4, 2]]]]
    t.eq(Results.area(holed), 96d)
    Map multi = [type: 'MultiPolygon', coordinates: [square.coordinates, [[[20, 20], [30, 20], [30, 25], [20, 25]]]]]
    t.eq(Results.area(multi), 150d)
    t.eq(Results.area(null), 0d)
}

t.check('results: only area geometries are usable ROIs') {
    t.eq(Results.areaGeometry([type: 'Feature', geometry: [type: 'Point', coordinates: [1, 2]]]), [:])
    t.eq(Results.areaGeometry([type: 'Feature', geometry: [type: 'LineString', coordinates: [[1, 2], [3, 4]]]]), [:])
    Map poly = [type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]]]]
    t.eq(Results.areaGeometry([type: 'Feature', geometry: poly]), poly)
    def coll = Results.areaGeometry([type: 'GeometryCollection', geometries: [poly, [type: 'Point', coordinates: [0, 0]]]])
    t.eq(coll.type, 'MultiPolygon')
    t.eq(coll.coordinates.size(), 1)
}

t.check('results: marker measurement and FeatureCollection for GsonTools') {
    List features = [[type: 'Feature', id: 'a', geometry: [type: 'Polygon', coordinates: []],
                      properties: [objectType: 'cell', classification: [name: 'Epithelial', color: [220, 0, 0]],
                                   measurements: ['Nucleus: Area µm^2': 31.4d]]],
                     [type: 'Feature', id: 'b', geometry: [type: 'Polygon', coordinates: []], properties: [:]]]
    Results.mark(features)
    t.eq(features[0].get('properties').measurements.cellbridge, 1)
    t.eq(features[0].get('properties').measurements['Nucleus: Area µm^2'], 31.4d)
    t.eq(features[1].get('properties').measurements.cellbridge, 1)
    t.ok(Results.isCellBridgeObject(features[0].get('properties').measurements), 'marked')
    t.ok(!Results.isCellBridgeObject(['Nucleus: Area µm^2': 3d]), 'a user cell is not ours')
    def parsed = Json.parse(Results.featureCollection(features))
    t.eq(parsed.type, 'FeatureCollection')
    t.eq(parsed.features.size(), 2)
    t.eq(parsed.features[0].get('properties').measurements['Nucleus: Area µm^2'], 31.4)
}

t.check('results: summary counts, percentages and densities per mm²') {
    Closure cell = { String cls -> [type: 'Feature', properties: [classification: [name: cls, color: [0, 0, 0]]]] }
    List features = [cell('Epithelial'), cell('Epithelial'), cell('Epithelial'), cell('Inflammatory')]
    // 2000 x 1000 px at 0.5 µm/px = 1000 x 500 µm = 0.5 mm²
    Map rect = [type: 'Polygon', coordinates: [[[0, 0], [2000, 0], [2000, 1000], [0, 1000], [0, 0]]]]
    Map s = Results.summary(features, rect, 0.5d, ['Other', 'Inflammatory', 'Epithelial', 'Spindle'])
    t.eq(s['Cell Bridge: Num cells'], 4d)
    t.eq(s['Cell Bridge: Num Epithelial'], 3d)
    t.eq(s['Cell Bridge: Num Other'], 0d)
    t.eq(s['Cell Bridge: Epithelial %'], 75d)
    t.eq(s['Cell Bridge: Inflammatory %'], 25d)
    t.eq(s['Cell Bridge: Area mm^2'], 0.5d)
    t.eq(s['Cell Bridge: Cells per mm^2'], 8d)
    t.eq(s['Cell Bridge: Epithelial per mm^2'], 6d)
    t.eq(s.keySet().toList().take(2), ['Cell Bridge: Num cells', 'Cell Bridge: Num Other'])
    Map noSize = Results.summary([], rect, null, ['A'], 'detection')
    t.eq(noSize['Cell Bridge: Num detections'], 0d)
    t.ok(Double.isNaN(noSize['Cell Bridge: A %']), 'percentage of nothing is NaN')
    t.ok(!noSize.containsKey('Cell Bridge: Detections per mm^2'), 'no density without pixel size')
    t.eq(Results.summaryKeys(['Cell Bridge: Num A', 'Area µm^2', 'cellbridge']), ['Cell Bridge: Num A'])
}

t.check('messages: progress line and durations') {
    t.eq(Messages.progress([tilesDone: 3, tilesTotal: 40, cells: 1234, etaMs: 65000]),
        'Tiles 3/40 · 1,234 cells · about 1 min 5 s left')
    t.eq(Messages.progress([tilesDone: 0, tilesTotal: 40, cells: 0, etaMs: null]), 'Tiles 0/40 · 0 cells')
    t.eq(Messages.duration(400), '0 s')
    t.eq(Messages.duration(7_260_000), '2 h 1 min')
}

t.check('json (Gson, no groovy-json): round trip keeps types and exact numbers; bad text is a ParseException') {
    String who = 'cells'
    String text = Json.write([a: 1, big: 12345678901L, x: 0.1d, s: "${who} µm²", n: null, ok: true, list: [1, [2.5]], arr: [1, 2] as int[]])
    t.eq(text, '{"a":1,"big":12345678901,"x":0.1,"s":"cells µm²","n":null,"ok":true,"list":[1,[2.5]],"arr":[1,2]}')
    Map back = Json.parse(text) as Map
    t.eq(back.a.getClass(), Integer)
    t.eq(back.big.getClass(), Long)
    t.eq(back.x, 0.1G)
    t.eq(back.s, 'cells µm²')
    t.ok(back.containsKey('n') && back.n == null, 'null kept')
    t.eq(back.list, [1, [2.5G]])
    t.eq(Json.write([v: Double.NaN]), '{"v":NaN}')
    [' {"a": ', '{"a":1} {"b":2}', 'not json', '[1,]x'].each { String bad ->
        t.expectThrows(t.cls('Json$ParseException')) { Json.parse(bad) }
    }
    t.expectThrows(IllegalArgumentException) { Json.write([o: new Object()]) }
}

t.check('daemon launcher: only for loopback servers with an install; a daemon that exits is reported with its log') {
    Class Launcher = t.cls('DaemonLauncher')
    File fake = File.createTempDir()
    new File(fake, 'dist/bridge').mkdirs()
    new File(fake, 'dist/bridge/cli.js').text = 'console.error("listen EADDRINUSE: port taken"); process.exit(3)'
    new File(fake, 'node_modules').mkdirs()
    File scriptsDir = new File(fake, 'qupath-scripts')
    scriptsDir.mkdirs()
    Closure settings = { List<String> a -> Settings.resolve(a, scriptsDir, [:], new Properties()) }
    t.eq(Launcher.forSettings(settings(['server=gpu-box:8765'])), null, 'a remote server is never started')
    t.eq(Launcher.forSettings(settings(['autostart=false'])), null, 'autostart=false')
    t.eq(Launcher.forSettings(settings(["install=${scriptsDir}".toString()])), null, 'no CLI there')
    def l = Launcher.forSettings(settings(['server=127.0.0.1:1', "daemonLog=${fake}/d.log".toString(), 'token=t0ken-secret']))
    t.eq(l.install, fake, 'the folder above the scripts folder')
    t.eq(l.command().drop(1), [new File(fake, 'dist/bridge/cli.js').path, 'serve', '--host', '127.0.0.1', '--port', '1'])
    def e = t.expectThrows(CellBridgeException) { l.startAndConnect { -> false } }
    t.eq(e.code, ErrorCodes.DAEMON_NOT_RUNNING)
    t.ok(e.message.contains('could not start its daemon') && e.message.contains('exit code 3') &&
        e.message.contains('EADDRINUSE'), e.message)
    t.ok(!new File(fake, 'd.log').text.contains('t0ken-secret'), 'no token in the log')
    def missing = Launcher.forSettings(settings(['server=127.0.0.1:1', 'node=/no/such/node', "daemonLog=${fake}/e.log".toString()]))
    t.ok(t.expectThrows(CellBridgeException) { missing.start() }.message.contains("cannot run '/no/such/node'"), 'no node')
    new File(fake, 'node_modules').deleteDir()
    t.ok(t.expectThrows(CellBridgeException) { missing.start() }.message.contains('not installed yet'), 'npm ci not run')
    fake.deleteDir()
}

t.check('client: protocol MAJOR parsing') {
    t.eq(Client.major('1.0'), 1)
    t.eq(Client.major('12.3'), 12)
    t.eq(Client.major('1'), null)
    t.eq(Client.major(null), null)
}

t.check('client: nothing listening gives the start command') {
    ServerSocket probe = new ServerSocket(0)
    int port = probe.localPort
    probe.close()
    def s = Settings.resolve(["server=127.0.0.1:${port}"], null, [:], new Properties())
    def e = t.expectThrows(CellBridgeException) { Client.open(s) }
    t.eq(e.code, ErrorCodes.DAEMON_NOT_RUNNING)
    t.ok(e.message.contains("ws://127.0.0.1:${port}/"), e.message)
    t.ok(e.message.contains('npx cellbridge serve'), e.message)
    t.ok(e.message.contains('docker run'), e.message)
    t.extra.daemonAbsentMessage = e.message
}

/** A one-shot HTTP server answering the WebSocket upgrade with the given status line. */
Closure httpAnswer = { String statusLine ->
    ServerSocket server = new ServerSocket(0, 5, InetAddress.getByName('127.0.0.1'))
    Thread.startDaemon {
        server.accept().withCloseable { sock ->
            sock.inputStream.read(new byte[4096])
            sock.outputStream << "HTTP/1.1 ${statusLine}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            sock.outputStream.flush()
        }
    }
    def s = Settings.resolve(["server=127.0.0.1:${server.localPort}"], null, [:], new Properties())
    try {
        return t.expectThrows(CellBridgeException) { Client.open(s) }
    } finally {
        server.close()
    }
}

t.check('client: an HTTP server that is not a daemon is named as such') {
    def e = httpAnswer('200 OK')
    t.eq(e.code, ErrorCodes.NOT_A_DAEMON)
    t.ok(e.message.contains('not a Cell Bridge daemon') && e.message.contains('200'), e.message)
}

t.check('client: upgrade refused with 401 (token) or 503 (busy, stopping) says so') {
    def e401 = httpAnswer('401 Unauthorized')
    t.eq(e401.code, ErrorCodes.UNAUTHORIZED)
    t.ok(e401.message.contains('refused the token') && e401.message.contains('token='), e401.message)
    def e503 = httpAnswer('503 Service Unavailable')
    t.eq(e503.code, ErrorCodes.DAEMON_BUSY)
    t.ok(e503.message.contains('HTTP 503') && e503.message.contains('Try again'), e503.message)
}

t.check('messages: a server limit gets a hint to analyse smaller regions') {
    String m = Messages.forServerError([code: -32016, message: 'The ROIs cover 9e9 px, more than maxRoiAreaPixels (4e9).'], 'job/start')
    t.ok(m.startsWith('The ROIs cover') && m.contains('smaller annotations'), m)
}

// DaemonTests.groovy runs this file in its own JVM (one start-up less) and asks for another prefix.
t.report(binding.hasVariable('resultPrefix') ? binding.getVariable('resultPrefix') as String : 'RESULT ')
