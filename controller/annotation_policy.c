#include "annotation_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotation_policy_internal.h"
#include "route.h"
#include "route_policy.h"
#include "xalloc.h"

/* CORS origins and upgrade protocols come from one annotation (256 KiB): these caps only stop
 * a pathological one from costing the proxy per-request work. */
#define MAX_ORIGINS  64
#define MAX_UPGRADES 8

/* ---- shapes ---- */

/* A map whose keys are all among keys[0..n) (each once). */
int policy_check_map(const struct value_ctx *c, const char *field, const struct ytree_node *v,
                     const char *const *keys, size_t n, const char *expected)
{
    if (v->type != YTREE_MAP)
        return value_type_error(c, field, v, expected);
    int rc = 0;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct ytree_node *k = v->kids[i];
        size_t j = n;
        if (ytree_is_text(k))
            for (j = 0; j < n; j++)
                if (strcmp(keys[j], k->value) == 0)
                    break;
        if (j == n) {
            char got[96];
            ytree_describe(k, got, sizeof(got));
            value_report(c, false, field, k->line, "%s: unknown key %s", field, got);
            rc = -EINVAL;
            continue;
        }
        for (size_t p = 0; p < i; p += 2)
            if (strcmp(v->kids[p]->value, k->value) == 0) {
                value_report(c, false, field, k->line, "%s: key \"%s\" given twice", field,
                             k->value);
                rc = -EINVAL;
            }
    }
    return rc;
}

/* ---- weight, shadow, timeouts ---- */

static int p_weight(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                    const struct value_ctx *c)
{
    (void)rp;
    if (value_uint(c, "weight", v, 0, 100, " percent", &mp->weight) != 0)
        return -EINVAL;
    mp->weight_set = true;
    return 0;
}

static int p_shadow(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                    const struct value_ctx *c)
{
    (void)rp;
    return value_bool(c, "shadow", v, &mp->shadow);
}

static int p_idle_timeout(const struct ytree_node *v, struct route_policy *rp,
                          struct mapping_policy *mp, const struct value_ctx *c)
{
    (void)mp;
    return value_uint(c, "idle_timeout_ms", v, 0, UINT32_MAX, " milliseconds",
                      &rp->idle_timeout_ms);
}

static int cluster_ms(const char *field, const struct ytree_node *v, uint32_t *dst, unsigned bit,
                      unsigned *set, const struct value_ctx *c)
{
    if (value_uint(c, field, v, 0, UINT32_MAX, " milliseconds", dst) != 0)
        return -EINVAL;
    *set |= bit;
    return 0;
}

static int p_connect_timeout(const struct ytree_node *v, struct route_policy *rp,
                             struct mapping_policy *mp, const struct value_ctx *c)
{
    (void)rp;
    return cluster_ms("connect_timeout_ms", v, &mp->cluster.connect_timeout_ms, POLICY_SET_CONNECT,
                      &mp->set, c);
}

static int p_cluster_idle(const struct ytree_node *v, struct route_policy *rp,
                          struct mapping_policy *mp, const struct value_ctx *c)
{
    (void)rp;
    return cluster_ms("cluster_idle_timeout_ms", v, &mp->cluster.idle_timeout_ms, POLICY_SET_IDLE,
                      &mp->set, c);
}

static int p_cluster_lifetime(const struct ytree_node *v, struct route_policy *rp,
                              struct mapping_policy *mp, const struct value_ctx *c)
{
    (void)rp;
    return cluster_ms("cluster_max_connection_lifetime_ms", v, &mp->cluster.max_lifetime_ms,
                      POLICY_SET_LIFETIME, &mp->set, c);
}

/* ---- retry_policy ---- */

static int retry_on(const struct ytree_node *v, struct route_retry *r, const struct value_ctx *c)
{
    const char *s = value_text(c, "retry_policy.retry_on", v);
    if (s == NULL)
        return -EINVAL;
    /* Ambassador documents one condition; Envoy takes a comma-separated list. */
    char *copy = xstrdup(s), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t n = strlen(tok);
        while (n > 0 && tok[n - 1] == ' ')
            tok[--n] = '\0';
        uint32_t bit = route_retry_on_bit(tok);
        if (bit == 0) {
            value_report(
                c, false, "retry_policy.retry_on", v->line,
                "retry_policy.retry_on: unknown condition \"%s\" (expected 5xx, gateway-error, "
                "connect-failure, retriable-4xx, refused-stream, retriable-status-codes or "
                "reset)",
                tok);
            rc = -EINVAL;
        }
        r->on |= bit;
    }
    free(copy);
    if (rc == 0 && r->on == 0)
        ERR("retry_policy.retry_on", v->line, "retry_policy.retry_on: no condition given");
    return rc;
}

static int parse_retry(const struct ytree_node *v, struct route_retry *r, const struct value_ctx *c)
{
    static const char *const keys[] = { "retry_on", "num_retries", "per_try_timeout",
                                        "retriable_status_codes" };
    memset(r, 0, sizeof(*r));
    if (policy_check_map(c, "retry_policy", v, keys, ARRAY_SIZE(keys),
                         "a map (retry_on, num_retries, per_try_timeout)") != 0)
        return -EINVAL;
    int rc = 0;
    const struct ytree_node *on = ytree_map_get(v, "retry_on");
    const struct ytree_node *num = ytree_map_get(v, "num_retries");
    const struct ytree_node *ptt = ytree_map_get(v, "per_try_timeout");
    const struct ytree_node *codes = ytree_map_get(v, "retriable_status_codes");
    r->num_retries = ROUTE_RETRY_DEFAULT_NUM;
    if (on == NULL) {
        value_report(c, false, "retry_policy.retry_on", v->line,
                     "retry_policy: missing required field \"retry_on\"");
        rc = -EINVAL;
    } else if (retry_on(on, r, c) != 0) {
        rc = -EINVAL;
    }
    if (num != NULL && value_uint(c, "retry_policy.num_retries", num, 0, ROUTE_RETRY_MAX_NUM, "",
                                  &r->num_retries) != 0)
        rc = -EINVAL;
    if (ptt != NULL) {
        const char *s =
            ytree_is_text(ptt) && ytree_scalar_kind(ptt) == YTREE_K_STR ? ptt->value : NULL;
        if (s == NULL || route_duration_parse(s, &r->per_try_timeout_ms) != 0 ||
            r->per_try_timeout_ms == 0) {
            char got[96];
            ytree_describe(ptt, got, sizeof(got));
            value_report(c, false, "retry_policy.per_try_timeout", ptt->line,
                         "retry_policy.per_try_timeout: expected a duration such as \"250ms\" or "
                         "\"1.5s\", got %s",
                         got);
            rc = -EINVAL;
        }
    }
    if (codes != NULL) {
        if (codes->type != YTREE_SEQ || codes->nkids > ROUTE_RETRY_MAX_CODES) {
            value_type_error(c, "retry_policy.retriable_status_codes", codes,
                             "a list of at most 16 statuses");
            rc = -EINVAL;
        } else {
            for (size_t i = 0; i < codes->nkids; i++) {
                uint32_t st;
                if (value_uint(c, "retry_policy.retriable_status_codes", codes->kids[i], 100, 599,
                               "", &st) != 0)
                    rc = -EINVAL;
                else
                    r->codes[r->ncodes++] = (uint16_t)st;
            }
            if (rc == 0 && !(r->on & ROUTE_RETRY_STATUS_CODES))
                value_report(c, true, "retry_policy.retriable_status_codes", codes->line,
                             "retry_policy.retriable_status_codes: used only with retry_on "
                             "retriable-status-codes");
        }
    }
    if (rc == 0 && (r->on & ROUTE_RETRY_STATUS_CODES) && r->ncodes == 0)
        ERR("retry_policy.retriable_status_codes", v->line,
            "retry_policy: retry_on retriable-status-codes needs retriable_status_codes");
    return rc;
}

static int p_retry(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                   const struct value_ctx *c)
{
    if (parse_retry(v, &rp->retry, c) != 0) {
        memset(&rp->retry, 0, sizeof(rp->retry));
        return -EINVAL;
    }
    mp->set |= POLICY_SET_RETRY;
    return 0;
}

/* ---- circuit_breakers ---- */

static int parse_cb(const struct ytree_node *v, struct route_circuit_breakers *out,
                    const struct value_ctx *c)
{
    static const char *const keys[] = { "priority", "max_connections", "max_pending_requests",
                                        "max_requests", "max_retries" };
    static const char *const limits[] = { "max_connections", "max_pending_requests", "max_requests",
                                          "max_retries" };
    if (v->type != YTREE_SEQ)
        return value_type_error(c, "circuit_breakers", v,
                                "a list of {priority, max_connections, ...}");
    bool seen[2] = { false, false };
    int rc = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct ytree_node *e = v->kids[i];
        if (policy_check_map(c, "circuit_breakers", e, keys, ARRAY_SIZE(keys),
                             "a map (priority, max_connections, ...)") != 0) {
            rc = -EINVAL;
            continue;
        }
        const struct ytree_node *pr = ytree_map_get(e, "priority");
        int prio = 0;
        if (pr != NULL) {
            const char *s = value_text(c, "circuit_breakers.priority", pr);
            if (s == NULL) {
                rc = -EINVAL;
                continue;
            }
            if (strcmp(s, "high") == 0) {
                prio = 1;
            } else if (strcmp(s, "default") != 0) {
                value_report(c, false, "circuit_breakers.priority", pr->line,
                             "circuit_breakers.priority: expected default or high, got \"%s\"", s);
                rc = -EINVAL;
                continue;
            }
        }
        if (seen[prio]) {
            value_report(c, false, "circuit_breakers.priority", e->line,
                         "circuit_breakers: two entries for priority %s",
                         prio ? "high" : "default");
            rc = -EINVAL;
            continue;
        }
        seen[prio] = true;
        struct route_circuit_breakers cb = { true, ROUTE_CB_DEFAULT_MAX, ROUTE_CB_DEFAULT_MAX,
                                             ROUTE_CB_DEFAULT_MAX, ROUTE_CB_DEFAULT_MAX_RETRIES };
        uint32_t *dst[] = { &cb.max_connections, &cb.max_pending_requests, &cb.max_requests,
                            &cb.max_retries };
        for (size_t k = 0; k < ARRAY_SIZE(limits); k++) {
            const struct ytree_node *lv = ytree_map_get(e, limits[k]);
            char field[64];
            snprintf(field, sizeof(field), "circuit_breakers.%s", limits[k]);
            if (lv != NULL && value_uint(c, field, lv, 0, UINT32_MAX, "", dst[k]) != 0)
                rc = -EINVAL;
        }
        if (prio == 1) {
            /* Legate gives every request the default priority (so did Ambassador, short of
             * an envoy_override): the high entry can never apply. */
            value_report(
                c, true, "circuit_breakers.priority", e->line,
                "circuit_breakers: the priority high entry is ignored (every request has the "
                "default priority)");
            continue;
        }
        *out = cb;
    }
    return rc;
}

static int p_cb(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                const struct value_ctx *c)
{
    (void)rp;
    if (parse_cb(v, &mp->cluster.cb, c) != 0)
        return -EINVAL;
    mp->set |= POLICY_SET_CB;
    return 0;
}

/* ---- load_balancer ---- */

static int parse_lb(const struct ytree_node *v, struct route_lb *lb, const struct value_ctx *c)
{
    static const char *const keys[] = { "policy", "cookie", "header", "source_ip" };
    static const char *const ckeys[] = { "name", "path", "ttl" };
    if (policy_check_map(c, "load_balancer", v, keys, ARRAY_SIZE(keys),
                         "a map (policy, cookie, header, source_ip)") != 0)
        return -EINVAL;
    const struct ytree_node *pol = ytree_map_get(v, "policy");
    const struct ytree_node *cookie = ytree_map_get(v, "cookie");
    const struct ytree_node *header = ytree_map_get(v, "header");
    const struct ytree_node *src = ytree_map_get(v, "source_ip");
    if (pol == NULL)
        ERR("load_balancer.policy", v->line, "load_balancer: missing required field \"policy\"");
    const char *s = value_text(c, "load_balancer.policy", pol);
    if (s == NULL)
        return -EINVAL;
    int p = route_lb_policy_parse(s);
    if (p < 0)
        ERR("load_balancer.policy", pol->line,
            "load_balancer.policy: expected round_robin, least_request, ring_hash or maglev, got "
            "\"%s\"",
            s);
    lb->policy = (uint8_t)p;
    int nkeys = (cookie != NULL) + (header != NULL) + (src != NULL);
    if (nkeys > 1)
        ERR("load_balancer", v->line, "load_balancer: at most one of cookie, header, source_ip");
    bool hashing = p == ROUTE_LB_RING_HASH || p == ROUTE_LB_MAGLEV;
    if (nkeys == 1 && !hashing)
        ERR("load_balancer", v->line,
            "load_balancer: cookie, header and source_ip need policy ring_hash or maglev");
    if (nkeys == 0 && hashing)
        ERR("load_balancer", v->line,
            "load_balancer: policy %s needs one of cookie, header, source_ip", s);
    if (header != NULL) {
        const char *h = value_text(c, "load_balancer.header", header);
        if (h == NULL)
            return -EINVAL;
        if (!value_is_token(h))
            ERR("load_balancer.header", header->line,
                "load_balancer.header: \"%s\" is not a header name", h);
        lb->hash_on = ROUTE_LB_HASH_HEADER;
        lb->key = value_lower(xstrdup(h));
    } else if (src != NULL) {
        bool on = false;
        if (value_bool(c, "load_balancer.source_ip", src, &on) != 0)
            return -EINVAL;
        if (!on)
            ERR("load_balancer.source_ip", src->line,
                "load_balancer.source_ip: false is the same as leaving it out; remove it");
        lb->hash_on = ROUTE_LB_HASH_SOURCE_IP;
    } else if (cookie != NULL) {
        if (policy_check_map(c, "load_balancer.cookie", cookie, ckeys, ARRAY_SIZE(ckeys),
                             "a map (name, path, ttl)") != 0)
            return -EINVAL;
        const struct ytree_node *name = ytree_map_get(cookie, "name");
        const struct ytree_node *path = ytree_map_get(cookie, "path");
        const struct ytree_node *ttl = ytree_map_get(cookie, "ttl");
        const char *n = name ? value_text(c, "load_balancer.cookie.name", name) : NULL;
        if (name == NULL)
            ERR("load_balancer.cookie.name", cookie->line,
                "load_balancer.cookie: missing required field \"name\"");
        if (n == NULL)
            return -EINVAL;
        if (!value_is_token(n))
            ERR("load_balancer.cookie.name", name->line,
                "load_balancer.cookie.name: \"%s\" is not a cookie name", n);
        lb->hash_on = ROUTE_LB_HASH_COOKIE;
        lb->key = xstrdup(n);
        if (path != NULL) {
            const char *ps = value_text(c, "load_balancer.cookie.path", path);
            if (ps == NULL)
                return -EINVAL;
            if (ps[0] != '/' || value_has_control(ps) || strchr(ps, ';') != NULL)
                ERR("load_balancer.cookie.path", path->line,
                    "load_balancer.cookie.path: \"%s\" is not a cookie path", ps);
            lb->cookie_path = xstrdup(ps);
        }
        if (ttl != NULL) {
            uint32_t ms = 0;
            if (!ytree_is_text(ttl) || route_duration_parse(ttl->value, &ms) != 0)
                ERR("load_balancer.cookie.ttl", ttl->line,
                    "load_balancer.cookie.ttl: expected a duration such as \"600s\"");
            lb->cookie_ttl_s = (ms + 999) / 1000;
        }
    }
    return 0;
}

static int p_lb(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                const struct value_ctx *c)
{
    (void)rp;
    struct route_lb lb = { 0 };
    if (parse_lb(v, &lb, c) != 0) {
        free(lb.key);
        free(lb.cookie_path);
        return -EINVAL;
    }
    free(mp->cluster.lb.key);
    free(mp->cluster.lb.cookie_path);
    mp->cluster.lb = lb;
    mp->set |= POLICY_SET_LB;
    return 0;
}

/* ---- cors ---- */

/* A list given as a comma-separated string or a YAML list, as one header value ("a, b") in
 * *out, each item checked by ok. Returns 0 or -EINVAL after reporting. */
static int cors_list(const char *field, const struct ytree_node *v, bool (*ok)(const char *),
                     char **out, const struct value_ctx *c)
{
    struct buf b;
    buf_init(&b, 64 * 1024);
    int rc = 0;
    size_t n = v->type == YTREE_SEQ ? v->nkids : 1;
    if (v->type == YTREE_MAP || (v->type == YTREE_SEQ && n == 0)) {
        buf_free(&b);
        return value_type_error(c, field, v, "a comma-separated string or a list of strings");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct ytree_node *e = v->type == YTREE_SEQ ? v->kids[i] : v;
        const char *s = value_text(c, field, e);
        if (s == NULL) {
            rc = -EINVAL;
            break;
        }
        char *copy = xstrdup(s), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ' || *tok == '\t')
                tok++;
            size_t len = strlen(tok);
            while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
                tok[--len] = '\0';
            if (len == 0)
                continue;
            if (!ok(tok)) {
                value_report(c, false, field, e->line, "%s: \"%s\" is not valid here", field, tok);
                rc = -EINVAL;
            } else if (buf_printf(&b, "%s%s", b.len ? ", " : "", tok) != 0) {
                value_report(c, false, field, e->line, "%s: too long", field);
                rc = -EINVAL;
            }
        }
        free(copy);
    }
    if (rc == 0 && b.len == 0) {
        value_report(c, false, field, v->line, "%s: empty", field);
        rc = -EINVAL;
    }
    if (rc == 0)
        *out = buf_steal(&b);
    buf_free(&b);
    return rc;
}

static bool ok_token(const char *s)
{
    return value_is_token(s);
}

/* "*", or scheme://host[:port] with no path: what a browser sends in Origin. */
static bool ok_origin(const char *s)
{
    if (strcmp(s, "*") == 0)
        return true;
    const char *sep = strstr(s, "://");
    if (sep == NULL || sep == s || sep[3] == '\0')
        return false;
    for (const char *p = sep + 3; *p; p++)
        if (*p == '/' || *p == ' ' || *p == ',' || (unsigned char)*p < 0x21)
            return false;
    return true;
}

static int parse_cors(const struct ytree_node *v, struct route_cors *cors,
                      const struct value_ctx *c)
{
    static const char *const keys[] = { "origins",         "methods",     "headers",
                                        "exposed_headers", "credentials", "max_age" };
    memset(cors, 0, sizeof(*cors));
    if (policy_check_map(
            c, "cors", v, keys, ARRAY_SIZE(keys),
            "a map (origins, methods, headers, exposed_headers, credentials, max_age)") != 0)
        return -EINVAL;
    cors->enabled = true;
    int rc = 0;
    const struct ytree_node *n;
    if ((n = ytree_map_get(v, "origins")) != NULL) {
        char *joined = NULL;
        if (cors_list("cors.origins", n, ok_origin, &joined, c) != 0) {
            rc = -EINVAL;
        } else {
            /* Kept as a list: each is compared with the request's Origin. */
            char *save = NULL;
            cors->origins = xcalloc(MAX_ORIGINS + 1, sizeof(char *));
            for (char *tok = strtok_r(joined, ", ", &save); tok != NULL;
                 tok = strtok_r(NULL, ", ", &save)) {
                if (cors->norigins == MAX_ORIGINS) {
                    value_report(c, false, "cors.origins", n->line, "cors.origins: more than %d",
                                 MAX_ORIGINS);
                    rc = -EINVAL;
                    break;
                }
                cors->origins[cors->norigins++] = xstrdup(tok);
            }
            free(joined);
        }
    }
    if ((n = ytree_map_get(v, "methods")) != NULL &&
        cors_list("cors.methods", n, ok_token, &cors->methods, c) != 0)
        rc = -EINVAL;
    if ((n = ytree_map_get(v, "headers")) != NULL &&
        cors_list("cors.headers", n, ok_token, &cors->headers, c) != 0)
        rc = -EINVAL;
    if ((n = ytree_map_get(v, "exposed_headers")) != NULL &&
        cors_list("cors.exposed_headers", n, ok_token, &cors->exposed_headers, c) != 0)
        rc = -EINVAL;
    if ((n = ytree_map_get(v, "credentials")) != NULL &&
        value_bool(c, "cors.credentials", n, &cors->credentials) != 0)
        rc = -EINVAL;
    if ((n = ytree_map_get(v, "max_age")) != NULL) {
        /* Ambassador passes a string to Envoy; users write either. */
        uint32_t secs;
        if (ytree_is_text(n) && ytree_scalar_kind(n) == YTREE_K_STR) {
            char *end = NULL;
            unsigned long x = strtoul(n->value, &end, 10);
            if (n->value[0] < '0' || n->value[0] > '9' || *end != '\0' || x > UINT32_MAX) {
                value_report(c, false, "cors.max_age", n->line,
                             "cors.max_age: expected a number of seconds, got \"%s\"", n->value);
                rc = -EINVAL;
            } else {
                cors->max_age = xstrdup(n->value);
            }
        } else if (value_uint(c, "cors.max_age", n, 0, UINT32_MAX, " seconds", &secs) == 0) {
            char tmp[16];
            snprintf(tmp, sizeof(tmp), "%u", secs);
            cors->max_age = xstrdup(tmp);
        } else {
            rc = -EINVAL;
        }
    }
    if (rc == 0 && cors->norigins == 0)
        value_report(c, true, "cors.origins", v->line,
                     "cors: no origins listed, so no cross-origin request is allowed");
    return rc;
}

static int p_cors(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                  const struct value_ctx *c)
{
    route_cors_free_fields(&rp->cors);
    if (parse_cors(v, &rp->cors, c) != 0) {
        route_cors_free_fields(&rp->cors);
        return -EINVAL;
    }
    mp->set |= POLICY_SET_CORS;
    return 0;
}

/* ---- upgrades ---- */

static void add_upgrade(struct route_upgrades *u, const char *proto)
{
    char *p = value_lower(xstrdup(proto));
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->v[i], p) == 0) {
            free(p);
            return;
        }
    if (u->v == NULL)
        u->v = xcalloc(MAX_UPGRADES + 2, sizeof(char *));
    u->v[u->n++] = p;
}

static int p_use_websocket(const struct ytree_node *v, struct route_policy *rp,
                           struct mapping_policy *mp, const struct value_ctx *c)
{
    (void)mp;
    bool on = false;
    if (value_bool(c, "use_websocket", v, &on) != 0)
        return -EINVAL;
    if (on)
        add_upgrade(&rp->upgrades, "websocket");
    return 0;
}

static int p_allow_upgrade(const struct ytree_node *v, struct route_policy *rp,
                           struct mapping_policy *mp, const struct value_ctx *c)
{
    (void)mp;
    if (v->type != YTREE_SEQ || v->nkids == 0 || v->nkids > MAX_UPGRADES)
        return value_type_error(c, "allow_upgrade", v, "a list of protocol names (at most 8)");
    for (size_t i = 0; i < v->nkids; i++) {
        const char *s = value_text(c, "allow_upgrade", v->kids[i]);
        if (s == NULL)
            return -EINVAL;
        /* A protocol name is a token, optionally /version (RFC 9110 7.8). */
        char *copy = xstrdup(s), *slash = strchr(copy, '/');
        if (slash != NULL)
            *slash = '\0';
        bool ok = value_is_token(copy) && (slash == NULL || value_is_token(slash + 1));
        free(copy);
        if (!ok)
            ERR("allow_upgrade", v->kids[i]->line, "allow_upgrade: \"%s\" is not a protocol name",
                s);
        add_upgrade(&rp->upgrades, s);
    }
    return 0;
}

/* ---- tables ---- */

typedef int (*policy_parse_cb)(const struct ytree_node *v, struct route_policy *rp,
                               struct mapping_policy *mp, const struct value_ctx *c);

/* route: the parser writes the route's own policy (rp). The others only write mp and are
 * given no rp, so a Mapping that sets none of the route's fields keeps sharing
 * route_policy_none. */
static const struct {
    const char *name;
    policy_parse_cb parse;
    bool route;
} mapping_fields[] = {
    { "weight", p_weight, false },
    { "shadow", p_shadow, false },
    { "idle_timeout_ms", p_idle_timeout, true },
    { "connect_timeout_ms", p_connect_timeout, false },
    { "cluster_idle_timeout_ms", p_cluster_idle, false },
    { "cluster_max_connection_lifetime_ms", p_cluster_lifetime, false },
    { "retry_policy", p_retry, true },
    { "circuit_breakers", p_cb, false },
    { "load_balancer", p_lb, false },
    { "cors", p_cors, true },
    { "rate_limits", policy_rate_limits, true },
    { "labels", policy_labels, true },
    { "legate_rate_limit", policy_local_rl, true },
    { "use_websocket", p_use_websocket, true },
    { "allow_upgrade", p_allow_upgrade, true },
};

/* The Module's keys are the Mapping parsers run on a scratch Mapping, then kept as defaults. */
static const char *const module_fields[] = {
    "retry_policy",
    "cors",
    "circuit_breakers",
    "load_balancer",
    "cluster_idle_timeout_ms",
    "cluster_max_connection_lifetime_ms",
};

const char *annotation_policy_field(bool module, size_t i)
{
    if (module)
        return i < ARRAY_SIZE(module_fields) ? module_fields[i] : NULL;
    return i < ARRAY_SIZE(mapping_fields) ? mapping_fields[i].name : NULL;
}

static bool is_field(bool module, const char *name)
{
    const char *f;
    for (size_t i = 0; (f = annotation_policy_field(module, i)) != NULL; i++)
        if (strcmp(f, name) == 0)
            return true;
    return false;
}

/* Runs the parser of Mapping field name, writing the route's policy into rp or, when rp is
 * NULL, into route r's own policy (route_policy_mut) if the field has one. */
static int parse_field(const char *name, const struct ytree_node *v, struct route *r,
                       struct route_policy *rp, struct mapping_policy *mp,
                       const struct value_ctx *ctx)
{
    for (size_t i = 0; i < ARRAY_SIZE(mapping_fields); i++) {
        if (strcmp(mapping_fields[i].name, name) != 0)
            continue;
        if (rp == NULL && mapping_fields[i].route)
            rp = route_policy_mut(r);
        return mapping_fields[i].parse(v, rp, mp, ctx);
    }
    ctx->error(ctx->arg, name, v->line, "not a policy field");
    return -EINVAL;
}

int annotation_policy_mapping(const char *name, const struct ytree_node *v, struct route *r,
                              struct mapping_policy *mp, const struct value_ctx *ctx)
{
    return parse_field(name, v, r, NULL, mp, ctx);
}

int annotation_policy_module(const char *name, const struct ytree_node *v, struct module_policy *mp,
                             const struct value_ctx *ctx)
{
    struct route_policy rp = { 0 };
    struct mapping_policy scratch = { 0 };
    int rc = -EINVAL;
    if (!is_field(true, name)) {
        ctx->error(ctx->arg, name, v->line, "not a policy field of the Module");
        goto out;
    }
    scratch.cluster = mp->cluster;
    memset(&mp->cluster, 0, sizeof(mp->cluster));
    rc = parse_field(name, v, NULL, &rp, &scratch, ctx);
    mp->cluster = scratch.cluster;
    memset(&scratch.cluster, 0, sizeof(scratch.cluster));
    if (rc != 0)
        goto out;
    mp->set |= scratch.set;
    if (scratch.set & POLICY_SET_RETRY)
        mp->retry = rp.retry;
    if (scratch.set & POLICY_SET_CORS) {
        route_cors_free_fields(&mp->cors);
        mp->cors = rp.cors;
        memset(&rp.cors, 0, sizeof(rp.cors));
    }
out:
    route_policy_free_fields(&rp);
    return rc;
}

void annotation_policy_apply_module(struct route *r, struct mapping_policy *mp,
                                    const struct module_policy *mod)
{
    unsigned fill = mod->set & ~mp->set;
    if (fill & POLICY_SET_RETRY)
        route_policy_mut(r)->retry = mod->retry;
    if (fill & POLICY_SET_CORS)
        route_cors_copy(&route_policy_mut(r)->cors, &mod->cors);
    if (fill & POLICY_SET_CB)
        mp->cluster.cb = mod->cluster.cb;
    if (fill & POLICY_SET_LB) {
        free(mp->cluster.lb.key);
        free(mp->cluster.lb.cookie_path);
        route_lb_copy(&mp->cluster.lb, &mod->cluster.lb);
    }
    if (fill & POLICY_SET_IDLE)
        mp->cluster.idle_timeout_ms = mod->cluster.idle_timeout_ms;
    if (fill & POLICY_SET_LIFETIME)
        mp->cluster.max_lifetime_ms = mod->cluster.max_lifetime_ms;
    mp->set |= fill;
}

void annotation_policy_cluster_key(const struct route_cluster_policy *p, struct buf *key)
{
    const struct route_circuit_breakers *cb = &p->cb;
    const struct route_lb *lb = &p->lb;
    uint32_t connect =
        p->connect_timeout_ms == ROUTE_CONNECT_TIMEOUT_DEFAULT_MS ? 0 : p->connect_timeout_ms;
    if (connect == 0 && p->idle_timeout_ms == 0 && p->max_lifetime_ms == 0 && !cb->set &&
        lb->policy == ROUTE_LB_ROUND_ROBIN && lb->hash_on == ROUTE_LB_HASH_NONE)
        return;
    buf_printf(key, ";policy=%u,%u,%u", connect, p->idle_timeout_ms, p->max_lifetime_ms);
    if (cb->set)
        buf_printf(key, ";cb=%u,%u,%u,%u", cb->max_connections, cb->max_pending_requests,
                   cb->max_requests, cb->max_retries);
    buf_printf(key, ";lb=%u,%u,%zu:%s,%zu:%s,%u", lb->policy, lb->hash_on,
               lb->key ? strlen(lb->key) : 0, lb->key ? lb->key : "",
               lb->cookie_path ? strlen(lb->cookie_path) : 0,
               lb->cookie_path ? lb->cookie_path : "", lb->cookie_ttl_s);
}

void annotation_policy_cluster_suffix(const struct route_cluster_policy *p, char *out,
                                      size_t outlen)
{
    struct buf k;
    buf_init(&k, 4096 + (p->lb.key ? strlen(p->lb.key) : 0) +
                     (p->lb.cookie_path ? strlen(p->lb.cookie_path) : 0));
    annotation_policy_cluster_key(p, &k);
    if (k.len == 0) {
        snprintf(out, outlen, "%s", "");
    } else {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < k.len; i++)
            h = (h ^ (unsigned char)k.data[i]) * 16777619u;
        snprintf(out, outlen, "~%08x", h);
    }
    buf_free(&k);
}

void mapping_policy_free_fields(struct mapping_policy *mp)
{
    route_cluster_policy_free_fields(&mp->cluster);
    memset(mp, 0, sizeof(*mp));
}

void module_policy_free_fields(struct module_policy *mp)
{
    route_cors_free_fields(&mp->cors);
    route_cluster_policy_free_fields(&mp->cluster);
    memset(mp, 0, sizeof(*mp));
}
