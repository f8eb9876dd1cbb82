package cellbridge

/**
 * Pure data work on the daemon's GeoJSON features and the annotations' geometries: marking cells
 * as Cell Bridge's own, the per-annotation summary measurements, areas. No QuPath class here.
 */
final class Results {

    /** Measurement that marks objects created by Cell Bridge (value 1). Only such objects are ever replaced. */
    static final String MARKER = 'cellbridge'
    /** Prefix of the summary measurements written on each annotation. */
    static final String PREFIX = 'Cell Bridge: '

    private Results() { }

    /** Adds the marker measurement to each feature (in place) and returns the list. */
    static List<Map> mark(List<Map> features) {
        features.each { Map f ->
            // get/put, never f.properties: on a Map that names the map's bean properties in Groovy 5 (GROOVY-11367)
            Map props = (f.get('properties') ?: [:]) as Map
            f.put('properties', props)
            Map m = (props.get('measurements') ?: [:]) as Map
            props.put('measurements', m)
            m[MARKER] = 1
        }
        return features
    }

    /** True for a measurement map of an object that a previous Cell Bridge run created. */
    static boolean isCellBridgeObject(Map measurements) {
        return measurements != null && measurements.containsKey(MARKER)
    }

    /** A FeatureCollection JSON string, what GsonTools.parseObjectsFromGeoJSON reads. */
    static String featureCollection(List<Map> features) {
        return Json.write([type: 'FeatureCollection', features: features])
    }

    /**
     * The area part of a QuPath-exported annotation feature as a Polygon or MultiPolygon geometry,
     * or an empty map when the annotation has no area (points, lines).
     */
    static Map areaGeometry(Map feature) {
        Map g = (feature?.geometry ?: feature) as Map
        switch (g?.type) {
            case 'Polygon':
            case 'MultiPolygon':
                return g
            case 'GeometryCollection':
                List polys = []
                (g.geometries as List<Map>).each { Map part ->
                    if (part.type == 'Polygon') {
                        polys << part.coordinates
                    } else if (part.type == 'MultiPolygon') {
                        polys.addAll(part.coordinates as List)
                    }
                }
                return polys ? [type: 'MultiPolygon', coordinates: polys] : [:]
            default:
                return [:]
        }
    }

    /** Area in px² of a Polygon/MultiPolygon (holes subtracted). */
    static double area(Map geometry) {
        List<List> polygons = geometry?.type == 'MultiPolygon' ? geometry.coordinates as List<List> :
            geometry?.type == 'Polygon' ? [geometry.coordinates as List] : []
        double total = 0
        polygons.each { List rings ->
            rings.eachWithIndex { Object ring, int i ->
                double a = Math.abs(ringArea(ring as List<List>))
                total += i == 0 ? a : -a
            }
        }
        return Math.max(0d, total)
    }

    private static double ringArea(List<List> ring) {
        double s = 0
        int n = ring.size()
        for (int i = 0; i < n; i++) {
            List p = ring[i]
            List q = ring[(i + 1) % n]
            s += (p[0] as double) * (q[1] as double) - (q[0] as double) * (p[1] as double)
        }
        return s / 2d
    }

    /** Class name of a feature ("Unclassified" when it has none). */
    static String className(Map feature) {
        return ((feature?.get('properties') as Map)?.get('classification') as Map)?.get('name') ?: 'Unclassified'
    }

    /**
     * Summary measurements for one annotation: counts per class, percentage of each class, and
     * densities per mm² (only with a pixel size).
     * @param classNames the model's classes, in model order (classes with no cell get 0)
     * @param micronsPerPixel full-resolution pixel size, or null
     */
    static Map<String, Double> summary(List<Map> features, Map geometry, Double micronsPerPixel, List<String> classNames,
                                       String objectType = 'cell') {
        Map<String, Integer> counts = [:]
        classNames.each { counts[it] = 0 }
        features.each { Map f ->
            String c = className(f)
            counts[c] = (counts[c] ?: 0) + 1
        }
        int total = features.size()
        String noun = objectType == 'detection' ? 'detections' : 'cells'
        Map<String, Double> out = [:]
        out["${PREFIX}Num ${noun}".toString()] = total as double
        counts.each { String c, Integer n -> out["${PREFIX}Num ${c}".toString()] = n as double }
        counts.each { String c, Integer n ->
            out["${PREFIX}${c} %".toString()] = total > 0 ? 100d * n / total : Double.NaN
        }
        double areaPx = area(geometry)
        if (micronsPerPixel != null && micronsPerPixel > 0 && areaPx > 0) {
            double areaMm2 = areaPx * micronsPerPixel * micronsPerPixel / 1e6d
            out["${PREFIX}Area mm^2".toString()] = areaMm2
            out["${PREFIX}${noun.capitalize()} per mm^2".toString()] = total / areaMm2
            counts.each { String c, Integer n -> out["${PREFIX}${c} per mm^2".toString()] = n / areaMm2 }
        }
        return out
    }

    /** Keys of a measurement map that an earlier Cell Bridge summary wrote (to remove before writing anew). */
    static List<String> summaryKeys(Collection<String> keys) {
        return keys.findAll { String k -> k.startsWith(PREFIX) } as List<String>
    }

}
