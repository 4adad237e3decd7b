/* The rate-limit fields of a Mapping (annotation_policy.h): `rate_limits` (v0) and `labels`
 * (v1+) become descriptor templates for a rate-limit service (kept in the route and shown in
 * /routes: Legate has no RateLimitService client), and Legate's own `legate_rate_limit`
 * becomes a token bucket the proxy enforces. */
#include <stdlib.h>
#include <string.h>

#include "annotation_policy_internal.h"
#include "xalloc.h"

/* Descriptors come from one annotation (256 KiB): these caps only stop a pathological one
 * from costing the proxy per-request work. */
#define MAX_DESCRIPTORS 32
#define MAX_ENTRIES     16

static struct route_rl_descriptor *new_descriptor(struct route_rate_limits *rl, const char *domain,
                                                  const char *name)
{
    if (rl->v == NULL)
        rl->v = xcalloc(MAX_DESCRIPTORS, sizeof(*rl->v));
    struct route_rl_descriptor *d = &rl->v[rl->n++];
    d->domain = xstrdup(domain);
    d->name = xstrdup(name);
    d->entries = xcalloc(MAX_ENTRIES, sizeof(*d->entries));
    return d;
}

static void add_entry(struct route_rl_descriptor *d, int kind, const char *key, const char *value,
                      bool omit)
{
    struct route_rl_entry *e = &d->entries[d->nentries++];
    e->kind = kind;
    e->key = xstrdup(key);
    e->value = xstrdup(value);
    e->omit_if_absent = omit;
}

/* rate_limits (v0): [{descriptor: text, headers: [names]}], each one descriptor in domain
 * "ambassador": a generic_key entry for the descriptor, one request-header entry per header. */
int policy_rate_limits(const struct ytree_node *v, struct route_policy *rp,
                       struct mapping_policy *mp, const struct value_ctx *c)
{
    (void)mp;
    static const char *const keys[] = { "descriptor", "headers" };
    if (v->type != YTREE_SEQ || v->nkids == 0 || v->nkids > MAX_DESCRIPTORS)
        return value_type_error(c, "rate_limits", v,
                                "a list of {descriptor, headers} (at most 32)");
    if (rp->rate_limits.n > 0)
        ERR("rate_limits", v->line, "rate_limits: give rate_limits or labels, not both");
    for (size_t i = 0; i < v->nkids; i++) {
        const struct ytree_node *e = v->kids[i];
        if (policy_check_map(c, "rate_limits", e, keys, ARRAY_SIZE(keys),
                             "a map (descriptor, headers)") != 0)
            return -EINVAL;
        const struct ytree_node *desc = ytree_map_get(e, "descriptor");
        const struct ytree_node *hdrs = ytree_map_get(e, "headers");
        if (desc == NULL && hdrs == NULL)
            ERR("rate_limits", e->line, "rate_limits: an entry needs descriptor or headers");
        if (hdrs != NULL && (hdrs->type != YTREE_SEQ || hdrs->nkids + 1 > MAX_ENTRIES))
            return value_type_error(c, "rate_limits.headers", hdrs, "a list of header names");
        const char *ds = NULL;
        if (desc != NULL && (ds = value_text(c, "rate_limits.descriptor", desc)) == NULL)
            return -EINVAL;
        struct route_rl_descriptor *d = new_descriptor(&rp->rate_limits, "ambassador", NULL);
        if (ds != NULL)
            add_entry(d, ROUTE_RL_GENERIC_KEY, "generic_key", ds, false);
        for (size_t k = 0; hdrs != NULL && k < hdrs->nkids; k++) {
            const char *h = value_text(c, "rate_limits.headers", hdrs->kids[k]);
            if (h == NULL)
                return -EINVAL;
            if (!value_is_token(h))
                ERR("rate_limits.headers", hdrs->kids[k]->line,
                    "rate_limits.headers: \"%s\" is not a header name", h);
            char *lh = value_lower(xstrdup(h));
            add_entry(d, ROUTE_RL_REQUEST_HEADER, h, lh, false);
            free(lh);
        }
    }
    return 0;
}

/* One label of a labels group: a string (remote_address, source_cluster,
 * destination_cluster, or a header name) or a one-key map. */
static int label_entry(const struct ytree_node *e, struct route_rl_descriptor *d,
                       const struct value_ctx *c)
{
    static const char *const gk_keys[] = { "value", "key" };
    static const char *const rh_keys[] = { "header_name", "key", "omit_if_not_present" };
    static const char *const k_keys[] = { "key" };
    if (d->nentries == MAX_ENTRIES)
        ERR("labels", e->line, "labels: more than %d labels in one group", MAX_ENTRIES);
    if (e->type == YTREE_SCALAR) {
        const char *s = value_text(c, "labels", e);
        if (s == NULL)
            return -EINVAL;
        if (strcmp(s, "remote_address") == 0)
            add_entry(d, ROUTE_RL_REMOTE_ADDRESS, s, NULL, false);
        else if (strcmp(s, "source_cluster") == 0)
            add_entry(d, ROUTE_RL_SOURCE_CLUSTER, s, NULL, false);
        else if (strcmp(s, "destination_cluster") == 0)
            add_entry(d, ROUTE_RL_DESTINATION_CLUSTER, s, NULL, false);
        else if (value_is_token(s)) {
            char *lh = value_lower(xstrdup(s));
            add_entry(d, ROUTE_RL_REQUEST_HEADER, s, lh, false);
            free(lh);
        } else {
            ERR("labels", e->line, "labels: \"%s\" is not a label", s);
        }
        return 0;
    }
    if (e->type != YTREE_MAP || e->nkids != 2 || !ytree_is_text(e->kids[0]))
        return value_type_error(c, "labels", e, "a label name or a one-key map");
    const char *kind = e->kids[0]->value;
    const struct ytree_node *v = e->kids[1];
    if (strcmp(kind, "generic_key") == 0) {
        const char *val = NULL, *key = "generic_key";
        if (v->type == YTREE_SCALAR) {
            val = value_text(c, "labels.generic_key", v);
        } else {
            if (policy_check_map(c, "labels.generic_key", v, gk_keys, ARRAY_SIZE(gk_keys),
                                 "a map (value, key)") != 0)
                return -EINVAL;
            const struct ytree_node *vv = ytree_map_get(v, "value");
            const struct ytree_node *kv = ytree_map_get(v, "key");
            if (vv == NULL)
                ERR("labels.generic_key", v->line, "labels.generic_key: missing \"value\"");
            val = value_text(c, "labels.generic_key.value", vv);
            if (kv != NULL && (key = value_text(c, "labels.generic_key.key", kv)) == NULL)
                return -EINVAL;
        }
        if (val == NULL)
            return -EINVAL;
        add_entry(d, ROUTE_RL_GENERIC_KEY, key, val, false);
        return 0;
    }
    if (strcmp(kind, "request_headers") == 0) {
        if (policy_check_map(c, "labels.request_headers", v, rh_keys, ARRAY_SIZE(rh_keys),
                             "a map (header_name, key, omit_if_not_present)") != 0)
            return -EINVAL;
        const struct ytree_node *hn = ytree_map_get(v, "header_name");
        const struct ytree_node *kv = ytree_map_get(v, "key");
        const struct ytree_node *om = ytree_map_get(v, "omit_if_not_present");
        if (hn == NULL || kv == NULL)
            ERR("labels.request_headers", v->line,
                "labels.request_headers: header_name and key are required");
        const char *h = value_text(c, "labels.request_headers.header_name", hn);
        const char *k = value_text(c, "labels.request_headers.key", kv);
        bool omit = false;
        if (h == NULL || k == NULL ||
            (om != NULL && value_bool(c, "labels.request_headers.omit_if_not_present", om, &omit)))
            return -EINVAL;
        if (!value_is_token(h))
            ERR("labels.request_headers.header_name", hn->line,
                "labels.request_headers.header_name: \"%s\" is not a header name", h);
        char *lh = value_lower(xstrdup(h));
        add_entry(d, ROUTE_RL_REQUEST_HEADER, k, lh, omit);
        free(lh);
        return 0;
    }
    int k = strcmp(kind, "remote_address") == 0        ? ROUTE_RL_REMOTE_ADDRESS
            : strcmp(kind, "source_cluster") == 0      ? ROUTE_RL_SOURCE_CLUSTER
            : strcmp(kind, "destination_cluster") == 0 ? ROUTE_RL_DESTINATION_CLUSTER
                                                       : -1;
    if (k >= 0) {
        const char *key = kind;
        if (!(v->type == YTREE_SCALAR && ytree_is_null(v))) {
            if (policy_check_map(c, "labels", v, k_keys, ARRAY_SIZE(k_keys), "a map (key)") != 0)
                return -EINVAL;
            const struct ytree_node *kv = ytree_map_get(v, "key");
            if (kv != NULL && (key = value_text(c, "labels.key", kv)) == NULL)
                return -EINVAL;
        }
        add_entry(d, k, key, NULL, false);
        return 0;
    }
    /* {name: value}: Ambassador's shorthand for a generic key named name. */
    if (v->type == YTREE_SCALAR && ytree_is_text(v)) {
        add_entry(d, ROUTE_RL_GENERIC_KEY, kind, v->value, false);
        return 0;
    }
    ERR("labels", e->line, "labels: unknown label kind \"%s\"", kind);
}

/* labels (v1+): {domain: [{group: [label, ...]}, ...], ...}; each group one descriptor. */
int policy_labels(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                  const struct value_ctx *c)
{
    (void)mp;
    if (v->type != YTREE_MAP || v->nkids == 0)
        return value_type_error(c, "labels", v, "a map of domains to lists of label groups");
    if (rp->rate_limits.n > 0)
        ERR("labels", v->line, "labels: give rate_limits or labels, not both");
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const char *domain = value_text(c, "labels", v->kids[i]);
        const struct ytree_node *groups = v->kids[i + 1];
        if (domain == NULL)
            return -EINVAL;
        if (groups->type != YTREE_SEQ)
            return value_type_error(c, "labels", groups, "a list of label groups");
        for (size_t g = 0; g < groups->nkids; g++) {
            const struct ytree_node *grp = groups->kids[g];
            if (grp->type != YTREE_MAP || grp->nkids != 2 || !ytree_is_text(grp->kids[0]) ||
                grp->kids[1]->type != YTREE_SEQ)
                return value_type_error(c, "labels", grp,
                                        "a one-key map of a group name to labels");
            if (rp->rate_limits.n == MAX_DESCRIPTORS)
                ERR("labels", grp->line, "labels: more than %d groups", MAX_DESCRIPTORS);
            struct route_rl_descriptor *d =
                new_descriptor(&rp->rate_limits, domain, grp->kids[0]->value);
            const struct ytree_node *list = grp->kids[1];
            for (size_t k = 0; k < list->nkids; k++)
                if (label_entry(list->kids[k], d, c) != 0)
                    return -EINVAL;
        }
    }
    return 0;
}

/* legate_rate_limit: Legate's own, spelled so that no Ambassador field can collide with it. */
int policy_local_rl(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                    const struct value_ctx *c)
{
    (void)mp;
    static const char *const keys[] = { "requests_per_second", "burst" };
    if (policy_check_map(c, "legate_rate_limit", v, keys, ARRAY_SIZE(keys),
                         "a map (requests_per_second, burst)") != 0)
        return -EINVAL;
    const struct ytree_node *rps = ytree_map_get(v, "requests_per_second");
    const struct ytree_node *burst = ytree_map_get(v, "burst");
    if (rps == NULL)
        ERR("legate_rate_limit.requests_per_second", v->line,
            "legate_rate_limit: missing required field \"requests_per_second\"");
    struct route_local_rl l = { 0, 0 };
    if (value_uint(c, "legate_rate_limit.requests_per_second", rps, 1, 1000000, "", &l.rps) != 0 ||
        (burst != NULL &&
         value_uint(c, "legate_rate_limit.burst", burst, 1, 1000000, "", &l.burst) != 0))
        return -EINVAL;
    if (l.burst == 0)
        l.burst = l.rps;
    rp->local_rl = l;
    return 0;
}
