/*
 * Cell Bridge: Detect cells
 *
 * Detects and classifies cells in the selected annotations with the Cell Bridge daemon (when none is
 * selected, offers all annotations of the image). Cells are added as children of their annotation;
 * cells from an earlier Cell Bridge run in that annotation are replaced, nothing else is touched.
 * Each annotation gets "Cell Bridge: ..." measurements: count and percentage per class, cells per mm².
 *
 * Settings (daemon address, token, model): cellbridge.properties next to this script.
 * See README.md, "QuPath scripts: installation".
 */
// ---- Cell Bridge bootstrap (the same lines in each Cell Bridge script; see README.md) ----------------------
// Finds the Cell Bridge scripts folder and loads the shared code in its lib/ folder (compiled once).
List<String> places = []
try {
    places << new File(getProperty('qupath.script.file').toString()).parent // set by QuPath 0.4+ for script files
} catch (MissingPropertyException ignored) {
    places << null // run from an unsaved script editor tab, or not by QuPath's script runner
}
places << System.getProperty('cellbridge.home') << System.getenv('CELLBRIDGE_HOME')
places << new File(System.getProperty('user.home'), 'QuPath/cellbridge').path
File cellBridgeHome = places.findAll().collect { new File(it) }
    .find { new File(it, 'lib/cellbridge/CellBridgeClient.groovy').isFile() }
if (cellBridgeHome == null) {
    throw new IllegalStateException('Cell Bridge: the scripts folder (with lib/cellbridge) was not found in ' +
        places.findAll().join(', ') + '. Copy the qupath-scripts folder to ~/QuPath/cellbridge, or set the ' +
        'CELLBRIDGE_HOME environment variable to its location (see README.md).')
}
// lib/ is compiled once per version of its files (class files in ~/.cellbridge/classes), not at every click
File cellBridgeLib = new File(cellBridgeHome, 'lib')
List<File> cellBridgeSources = []
cellBridgeLib.eachFileRecurse(groovy.io.FileType.FILES) { File f ->
    if (f.name.endsWith('.groovy')) {
        cellBridgeSources << f
    }
}
String cellBridgeStamp = ([cellBridgeLib.canonicalPath, GroovySystem.version] + cellBridgeSources
    .collect { File f -> "${f.path}:${f.lastModified()}:${f.length()}" }.sort()).join('|').md5()
File cellBridgeClasses = new File(System.getProperty('user.home'), ".cellbridge/classes/${cellBridgeStamp}")
if (!new File(cellBridgeClasses, 'cellbridge/qupath/QuPathAdapter.class').isFile()) {
    cellBridgeClasses.parentFile.mkdirs()
    File staging = java.nio.file.Files.createTempDirectory(cellBridgeClasses.parentFile.toPath(), 'compiling-').toFile()
    def compilerConfig = new org.codehaus.groovy.control.CompilerConfiguration(targetDirectory: staging)
    def unit = new org.codehaus.groovy.control.CompilationUnit(compilerConfig, null,
        new GroovyClassLoader(getClass().classLoader))
    cellBridgeSources.each { File f -> unit.addSource(f) }
    try {
        unit.compile()
        staging.renameTo(cellBridgeClasses) // false: another script compiled the same version first
    } finally {
        staging.deleteDir()
    }
}
GroovyClassLoader cellBridgeLoader = new GroovyClassLoader(getClass().classLoader)
cellBridgeLoader.addURL(cellBridgeClasses.toURI().toURL())
Class cellBridge = cellBridgeLoader.loadClass('cellbridge.qupath.QuPathAdapter')
// ---- end of bootstrap ---------------------------------------------------------------------------------------
cellBridge.detectCells(this, cellBridgeHome)
