#include "lb.h"

#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "policy.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* splitmix64's finaliser: scores spread evenly even for keys that differ in one bit. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static const void *host_bytes(const struct sockaddr_storage *a, size_t *len)
{
    if (a->ss_family == AF_INET) {
        *len = 4;
        return &((const struct sockaddr_in *)a)->sin_addr;
    }
    *len = 16;
    return &((const struct sockaddr_in6 *)a)->sin6_addr;
}

bool px_lb_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    size_t la, lb;
    if (a->ss_family != b->ss_family)
        return false;
    const void *pa = host_bytes(a, &la), *pb = host_bytes(b, &lb);
    return la == lb && memcmp(pa, pb, la) == 0;
}

unsigned px_lb_rendezvous(uint64_t key, const struct sockaddr_storage *addrs, unsigned n)
{
    unsigned best = 0;
    uint64_t best_score = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len;
        const void *p = host_bytes(&addrs[i], &len);
        uint64_t score = mix(fnv(key ^ 0xcbf29ce484222325ull, p, len));
        if (i == 0 || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

/* The value of cookie `name` in the request's Cookie lines ("a=1; b=2"). */
static bool cookie_value(const struct px_h1_parser *p, const char *name, const char **v,
                         size_t *vlen)
{
    size_t nl = strlen(name);
    for (int i = px_h1_find(p, "cookie", 0); i >= 0; i = px_h1_find(p, "cookie", (uint32_t)i + 1)) {
        const char *s = px_h1_at(p, p->headers[i].value), *end = s + p->headers[i].value.len;
        while (s < end) {
            while (s < end && (*s == ' ' || *s == ';'))
                s++;
            const char *pair = s;
            while (s < end && *s != ';')
                s++;
            const char *eq = memchr(pair, '=', (size_t)(s - pair));
            if (eq != NULL && (size_t)(eq - pair) == nl && memcmp(pair, name, nl) == 0) {
                *v = eq + 1;
                *vlen = (size_t)(s - eq - 1);
                return true;
            }
        }
    }
    return false;
}

bool px_lb_key(const struct px_conn *c, const struct route_lb *lb, uint64_t *key)
{
    const struct px_h1_parser *p = &c->req;
    const char *v = NULL;
    size_t len = 0;
    switch (lb->hash_on) {
    case ROUTE_LB_HASH_HEADER: {
        int i = px_h1_find(p, lb->key, 0);
        if (i < 0)
            return false;
        v = px_h1_at(p, p->headers[i].value);
        len = p->headers[i].value.len;
        break;
    }
    case ROUTE_LB_HASH_COOKIE:
        if (!cookie_value(p, lb->key, &v, &len))
            return false;
        break;
    case ROUTE_LB_HASH_SOURCE_IP:
        v = c->client_ip;
        len = strlen(c->client_ip);
        break;
    default:
        return false;
    }
    *key = fnv(0xcbf29ce484222325ull, v, len);
    return true;
}

unsigned px_lb_pick(const struct px_conn *c, const struct route_lb *lb, unsigned *rr,
                    const unsigned *active, const struct sockaddr_storage *addrs, unsigned n)
{
    if (n <= 1)
        return 0;
    uint64_t key;
    switch (lb->policy) {
    case ROUTE_LB_RING_HASH:
    case ROUTE_LB_MAGLEV:
        if (px_lb_key(c, lb, &key))
            return px_lb_rendezvous(key, addrs, n);
        return (unsigned)(px_policy_random() % n);
    case ROUTE_LB_LEAST_REQUEST: {
        uint64_t r = px_policy_random();
        unsigned a = (unsigned)(r % n), b = (unsigned)((r >> 32) % (n - 1));
        if (b >= a)
            b++; /* two distinct addresses */
        return active[b] < active[a] ? b : a;
    }
    default:
        return (*rr)++ % n;
    }
}
