/* TLS origination towards upstreams (`service: https://...`, `tls: true`): OpenSSL driven
 * over memory BIOs, so libuv keeps doing every socket read and write (upstream.c) and this
 * file only turns ciphertext into plaintext and back.
 *
 * Like Envoy under Ambassador without a TLSContext, the upstream's certificate is not
 * verified: the connection is encrypted, not authenticated (docs/mapping-compat.md). The
 * server name (SNI) is the cluster's sni, else its host, and is not sent for IP literals
 * (RFC 6066). One struct px_tls per connection, used by one worker thread. */
#ifndef LEGATE_PROXY_TLS_H
#define LEGATE_PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* Ciphertext read from the socket per read call. */
#define PX_TLS_READ_SIZE (16 * 1024 + 512)

struct px_tls;

/* Returns a new client session for server name sni (NULL or an IP literal: none sent). */
struct px_tls *px_tls_new(const char *sni);
/* Safe on NULL. */
void px_tls_free(struct px_tls *t);

/* A buffer of PX_TLS_READ_SIZE bytes to read ciphertext into (owned by t). */
char *px_tls_read_buf(struct px_tls *t);
/* Takes n bytes of ciphertext received from the peer (from px_tls_read_buf or elsewhere). */
void px_tls_feed(struct px_tls *t, const char *p, size_t n);

/* Advances the handshake. Returns 1 when it is complete, 0 when it needs more bytes from the
 * peer, or -1 when it failed (the reason, a static or thread-local string, in *why). Output to
 * send may be waiting either way (px_tls_take_output). */
int px_tls_handshake(struct px_tls *t, const char **why);

/* Decrypts into out (at most cap bytes). Returns the bytes written, 0 when no plaintext is
 * available yet, PX_TLS_CLOSED when the peer sent close_notify, or PX_TLS_ERROR. */
#define PX_TLS_CLOSED (-1)
#define PX_TLS_ERROR  (-2)
long px_tls_read(struct px_tls *t, char *out, size_t cap);
/* Whether plaintext (or ciphertext not decrypted yet) is held inside t. */
bool px_tls_has_pending(const struct px_tls *t);

/* Encrypts n bytes of plaintext (all of it; the output waits in t). 0 or PX_TLS_ERROR. */
int px_tls_write(struct px_tls *t, const char *p, size_t n);
/* Moves the ciphertext waiting to be sent into a new buffer (the caller frees it) and returns
 * its length in *len; NULL when there is none. */
char *px_tls_take_output(struct px_tls *t, size_t *len);

#endif
