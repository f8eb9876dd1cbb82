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
// Finds the Cell Bridge scripts folder and loads the shared code in its lib/ folder.
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
// lib/load.groovy compiles lib/cellbridge once per version of its files (not at every click) and loads it
Class cellBridge = new GroovyShell(getClass().classLoader, new Binding(cellBridgeLib: new File(cellBridgeHome, 'lib'),
    scriptLoader: getClass().classLoader)).evaluate(new File(cellBridgeHome, 'lib/load.groovy')) as Class
// ---- end of bootstrap ---------------------------------------------------------------------------------------
cellBridge.detectCells(this, cellBridgeHome)
