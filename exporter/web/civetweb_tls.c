/*
 * Makes civetweb's TLS work with OpenSSL 3 (linked into the anorak executable only).
 *
 * civetweb 1.15 as Debian 12 builds it loads OpenSSL at run time with dlopen("libssl.so") and looks
 * up SSL_get_peer_certificate, which OpenSSL 3 no longer exports (it is a macro for
 * SSL_get1_peer_certificate now): civetweb then calls a NULL pointer after every TLS handshake
 * (civetweb issue #1334). The executable is linked with the soname "libssl.so" (CMakeLists.txt), so
 * that dlopen returns the executable itself, and civetweb's lookups find OpenSSL's functions through
 * the executable's dependencies, and this one here.
 */
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate
X509 *SSL_get_peer_certificate(const SSL *s);

/* Both return a reference the caller frees: only the name changed in OpenSSL 3. */
X509 *SSL_get_peer_certificate(const SSL *s)
{
	return SSL_get1_peer_certificate(s);
}
