/* The request router (router.h).
 *
 * Layout. Routes are grouped into host sets: one per distinct `host` (lower-cased, in an
 * open-addressing hash table) and one wildcard set for routes without `host`. Each set has up
 * to two radix tries over the literal prefix: one for case-sensitive routes and one, keyed by
 * the lower-cased prefix, for `case_sensitive: false` routes (walked with a case-folding
 * comparison, so lookup never allocates). Every trie of the router lives in one flat node
 * array; a node's children are contiguous and sorted by the first byte of their label, so a
 * child is found by binary search. Edge labels live in one byte pool. A node ending a prefix
 * owns a run in `ids`: the indexes of the routes with exactly that prefix, ascending, with
 * ID_EXACT set on `prefix_exact` routes and ID_ANY on routes with no method or header
 * predicate, which then match without their route being read (one cache miss less per
 * candidate in a large table).
 *
 * Lookup. The answer must equal "the first route in table order whose predicates all match",
 * i.e. the smallest matching index. Walking the request path down a trie meets exactly the
 * routes whose prefix is a prefix of the path; their other predicates are checked and the
 * smallest index wins. Each node records the smallest index in its subtree (min_sub), so a
 * walk stops as soon as nothing below can beat the best index found, and a run (sorted) stops
 * at its first match or at the best index. Then each host set's prefix_regex routes (a list
 * in table order) are tried up to the best index so far: a regex route that comes before the
 * best trie candidate in the table still wins, and one after it is never run.
 *
 * Regexes are compiled once at build (struct rpred, only for routes that have one) and
 * matched with RE2, which is thread-safe and linear-time.
 *
 * Build. The (set, trie, prefix, index) entries are sorted once; each trie is then built from
 * its sorted range without any pointer-based insertion: the keys of a node's subtree are a
 * contiguous range sharing the node's path, the keys that end there come first, and the rest
 * split into children by their next byte; a child's label runs to the longest common prefix
 * of its range, which for a sorted range is that of its first and last key. Work items go on
 * an explicit stack so deep tries cannot exhaust the C stack. */
#include "router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rx.h"
#include "xalloc.h"

#define ID_EXACT 0x80000000u /* flag in ids[]: the route is prefix_exact */
#define ID_ANY   0x40000000u /* flag in ids[]: no predicate besides the prefix */
#define ID_MASK  0x3fffffffu
#define NO_NODE  UINT32_MAX
#define NO_ROUTE UINT32_MAX

enum { TRIE_CS = 0, TRIE_CI = 1 };

struct rnode {
    uint32_t label;     /* offset of the edge label in pool */
    uint32_t label_len; /* 0 only for a root */
    uint32_t child;     /* first child; children are contiguous and sorted by `first` */
    uint32_t run;       /* offset in ids of the routes whose prefix ends here */
    uint32_t nrun;
    uint32_t min_sub; /* smallest route index in this subtree, NO_ROUTE if none */
    uint16_t nchild;
    uint8_t first; /* label[0], kept here so a child search stays in the node array */
};

struct rhost {
    char *name; /* lower case, owned; NULL marks the wildcard set */
    size_t len;
    uint32_t hash;
    uint32_t root[2];  /* TRIE_CS, TRIE_CI; NO_NODE when empty */
    uint32_t rx_first; /* this set's prefix_regex routes: rx_ids[rx_first, rx_first + rx_n) */
    uint32_t rx_n;
};

/* A route's compiled regexes; NULL where the route has none of that kind. */
struct rpred {
    struct rx *prefix;
    struct rx *host;
    struct rx *method;
    struct rx **headers; /* one per route header; NULL for non-regex ones */
    struct rx **query;
    struct rx *rewrite;  /* regex_rewrite.pattern */
    struct rx *redirect; /* regex_redirect.pattern */
};

struct px_router {
    const struct route_table *t;
    struct rnode *nodes;
    size_t nnodes;
    char *pool;
    size_t pool_len;
    uint32_t *ids;
    size_t nids;
    struct rhost *hosts; /* [0] is the wildcard set */
    size_t nhosts;
    uint32_t *slots;     /* hash slots: index into hosts (never 0, the wildcard), 0 = empty */
    size_t nslots;       /* power of two */
    struct rpred *preds; /* per route, or NULL when the table has no regex at all */
    uint32_t *rx_ids;    /* prefix_regex routes, by host set then table order */
    size_t nrx;
};

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* FNV-1a over the lower-cased bytes, so lookups need no lower-cased copy of the Host. */
static uint32_t host_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= lower((unsigned char)s[i]);
        h *= 16777619u;
    }
    return h;
}

static bool eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Returns the host set for name, or NULL. name is compared case-insensitively. */
static const struct rhost *host_find(const struct px_router *r, const char *name, size_t len)
{
    if (r->nslots == 0)
        return NULL;
    uint32_t h = host_hash(name, len);
    size_t mask = r->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t s = r->slots[i];
        if (s == 0)
            return NULL;
        const struct rhost *e = &r->hosts[s];
        if (e->hash == h && e->len == len && eq_nocase(e->name, name, len))
            return e;
    }
}

/* ---- build ---- */

struct bentry {
    const char *key; /* the prefix, lower-cased for TRIE_CI (then owned by the build) */
    uint32_t len;
    uint32_t id; /* route index | ID_EXACT | ID_ANY */
    uint32_t set;
    uint32_t trie;
};

struct bwork {
    uint32_t node;
    size_t lo, hi; /* entries of the subtree */
    size_t depth;  /* bytes of the key consumed up to and including node's label */
};

struct builder {
    struct px_router *r;
    size_t nodes_cap, pool_cap;
    struct bwork *stack;
    size_t nstack, stack_cap;
};

static int cmp_entry(const void *pa, const void *pb)
{
    const struct bentry *a = pa, *b = pb;
    if (a->set != b->set)
        return a->set < b->set ? -1 : 1;
    if (a->trie != b->trie)
        return a->trie < b->trie ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->key, b->key, n);
    if (c != 0)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    uint32_t ia = a->id & ID_MASK, ib = b->id & ID_MASK;
    return ia < ib ? -1 : ia > ib;
}

static uint32_t node_alloc(struct builder *b, size_t n)
{
    struct px_router *r = b->r;
    if (r->nnodes + n > b->nodes_cap) {
        while (r->nnodes + n > b->nodes_cap)
            b->nodes_cap = b->nodes_cap ? b->nodes_cap * 2 : 64;
        r->nodes = xrealloc(r->nodes, b->nodes_cap * sizeof(*r->nodes));
    }
    uint32_t first = (uint32_t)r->nnodes;
    memset(&r->nodes[first], 0, n * sizeof(*r->nodes));
    r->nnodes += n;
    return first;
}

static uint32_t pool_add(struct builder *b, const char *p, size_t n)
{
    struct px_router *r = b->r;
    if (r->pool_len + n > b->pool_cap) {
        while (r->pool_len + n > b->pool_cap)
            b->pool_cap = b->pool_cap ? b->pool_cap * 2 : 256;
        r->pool = xrealloc(r->pool, b->pool_cap);
    }
    uint32_t off = (uint32_t)r->pool_len;
    memcpy(r->pool + off, p, n);
    r->pool_len += n;
    return off;
}

static void push(struct builder *b, uint32_t node, size_t lo, size_t hi, size_t depth)
{
    if (b->nstack == b->stack_cap) {
        b->stack_cap = b->stack_cap ? b->stack_cap * 2 : 64;
        b->stack = xrealloc(b->stack, b->stack_cap * sizeof(*b->stack));
    }
    b->stack[b->nstack++] = (struct bwork){ node, lo, hi, depth };
}

/* Builds one trie from e[0..n) (sorted, same set and trie); returns its root. */
static uint32_t build_trie(struct builder *b, const struct bentry *e, size_t n)
{
    struct px_router *r = b->r;
    uint32_t root = node_alloc(b, 1);
    push(b, root, 0, n, 0);
    while (b->nstack > 0) {
        struct bwork w = b->stack[--b->nstack];
        size_t i = w.lo;
        /* Keys ending here sort first in the range; sorted by index among themselves. */
        r->nodes[w.node].run = (uint32_t)r->nids;
        while (i < w.hi && e[i].len == w.depth)
            r->ids[r->nids++] = e[i++].id;
        r->nodes[w.node].nrun = (uint32_t)(r->nids - r->nodes[w.node].run);
        if (i == w.hi)
            continue;
        size_t groups = 0;
        for (size_t j = i; j < w.hi; groups++) {
            char c = e[j].key[w.depth];
            while (j < w.hi && e[j].key[w.depth] == c)
                j++;
        }
        uint32_t child = node_alloc(b, groups);
        r->nodes[w.node].child = child;
        r->nodes[w.node].nchild = (uint16_t)groups;
        for (size_t j = i; j < w.hi; child++) {
            size_t a = j;
            char c = e[j].key[w.depth];
            while (j < w.hi && e[j].key[w.depth] == c)
                j++;
            const struct bentry *f = &e[a], *l = &e[j - 1];
            size_t lcp = w.depth + 1, max = f->len < l->len ? f->len : l->len;
            while (lcp < max && f->key[lcp] == l->key[lcp])
                lcp++;
            struct rnode *cn = &r->nodes[child];
            cn->label = pool_add(b, f->key + w.depth, lcp - w.depth);
            cn->label_len = (uint32_t)(lcp - w.depth);
            cn->first = (uint8_t)c;
            push(b, child, a, j, lcp);
        }
    }
    return root;
}

/* Children always come after their parent in the node array, so one backward pass computes
 * every subtree minimum. */
static void compute_min_sub(struct px_router *r)
{
    for (size_t k = r->nnodes; k-- > 0;) {
        struct rnode *n = &r->nodes[k];
        uint32_t m = n->nrun ? (r->ids[n->run] & ID_MASK) : NO_ROUTE;
        for (uint32_t c = 0; c < n->nchild; c++)
            if (r->nodes[n->child + c].min_sub < m)
                m = r->nodes[n->child + c].min_sub;
        n->min_sub = m;
    }
}

/* Returns the set index for a lower-cased host, adding it when new. */
static uint32_t host_intern(struct px_router *r, size_t *hosts_cap, const char *name)
{
    size_t len = strlen(name);
    const struct rhost *found = host_find(r, name, len);
    if (found)
        return (uint32_t)(found - r->hosts);
    if (r->nhosts == *hosts_cap) {
        *hosts_cap *= 2;
        r->hosts = xrealloc(r->hosts, *hosts_cap * sizeof(*r->hosts));
    }
    uint32_t idx = (uint32_t)r->nhosts++;
    r->hosts[idx] =
        (struct rhost){ xstrdup(name), len, host_hash(name, len), { NO_NODE, NO_NODE }, 0, 0 };
    /* Keep the load factor under 1/2; the table is rebuilt from hosts[] when it grows. */
    if (r->nhosts * 2 > r->nslots) {
        free(r->slots);
        r->nslots = r->nslots ? r->nslots * 2 : 16;
        while (r->nhosts * 2 > r->nslots)
            r->nslots *= 2;
        r->slots = xcalloc(r->nslots, sizeof(*r->slots));
        for (uint32_t k = 1; k < r->nhosts; k++) {
            size_t s = r->hosts[k].hash & (r->nslots - 1);
            while (r->slots[s] != 0)
                s = (s + 1) & (r->nslots - 1);
            r->slots[s] = k;
        }
    } else {
        size_t s = r->hosts[idx].hash & (r->nslots - 1);
        while (r->slots[s] != 0)
            s = (s + 1) & (r->nslots - 1);
        r->slots[s] = idx;
    }
    return idx;
}

static bool route_has_regex(const struct route *rt)
{
    if (rt->prefix_regex || rt->host_regex || rt->method_regex || rt->regex_rewrite.pattern ||
        rt->regex_redirect.pattern)
        return true;
    for (size_t h = 0; h < rt->nheaders; h++)
        if (rt->headers[h].regex)
            return true;
    for (size_t q = 0; q < rt->nquery; q++)
        if (rt->query[q].regex)
            return true;
    return false;
}

/* Compiles pattern into *out. Returns false with a reason in why. */
static bool compile_one(const char *what, const char *pattern, unsigned flags, struct rx **out,
                        char *why, size_t whylen)
{
    char reason[200];
    if (pattern == NULL) {
        snprintf(why, whylen, "%s without a pattern", what);
        return false;
    }
    if (rx_compile(pattern, flags, out, reason, sizeof(reason)) != 0) {
        snprintf(why, whylen, "%s: invalid regex \"%s\": %s", what, pattern, reason);
        return false;
    }
    return true;
}

static bool compile_kvs(const char *what, const struct route_header *v, size_t n, struct rx ***out,
                        char *why, size_t whylen)
{
    *out = xcalloc(n + 1, sizeof(**out));
    for (size_t i = 0; i < n; i++)
        if (v[i].regex && !compile_one(what, v[i].value, 0, &(*out)[i], why, whylen))
            return false;
    return true;
}

/* Compiles the regexes of route i into r->preds[i]. Returns false with a reason in why. */
static bool compile_route(struct px_router *r, size_t i, char *why, size_t whylen)
{
    const struct route *rt = &r->t->routes[i];
    struct rpred *p = &r->preds[i];
    if (rt->prefix_regex &&
        !compile_one("prefix_regex", rt->prefix, rt->case_sensitive ? 0 : RX_ICASE, &p->prefix, why,
                     whylen))
        return false;
    if (rt->host_regex && !compile_one("host", rt->host, RX_ICASE, &p->host, why, whylen))
        return false;
    if (rt->method_regex && !compile_one("method", rt->method, 0, &p->method, why, whylen))
        return false;
    if (rt->regex_rewrite.pattern != NULL &&
        !compile_one("regex_rewrite", rt->regex_rewrite.pattern, 0, &p->rewrite, why, whylen))
        return false;
    if (rt->regex_redirect.pattern != NULL &&
        !compile_one("regex_redirect", rt->regex_redirect.pattern, 0, &p->redirect, why, whylen))
        return false;
    return compile_kvs("headers", rt->headers, rt->nheaders, &p->headers, why, whylen) &&
           compile_kvs("query_parameters", rt->query, rt->nquery, &p->query, why, whylen);
}

/* Refuses what this router cannot route. Returns 0 or -EINVAL with a reason in err. */
static int check_route(struct px_router *r, size_t i, char *err, size_t errlen)
{
    const struct route *rt = &r->t->routes[i];
    char why[512] = "";
    if (rt->prefix == NULL)
        snprintf(why, sizeof(why), "missing prefix");
    else if (strlen(rt->prefix) > ID_MASK)
        snprintf(why, sizeof(why), "prefix too long");
    else if ((rt->host_regex && rt->host == NULL) || (rt->method_regex && rt->method == NULL))
        snprintf(why, sizeof(why), "host_regex or method_regex without a value");
    for (size_t h = 0; why[0] == '\0' && h < rt->nheaders; h++)
        if (rt->headers[h].name == NULL)
            snprintf(why, sizeof(why), "header without a name");
    if (why[0] == '\0' && r->preds != NULL)
        compile_route(r, i, why, sizeof(why));
    if (why[0] == '\0')
        return 0;
    snprintf(err, errlen, "routes[%zu] (ns=%s svc=%s mapping=%s): %s", i, rt->ns ? rt->ns : "",
             rt->svc ? rt->svc : "", rt->mapping ? rt->mapping : "", why);
    return -EINVAL;
}

/* Sorts (set, index) pairs packed in a uint64_t. */
static int cmp_u64(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

struct px_router *px_router_build(const struct route_table *t, char *err, size_t errlen)
{
    struct px_router *r = xcalloc(1, sizeof(*r));
    struct bentry *e = NULL;
    uint64_t *rx = NULL; /* (set << 32 | index) of prefix_regex routes */
    char *folded = NULL; /* lower-cased keys of TRIE_CI entries, back to back */
    struct builder b = { .r = r };
    size_t hosts_cap = 8, folded_len = 0, ne = 0;
    bool ok = false;

    r->t = t;
    if (t->nroutes > ID_MASK) {
        snprintf(err, errlen, "too many routes (%zu)", t->nroutes);
        goto out;
    }
    for (size_t i = 0; i < t->nroutes && r->preds == NULL; i++)
        if (route_has_regex(&t->routes[i]))
            r->preds = xcalloc(t->nroutes, sizeof(*r->preds));
    for (size_t i = 0; i < t->nroutes; i++) {
        if (check_route(r, i, err, errlen) != 0)
            goto out;
        if (!t->routes[i].case_sensitive && !t->routes[i].prefix_regex)
            folded_len += strlen(t->routes[i].prefix);
    }

    r->hosts = xcalloc(hosts_cap, sizeof(*r->hosts));
    r->hosts[0] = (struct rhost){ NULL, 0, 0, { NO_NODE, NO_NODE }, 0, 0 };
    r->nhosts = 1;
    e = xcalloc(t->nroutes + 1, sizeof(*e));
    rx = xcalloc(t->nroutes + 1, sizeof(*rx));
    folded = xmalloc(folded_len + 1);
    r->ids = xcalloc(t->nroutes + 1, sizeof(*r->ids));
    char host[256];
    for (size_t i = 0, fo = 0; i < t->nroutes; i++) {
        const struct route *rt = &t->routes[i];
        uint32_t set = 0;
        /* A host_regex route is in the wildcard set; its regex is one more predicate. */
        if (rt->host != NULL && !rt->host_regex) {
            /* A Host is at most 255 bytes (RFC 1035); a longer one can never match. */
            size_t hl = strlen(rt->host);
            if (hl >= sizeof(host)) {
                snprintf(err, errlen, "routes[%zu] (ns=%s svc=%s mapping=%s): host too long", i,
                         rt->ns ? rt->ns : "", rt->svc ? rt->svc : "",
                         rt->mapping ? rt->mapping : "");
                goto out;
            }
            for (size_t k = 0; k <= hl; k++)
                host[k] = (char)lower((unsigned char)rt->host[k]);
            set = host_intern(r, &hosts_cap, host);
        }
        if (rt->prefix_regex) {
            rx[r->nrx++] = (uint64_t)set << 32 | i;
            continue;
        }
        struct bentry *en = &e[ne++];
        en->set = set;
        en->len = (uint32_t)strlen(rt->prefix);
        en->id =
            (uint32_t)i | (rt->prefix_exact ? ID_EXACT : 0) |
            (rt->method == NULL && rt->nheaders == 0 && rt->nquery == 0 && !rt->host_regex ? ID_ANY
                                                                                           : 0);
        if (rt->case_sensitive) {
            en->trie = TRIE_CS;
            en->key = rt->prefix;
        } else {
            en->trie = TRIE_CI;
            for (size_t k = 0; k < en->len; k++)
                folded[fo + k] = (char)lower((unsigned char)rt->prefix[k]);
            en->key = folded + fo;
            fo += en->len;
        }
    }
    qsort(e, ne, sizeof(*e), cmp_entry);
    for (size_t lo = 0, hi; lo < ne; lo = hi) {
        for (hi = lo; hi < ne && e[hi].set == e[lo].set && e[hi].trie == e[lo].trie;)
            hi++;
        r->hosts[e[lo].set].root[e[lo].trie] = build_trie(&b, e + lo, hi - lo);
    }
    compute_min_sub(r);
    /* Each set's regex routes: a contiguous run in table order. */
    qsort(rx, r->nrx, sizeof(*rx), cmp_u64);
    if (r->nrx > 0)
        r->rx_ids = xmalloc(r->nrx * sizeof(*r->rx_ids));
    for (size_t k = 0; k < r->nrx; k++) {
        struct rhost *h = &r->hosts[rx[k] >> 32];
        if (h->rx_n++ == 0)
            h->rx_first = (uint32_t)k;
        r->rx_ids[k] = (uint32_t)rx[k];
    }
    /* The build grew its arrays by doubling; give the slack back, the router lives long. */
    if (r->nnodes)
        r->nodes = xrealloc(r->nodes, r->nnodes * sizeof(*r->nodes));
    if (r->pool_len)
        r->pool = xrealloc(r->pool, r->pool_len);
    ok = true;
out:
    free(b.stack);
    free(e);
    free(rx);
    free(folded);
    if (!ok) {
        px_router_free(r);
        r = NULL;
    }
    return r;
}

static void free_rx_list(struct rx **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        rx_free(v[i]);
    free(v);
}

void px_router_free(struct px_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->preds != NULL && i < r->t->nroutes; i++) {
        struct rpred *p = &r->preds[i];
        rx_free(p->prefix);
        rx_free(p->host);
        rx_free(p->method);
        rx_free(p->rewrite);
        rx_free(p->redirect);
        free_rx_list(p->headers, r->t->routes[i].nheaders);
        free_rx_list(p->query, r->t->routes[i].nquery);
    }
    free(r->preds);
    free(r->rx_ids);
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i].name);
    free(r->hosts);
    free(r->slots);
    free(r->nodes);
    free(r->pool);
    free(r->ids);
    free(r);
}

size_t px_router_memory(const struct px_router *r)
{
    /* Compiled regexes live in RE2's own allocations and are not counted. */
    size_t n = sizeof(*r) + r->nnodes * sizeof(*r->nodes) + r->pool_len +
               r->t->nroutes * sizeof(*r->ids) + r->nslots * sizeof(*r->slots) +
               r->nrx * sizeof(*r->rx_ids) + (r->preds ? r->t->nroutes * sizeof(*r->preds) : 0);
    for (size_t i = 0; i < r->nhosts; i++)
        n += sizeof(r->hosts[i]) + (r->hosts[i].name ? r->hosts[i].len + 1 : 0);
    return n;
}

/* ---- lookup ---- */

size_t px_host_without_port(const char *h, size_t n)
{
    if (n > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        return close ? (size_t)(close - h) + 1 : n;
    }
    const char *colon = memchr(h, ':', n);
    return colon ? (size_t)(colon - h) : n;
}

/* A constraint's value against one received value: exact bytes, or the whole value matching
 * the regex re (a regex constraint); a presence constraint (value NULL) takes anything. */
static bool value_matches(const struct route_header *h, const struct rx *re, const char *v,
                          size_t vl)
{
    if (h->value == NULL)
        return true;
    if (h->regex)
        return rx_full_match(re, v, vl);
    return strlen(h->value) == vl && memcmp(v, h->value, vl) == 0;
}

/* Any header of that name (case-insensitive) whose value matches. */
static bool header_matches(const struct route_header *h, const struct rx *re,
                           const struct px_request_view *req)
{
    size_t nl = strlen(h->name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct px_header *rh = &req->headers[i];
        if (rh->name_len == nl && eq_nocase(rh->name, h->name, nl) &&
            value_matches(h, re, rh->value, rh->value_len))
            return true;
    }
    return false;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* URL-decodes s (n bytes: "%41" and '+' as space, as forms encode them; a malformed escape
 * stays as written) into out. Returns the decoded length, or SIZE_MAX when over cap. */
static size_t url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++, k++) {
        if (k == cap)
            return SIZE_MAX;
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            out[k] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[k] = s[i] == '+' ? ' ' : s[i];
        }
    }
    return k;
}

/* A query value longer than the request target cap cannot occur; longer ones do not match. */
#define QUERY_DECODE_MAX 8192

/* Any parameter of that name (decoded, case-sensitive) whose decoded value matches.
 * "?a" and "?a=" both make a present, with an empty value. */
static bool query_matches(const struct route_header *h, const struct rx *re,
                          const struct px_request_view *req)
{
    char buf[QUERY_DECODE_MAX];
    const char *q = req->query, *end = q ? q + req->query_len : NULL;
    size_t nl = strlen(h->name);
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q));
        const char *nend = eq ? eq : pend;
        size_t dl = url_decode(q, (size_t)(nend - q), buf, sizeof(buf));
        if (dl == nl && memcmp(buf, h->name, nl) == 0) {
            const char *v = eq ? eq + 1 : pend;
            size_t vl = url_decode(v, (size_t)(pend - v), buf, sizeof(buf));
            if (vl != SIZE_MAX && value_matches(h, re, buf, vl))
                return true;
        }
        q = amp ? amp + 1 : end;
    }
    return false;
}

/* Every predicate of route idx but the path, which the caller has matched. */
static bool route_matches(const struct px_router *r, uint32_t idx,
                          const struct px_request_view *req)
{
    const struct route *rt = &r->t->routes[idx];
    const struct rpred *p = r->preds ? &r->preds[idx] : NULL;
    if (rt->method != NULL) {
        if (req->method == NULL)
            return false;
        if (rt->method_regex) {
            if (!rx_full_match(p->method, req->method, req->method_len))
                return false;
        } else {
            size_t ml = strlen(rt->method);
            if (req->method_len != ml || memcmp(req->method, rt->method, ml) != 0)
                return false;
        }
    }
    if (rt->host_regex) {
        /* Like an exact host: the Host without its port, or as sent. */
        if (req->host == NULL)
            return false;
        size_t bare = px_host_without_port(req->host, req->host_len);
        if (!rx_full_match(p->host, req->host, bare) &&
            (bare == req->host_len || !rx_full_match(p->host, req->host, req->host_len)))
            return false;
    }
    for (size_t h = 0; h < rt->nheaders; h++)
        if (!header_matches(&rt->headers[h], p ? p->headers[h] : NULL, req))
            return false;
    for (size_t q = 0; q < rt->nquery; q++)
        if (!query_matches(&rt->query[q], p ? p->query[q] : NULL, req))
            return false;
    return true;
}

static bool label_matches(const char *label, const char *p, size_t n, bool fold)
{
    if (!fold)
        return memcmp(label, p, n) == 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)label[i] != lower((unsigned char)p[i]))
            return false;
    return true;
}

/* Walks one trie along the request path, lowering *best to the smallest matching index. */
static void walk(const struct px_router *r, uint32_t root, const struct px_request_view *req,
                 bool fold, uint32_t *best)
{
    const char *path = req->path;
    size_t len = req->path_len, pos = 0;
    const struct rnode *n = &r->nodes[root];
    for (;;) {
        if (n->min_sub >= *best)
            return;
        for (uint32_t k = 0; k < n->nrun; k++) {
            uint32_t id = r->ids[n->run + k];
            uint32_t idx = id & ID_MASK;
            if (idx >= *best)
                break;
            if ((id & ID_EXACT) && pos != len)
                continue;
            if ((id & ID_ANY) || route_matches(r, idx, req)) {
                *best = idx;
                break;
            }
        }
        if (pos == len || n->nchild == 0)
            return;
        unsigned char c = (unsigned char)path[pos];
        if (fold)
            c = lower(c);
        const struct rnode *kids = &r->nodes[n->child];
        size_t lo = 0, hi = n->nchild;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (kids[mid].first < c)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == n->nchild || kids[lo].first != c)
            return;
        n = &kids[lo];
        if (n->label_len > len - pos ||
            !label_matches(r->pool + n->label, path + pos, n->label_len, fold))
            return;
        pos += n->label_len;
    }
}

/* Tries the set's prefix_regex routes that come before *best in the table. */
static void scan_regex(const struct px_router *r, const struct rhost *h,
                       const struct px_request_view *req, uint32_t *best)
{
    for (uint32_t k = 0; k < h->rx_n; k++) {
        uint32_t idx = r->rx_ids[h->rx_first + k];
        if (idx >= *best)
            return;
        if (route_matches(r, idx, req) &&
            rx_full_match(r->preds[idx].prefix, req->path, req->path_len)) {
            *best = idx;
            return;
        }
    }
}

static void walk_set(const struct px_router *r, const struct rhost *h,
                     const struct px_request_view *req, uint32_t *best)
{
    if (h->root[TRIE_CS] != NO_NODE)
        walk(r, h->root[TRIE_CS], req, false, best);
    if (h->root[TRIE_CI] != NO_NODE)
        walk(r, h->root[TRIE_CI], req, true, best);
}

const struct route *px_router_match(const struct px_router *r, const struct px_request_view *req)
{
    uint32_t best = NO_ROUTE;
    const struct rhost *sets[3];
    size_t nsets = 0;
    if (req->path == NULL)
        return NULL;
    if (req->host != NULL && r->nhosts > 1) {
        /* A route host is compared with the request's Host without its port, and also as
         * sent when that carried one, so `host: example.com:8080` keeps meaning that port. */
        size_t bare = px_host_without_port(req->host, req->host_len);
        const struct rhost *h = host_find(r, req->host, bare);
        if (h)
            sets[nsets++] = h;
        if (bare != req->host_len && (h = host_find(r, req->host, req->host_len)) != NULL)
            sets[nsets++] = h;
    }
    sets[nsets++] = &r->hosts[0];
    for (size_t i = 0; i < nsets; i++)
        walk_set(r, sets[i], req, &best);
    for (size_t i = 0; i < nsets && r->nrx > 0; i++)
        scan_regex(r, sets[i], req, &best);
    return best == NO_ROUTE ? NULL : &r->t->routes[best];
}

/* ---- rewriting and redirects ---- */

/* How much of the path the route matched: its literal prefix, or all of it for a regex. The
 * matched prefix has the same length whether it matched with or without case. */
static size_t matched_len(const struct route *r, size_t path_len)
{
    size_t pl = r->prefix_regex ? path_len : strlen(r->prefix);
    return pl < path_len ? pl : path_len;
}

/* Appends n bytes at out[*len]; false when they would pass outlen. */
static bool put(char *out, size_t outlen, size_t *len, const char *p, size_t n)
{
    if (n > outlen - *len)
        return false;
    memcpy(out + *len, p, n);
    *len += n;
    return true;
}

/* Appends "?query" when query is not NULL. Returns the total length or -ENOSPC. */
static long finish_query(char *out, size_t outlen, size_t len, const char *query, size_t query_len)
{
    if (query != NULL &&
        (!put(out, outlen, &len, "?", 1) || !put(out, outlen, &len, query, query_len)))
        return -ENOSPC;
    return len > (size_t)INT32_MAX ? -ENOSPC : (long)len;
}

long px_rewrite_target(const struct route *r, const char *path, size_t path_len, const char *query,
                       size_t query_len, char *out, size_t outlen)
{
    size_t len = 0;
    if (r->rewrite == NULL) {
        if (!put(out, outlen, &len, path, path_len))
            return -ENOSPC;
    } else {
        size_t pl = matched_len(r, path_len);
        if (!put(out, outlen, &len, r->rewrite, strlen(r->rewrite)) ||
            !put(out, outlen, &len, path + pl, path_len - pl))
            return -ENOSPC;
    }
    return finish_query(out, outlen, len, query, query_len);
}

/* Replaces every match of re in path with sub, then appends the query. */
static long replace_path(const struct rx *re, const char *sub, const char *path, size_t path_len,
                         const char *query, size_t query_len, char *out, size_t outlen)
{
    long n = rx_replace_all(re, sub, path, path_len, out, outlen);
    return n < 0 ? n : finish_query(out, outlen, (size_t)n, query, query_len);
}

long px_router_rewrite(const struct px_router *rt, const struct route *r, const char *path,
                       size_t path_len, const char *query, size_t query_len, char *out,
                       size_t outlen)
{
    if (r->regex_rewrite.pattern != NULL && rt->preds != NULL)
        return replace_path(rt->preds[r - rt->t->routes].rewrite, r->regex_rewrite.substitution,
                            path, path_len, query, query_len, out, outlen);
    return px_rewrite_target(r, path, path_len, query, query_len, out, outlen);
}

size_t px_router_rewrite_room(const struct route *r, size_t path_len, size_t query_len)
{
    size_t room = path_len + 1 + query_len + (r->rewrite ? strlen(r->rewrite) : 0);
    /* A substitution is usually a few segments; room for each path byte twice over plus the
     * substitution covers the rewrites people write. */
    if (r->regex_rewrite.pattern != NULL)
        room += 2 * path_len + 2 * strlen(r->regex_rewrite.substitution) + 256;
    return room;
}

long px_router_location(const struct px_router *rt, const struct route *r, const char *scheme,
                        const char *path, size_t path_len, const char *query, size_t query_len,
                        char *out, size_t outlen)
{
    size_t len = 0;
    const char *sch = r->redirect_scheme ? r->redirect_scheme : scheme;
    if (!put(out, outlen, &len, sch, strlen(sch)) || !put(out, outlen, &len, "://", 3) ||
        !put(out, outlen, &len, r->host_redirect, strlen(r->host_redirect)))
        return -ENOSPC;
    if (r->path_redirect != NULL) {
        /* Envoy: a query in path_redirect replaces the request's. */
        if (!put(out, outlen, &len, r->path_redirect, strlen(r->path_redirect)))
            return -ENOSPC;
        if (strchr(r->path_redirect, '?') != NULL)
            query = NULL;
    } else if (r->prefix_redirect != NULL) {
        size_t pl = matched_len(r, path_len);
        if (!put(out, outlen, &len, r->prefix_redirect, strlen(r->prefix_redirect)) ||
            !put(out, outlen, &len, path + pl, path_len - pl))
            return -ENOSPC;
    } else if (r->regex_redirect.pattern != NULL && rt->preds != NULL) {
        long n = replace_path(rt->preds[r - rt->t->routes].redirect, r->regex_redirect.substitution,
                              path, path_len, query, query_len, out + len, outlen - len);
        return n < 0 ? n : (long)len + n;
    } else if (!put(out, outlen, &len, path, path_len)) {
        return -ENOSPC;
    }
    return finish_query(out, outlen, len, query, query_len);
}
