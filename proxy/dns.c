/* Upstream name resolution for one worker: uv_getaddrinfo on the worker's loop (libuv runs it
 * on its thread pool), answers cached for PX_DNS_TTL_MS, and concurrent lookups of one name
 * share a single getaddrinfo. IP literals never reach the resolver.
 *
 * A name's IPv4 addresses are kept (up to PX_DNS_MAX_ADDRS, in the resolver's order), or its
 * IPv6 ones when it has no IPv4: Services resolve to IPv4 cluster addresses, and a dual-stack
 * name such as "localhost" must not send us to ::1 when the upstream listens on 127.0.0.1
 * only. Which address a query gets is its pick callback's choice (the cluster's load
 * balancer, lb.c), else the first. Failures are not cached. */
#include "dns.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct px_dns_entry {
    struct px_dns_entry *hnext;
    struct px_worker *w;
    char *host;
    uint32_t hash;
    uv_getaddrinfo_t req;
    bool resolving;
    int status;
    struct sockaddr_storage addrs[PX_DNS_MAX_ADDRS];
    unsigned naddrs;
    uint64_t expires;
    struct px_link waiters;
};

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void px_dns_init(struct px_dns *d)
{
    d->nbuckets = 64;
    d->buckets = xcalloc(d->nbuckets, sizeof(*d->buckets));
    d->n = 0;
}

static void entry_free(struct px_dns_entry *e)
{
    free(e->host);
    free(e);
}

void px_dns_free(struct px_dns *d)
{
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct px_dns_entry *e = d->buckets[i];
        while (e != NULL) {
            struct px_dns_entry *next = e->hnext;
            entry_free(e);
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = NULL;
    d->nbuckets = d->n = 0;
}

static void grow(struct px_dns *d)
{
    size_t nb = d->nbuckets * 2;
    struct px_dns_entry **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct px_dns_entry *e = d->buckets[i];
        while (e != NULL) {
            struct px_dns_entry *next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = nb;
}

static struct px_dns_entry *lookup(struct px_dns *d, const char *host, uint32_t hash)
{
    for (struct px_dns_entry *e = d->buckets[hash & (d->nbuckets - 1)]; e; e = e->hnext) {
        if (e->hash == hash && strcmp(e->host, host) == 0)
            return e;
    }
    return NULL;
}

/* Fills addr from an IP literal ("10.0.0.1", "::1", "[::1]"). Returns whether host is one. */
static bool parse_literal(const char *host, struct sockaddr_storage *addr)
{
    char buf[64];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    memset(addr, 0, sizeof(*addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    if (uv_inet_pton(AF_INET, host, &a4->sin_addr) == 0) {
        a4->sin_family = AF_INET;
        return true;
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    if (uv_inet_pton(AF_INET6, host, &a6->sin6_addr) == 0) {
        a6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* Gives q the address its pick callback chooses among e's. */
static void choose(struct px_dns_query *q, const struct px_dns_entry *e)
{
    unsigned i = q->pick != NULL && e->naddrs > 1 ? q->pick(q, e->addrs, e->naddrs) : 0;
    q->addr = e->addrs[i < e->naddrs ? i : 0];
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct px_dns_entry *e = container_of(req, struct px_dns_entry, req);
    e->resolving = false;
    e->status = status;
    e->expires = 0;
    if (status == 0) {
        int family = AF_INET6;
        for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
            if (ai->ai_family == AF_INET)
                family = AF_INET;
        e->naddrs = 0;
        for (const struct addrinfo *ai = res; ai != NULL && e->naddrs < PX_DNS_MAX_ADDRS;
             ai = ai->ai_next) {
            if (ai->ai_family != family || ai->ai_addrlen > sizeof(e->addrs[0]))
                continue;
            struct sockaddr_storage a;
            memset(&a, 0, sizeof(a));
            memcpy(&a, ai->ai_addr, ai->ai_addrlen);
            bool dup = false;
            for (unsigned i = 0; i < e->naddrs && !dup; i++)
                dup = memcmp(&e->addrs[i], &a, sizeof(a)) == 0;
            if (!dup)
                e->addrs[e->naddrs++] = a;
        }
        if (e->naddrs > 0)
            e->expires = uv_now(&e->w->loop) + PX_DNS_TTL_MS;
        else
            e->status = UV_EAI_NODATA;
    }
    uv_freeaddrinfo(res);
    /* One waiter at a time: a callback may cancel other waiters or start a new lookup of
     * this very name (which then finds the entry idle and starts over). */
    while (!px_list_empty(&e->waiters)) {
        struct px_dns_query *q = container_of(e->waiters.next, struct px_dns_query, link);
        px_list_remove(&q->link);
        q->entry = NULL;
        if (e->status == 0)
            choose(q, e);
        q->cb(q, e->status);
    }
}

int px_dns_resolve(struct px_worker *w, const char *host, struct px_dns_query *q, px_dns_cb cb)
{
    q->cb = cb;
    q->entry = NULL;
    px_list_init(&q->link);
    if (parse_literal(host, &q->addr))
        return 0;

    struct px_dns *d = &w->dns;
    uint32_t hash = hash_str(host);
    struct px_dns_entry *e = lookup(d, host, hash);
    if (e != NULL && !e->resolving && e->status == 0 && uv_now(&w->loop) < e->expires) {
        choose(q, e);
        return 0;
    }
    if (e == NULL) {
        if (d->n >= d->nbuckets)
            grow(d);
        e = xcalloc(1, sizeof(*e));
        e->w = w;
        e->host = xstrdup(host);
        e->hash = hash;
        px_list_init(&e->waiters);
        e->hnext = d->buckets[hash & (d->nbuckets - 1)];
        d->buckets[hash & (d->nbuckets - 1)] = e;
        d->n++;
    }
    if (!e->resolving) {
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int r = uv_getaddrinfo(&w->loop, &e->req, on_resolved, e->host, NULL, &hints);
        if (r < 0)
            return r;
        e->resolving = true;
    }
    q->entry = e;
    px_list_push(&e->waiters, &q->link);
    return 1;
}

int px_dns_peek(struct px_worker *w, const char *host, const struct sockaddr_storage **addrs,
                unsigned *n)
{
    struct px_dns_entry *e = lookup(&w->dns, host, hash_str(host));
    if (e == NULL || e->resolving || e->status != 0 || uv_now(&w->loop) >= e->expires)
        return -1;
    *addrs = e->addrs;
    *n = e->naddrs;
    return 0;
}

void px_dns_cancel(struct px_dns_query *q)
{
    if (q->entry == NULL)
        return;
    px_list_remove(&q->link);
    q->entry = NULL;
}

void px_dns_sweep(struct px_worker *w, uint64_t now)
{
    struct px_dns *d = &w->dns;
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct px_dns_entry **pp = &d->buckets[i];
        while (*pp != NULL) {
            struct px_dns_entry *e = *pp;
            if (!e->resolving && px_list_empty(&e->waiters) && now >= e->expires) {
                *pp = e->hnext;
                entry_free(e);
                d->n--;
            } else {
                pp = &e->hnext;
            }
        }
    }
}
