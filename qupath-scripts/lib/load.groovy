// Cell Bridge: loads the shared code of lib/cellbridge for the entry scripts' bootstrap lines (see README.md,
// "How the scripts share code"), which evaluate this file with `cellBridgeLib` (this folder) and `scriptLoader` (the running
// script's class loader) bound, and take the class it returns.
//
// lib/cellbridge/**/*.groovy is compiled once per version of its files, into ~/.cellbridge/classes/<hash of the
// files' paths, dates and sizes and the Groovy version>, not at every click: compiling took 1-4 s per run on a
// busy 2-core machine, loading the compiled classes takes ~0.2 s. Compiled into a staging folder and renamed,
// so scripts running at the same time never see half a cache. Each use marks its folder as used; folders of other
// versions unused for 30 days, and staging folders a crashed compile left, are deleted (pruning never
// fails a run: another QuPath may still be loading from a folder, so only old ones go).
import groovy.io.FileType
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration

import java.nio.file.Files

File sources = new File(cellBridgeLib as File, 'cellbridge')
ClassLoader parentLoader = scriptLoader as ClassLoader
List<File> files = []
sources.eachFileRecurse(FileType.FILES) { File f ->
    if (f.name.endsWith('.groovy')) {
        files << f
    }
}
String stamp = ([sources.canonicalPath, GroovySystem.version] + files
    .collect { File f -> "${f.path}:${f.lastModified()}:${f.length()}" }.sort()).join('|').md5()
File classes = new File(System.getProperty('user.home'), ".cellbridge/classes/${stamp}")
if (!new File(classes, 'cellbridge/qupath/QuPathAdapter.class').isFile()) {
    classes.parentFile.mkdirs()
    File staging = Files.createTempDirectory(classes.parentFile.toPath(), 'compiling-').toFile()
    CompilationUnit unit = new CompilationUnit(new CompilerConfiguration(targetDirectory: staging), null,
        new GroovyClassLoader(parentLoader))
    files.each { File f -> unit.addSource(f) }
    try {
        unit.compile()
        staging.renameTo(classes) // false: another script compiled the same version first
    } finally {
        staging.deleteDir()
    }
}
pruneClassCaches(classes)
GroovyClassLoader loader = new GroovyClassLoader(parentLoader)
loader.addURL(classes.toURI().toURL())
return loader.loadClass('cellbridge.qupath.QuPathAdapter')

/** Marks `current` as used now; deletes sibling versions unused for 30 days and staging folders older than a day. */
void pruneClassCaches(File current) {
    long day = 24L * 3600 * 1000
    int cacheDays = 30
    try {
        long now = System.currentTimeMillis()
        current.setLastModified(now)
        current.parentFile.listFiles()?.each { File f ->
            if (!f.isDirectory() || f == current) {
                return
            }
            long age = now - f.lastModified()
            if (age > (f.name.startsWith('compiling-') ? day : cacheDays * day)) {
                f.deleteDir()
            }
        }
    } catch (IOException | SecurityException ignored) {
        // A cache that cannot be pruned costs disk space, not a detection.
    }
}
