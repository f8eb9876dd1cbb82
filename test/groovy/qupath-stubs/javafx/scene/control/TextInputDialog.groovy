package javafx.scene.control

/** Empty stand-in so that the adapter compiles without JavaFX (the tests run headless). */
class TextInputDialog {
}
