package javafx.scene.control

/** Empty stand-in so that the adapter compiles without JavaFX (the tests run headless). */
class ButtonType {

    static final ButtonType OK = new ButtonType()
    static final ButtonType CANCEL = new ButtonType()

}
