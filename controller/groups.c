#include "groups.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "xalloc.h"

/* A member's weight while the group is being collected: "no weight given". */
#define UNWEIGHTED UINT32_MAX

struct group {
    uint32_t id;
    char *first;       /* the first member, as messages name it: "\"m\" (Service \"ns/svc\")" */
    uint32_t weighted; /* sum of the weights given so far */
    size_t nmembers;
    struct mapping shadow;
    bool has_shadow;
    char *shadow_ns;
    char *shadow_svc;
};

/* What groups_admit learnt of a member, kept until groups_finish: the route itself carries
 * nothing, so a Mapping outside any group keeps sharing route_policy_none. */
struct member {
    uint32_t group; /* its id */
    uint32_t rank;  /* where it came in its group, in source order */
    uint32_t weight;
};

void groups_init(struct groups *g)
{
    memset(g, 0, sizeof(*g));
    strmap_init(&g->index);
    strmap_init(&g->members);
}

void groups_free(struct groups *g)
{
    for (size_t i = 0; i < g->n; i++) {
        struct group *gr = g->v[i];
        free(gr->first);
        if (gr->has_shadow)
            mapping_free_fields(&gr->shadow);
        free(gr->shadow_ns);
        free(gr->shadow_svc);
        free(gr);
    }
    free(g->v);
    strmap_free(&g->index, NULL);
    strmap_free(&g->members, free);
    memset(g, 0, sizeof(*g));
}

static char *member_key(const char *ns, const char *mapping)
{
    size_t room = strlen(ns) + strlen(mapping) + 2;
    char *s = xmalloc(room);
    snprintf(s, room, "%s/%s", ns, mapping);
    return s;
}

/* The member a route of the table is, or NULL for a route groups_admit did not admit. */
static const struct member *member_of(const struct groups *g, const struct route *r)
{
    char *key = member_key(r->ns, r->mapping);
    const struct member *mem = strmap_get(&g->members, key);
    free(key);
    return mem;
}

static char *describe(const char *ns, const char *svc, const char *mapping)
{
    size_t room = strlen(ns) + strlen(svc) + strlen(mapping) + 32;
    char *s = xmalloc(room);
    snprintf(s, room, "\"%s\" (Service \"%s/%s\")", mapping, ns, svc);
    return s;
}

int groups_admit(struct groups *g, const char *key, const char *ns, const char *svc,
                 struct mapping *m, char *msg, size_t msglen)
{
    struct group *gr = strmap_get(&g->index, key);
    if (gr == NULL) {
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 16;
            g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
        }
        gr = xcalloc(1, sizeof(*gr));
        gr->id = (uint32_t)g->n;
        g->v[g->n++] = gr;
        strmap_put(&g->index, key, gr);
    }
    if (m->policy.shadow) {
        if (gr->has_shadow) {
            snprintf(msg, msglen,
                     "Mapping \"%s\" is a second shadow of the requests Mapping \"%s\" "
                     "(Service \"%s/%s\") already shadows; a group has at most one shadow",
                     m->route.mapping, gr->shadow.route.mapping, gr->shadow_ns, gr->shadow_svc);
            return -EINVAL;
        }
        gr->shadow = *m;
        memset(m, 0, sizeof(*m)); /* moved */
        gr->has_shadow = true;
        gr->shadow_ns = xstrdup(ns);
        gr->shadow_svc = xstrdup(svc);
        return GROUPS_SHADOW;
    }
    if (m->policy.weight_set && gr->weighted + m->policy.weight > 100) {
        snprintf(msg, msglen,
                 "weight %u of Mapping \"%s\" takes the total weight of the Mappings matching "
                 "what Mapping %s matches to %u, over 100",
                 m->policy.weight, m->route.mapping, gr->first ? gr->first : "?",
                 gr->weighted + m->policy.weight);
        return -EINVAL;
    }
    if (gr->first == NULL)
        gr->first = describe(ns, svc, m->route.mapping);
    if (m->policy.weight_set)
        gr->weighted += m->policy.weight;
    struct member *mem = xmalloc(sizeof(*mem));
    mem->group = gr->id;
    mem->rank = (uint32_t)gr->nmembers++;
    mem->weight = m->policy.weight_set ? m->policy.weight : UNWEIGHTED;
    char *mkey = member_key(ns, m->route.mapping);
    /* Mapping names are unique in a namespace (the compiler refuses a second one first). */
    free(strmap_put(&g->members, mkey, mem));
    free(mkey);
    return GROUPS_MEMBER;
}

/* Shares in percent for the n members whose given weights are w (UNWEIGHTED: none): given
 * weights as they are; the rest of 100 split evenly among the unweighted, the remainder of
 * the division to the last of them. With every weight given and a total under 100 (Ambassador
 * leaves that undefined: Envoy sent the missing share to whatever route came next) the
 * weights are taken as relative and scaled to 100. */
static void shares(uint32_t *w, size_t n)
{
    uint32_t total = 0, unweighted = 0;
    size_t last_u = 0, last_w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] == UNWEIGHTED) {
            unweighted++;
            last_u = i;
        } else {
            total += w[i];
            if (w[i] > 0)
                last_w = i;
        }
    }
    if (unweighted > 0) {
        uint32_t rest = 100 - total, each = rest / unweighted;
        for (size_t i = 0; i < n; i++)
            if (w[i] == UNWEIGHTED)
                w[i] = i == last_u ? rest - each * (unweighted - 1) : each;
        return;
    }
    if (total == 100)
        return;
    if (total == 0) {
        /* Every member at 0: nobody asked for the traffic; split it evenly rather than drop
         * it, as Envoy rejects all-zero weights. */
        for (size_t i = 0; i < n; i++)
            w[i] = i + 1 == n ? 100 - (uint32_t)(100 / n) * (uint32_t)(n - 1) : (uint32_t)(100 / n);
        return;
    }
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        w[i] = w[i] * 100 / total;
        sum += w[i];
    }
    w[last_w] += 100 - sum;
}

void groups_finish(struct groups *g, struct route_table *t, groups_cluster_cb cluster,
                   groups_orphan_cb orphan, void *arg)
{
    size_t n = t->nroutes;
    /* Members of each group in table order, as linked lists of route positions. */
    const struct member **mem = xmalloc((n + 1) * sizeof(*mem));
    size_t *head = xmalloc((g->n + 1) * sizeof(*head));
    size_t *tail = xmalloc((g->n + 1) * sizeof(*tail));
    size_t *count = xcalloc(g->n + 1, sizeof(*count));
    size_t *next = xmalloc((n + 1) * sizeof(*next));
    for (size_t i = 0; i < n; i++) {
        mem[i] = member_of(g, &t->routes[i]);
        next[i] = SIZE_MAX;
        if (mem[i] == NULL)
            continue;
        size_t id = mem[i]->group;
        if (count[id]++ == 0)
            head[id] = i;
        else
            next[tail[id]] = i;
        tail[id] = i;
    }
    /* src[k]: the position in t->routes of the route that goes to position k. */
    size_t *src = xmalloc((n + 1) * sizeof(*src));
    uint32_t *w = xmalloc((n + 1) * sizeof(*w));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (mem[i] == NULL) {
            src[k++] = i;
            continue;
        }
        size_t id = mem[i]->group;
        if (head[id] != i)
            continue; /* a later member: already placed after its leader */
        /* The group takes the place of its best-ranked member; its members follow in source
         * order, the first leading (its match criteria are the group's: they differ only
         * where Ambassador's group id ignores it, a missing method against GET). */
        size_t first = k, m = 0;
        struct group *gr = g->v[id];
        for (size_t p = head[id]; p != SIZE_MAX; p = next[p]) {
            size_t at = first + m++;
            while (at > first && mem[src[at - 1]]->rank > mem[p]->rank) {
                src[at] = src[at - 1];
                at--;
            }
            src[at] = p;
            k++;
        }
        /* A group of one is a plain route: no group_size, no weight. */
        if (m > 1) {
            for (size_t j = 0; j < m; j++)
                w[j] = mem[src[first + j]]->weight;
            shares(w, m);
            for (size_t j = 0; j < m; j++)
                route_policy_mut(&t->routes[src[first + j]])->weight = w[j];
            route_policy_mut(&t->routes[src[first]])->group_size = (uint32_t)m;
        }
        struct mapping *sh = &gr->shadow;
        /* A shadow at weight 0 mirrors nothing. */
        /* Every member carries the group's shadow: whichever serves a request mirrors it. */
        if (gr->has_shadow && !(sh->policy.weight_set && sh->policy.weight == 0)) {
            uint32_t sc = cluster(arg, sh);
            for (size_t j = 0; j < m; j++) {
                struct route_shadow *s = &route_policy_mut(&t->routes[src[first + j]])->shadow;
                s->set = true;
                s->cluster = sc;
                s->percent = sh->policy.weight_set ? sh->policy.weight : 100;
                s->mapping = xstrdup(sh->route.mapping);
            }
        }
        if (gr->has_shadow) {
            mapping_free_fields(sh);
            gr->has_shadow = false;
        }
    }
    /* Shadows of groups without a member. */
    for (size_t id = 0; id < g->n; id++) {
        struct group *gr = g->v[id];
        if (gr->has_shadow && orphan != NULL)
            orphan(arg, gr->shadow_ns, gr->shadow_svc, &gr->shadow);
    }
    struct route *out = xmalloc((n + 1) * sizeof(*out));
    for (size_t j = 0; j < n; j++)
        out[j] = t->routes[src[j]];
    if (n > 0)
        memcpy(t->routes, out, n * sizeof(*out));
    free(out);
    free(src);
    free(w);
    free(mem);
    free(head);
    free(tail);
    free(count);
    free(next);
}
