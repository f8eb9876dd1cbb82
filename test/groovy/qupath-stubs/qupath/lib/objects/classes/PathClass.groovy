package qupath.lib.objects.classes

/** Stand-in for PathClass: one instance per name; the first colour wins, as in QuPath. */
class PathClass {

    static final Map<String, PathClass> CLASSES = [:]

    String name
    Integer color

    static PathClass fromString(String name, Integer rgb) {
        return CLASSES.computeIfAbsent(name) { new PathClass(name: name, color: rgb) }
    }

}
