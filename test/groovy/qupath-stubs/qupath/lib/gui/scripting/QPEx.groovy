package qupath.lib.gui.scripting

import groovy.json.JsonOutput
import qupath.lib.objects.PathObject

/** Stand-in for QuPath's QPEx (extends QP): the "current image" statics a script runner binds. */
class QPEx {

    static Object currentImageData
    static Object projectEntry
    static Object quPath

    static Object getCurrentImageData() {
        return currentImageData
    }

    static Object getProjectEntry() {
        return projectEntry
    }

    static Object getQuPath() {
        return quPath
    }

    /** QP.exportObjectsToGeoJson(Collection, String path, String... options): writes what QuPath writes. */
    static void exportObjectsToGeoJson(Collection<? extends PathObject> pathObjects, String path, String... options) {
        List features = pathObjects.collect { PathObject o ->
            [type: 'Feature', id: UUID.randomUUID().toString(), geometry: o.geometry,
             properties: [objectType: o.type, name: o.name, isLocked: o.locked]]
        }
        Object json = options.contains('FEATURE_COLLECTION') ? [type: 'FeatureCollection', features: features] : features
        new File(path).text = JsonOutput.toJson(json)
    }

}
