package cellbridge.qupath

import groovy.transform.CompileStatic
import org.locationtech.jts.geom.Coordinate
import org.locationtech.jts.geom.Geometry
import org.locationtech.jts.geom.GeometryFactory
import org.locationtech.jts.geom.LinearRing
import org.locationtech.jts.geom.Polygon
import qupath.lib.measurements.MeasurementList
import qupath.lib.objects.PathObject
import qupath.lib.objects.PathObjects
import qupath.lib.objects.classes.PathClass
import qupath.lib.regions.ImagePlane
import qupath.lib.roi.GeometryTools
import qupath.lib.roi.ROIs
import qupath.lib.roi.interfaces.ROI

/**
 * The daemon's detections (QuPath GeoJSON features, already parsed from its messages) as QuPath
 * objects, built directly: the same ids, classes, ROIs and measurements that
 * GsonTools.parseObjectsFromGeoJSON makes of them, without writing and re-reading about 1 MB of
 * GeoJSON per 700 cells (that round trip took 1-3 s of every run).
 * QuPath API used: PathObjects.createCellObject/createDetectionObject, PathObject.setID/getMeasurementList,
 * MeasurementList.put/close, PathClass.fromString, ROIs.createPolygonROI, GeometryTools.getDefaultFactory/geometryToROI.
 */
@CompileStatic
final class QuPathObjects {

    private QuPathObjects() { }

    static List<PathObject> fromFeatures(List<Map> features) {
        ImagePlane plane = ImagePlane.getDefaultPlane()
        List<PathObject> out = new ArrayList<>(features.size())
        for (Map f : features) {
            out.add(fromFeature(f, plane))
        }
        return out
    }

    static PathObject fromFeature(Map f, ImagePlane plane) {
        // get/put, never f.properties: on a Map that names the map's bean properties in Groovy 5 (GROOVY-11367)
        Map props = (Map) f.get('properties')
        Map classification = (Map) props.get('classification')
        PathClass pathClass = classification == null ? null : PathClass.fromString((String) classification.get('name'))
        Map geometry = (Map) f.get('geometry')
        ROI roi = roiOf(geometry, plane)
        PathObject o
        if (props.get('objectType') == 'cell') {
            Map nucleus = (Map) f.get('nucleusGeometry')
            ROI nucleusRoi = nucleus == null ? null : (nucleus == geometry ? roi : roiOf(nucleus, plane))
            o = PathObjects.createCellObject(roi, nucleusRoi, pathClass)
        } else {
            o = PathObjects.createDetectionObject(roi, pathClass)
        }
        Object id = f.get('id')
        if (id != null) {
            o.setID(UUID.fromString(id.toString()))
        }
        MeasurementList ml = o.getMeasurementList()
        Map<String, Object> measurements = (Map<String, Object>) props.get('measurements')
        measurements?.each { String k, Object v -> ml.put(k, v instanceof Number ? ((Number) v).doubleValue() : Double.NaN) }
        ml.close()
        return o
    }

    /** A GeoJSON Polygon or MultiPolygon as a ROI: a plain ring directly, holes and parts through JTS (as GsonTools does). */
    static ROI roiOf(Map g, ImagePlane plane) {
        List coordinates = (List) g.get('coordinates')
        if (g.get('type') == 'Polygon' && coordinates.size() == 1) {
            List<List> ring = (List<List>) coordinates[0]
            int n = ring.size() - 1 // GeoJSON rings repeat their first point last
            double[] xs = new double[n]
            double[] ys = new double[n]
            for (int i = 0; i < n; i++) {
                xs[i] = ((Number) ring[i][0]).doubleValue()
                ys[i] = ((Number) ring[i][1]).doubleValue()
            }
            return ROIs.createPolygonROI(xs, ys, plane)
        }
        return GeometryTools.geometryToROI(jts(g, GeometryTools.getDefaultFactory()), plane)
    }

    private static Geometry jts(Map g, GeometryFactory factory) {
        List coordinates = (List) g.get('coordinates')
        if (g.get('type') == 'MultiPolygon') {
            Polygon[] parts = coordinates.collect { Object p -> polygon((List) p, factory) } as Polygon[]
            return factory.createMultiPolygon(parts)
        }
        return polygon(coordinates, factory)
    }

    private static Polygon polygon(List rings, GeometryFactory factory) {
        List<LinearRing> all = rings.collect { Object r ->
            factory.createLinearRing(((List<List>) r).collect { List p ->
                new Coordinate(((Number) p[0]).doubleValue(), ((Number) p[1]).doubleValue())
            } as Coordinate[])
        }
        return factory.createPolygon(all[0], all.drop(1) as LinearRing[])
    }

}
