/**
 * Lint of qupath-scripts/ for what a stock QuPath can run (see helpers/qupath-groovy-lint.ts): no Groovy module
 * that QuPath lacks (groovy.json, groovy.text, ...), no @Grab, no map dot access to `properties` / `metaClass`
 * (Groovy 5). Plus checks that the lint itself finds what it must and ignores comments and strings.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { lintGroovySource, lintGroovyTree } from './helpers/qupath-groovy-lint';

const SCRIPTS = join(__dirname, '..', '..', 'qupath-scripts');

describe('QuPath scripts: lint for QuPath\'s class path (modules QuPath ships, Groovy 5 map access)', () => {
  it('qupath-scripts/ has no finding', () => {
    const findings = lintGroovyTree(SCRIPTS);
    assert.deepEqual(findings.map((f) => `${f.file}:${f.line}: ${f.text}`), []);
  });

  it('finds imports and qualified uses of missing modules, @Grab, and dot access to properties/metaClass', () => {
    const src = [
      'import groovy.json.JsonOutput',
      'import groovy.text.SimpleTemplateEngine',
      'import static groovy.sql.Sql.newInstance',
      'def x = new groovy.json.JsonSlurper().parseText(t)',
      "@Grab('org.yaml:snakeyaml:2.2')",
      'Map props = (f.properties ?: [:]) as Map',
      'f.properties = props',
      'return feature?.properties?.classification',
      'features*.properties*.objectType',
      'm.metaClass.foo = 1',
      'def s = "${f.properties.name}"',
    ].join('\n');
    const found = lintGroovySource('x.groovy', src).map((f) => `${f.line}:${f.rule}`);
    assert.deepEqual(found, ['1:missing-module', '2:missing-module', '3:missing-module', '4:missing-module', '5:grab',
      '6:map-dot-access', '7:map-dot-access', '8:map-dot-access', '9:map-dot-access', '10:map-dot-access', '11:map-dot-access']);
  });

  it('ignores comments, strings, allowed modules and explicit access', () => {
    const src = [
      '// groovy.json is not shipped; see cellbridge.properties',
      '/* import groovy.json.JsonOutput */',
      "String file = 'cellbridge.properties'",
      'String m = "QuPath has no groovy.json: ${name}.properties"',
      "String doc = '''f.properties = x'''",
      'import groovy.xml.XmlSlurper',
      'import groovy.transform.CompileStatic',
      'import com.google.gson.stream.JsonReader',
      "Map p = f.get('properties') as Map",
      "f.put('properties', p)",
      'Properties sys = System.getProperties()',
      'def mc = obj.getMetaClass()',
      'String jsonText = groovyJsonText',
    ].join('\n');
    assert.deepEqual(lintGroovySource('y.groovy', src), []);
  });
});
