package cellbridge

/** Cells for one annotation (or the whole image), ready for the host to apply. */
class RegionResult {

    String id
    String label
    /** The host's own handle, e.g. the QuPath annotation object. */
    Object target
    Map geometry
    /** Marked GeoJSON features (see {@link Results#mark}). */
    List<Map> features
    Map<String, Double> summary

    String toFeatureCollection() {
        return Results.featureCollection(features)
    }

    Map describe() {
        Map<String, Integer> counts = [:]
        features.each { Map f -> counts[Results.className(f)] = (counts[Results.className(f)] ?: 0) + 1 }
        return [id: id, label: label, cells: features.size(), counts: counts]
    }

}
