// Shared by the Groovy test scripts: loads qupath-scripts/lib exactly as the QuPath scripts do
// (GroovyClassLoader + addClasspath), runs named checks, prints one JSON line of results.
// Use:  def t = evaluate(new File(root, 'test/groovy/TestSupport.groovy')).newInstance(root)

class Harness {

    final File repoRoot
    final GroovyClassLoader loader
    final List<Map> results = []
    final Map extra = [:]

    Harness(File repoRoot) {
        this.repoRoot = repoRoot
        loader = new GroovyClassLoader(Harness.classLoader)
        loader.addClasspath(new File(repoRoot, 'qupath-scripts/lib').absolutePath)
    }

    Class cls(String simpleName) {
        return loader.loadClass("cellbridge.${simpleName}")
    }

    void check(String name, Closure body) {
        long t0 = System.currentTimeMillis()
        try {
            body.call()
            results << [name: name, ok: true, ms: System.currentTimeMillis() - t0]
        } catch (Throwable e) {
            StringWriter sw = new StringWriter()
            e.printStackTrace(new PrintWriter(sw))
            results << [name: name, ok: false, error: e.toString(), stack: sw.toString().readLines().take(12).join('\n'),
                        ms: System.currentTimeMillis() - t0]
        }
    }

    static void eq(Object actual, Object expected, String what = '') {
        if (actual != expected) {
            throw new AssertionError("${what ? what + ': ' : ''}expected <${expected}> but got <${actual}>")
        }
    }

    static void ok(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what)
        }
    }

    static Throwable expectThrows(Class type, Closure body) {
        try {
            body.call()
        } catch (Throwable e) {
            if (type.isInstance(e)) {
                return e
            }
            throw new AssertionError("expected ${type.simpleName} but got ${e}", e)
        }
        throw new AssertionError("expected ${type.simpleName}, nothing was thrown")
    }

    /** Prints the results as one line prefixed by RESULT (stdout may hold other lines). */
    void report(String prefix = 'RESULT ') {
        println prefix + cls('Json').write([results: results, extra: extra])
        System.out.flush()
    }

}

return Harness
