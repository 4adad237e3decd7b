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
 * routes whose prefix is a prefix of the path; their method and header predicates are
 * checked and the smallest index wins. Each node records the smallest index in its subtree
 * (min_sub), so a walk stops as soon as nothing below can beat the best index found, and a
 * run (sorted) stops at its first match or at the best index.
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

#include "xalloc.h"

#define ID_EXACT 0x80000000u /* flag in ids[]: the route is prefix_exact */
#define ID_ANY   0x40000000u /* flag in ids[]: no method or header predicate */
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
    uint32_t root[2]; /* TRIE_CS, TRIE_CI; NO_NODE when empty */
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
    uint32_t *slots; /* hash slots: index into hosts (never 0, the wildcard), 0 = empty */
    size_t nslots;   /* power of two */
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
        (struct rhost){ xstrdup(name), len, host_hash(name, len), { NO_NODE, NO_NODE } };
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

/* Refuses what this router cannot match yet. Returns 0 or -ENOTSUP with a reason in err. */
static int check_route(const struct route_table *t, size_t i, char *err, size_t errlen)
{
    const struct route *rt = &t->routes[i];
    const char *why = NULL;
    if (rt->prefix == NULL)
        why = "missing prefix";
    else if (rt->prefix_regex)
        why = "prefix_regex is not supported yet";
    else if (strlen(rt->prefix) > ID_MASK)
        why = "prefix too long";
    for (size_t h = 0; why == NULL && h < rt->nheaders; h++) {
        if (rt->headers[h].name == NULL)
            why = "header without a name";
        else if (rt->headers[h].regex)
            why = "regex headers are not supported yet";
    }
    if (why == NULL)
        return 0;
    snprintf(err, errlen, "routes[%zu] (ns=%s svc=%s mapping=%s): %s", i, rt->ns ? rt->ns : "",
             rt->svc ? rt->svc : "", rt->mapping ? rt->mapping : "", why);
    return -ENOTSUP;
}

struct px_router *px_router_build(const struct route_table *t, char *err, size_t errlen)
{
    struct px_router *r = xcalloc(1, sizeof(*r));
    struct bentry *e = NULL;
    char *folded = NULL; /* lower-cased keys of TRIE_CI entries, back to back */
    struct builder b = { .r = r };
    size_t hosts_cap = 8, folded_len = 0;
    bool ok = false;

    r->t = t;
    if (t->nroutes > ID_MASK) {
        snprintf(err, errlen, "too many routes (%zu)", t->nroutes);
        goto out;
    }
    for (size_t i = 0; i < t->nroutes; i++) {
        if (check_route(t, i, err, errlen) != 0)
            goto out;
        if (!t->routes[i].case_sensitive)
            folded_len += strlen(t->routes[i].prefix);
    }

    r->hosts = xcalloc(hosts_cap, sizeof(*r->hosts));
    r->hosts[0] = (struct rhost){ NULL, 0, 0, { NO_NODE, NO_NODE } };
    r->nhosts = 1;
    e = xcalloc(t->nroutes, sizeof(*e));
    folded = xmalloc(folded_len);
    r->ids = xcalloc(t->nroutes, sizeof(*r->ids));
    char host[256];
    for (size_t i = 0, fo = 0; i < t->nroutes; i++) {
        const struct route *rt = &t->routes[i];
        struct bentry *en = &e[i];
        en->set = 0;
        if (rt->host != NULL) {
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
            en->set = host_intern(r, &hosts_cap, host);
        }
        en->len = (uint32_t)strlen(rt->prefix);
        en->id = (uint32_t)i | (rt->prefix_exact ? ID_EXACT : 0) |
                 (rt->method == NULL && rt->nheaders == 0 ? ID_ANY : 0);
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
    qsort(e, t->nroutes, sizeof(*e), cmp_entry);
    for (size_t lo = 0, hi; lo < t->nroutes; lo = hi) {
        for (hi = lo; hi < t->nroutes && e[hi].set == e[lo].set && e[hi].trie == e[lo].trie;)
            hi++;
        r->hosts[e[lo].set].root[e[lo].trie] = build_trie(&b, e + lo, hi - lo);
    }
    compute_min_sub(r);
    /* The build grew its arrays by doubling; give the slack back, the router lives long. */
    if (r->nnodes)
        r->nodes = xrealloc(r->nodes, r->nnodes * sizeof(*r->nodes));
    if (r->pool_len)
        r->pool = xrealloc(r->pool, r->pool_len);
    ok = true;
out:
    free(b.stack);
    free(e);
    free(folded);
    if (!ok) {
        px_router_free(r);
        r = NULL;
    }
    return r;
}

void px_router_free(struct px_router *r)
{
    if (r == NULL)
        return;
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
    size_t n = sizeof(*r) + r->nnodes * sizeof(*r->nodes) + r->pool_len +
               r->t->nroutes * sizeof(*r->ids) + r->nslots * sizeof(*r->slots);
    for (size_t i = 0; i < r->nhosts; i++)
        n += sizeof(r->hosts[i]) + (r->hosts[i].name ? r->hosts[i].len + 1 : 0);
    return n;
}

/* ---- lookup ---- */

static bool header_matches(const struct route_header *h, const struct px_request_view *req)
{
    size_t nl = strlen(h->name);
    size_t vl = h->value ? strlen(h->value) : 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct px_header *rh = &req->headers[i];
        if (rh->name_len != nl || !eq_nocase(rh->name, h->name, nl))
            continue;
        if (h->value == NULL || (rh->value_len == vl && memcmp(rh->value, h->value, vl) == 0))
            return true;
    }
    return false;
}

static bool route_matches(const struct route *rt, const struct px_request_view *req)
{
    if (rt->method != NULL) {
        size_t ml = strlen(rt->method);
        if (req->method == NULL || req->method_len != ml || memcmp(req->method, rt->method, ml))
            return false;
    }
    for (size_t h = 0; h < rt->nheaders; h++)
        if (!header_matches(&rt->headers[h], req))
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
            if ((id & ID_ANY) || route_matches(&r->t->routes[idx], req)) {
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

static void walk_set(const struct px_router *r, const struct rhost *h,
                     const struct px_request_view *req, uint32_t *best)
{
    if (h->root[TRIE_CS] != NO_NODE)
        walk(r, h->root[TRIE_CS], req, false, best);
    if (h->root[TRIE_CI] != NO_NODE)
        walk(r, h->root[TRIE_CI], req, true, best);
}

/* Returns the length of host without a ":port" suffix ("[v6]:port" keeps its brackets). */
static size_t host_without_port(const char *h, size_t n)
{
    if (n > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        return close ? (size_t)(close - h) + 1 : n;
    }
    const char *colon = memchr(h, ':', n);
    return colon ? (size_t)(colon - h) : n;
}

const struct route *px_router_match(const struct px_router *r, const struct px_request_view *req)
{
    uint32_t best = NO_ROUTE;
    if (req->path == NULL)
        return NULL;
    if (req->host != NULL && r->nhosts > 1) {
        /* A route host is compared with the request's Host without its port, and also as
         * sent when that carried one, so `host: example.com:8080` keeps meaning that port. */
        size_t bare = host_without_port(req->host, req->host_len);
        const struct rhost *h = host_find(r, req->host, bare);
        if (h)
            walk_set(r, h, req, &best);
        if (bare != req->host_len && (h = host_find(r, req->host, req->host_len)) != NULL)
            walk_set(r, h, req, &best);
    }
    walk_set(r, &r->hosts[0], req, &best);
    return best == NO_ROUTE ? NULL : &r->t->routes[best];
}

long px_rewrite_target(const struct route *r, const char *path, size_t path_len, const char *query,
                       size_t query_len, char *out, size_t outlen)
{
    const char *head = path, *tail = "";
    size_t head_len = path_len, tail_len = 0;
    if (r->rewrite != NULL) {
        /* The matched prefix has the same length whether it matched with or without case. */
        size_t pl = strlen(r->prefix);
        head = r->rewrite;
        head_len = strlen(r->rewrite);
        if (pl < path_len) {
            tail = path + pl;
            tail_len = path_len - pl;
        }
    }
    size_t total = head_len + tail_len + (query ? 1 + query_len : 0);
    if (total > outlen || total > (size_t)INT32_MAX)
        return -ENOSPC;
    memcpy(out, head, head_len);
    memcpy(out + head_len, tail, tail_len);
    if (query) {
        out[head_len + tail_len] = '?';
        memcpy(out + head_len + tail_len + 1, query, query_len);
    }
    return (long)total;
}
