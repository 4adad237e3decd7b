/* Upstream name resolution for one worker (dns.c): uv_getaddrinfo on the worker's loop, a
 * short-lived cache, one lookup per name at a time; IP literals bypass it. */
#ifndef LEGATE_PROXY_DNS_H
#define LEGATE_PROXY_DNS_H

#include "internal.h"

void px_dns_init(struct px_dns *d);
/* Frees the cache. No lookup may be in flight. */
void px_dns_free(struct px_dns *d);
/* Resolves host on w's loop. Returns 0 with q->addr set right away (an IP literal, or a cached
 * answer), 1 when cb will be called later, or a negative libuv error. Among several
 * addresses q->pick (set by the caller, NULL: the first) chooses. */
int px_dns_resolve(struct px_worker *w, const char *host, struct px_dns_query *q, px_dns_cb cb);
/* The cached answer for host, when there is a fresh one: returns 0 with *addrs (borrowed, valid
 * until the worker's loop runs again) and *n; else -1 (IP literals too: one address needs no
 * choice). */
int px_dns_peek(struct px_worker *w, const char *host, const struct sockaddr_storage **addrs,
                unsigned *n);
/* Forgets a pending query: its callback will not be called. */
void px_dns_cancel(struct px_dns_query *q);
/* Drops expired answers nobody waits for. */
void px_dns_sweep(struct px_worker *w, uint64_t now);

#endif
