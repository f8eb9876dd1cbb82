package qupath.lib.objects

/** Stand-in for QuPath's PathObject: type, name, geometry (GeoJSON), class, measurements, children. */
class PathObject {

    String type = 'annotation'
    String id
    String name
    Map geometry
    Map nucleusGeometry
    String className
    boolean locked
    PathObject parent
    final Map<String, Number> measurements = [:]
    private final List<PathObject> children = []

    boolean isAnnotation() {
        return type == 'annotation'
    }

    String getName() {
        return name
    }

    /** Like QuPath: an unmodifiable live view of the children. */
    Collection<PathObject> getChildObjects() {
        return Collections.unmodifiableList(children)
    }

    void clearChildObjects() {
        children.each { it.parent = null }
        children.clear()
    }

    void addChildObjects(Collection<? extends PathObject> pathObjects) {
        pathObjects.each { PathObject o ->
            o.parent = this
            children << o
        }
    }

    Map<String, Number> getMeasurements() {
        return measurements
    }

}
