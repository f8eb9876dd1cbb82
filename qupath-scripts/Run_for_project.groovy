/*
 * Cell Bridge: Run for project
 *
 * Batch cell detection without any selection: every annotation of the image, or the whole image when
 * it has none (then a locked annotation "Cell Bridge: whole image" holds the cells). Saves the image.
 * A failure on one image is printed (line "Cell Bridge FAILED: ...") and the batch goes on.
 *
 * In QuPath: open this script in the script editor, then "Run > Run for project".
 * Command line:
 *   QuPath script -p /path/project.qpproj -a model=cellbridge-he-v1 -a server=gpu-box:8765 -a roi=all Run_for_project.groovy
 * Arguments (-a key=value): server, token, model, roi=all|selected|image, objectType=cell|detection,
 *   pixelSize (µm/px to assume for images without one), minArea, simplify, maxTilesInFlight, save=true|false,
 *   tta=1|2|4|8, keepFaint=true|false.
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
cellBridge.runForProject(this, cellBridgeHome)
