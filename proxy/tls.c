/* TLS origination over memory BIOs (tls.h).
 *
 * The SSL object reads from `in` (ciphertext the socket delivered) and writes to `out`
 * (ciphertext to send); both are memory BIOs, so SSL never blocks and never touches a socket.
 * One SSL_CTX serves every connection of the process: it is created once and only read
 * afterwards, which OpenSSL allows from any thread. */
#include "tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct px_tls {
    SSL *ssl;
    BIO *in;  /* owned by ssl */
    BIO *out; /* owned by ssl */
    char rbuf[PX_TLS_READ_SIZE];
};

static SSL_CTX *ctx;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void make_ctx(void)
{
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        abort(); /* out of memory at the first TLS upstream: like xmalloc */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Ambassador's Envoy did not verify upstream certificates unless a TLSContext said so. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
}

static bool is_ip_literal(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

struct px_tls *px_tls_new(const char *sni)
{
    pthread_once(&ctx_once, make_ctx);
    struct px_tls *t = xcalloc(1, sizeof(*t));
    t->ssl = SSL_new(ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL)
        abort();
    /* An empty input BIO means "more to come", not end of file. */
    BIO_set_mem_eof_return(t->in, -1);
    SSL_set_bio(t->ssl, t->in, t->out);
    SSL_set_connect_state(t->ssl);
    if (sni != NULL && !is_ip_literal(sni))
        SSL_set_tlsext_host_name(t->ssl, sni);
    return t;
}

void px_tls_free(struct px_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
}

char *px_tls_read_buf(struct px_tls *t)
{
    return t->rbuf;
}

void px_tls_feed(struct px_tls *t, const char *p, size_t n)
{
    /* A memory BIO takes everything (it grows); the caller bounds what it reads unasked. */
    while (n > 0) {
        int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
        int w = BIO_write(t->in, p, chunk);
        if (w <= 0)
            abort(); /* only on allocation failure */
        p += w;
        n -= (size_t)w;
    }
}

int px_tls_handshake(struct px_tls *t, const char **why)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    *why = reason ? reason : "handshake failed";
    return -1;
}

long px_tls_read(struct px_tls *t, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    ERR_clear_error();
    int r = SSL_read(t->ssl, out, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (r > 0)
        return r;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    return e == SSL_ERROR_ZERO_RETURN ? PX_TLS_CLOSED : PX_TLS_ERROR;
}

bool px_tls_has_pending(const struct px_tls *t)
{
    return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->in) > 0;
}

int px_tls_write(struct px_tls *t, const char *p, size_t n)
{
    while (n > 0) {
        ERR_clear_error();
        int r = SSL_write(t->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        if (r <= 0)
            return PX_TLS_ERROR;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

char *px_tls_take_output(struct px_tls *t, size_t *len)
{
    size_t n = BIO_ctrl_pending(t->out);
    *len = 0;
    if (n == 0)
        return NULL;
    char *buf = xmalloc(n);
    int r = BIO_read(t->out, buf, (int)n);
    if (r <= 0) {
        free(buf);
        return NULL;
    }
    *len = (size_t)r;
    return buf;
}
