/* Upstream name resolution for one worker (dns.c): uv_getaddrinfo on the worker's loop, a
 * short-lived cache, one lookup per name at a time; IP literals bypass it. */
#ifndef LEGATE_PROXY_DNS_H
#define LEGATE_PROXY_DNS_H

#include "internal.h"

void px_dns_init(struct px_dns *d);
/* Frees the cache. No lookup may be in flight. */
void px_dns_free(struct px_dns *d);
/* Resolves host on w's loop. Returns 0 with q->addr set right away (an IP literal, or a cached
 * answer), 1 when cb will be called later, or a negative libuv error. */
int px_dns_resolve(struct px_worker *w, const char *host, struct px_dns_query *q, px_dns_cb cb);
/* Forgets a pending query: its callback will not be called. */
void px_dns_cancel(struct px_dns_query *q);
/* Drops expired answers nobody waits for. */
void px_dns_sweep(struct px_worker *w, uint64_t now);

#endif
