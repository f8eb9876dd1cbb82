package qupath.lib.common

/** Stand-in for ColorTools.packRGB. */
class ColorTools {

    static int packRGB(int r, int g, int b) {
        return (255 << 24) | ((r & 0xff) << 16) | ((g & 0xff) << 8) | (b & 0xff)
    }

}
