package cellbridge

import com.google.gson.stream.JsonReader
import com.google.gson.stream.JsonToken
import com.google.gson.stream.JsonWriter
import com.google.gson.stream.MalformedJsonException
import groovy.transform.CompileStatic

/**
 * JSON text <-> plain Groovy values (Map, List, String, Number, Boolean, null), on Gson's streaming
 * reader and writer. QuPath ships Gson (com.google.gson) but not groovy-json, so nothing under
 * qupath-scripts/ may use groovy.json. Streaming (no reflection): Groovy objects, GStrings and JDK
 * classes are never inspected by Gson, which the module system would refuse on Java 17+ anyway.
 */
@CompileStatic
final class Json {

    private Json() { }

    /** Thrown for text that is not JSON. */
    static class ParseException extends RuntimeException {
        ParseException(String message, Throwable cause) {
            super(message, cause)
        }

    }

    /**
     * Parses JSON text. Objects become LinkedHashMaps, arrays ArrayLists, integers Integer/Long/BigInteger
     * and other numbers BigDecimal (as groovy.json's JsonSlurper did), so that numbers keep their exact text.
     */
    static Object parse(String text) {
        return parse(new StringReader(text))
    }

    static Object parse(Reader input) {
        JsonReader reader = new JsonReader(input)
        try {
            Object value = readValue(reader)
            if (reader.peek() != JsonToken.END_DOCUMENT) {
                throw new ParseException('JSON text has more than one value', null)
            }
            return value
        } catch (MalformedJsonException | EOFException | IllegalStateException | NumberFormatException e) {
            throw new ParseException("not JSON: ${e.message}", e)
        }
    }

    static Object parse(File file) {
        return file.withReader('UTF-8') { Reader r -> parse(r) }
    }

    private static Object readValue(JsonReader reader) {
        switch (reader.peek()) {
            case JsonToken.BEGIN_OBJECT:
                Map<String, Object> map = [:]
                reader.beginObject()
                while (reader.hasNext()) {
                    String key = reader.nextName()
                    map.put(key, readValue(reader))
                }
                reader.endObject()
                return map
            case JsonToken.BEGIN_ARRAY:
                List<Object> list = []
                reader.beginArray()
                while (reader.hasNext()) {
                    list.add(readValue(reader))
                }
                reader.endArray()
                return list
            case JsonToken.STRING:
                return reader.nextString()
            case JsonToken.NUMBER:
                return number(reader.nextString())
            case JsonToken.BOOLEAN:
                return reader.nextBoolean()
            case JsonToken.NULL:
                reader.nextNull()
                return null
            default:
                throw new IllegalStateException("unexpected ${reader.peek()} at ${reader.path}")
        }
    }

    private static Number number(String s) {
        if (s.indexOf('.') < 0 && s.indexOf('e') < 0 && s.indexOf('E') < 0) {
            BigInteger big = new BigInteger(s)
            if (big.bitLength() < 32) {
                return big.intValue()
            }
            return big.bitLength() < 64 ? (Number) big.longValue() : big
        }
        return new BigDecimal(s)
    }

    /**
     * JSON text of a value made of Maps (keys as strings), Lists/arrays, CharSequences (GStrings
     * included), Numbers, Booleans, enums and null. NaN and infinities are written as such (they only
     * occur in measurements, which QuPath's own GeoJSON reader accepts); anything else is an error.
     */
    static String write(Object value) {
        StringWriter out = new StringWriter()
        JsonWriter writer = new JsonWriter(out)
        writer.serializeNulls = true
        writer.lenient = true // NaN / Infinity
        writeValue(writer, value)
        writer.flush()
        return out.toString()
    }

    private static void writeValue(JsonWriter w, Object v) {
        switch (v) {
            case null:
                w.nullValue()
                break
            case Map:
                w.beginObject()
                for (Map.Entry e : ((Map) v).entrySet()) {
                    w.name(String.valueOf(e.key))
                    writeValue(w, e.value)
                }
                w.endObject()
                break
            case Iterable:
                w.beginArray()
                for (Object x : (Iterable) v) {
                    writeValue(w, x)
                }
                w.endArray()
                break
            case CharSequence:
            case Character:
            case Enum:
                w.value(v.toString())
                break
            case Boolean:
                w.value((Boolean) v)
                break
            case Number:
                w.value((Number) v)
                break
            default:
                writeArray(w, v)
        }
    }

    private static void writeArray(JsonWriter w, Object v) {
        if (!v.getClass().isArray()) {
            throw new IllegalArgumentException("cannot write a ${v.getClass().name} as JSON")
        }
        w.beginArray()
        int n = java.lang.reflect.Array.getLength(v)
        for (int i = 0; i < n; i++) {
            writeValue(w, java.lang.reflect.Array.get(v, i))
        }
        w.endArray()
    }

}
