/*
 * LD_PRELOAD shim for wrk: every TLS connection makes a full handshake.
 *
 * wrk keeps one OpenSSL `SSL` object per connection slot and, when a
 * connection closes, calls SSL_shutdown + SSL_clear and reuses the object for
 * the next connection. SSL_clear keeps the last session (with the TLS 1.3
 * ticket the server sent), so the next SSL_connect offers it and the server
 * resumes: with `Connection: close`, nearly every handshake is a resumption.
 * This shim drops the kept session right after SSL_clear, so each new
 * connection makes a full handshake (certificate, signature, key exchange).
 *
 * loadtest/run builds it for scenario (i2):
 *   cc -O2 -shared -fPIC -o wrk-no-resume.so loadtest/wrk-no-resume.c -ldl
 *   LD_PRELOAD=./wrk-no-resume.so wrk ... https://...
 * It needs no OpenSSL headers: the two functions are declared here and
 * resolved in wrk's libssl at run time.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

int SSL_set_session(SSL *s, SSL_SESSION *session);

int SSL_clear(SSL *s)
{
    static int (*real_clear)(SSL *);
    int r;

    if (real_clear == NULL)
        real_clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    if (real_clear == NULL)
        return 0;
    r = real_clear(s);
    SSL_set_session(s, NULL);
    return r;
}
