/* Router benchmark: lookup time and memory per route at 10, 1 000 and 100 000 routes.
 *
 *   build/bench-router [N ...]
 *
 * Each table holds N simple prefix routes "/svc-<i>/api/" (a tenth of them also with a
 * method, a tenth with a host) in Ambassador order, as the controller would send them, and is
 * loaded the way the proxy loads a snapshot (its JSON text through json-c and
 * route_table_from_json). Lookups use paths drawn at random from the table (hits) plus unknown
 * paths (misses), so the cost includes walking a deep trie, not just the root. Reports per
 * route the router's own bytes (px_router_memory), the heap the loaded table holds and the
 * heap held by table + router (mallinfo2), the snapshot's JSON bytes; the time to load the
 * snapshot (json-c's tokenizer included), to build the router, and nanoseconds per lookup
 * (best of 5 runs of 200 000 lookups, CLOCK_MONOTONIC). */
#include <json-c/json.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "route.h"
#include "router.h"
#include "xalloc.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The table as the proxy holds it: the controller's snapshot text for n routes, read the way
 * proxy/control.c reads a frame (json-c, then route_table_from_json). The routes are written
 * in Ambassador order, as the controller would send them. Returns the table and, in *msg,
 * json-c's tree of the frame, which the proxy frees only once the router is built; *load_ms
 * is the time the proxy spends reading it (tokenizing and building), *text_bytes its size. */
static struct route_table *make_table(size_t n, json_object **msg, double *load_ms,
                                      size_t *text_bytes)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    char buf[64];
    route_settings_init(&t->settings);
    t->nclusters = 1;
    t->clusters = xcalloc(1, sizeof(*t->clusters));
    t->clusters[0].name = xstrdup("up:80");
    t->clusters[0].scheme = xstrdup("http");
    t->clusters[0].host = xstrdup("up");
    t->clusters[0].port = 80;
    t->nroutes = n;
    t->routes = xcalloc(n, sizeof(*t->routes));
    for (size_t i = 0; i < n; i++) {
        struct route *r = &t->routes[i];
        route_init(r);
        snprintf(buf, sizeof(buf), "/svc-%zu/api/", i);
        r->prefix = xstrdup(buf);
        snprintf(buf, sizeof(buf), "m%zu", i);
        r->mapping = xstrdup(buf);
        r->ns = xstrdup("default");
        r->svc = xstrdup("bench");
        r->case_sensitive = true;
        r->rewrite = xstrdup("/");
        r->timeout_ms = 3000;
        if (i % 10 == 3)
            r->method = xstrdup("GET");
        if (i % 10 == 7) {
            snprintf(buf, sizeof(buf), "h%zu.example.com", i % 100);
            r->host = xstrdup(buf);
        }
    }
    route_sort(t->routes, t->nroutes);
    struct buf text;
    buf_init(&text, (size_t)1 << 30);
    if (route_snapshot_write(t, &text) != 0) {
        fprintf(stderr, "snapshot too large\n");
        exit(1);
    }
    route_table_free(t);

    double t0 = now_ns();
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    *msg = json_tokener_parse_ex(tok, text.data, (int)text.len);
    json_tokener_free(tok);
    char err[256];
    struct route_table *loaded = NULL;
    if (*msg == NULL || route_table_from_json(*msg, &loaded, err, sizeof(err)) != 0) {
        fprintf(stderr, "load failed: %s\n", *msg ? err : "not JSON");
        exit(1);
    }
    *load_ms = (now_ns() - t0) / 1e6;
    *text_bytes = text.len;
    buf_free(&text);
    return loaded;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void run(size_t n)
{
    double load_ms;
    size_t text_bytes;
    json_object *msg;
    size_t heap0 = heap_in_use();
    struct route_table *t = make_table(n, &msg, &load_ms, &text_bytes);
    /* As in the proxy, the router is built while json-c's tree of the frame is still held. */
    size_t router_heap = heap_in_use();
    double b0 = now_ns();
    char err[256];
    struct px_router *r = px_router_build(t, err, sizeof(err));
    double build_ms = (now_ns() - b0) / 1e6;
    if (r == NULL) {
        fprintf(stderr, "build failed: %s\n", err);
        exit(1);
    }
    router_heap = heap_in_use() - router_heap;
    /* With the tree gone, what is left is what the proxy holds. */
    json_object_put(msg);
    size_t heap = heap_in_use() - heap0;
    size_t table_heap = heap - router_heap;

    enum { NQ = 4096, LOOKUPS = 200000 };
    static char paths[NQ][64];
    static char hosts[NQ][32];
    srand(42);
    for (int i = 0; i < NQ; i++) {
        size_t k = (size_t)rand() % n;
        if (i % 8 == 0)
            snprintf(paths[i], sizeof(paths[i]), "/nope-%d/x", i);
        else
            snprintf(paths[i], sizeof(paths[i]), "/svc-%zu/api/items/%d", k, i);
        snprintf(hosts[i], sizeof(hosts[i]), "h%zu.example.com", k % 100);
    }
    double best = 1e18;
    size_t hits = 0;
    for (int round = 0; round < 5; round++) {
        hits = 0;
        double t0 = now_ns();
        for (int i = 0; i < LOOKUPS; i++) {
            const char *p = paths[i % NQ];
            struct px_request_view v = { 0 };
            v.method = "GET";
            v.method_len = 3;
            v.path = p;
            v.path_len = strlen(p);
            v.host = hosts[i % NQ];
            v.host_len = strlen(v.host);
            hits += px_router_match(r, &v) != NULL;
        }
        double ns = (now_ns() - t0) / LOOKUPS;
        if (ns < best)
            best = ns;
    }
    printf("| %7zu | %8.1f | %8.1f | %8.1f | %8.1f | %9.1f | %9.1f | %6.0f | %5.1f%% |\n", n,
           (double)px_router_memory(r) / (double)n, (double)table_heap / (double)n,
           (double)heap / (double)n, (double)text_bytes / (double)n, load_ms, build_ms, best,
           100.0 * (double)hits / LOOKUPS);
    px_router_free(r);
    route_table_free(t);
}

int main(int argc, char **argv)
{
    /* json-c and the C library allocate a few things once; keep them out of the first row. */
    double load_ms;
    size_t text_bytes;
    json_object *msg;
    route_table_free(make_table(1, &msg, &load_ms, &text_bytes));
    json_object_put(msg);
    printf("| routes  | router B/route | table B/route | table+router B/route | snapshot B/route "
           "| load ms | build ms | ns/lookup | hits |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run(strtoul(argv[i], NULL, 10));
    } else {
        run(10);
        run(1000);
        run(100000);
    }
    return 0;
}
