package cellbridge

import groovy.transform.CompileStatic

import javax.net.ssl.SSLContext
import javax.net.ssl.SSLException
import javax.net.ssl.TrustManager
import javax.net.ssl.TrustManagerFactory
import javax.net.ssl.X509TrustManager
import java.security.KeyStore
import java.security.cert.Certificate
import java.security.cert.CertificateException
import java.security.cert.CertificateFactory
import java.security.cert.X509Certificate

/**
 * wss:// to a daemon behind a TLS proxy whose certificate a private CA signed (deploy/make-certs.sh):
 * {@code caCertificate=/path/to/ca.crt} makes the client trust that CA in addition to Java's own
 * trust store, for Cell Bridge connections only. The host name is still checked against the
 * certificate. Without the setting, Java's trust store decides (a CA imported there with keytool
 * works too).
 */
@CompileStatic
class Tls {

    /** An SSLContext that trusts Java's default CAs and every certificate in the PEM (or DER) file. */
    static SSLContext trusting(String caCertificate) {
        File file = new File(caCertificate)
        if (!file.isFile()) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                "caCertificate=${caCertificate}: no such file. Give the CA certificate (PEM) of the daemon's TLS proxy.")
        }
        Collection<? extends Certificate> certs
        try {
            InputStream s = new FileInputStream(file)
            try {
                certs = CertificateFactory.getInstance('X.509').generateCertificates(s)
            } finally {
                s.close()
            }
        } catch (CertificateException e) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                "caCertificate=${caCertificate} holds no readable certificate (${e.message}).", e)
        }
        if (certs.isEmpty()) {
            throw new CellBridgeException(ErrorCodes.BAD_SETTING,
                "caCertificate=${caCertificate} holds no certificate (expected -----BEGIN CERTIFICATE-----).")
        }
        KeyStore store = KeyStore.getInstance(KeyStore.defaultType)
        store.load(null, null)
        int n = 0
        for (X509Certificate c : javaTrustAnchors()) {
            store.setCertificateEntry("java-${n++}", c)
        }
        for (Certificate c : certs) {
            store.setCertificateEntry("cellbridge-ca-${n++}", c)
        }
        TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.defaultAlgorithm)
        factory.init(store)
        SSLContext context = SSLContext.getInstance('TLS')
        context.init(null, factory.trustManagers, null)
        return context
    }

    /** The user's message when the TLS handshake failed; null when {@code cause} is not a TLS problem. */
    static String handshakeProblem(String url, Throwable cause, String caCertificate) {
        Throwable t = cause
        while (t != null && !(t instanceof SSLException)) {
            t = t.cause
        }
        if (t == null) {
            return null
        }
        String hint = caCertificate ?
            "The certificate is not signed by caCertificate=${caCertificate}, or it does not name this host." :
            'If the proxy uses a private CA, set caCertificate=/path/to/ca.crt in cellbridge.properties ' +
            '(or import the CA into the Java trust store).'
        return "Cannot open a secure connection to ${url}: ${t.message}. ${hint}"
    }

    private static List<X509Certificate> javaTrustAnchors() {
        TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.defaultAlgorithm)
        factory.init((KeyStore) null)
        List<X509Certificate> out = []
        for (TrustManager tm : factory.trustManagers) {
            if (tm instanceof X509TrustManager) {
                out.addAll(((X509TrustManager) tm).acceptedIssuers)
            }
        }
        return out
    }

}
