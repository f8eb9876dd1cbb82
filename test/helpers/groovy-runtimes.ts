/**
 * The Java + class path combinations that the QuPath scripts are tested on: exactly QuPath's.
 *  - QuPath 0.6: every jar of ../shared/qupath-headless/lib (QuPath 0.6.0 core classes, Groovy 4.0.26 with
 *    groovy, groovy-jsr223, groovy-xml, Gson, ...), system Java (17+).
 *  - QuPath 0.7: the same jars with Groovy 4's three swapped for Groovy 5.0.x's (from Maven Central by
 *    test/setup/groovy5.sh, cached in .cache/groovy5), on Java 25 (QuPath 0.7's) when it is installed,
 *    else the system Java (Groovy 5 runs on 17+).
 * A runtime that cannot be had carries `skip` with the reason.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface GroovyRuntime {
  /** e.g. "QuPath 0.6 class path (Groovy 4.0.26, Java 17)" */
  label: string;
  groovy: string;
  java: string;
  classPath: string[];
  /** Run npm-groovy-lint in this suite (once: CodeNarc does not depend on the runtime). */
  lint: boolean;
  skip?: string;
}

const REPO = join(__dirname, '..', '..', '..');
export const HEADLESS = join(REPO, '..', 'shared', 'qupath-headless');
const GROOVY5_SETUP = join(REPO, 'test', 'setup', 'groovy5.sh');
export const GROOVY5_VERSION = process.env.GROOVY5_VERSION ?? '5.0.7';
/** Where Debian machines of this project have a Java 25 (Temurin); JAVA25_HOME overrides. */
const JAVA25_HOMES = [process.env.JAVA25_HOME, '/usr/lib/jvm/temurin-25-jdk-amd64', '/usr/lib/jvm/java-25-openjdk-amd64'];
const GROOVY_MODULES = /^groovy(-[a-z0-9]+)*-\d[\w.-]*\.jar$/;

function javaMajor(java: string): number | null {
  const r = spawnSync(java, ['-version'], { encoding: 'utf8' });
  const m = /version "(\d+)/.exec(`${r.stderr}`);
  return r.status === 0 && m ? Number(m[1]) : null;
}

function groovy5Jars(): { jars?: string[]; error?: string } {
  const dir = join(REPO, '.cache', 'groovy5', GROOVY5_VERSION);
  const want = ['groovy', 'groovy-jsr223', 'groovy-xml'].map((m) => join(dir, `${m}-${GROOVY5_VERSION}.jar`));
  if (!want.every((f) => existsSync(f))) {
    const r = spawnSync('bash', [GROOVY5_SETUP], { encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0) return { error: `${r.stderr || r.error}`.trim() };
  }
  return want.every((f) => existsSync(f)) ? { jars: want } : { error: `${dir} lacks the jars` };
}

export function groovyRuntimes(): GroovyRuntime[] {
  const lib = join(HEADLESS, 'lib');
  if (!existsSync(lib)) {
    const skip = `${HEADLESS} is absent (the headless QuPath classes of shared/): the QuPath scripts are only tested on ` +
      "QuPath's own class path";
    return [{ label: 'QuPath 0.6 class path (Groovy 4.0.26)', groovy: '4.0.26', java: 'java', classPath: [], lint: true, skip },
      { label: `QuPath 0.7 class path (Groovy ${GROOVY5_VERSION})`, groovy: GROOVY5_VERSION, java: 'java', classPath: [], lint: false, skip }];
  }
  const jars = readdirSync(lib).filter((f) => f.endsWith('.jar')).sort().map((f) => join(lib, f));
  const groovy4 = jars.filter((f) => GROOVY_MODULES.test(f.split('/').pop()!)).map((f) => f.split('/').pop()!);
  const version4 = /^groovy-(\d[\w.-]*)\.jar$/.exec(groovy4.find((f) => /^groovy-\d/.test(f)) ?? '')?.[1] ?? '?';
  const java17 = javaMajor('java');
  const out: GroovyRuntime[] = [{
    label: `QuPath 0.6 class path (Groovy ${version4}, Java ${java17 ?? '?'})`, groovy: version4, java: 'java', classPath: jars, lint: true,
  }];
  const java25 = JAVA25_HOMES.filter((h): h is string => !!h).map((h) => join(h, 'bin', 'java')).find((j) => existsSync(j) && (javaMajor(j) ?? 0) >= 25);
  const java = java25 ?? 'java';
  const g5 = groovy5Jars();
  out.push({
    label: `QuPath 0.7 class path (Groovy ${GROOVY5_VERSION}, Java ${java25 ? javaMajor(java25) : `${java17 ?? '?'}; no Java 25 found`})`,
    groovy: GROOVY5_VERSION, java, lint: false,
    classPath: g5.jars ? [...jars.filter((f) => !GROOVY_MODULES.test(f.split('/').pop()!)), ...g5.jars] : [],
    skip: g5.jars ? undefined : `Groovy ${GROOVY5_VERSION} jars could not be had from Maven Central (${g5.error}); run test/setup/groovy5.sh`,
  });
  return out;
}
