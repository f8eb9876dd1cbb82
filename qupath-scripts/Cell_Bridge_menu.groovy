/*
 * Cell Bridge: menu (startup script)
 *
 * Adds Extensions > Cell Bridge > Detect cells, Check connection and Stop daemon to QuPath's menu bar.
 * Make it run at every start: Edit > Preferences > General > "Startup script path" (QuPath 0.5/0.6),
 * pointing to this file. Running it once from the script editor also adds the menu until QuPath quits.
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
cellBridge.installMenu(cellBridgeHome)
