package cellbridge

import groovy.transform.CompileStatic

import java.awt.image.BufferedImage
import java.nio.ByteBuffer

/**
 * Binary tile frames (protocol README section 4): a 24-byte big-endian header, then the pixels.
 */
@CompileStatic
final class TileFrames {

    static final int MAGIC = 0x43425431
    static final int HEADER_BYTES = 24
    static final int VERSION = 1
    static final int FORMAT_RGB8 = 1
    static final int FORMAT_ARGB32 = 2

    private TileFrames() { }

    static int formatCode(String pixelFormat) {
        switch (pixelFormat) {
            case 'rgb8': return FORMAT_RGB8
            case 'argb32': return FORMAT_ARGB32
            default: throw new IllegalArgumentException("unknown pixel format '${pixelFormat}'")
        }
    }

    /**
     * One frame, ready for {@code WebSocket.sendBinary}: position 0, limit = size.
     * @param argb packed 0xAARRGGBB pixels, row-major, width*height of them
     */
    static ByteBuffer pack(long jobId, long tileId, int width, int height, int[] argb, String pixelFormat) {
        int format = formatCode(pixelFormat)
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("tile size ${width}x${height} is empty")
        }
        if (argb.length != width * height) {
            throw new IllegalArgumentException("${argb.length} pixels for a ${width}x${height} tile")
        }
        int bpp = format == FORMAT_RGB8 ? 3 : 4
        ByteBuffer buf = ByteBuffer.allocate(HEADER_BYTES + bpp * width * height)
        buf.putInt(MAGIC)
        buf.put((byte) VERSION)
        buf.put((byte) format)
        buf.putShort((short) 0)
        buf.putInt((int) jobId)
        buf.putInt((int) tileId)
        buf.putInt(width)
        buf.putInt(height)
        if (format == FORMAT_ARGB32) {
            buf.asIntBuffer().put(argb)
        } else {
            byte[] rgb = new byte[3 * argb.length]
            int o = 0
            for (int p : argb) {
                rgb[o++] = (byte) ((p >> 16) & 0xff)
                rgb[o++] = (byte) ((p >> 8) & 0xff)
                rgb[o++] = (byte) (p & 0xff)
            }
            buf.position(HEADER_BYTES)
            buf.put(rgb)
        }
        buf.rewind()
        return buf
    }

    /**
     * Packed ARGB pixels of {@code img} at its own size, which must be the plan's readWidth x readHeight
     * (give or take {@code slack} px: 1 at a pyramid level, whose readers may round an edge tile's last
     * pixel differently). The scripts never resize (protocol 2: the daemon alone resamples, so every
     * client gives the same cells).
     */
    static int[] toArgb(BufferedImage img, int width, int height, int slack = 0) {
        if (Math.abs(img.width - width) > slack || Math.abs(img.height - height) > slack) {
            throw new IllegalStateException("the image server gave ${img.width}x${img.height} px for a " +
                "${width}x${height} px tile of the plan")
        }
        return img.getRGB(0, 0, img.width, img.height, null, 0, img.width)
    }

    /** Header fields of a frame (for tests and diagnostics). */
    static Map<String, Object> readHeader(ByteBuffer frame) {
        ByteBuffer b = frame.duplicate()
        b.rewind()
        return [magic: b.getInt(), version: (int) b.get(), format: (int) b.get(), reserved: (int) b.getShort(),
                jobId: Integer.toUnsignedLong(b.getInt()), tileId: Integer.toUnsignedLong(b.getInt()),
                width: b.getInt(), height: b.getInt(), bytes: frame.remaining(), ]
    }

}
