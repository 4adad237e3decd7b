/* libFuzzer target: the getambassador.io/config annotation, through validation and the
 * compiler to what the proxy loads.
 *
 * 1. The whole input is the annotation of one Service (annotation_parse). Every Mapping it
 *    accepts must be complete and well-formed, every error must say what and where; and the
 *    promise of annotation.h, "one bad document never hides another", is checked directly: the
 *    input followed by a "---" line and a valid Mapping must yield that Mapping.
 * 2. The input, cut at its first NUL byte, is the annotations of two Services of one namespace
 *    (so duplicate names and shared upstreams meet), beside a Service without annotation; the
 *    cache is compiled (compile_run). The table must be in match order with valid cluster
 *    references, compile the same way twice, survive the wire to the proxy unchanged
 *    (fuzz_wire_roundtrip), and build a router that sends each route's own request to that
 *    route or an earlier one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "annotation.h"
#include "buf.h"
#include "cache.h"
#include "compile.h"
#include "fuzz.h"
#include "route.h"
#include "router.h"
#include "strmap.h"
#include "xalloc.h"

#define ANN_NS       "default"
#define ANN_SENTINEL "fuzz-sentinel-mapping"
#define ANN_BUDGET   128 /* router lookups per table */

/* Appended after the input in the "never hides another" check. */
static const char ann_sentinel[] = "\n---\n"
                                   "apiVersion: ambassador/v1\n"
                                   "kind: Mapping\n"
                                   "name: " ANN_SENTINEL "\n"
                                   "prefix: /fuzz-sentinel/\n"
                                   "service: sentinel:8080\n";

static bool ann_is_upper_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++)
        if ((*s >= 'a' && *s <= 'z') || (unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void ann_check_result(const struct annotation_result *res, const char *svc)
{
    for (size_t i = 0; i < res->nmappings; i++) {
        const struct mapping *m = &res->mappings[i];
        const struct route *r = &m->route;
        FUZZ_CHECK(r->ns != NULL && strcmp(r->ns, ANN_NS) == 0);
        FUZZ_CHECK(r->svc != NULL && strcmp(r->svc, svc) == 0);
        FUZZ_CHECK(r->mapping != NULL && r->mapping[0] != '\0');
        FUZZ_CHECK(r->prefix != NULL && (r->prefix_regex || r->prefix[0] == '/'));
        FUZZ_CHECK(r->method == NULL || r->method_regex || ann_is_upper_token(r->method));
        FUZZ_CHECK(r->rewrite == NULL || r->rewrite[0] != '\0');
        FUZZ_CHECK(r->host == NULL || r->host[0] != '\0');
        FUZZ_CHECK(r->host_rewrite == NULL || r->host_rewrite[0] != '\0');
        for (size_t h = 0; h < r->nheaders; h++) {
            const char *n = r->headers[h].name;
            FUZZ_CHECK(n != NULL && n[0] != '\0');
            for (; *n; n++)
                FUZZ_CHECK(!(*n >= 'A' && *n <= 'Z')); /* stored lower case */
            FUZZ_CHECK(!r->headers[h].regex || r->headers[h].value != NULL);
        }
        FUZZ_CHECK(m->scheme != NULL &&
                   (strcmp(m->scheme, "http") == 0 || strcmp(m->scheme, "https") == 0));
        FUZZ_CHECK(m->upstream_host != NULL && m->upstream_host[0] != '\0');
        FUZZ_CHECK(m->upstream_port >= 1);
        FUZZ_CHECK(m->doc >= 1 && m->line >= 1 && m->name_line >= 1);
    }
    for (size_t i = 0; i < res->nerrors; i++) {
        const struct route_error *e = &res->errors[i];
        FUZZ_CHECK(e->ns != NULL && strcmp(e->ns, ANN_NS) == 0);
        FUZZ_CHECK(e->svc != NULL && strcmp(e->svc, svc) == 0);
        FUZZ_CHECK(e->mapping != NULL && e->mapping[0] != '\0');
        FUZZ_CHECK(e->message != NULL && e->message[0] != '\0');
        FUZZ_CHECK(e->line >= 0);
    }
    for (size_t i = 0; i < res->nwarnings; i++)
        FUZZ_CHECK(res->warnings[i].message != NULL);
}

static bool ann_has_sentinel(const struct annotation_result *res)
{
    for (size_t i = 0; i < res->nmappings; i++)
        if (strcmp(res->mappings[i].route.mapping, ANN_SENTINEL) == 0 &&
            strcmp(res->mappings[i].route.prefix, "/fuzz-sentinel/") == 0)
            return true;
    return false;
}

/* libyaml picks the encoding from the first bytes: after a UTF-16 byte order mark the
 * appended (UTF-8) document is not text of the same stream, so the check does not apply. */
static bool ann_starts_utf16(const uint8_t *data, size_t size)
{
    return size >= 2 &&
           ((data[0] == 0xff && data[1] == 0xfe) || (data[0] == 0xfe && data[1] == 0xff));
}

static void ann_check_table(const struct compile_result *r)
{
    const struct route_table *t = r->table;
    size_t nroutes = 0;
    for (size_t i = 0; i < r->nservices; i++)
        nroutes += r->services[i].nroutes;
    FUZZ_CHECK(nroutes == t->nroutes);
    for (size_t i = 0; i < t->nroutes; i++) {
        FUZZ_CHECK(t->routes[i].cluster < t->nclusters);
        if (i + 1 < t->nroutes)
            FUZZ_CHECK(route_cmp(&t->routes[i], &t->routes[i + 1]) <= 0);
        /* Mapping names are unique per namespace (one namespace here). */
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(t->routes[k].mapping, t->routes[i].mapping) != 0);
    }
    for (size_t i = 0; i < t->nclusters; i++)
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(t->clusters[k].name, t->clusters[i].name) != 0);
    for (size_t i = 0; i < t->nerrors; i++)
        FUZZ_CHECK(t->errors[i].message != NULL && t->errors[i].ns != NULL);
}

static void ann_compile(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    char *a = xstrndup(text, nul ? (size_t)(nul - data) : size);
    char *b = nul ? xstrndup((const char *)nul + 1, size - (size_t)(nul - data) - 1) : NULL;
    struct cache c;
    cache_init(&c, NULL, NULL);
    struct cache_object oa = {
        .ns = ANN_NS, .name = "a", .uid = "uid-a", .annotation = a, .origin = "fuzz", .line = 1
    };
    struct cache_object ob = {
        .ns = ANN_NS, .name = "b", .uid = "uid-b", .annotation = b, .origin = "fuzz", .line = 1
    };
    struct cache_object plain = { .ns = ANN_NS, .name = "plain", .uid = "uid-p", .origin = "fuzz" };
    cache_upsert(&c, &oa);
    if (b != NULL)
        cache_upsert(&c, &ob);
    cache_upsert(&c, &plain);

    struct compile_opts co = { .ambassador_id = NULL, .version = 42 };
    struct compile_result *r = compile_run(&c, &co);
    struct compile_result *r2 = compile_run(&c, &co);
    FUZZ_CHECK(r->table->version == 42);
    FUZZ_CHECK(compile_tables_equal(r->table, r2->table));
    FUZZ_CHECK(r->nservices == (b != NULL ? 2u : 1u));
    FUZZ_CHECK(compile_find_service(r, ANN_NS, "a") != NULL);
    FUZZ_CHECK(compile_find_service(r, ANN_NS, "plain") == NULL);
    ann_check_table(r);

    char err[512] = "";
    /* The proxy reads snapshots with UTF-8 validation: one bad byte refuses the whole table. */
    FUZZ_CHECK(fuzz_errors_are_utf8(r->table));
    struct route_table *again = fuzz_wire_roundtrip(r->table, err, sizeof(err));
    if (again == NULL)
        fuzz_fail(err, __FILE__, __LINE__); /* the proxy would nack what we compiled */
    FUZZ_CHECK(route_table_equal(r->table, again));
    route_table_free(again);

    struct px_router *router = px_router_build(r->table, err, sizeof(err));
    if (router == NULL)
        fuzz_fail(err, __FILE__, __LINE__); /* compiled, so it must be routable */
    struct fuzz_ref *ref = fuzz_ref_new(r->table);
    FUZZ_CHECK(ref != NULL);
    fuzz_check_router(router, ref, strmap_hash(STRMAP_HASH_INIT, data, size), ANN_BUDGET);
    fuzz_ref_free(ref);
    px_router_free(router);
    compile_result_free(r2);
    compile_result_free(r);
    cache_free(&c);
    free(a);
    free(b);
}

int fuzz_annotation(const uint8_t *data, size_t size)
{
    struct annotation_opts o = { .ns = ANN_NS, .svc = "fuzz", .ambassador_id = NULL };
    struct annotation_result res;

    fuzz_logs(size & 1);
    annotation_parse((const char *)data, size, &o, &res);
    ann_check_result(&res, "fuzz");
    annotation_result_free(&res);

    if (size + sizeof(ann_sentinel) <= ANNOTATION_MAX && !ann_starts_utf16(data, size)) {
        struct buf b;
        buf_init(&b, ANNOTATION_MAX);
        buf_append(&b, data, size);
        buf_append_str(&b, ann_sentinel);
        annotation_parse(b.data, b.len, &o, &res);
        ann_check_result(&res, "fuzz");
        FUZZ_CHECK(ann_has_sentinel(&res));
        annotation_result_free(&res);
        buf_free(&b);
    }

    ann_compile(data, size);
    return 0;
}

FUZZ_ENTRY(fuzz_annotation)
