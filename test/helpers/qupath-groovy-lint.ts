/**
 * A lint for the QuPath scripts that CodeNarc (npm-groovy-lint) cannot do: what a stock QuPath can run.
 *  - QuPath ships only the Groovy modules groovy, groovy-jsr223 and groovy-xml (0.6 with Groovy 4.0.26,
 *    0.7 with Groovy 5): an import or a fully qualified use of any other module's packages (groovy.json,
 *    groovy.text, groovy.sql, ...) fails to compile there, as does @Grab (no Ivy in QuPath).
 *  - Groovy 5 (GROOVY-11367) reads `map.properties` / `map.metaClass` as the map's bean properties, and
 *    assigning `map.properties = x` throws: the scripts must say get('properties') / put('properties', x) (or
 *    System.getProperties()). The receiver's type is not known here, so every dot access to these two names is
 *    refused; `getProperties()` / `getMetaClass()` stay allowed.
 * Comments and string literals are blanked first (a GString's ${...} stays code), so text that mentions
 * groovy.json or "cellbridge.properties" is not a finding.
 *
 * Run by test/qupath-groovy-lint.test.ts (so by `npm test`); standalone: node dist/test/helpers/qupath-groovy-lint.js DIR
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Packages of Groovy modules that QuPath does not ship (module in brackets), plus Grape. */
export const MISSING_MODULE_PACKAGES: Record<string, string> = {
  'groovy.json': 'groovy-json',
  'groovy.text': 'groovy-templates',
  'groovy.sql': 'groovy-sql',
  'groovy.yaml': 'groovy-yaml',
  'groovy.toml': 'groovy-toml',
  'groovy.swing': 'groovy-swing',
  'groovy.model': 'groovy-swing',
  'groovy.console': 'groovy-console',
  'groovy.ant': 'groovy-ant',
  'groovy.util.AntBuilder': 'groovy-ant',
  'groovy.util.CliBuilder': 'groovy-cli',
  'groovy.cli': 'groovy-cli-picocli / groovy-cli-commons',
  'groovy.test': 'groovy-test',
  'groovy.util.GroovyTestCase': 'groovy-test',
  'groovy.jmx': 'groovy-jmx',
  'groovy.servlet': 'groovy-servlet',
  'groovy.nio': 'groovy-nio',
  'org.apache.groovy.nio': 'groovy-nio',
  'groovy.datetime': 'groovy-datetime',
  'org.apache.groovy.datetime': 'groovy-datetime',
  'org.apache.groovy.dateutil': 'groovy-dateutil',
  'groovy.ginq': 'groovy-ginq',
  'groovy.contracts': 'groovy-contracts',
  'groovy.typecheckers': 'groovy-typecheckers',
  'groovy.grape': 'Grape (needs Ivy)',
  'org.apache.groovy.groovysh': 'groovy-groovysh',
  'org.apache.groovy.macrolib': 'groovy-macro',
  'org.codehaus.groovy.tools.groovydoc': 'groovy-groovydoc',
  'groovy.util.XmlSlurper': 'groovy-xml 2.x/3.x name (use groovy.xml.XmlSlurper)',
  'groovy.util.XmlParser': 'groovy-xml 2.x/3.x name (use groovy.xml.XmlParser)',
};

export interface Finding { file: string; line: number; rule: 'missing-module' | 'map-dot-access' | 'grab'; text: string }

/** The source with comments and string literals blanked (newlines kept, so line numbers hold). */
export function codeOnly(src: string): string {
  const out: string[] = [];
  let i = 0;
  const n = src.length;
  const blank = (s: string) => s.replace(/[^\n]/g, ' ');
  // stack of open GString ${ } depths: when a '}' closes one, we are back inside that string
  const resume: { quote: string }[] = [];
  let braceDepth: number[] = [];
  const readString = (quote: string): void => {
    // i is just after the opening quote(s); copies blanks until the closing quote, keeping ${...} as code
    const gstring = quote.startsWith('"');
    while (i < n) {
      if (src.startsWith(quote, i)) { out.push(' '.repeat(quote.length)); i += quote.length; return; }
      const c = src[i];
      if (c === '\\') { out.push(blank(src.slice(i, i + 2))); i += 2; continue; }
      if (gstring && c === '$' && src[i + 1] === '{') {
        out.push('  ');
        i += 2;
        resume.push({ quote });
        braceDepth.push(0);
        return; // back to code; the matching '}' resumes the string
      }
      out.push(c === '\n' ? '\n' : ' ');
      i++;
    }
  };
  while (i < n) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      const stop = end < 0 ? n : end;
      out.push(' '.repeat(stop - i));
      i = stop;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      out.push(blank(src.slice(i, stop)));
      i = stop;
    } else if (src.startsWith("'''", i) || src.startsWith('"""', i)) {
      const q = src.slice(i, i + 3);
      out.push('   ');
      i += 3;
      readString(q);
    } else if (c === "'" || c === '"') {
      out.push(' ');
      i++;
      readString(c);
    } else if (c === '{' && braceDepth.length) {
      braceDepth[braceDepth.length - 1]++;
      out.push(c);
      i++;
    } else if (c === '}' && braceDepth.length) {
      if (braceDepth[braceDepth.length - 1] === 0) {
        braceDepth.pop();
        const { quote } = resume.pop()!;
        out.push(' ');
        i++;
        readString(quote);
      } else {
        braceDepth[braceDepth.length - 1]--;
        out.push(c);
        i++;
      }
    } else {
      out.push(c);
      i++;
    }
  }
  braceDepth = [];
  return out.join('');
}

/** Findings in one Groovy source text. */
export function lintGroovySource(file: string, src: string): Finding[] {
  const code = codeOnly(src);
  const lines = code.split('\n');
  const original = src.split('\n');
  const findings: Finding[] = [];
  const packages = Object.keys(MISSING_MODULE_PACKAGES).map((p) => p.replace(/\./g, '\\.')).join('|');
  const moduleRe = new RegExp(`(?<![\\w.])(${packages})(?![\\w])`, 'g');
  lines.forEach((line, idx) => {
    for (const m of line.matchAll(moduleRe)) {
      findings.push({ file, line: idx + 1, rule: 'missing-module',
        text: `${m[1]} is in ${MISSING_MODULE_PACKAGES[m[1]]}, which QuPath does not ship (it has groovy, groovy-jsr223, ` +
          `groovy-xml; for JSON use Gson, com.google.gson): ${original[idx].trim()}` });
    }
    if (/@Grab\b|@Grapes\b|@GrabResolver\b/.test(line)) {
      findings.push({ file, line: idx + 1, rule: 'grab', text: `@Grab does not work in QuPath (no Ivy): ${original[idx].trim()}` });
    }
    for (const m of line.matchAll(/(\?\.|\*\.|\.&|\.@|\.)\s*(properties|metaClass)\b(?!\s*\()/g)) {
      findings.push({ file, line: idx + 1, rule: 'map-dot-access',
        text: `'${m[1]}${m[2]}': on a Map, Groovy 5 (QuPath 0.7) reads the map's bean property, not the key; ` +
          `use get('${m[2]}') / put('${m[2]}', ...)${m[2] === 'properties' ? ' (System.getProperties() for the system\'s)' : ''}: ` +
          original[idx].trim() });
    }
  });
  return findings;
}

/** Every .groovy file under dir, linted. */
export function lintGroovyTree(dir: string): Finding[] {
  const findings: Finding[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.groovy')) findings.push(...lintGroovySource(relative(dir, p), readFileSync(p, 'utf8')));
    }
  };
  walk(dir);
  return findings;
}

if (require.main === module) {
  const dir = process.argv[2] ?? 'qupath-scripts';
  const findings = lintGroovyTree(dir);
  for (const f of findings) console.log(`${join(dir, f.file)}:${f.line}: [${f.rule}] ${f.text}`);
  console.log(findings.length ? `${findings.length} finding(s)` : `${dir}: runs on QuPath's class path (no missing Groovy module, no map dot access to properties/metaClass)`);
  process.exitCode = findings.length ? 1 : 0;
}
