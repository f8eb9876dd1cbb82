package qupath.lib.io

import groovy.json.JsonSlurper
import qupath.lib.objects.PathObject

/** Stand-in for GsonTools.parseObjectsFromGeoJSON: the QuPath GeoJSON fields the scripts rely on. */
class GsonTools {

    static int parsedObjects

    static List<PathObject> parseObjectsFromGeoJSON(String json) {
        Object parsed = new JsonSlurper().parseText(json)
        List<Map> features = parsed instanceof List ? parsed as List<Map> :
            parsed.type == 'FeatureCollection' ? parsed.features as List<Map> : [parsed as Map]
        return features.collect { Map f ->
            Map props = (f.properties ?: [:]) as Map
            String type = props.objectType in ['annotation', 'detection', 'cell', 'tile', 'tmaCore'] ? props.objectType : 'annotation'
            if (type == 'cell' && f.nucleusGeometry == null) {
                throw new IllegalArgumentException('a cell needs a nucleusGeometry')
            }
            parsedObjects++
            PathObject o = new PathObject(type: type, id: f.id, name: props.name, geometry: f.geometry as Map,
                nucleusGeometry: f.nucleusGeometry as Map, className: (props.classification as Map)?.name,
                locked: props.isLocked ?: false)
            ((props.measurements ?: [:]) as Map).each { k, v -> o.measurements.put(k as String, v as Number) }
            o
        }
    }

}
