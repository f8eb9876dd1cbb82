package cellbridge

/**
 * Starts the Cell Bridge daemon for a pathologist who has no terminal open: when nothing answers at a
 * loopback address and a Cell Bridge install is found (setting {@code install}, the folder above the
 * scripts folder, ~/Documents/CellBridge, ~/CellBridge or ~/cellbridge), runs
 * {@code node dist/bridge/cli.js serve --host H --port P} there,
 * detached from QuPath (it outlives it; stop it with Extensions > Cell Bridge > Stop daemon), logging to
 * a file, with the token of the settings (given as CELLBRIDGE_TOKEN, never on the command line), and
 * waits until it answers {@code initialize}. Plain Java/Groovy: tested without QuPath.
 */
class DaemonLauncher {

    static final String CLI = 'dist/bridge/cli.js'

    final Settings settings
    final File install
    final String host
    final int port
    final File logFile
    Closure log = { String line -> }

    private DaemonLauncher(Settings settings, File install, String host, int port, File logFile) {
        this.settings = settings
        this.install = install
        this.host = host
        this.port = port
        this.logFile = logFile
    }

    /**
     * A launcher for these settings, or null when the scripts must not start a daemon: autostart=false,
     * the server is not on this computer or is a wss:// proxy, or no install is found
     * (then the caller's "cannot reach" message stands).
     */
    static DaemonLauncher forSettings(Settings settings) {
        if (!settings.autostart) {
            return null
        }
        URI uri = URI.create(settings.server)
        // wss:// is a TLS proxy's address (docs/scaling.md): a daemon started here would not speak TLS
        if (!isLoopbackHost(uri.host) || uri.scheme == 'wss') {
            return null
        }
        File install = findInstall(settings)
        if (install == null) {
            return null
        }
        int port = uri.port > 0 ? uri.port : 8765
        // never `file ?: x` nor `if (file)`: Groovy 5 (QuPath 0.7) makes a File's truth its exists()
        File logFile = settings.daemonLog != null ? settings.daemonLog :
            new File(System.getProperty('user.home'), ".cellbridge/daemon-${port}.log")
        return new DaemonLauncher(settings, install, uri.host, port, logFile)
    }

    static boolean isLoopbackHost(String host) {
        String h = host?.replaceAll(/^\[|\]$/, '')
        return h == 'localhost' || h == '::1' || h ==~ /127\.\d+\.\d+\.\d+/
    }

    /**
     * The setting {@code install}, else the folder holding the scripts folder, else the places the guide suggests
     * (~/Documents/CellBridge, ~/CellBridge, ~/cellbridge); it must hold the CLI.
     */
    static File findInstall(Settings settings) {
        List<File> places = []
        if (settings.install != null) {
            places << settings.install
        } else {
            String userHome = System.getProperty('user.home')
            places << settings.home?.absoluteFile?.parentFile
            places += ['Documents/CellBridge', 'CellBridge', 'cellbridge'].collect { new File(userHome, it) }
        }
        return places.find { File f -> f != null && new File(f, CLI).isFile() }
    }

    /** The Node.js executable: the setting {@code node}, else the PATH, else the usual install places. */
    String nodeExecutable() {
        if (settings.node) {
            return settings.node
        }
        boolean windows = System.getProperty('os.name', '').toLowerCase(Locale.ROOT).contains('win')
        String exe = windows ? 'node.exe' : 'node'
        List<File> candidates = (System.getenv('PATH') ?: '').split(File.pathSeparator).findAll().collect { new File(it, exe) }
        String programFiles = System.getenv('ProgramFiles') ?: 'C:/Program Files'
        candidates += windows ? [new File(programFiles, 'nodejs/node.exe')] :
            ['/usr/local/bin/node', '/opt/homebrew/bin/node', '/usr/bin/node'].collect { new File(it) }
        File found = candidates.find { File f -> f.isFile() && f.canExecute() }
        return found?.path ?: exe
    }

    List<String> command() {
        List<String> cmd = [nodeExecutable(), new File(install, CLI).path, 'serve',
                            '--host', host, '--port', String.valueOf(port), ]
        if (settings.daemonArgs) {
            cmd.addAll(settings.daemonArgs.trim().split(/\s+/) as List<String>)
        }
        return cmd
    }

    /** Starts the daemon process (output appended to the log file); throws CellBridgeException when it cannot. */
    Process start() {
        if (!new File(install, 'node_modules').isDirectory()) {
            throw new CellBridgeException(ErrorCodes.DAEMON_NOT_RUNNING, Messages.daemonStartFailed(install, logFile,
                'it is not installed yet: double-click deploy/start-cellbridge in that folder once (it installs), ' +
                'or run `npm ci` there', null))
        }
        logFile.parentFile?.mkdirs()
        List<String> cmd = command()
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(install).redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile))
            .redirectInput(ProcessBuilder.Redirect.from(new File(File.separator == '\\' ? 'NUL' : '/dev/null')))
        if (settings.token) {
            pb.environment().put('CELLBRIDGE_TOKEN', settings.token)
        }
        logFile.append("---- ${new Date()}: started by the QuPath scripts: ${cmd.join(' ')}\n", 'UTF-8')
        try {
            Process p = pb.start()
            logFile.append("---- pid ${p.pid()}\n", 'UTF-8')
            log("started the daemon (pid ${p.pid()}) in ${install}, log ${logFile}")
            return p
        } catch (IOException e) {
            throw new CellBridgeException(ErrorCodes.DAEMON_NOT_RUNNING, Messages.daemonStartFailed(install, logFile,
                "cannot run '${cmd[0]}': ${e.message}. Install Node.js 20+ or set node=PATH in " +
                Settings.PROPERTIES_FILE, null), e)
        }
    }

    /**
     * Starts the daemon and connects to it once it answers; {@code cancelled} is polled while waiting.
     * A daemon that exits early (port taken by another one that started meanwhile, a broken install) is
     * reported with the end of its log, unless another daemon answers at the address after all.
     */
    CellBridgeClient startAndConnect(Closure<Boolean> cancelled) {
        Process process = start()
        long deadline = System.currentTimeMillis() + settings.startTimeoutSeconds * 1000L
        Settings quick = copyWithConnectTimeout(2)
        while (true) {
            try {
                CellBridgeClient client = CellBridgeClient.open(quick, log)
                client.connectTimeoutSeconds = settings.connectTimeoutSeconds
                return client
            } catch (CellBridgeException e) {
                if (e.code != ErrorCodes.DAEMON_NOT_RUNNING && e.code != ErrorCodes.DAEMON_BUSY) {
                    throw e
                }
            }
            if (!process.alive) {
                throw new CellBridgeException(ErrorCodes.DAEMON_NOT_RUNNING, Messages.daemonStartFailed(install, logFile,
                    "it stopped with exit code ${process.exitValue()}", tail(logFile, 8)))
            }
            if (cancelled.call()) {
                throw new CellBridgeException(ErrorCodes.CANCELLED, Messages.cancelled())
            }
            if (System.currentTimeMillis() > deadline) {
                throw new CellBridgeException(ErrorCodes.DAEMON_NOT_RUNNING, Messages.daemonStartFailed(install, logFile,
                    "it did not answer within ${settings.startTimeoutSeconds} s (it keeps starting in the background)",
                    tail(logFile, 8)))
            }
            Thread.sleep(300)
        }
    }

    private Settings copyWithConnectTimeout(int seconds) {
        return new Settings(server: settings.server, token: settings.token, connectTimeoutSeconds: seconds,
            idleTimeoutSeconds: settings.idleTimeoutSeconds)
    }

    static String tail(File f, int lines) {
        if (!f.isFile()) {
            return ''
        }
        List<String> all = f.readLines('UTF-8')
        return all.subList(Math.max(0, all.size() - lines), all.size()).join('\n')
    }

}
