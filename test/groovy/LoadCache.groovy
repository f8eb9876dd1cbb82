// The class cache of qupath-scripts/lib/load.groovy in a scratch home: the first run compiles into
// ~/.cellbridge/classes/<stamp>, the second reuses it; versions unused for 30 days and staging folders older
// than a day are deleted, recent ones kept. Prints RESULT {json} (Gson: QuPath's class path).
// Run: java -cp "<QuPath's class path>" groovy.ui.GroovyMain test/groovy/LoadCache.groovy REPO_ROOT
import com.google.gson.Gson

import java.nio.file.Files

File root = new File(args[0]).canonicalFile
File home = Files.createTempDirectory('cellbridge-home-').toFile()
Map result = [:]
try {
    System.setProperty('user.home', home.path)
    File cache = new File(home, '.cellbridge/classes')
    cache.mkdirs()
    long day = 24L * 3600 * 1000
    long now = System.currentTimeMillis()
    Map<String, Long> planted = ['old-version': now - 40 * day, 'recent-version': now - 3 * day,
                                 'compiling-stale': now - 2 * day, 'compiling-fresh': now - 600_000L]
    planted.each { String name, Long time ->
        File d = new File(cache, name)
        new File(d, 'cellbridge').mkdirs()
        new File(d, 'cellbridge/X.class').text = 'x'
        d.setLastModified(time)
    }
    Closure load = {
        Binding b = new Binding(cellBridgeLib: new File(root, 'qupath-scripts/lib'), scriptLoader: getClass().classLoader)
        long t0 = System.nanoTime()
        Class adapter = new GroovyShell(b).evaluate(new File(root, 'qupath-scripts/lib/load.groovy')) as Class
        [name: adapter.name, ms: (System.nanoTime() - t0) / 1e6]
    }
    result.first = load()
    result.second = load()
    result.left = cache.listFiles().findAll { it.directory }*.name.sort()
} catch (Throwable e) {
    result.error = e.toString()
} finally {
    home.deleteDir()
}
println 'RESULT ' + new Gson().toJson(result)
