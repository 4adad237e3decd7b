/* libFuzzer target: the body of a Kubernetes LIST response (kube_list_parse, what on_list_done
 * calls for each page).
 *
 * Input: up to three pages separated by NUL bytes, parsed in order into one kube_watch, as the
 * pages of one paginated list are. Each page is read again here with json-c (the same depth
 * cap) and must come out as reference/kubernetes-api.md says:
 *   - it is accepted exactly when it is a JSON object with `items` (an array, or null for an
 *     empty list) and a non-empty metadata.resourceVersion string; a refusal says why and adds
 *     nothing;
 *   - an accepted page returns that resourceVersion and metadata.continue exactly (same
 *     bytes, same length: a string cut at a NUL byte is not the same string);
 *   - it appends, in order, one item per element that is an object whose metadata has a
 *     non-empty name and namespace, and nothing else; each item's namespace, name, uid,
 *     resourceVersion and annotation are copied exactly, or, when one of them could not be
 *     copied as a C string (a NUL byte inside), the element is skipped instead. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "annotation.h"
#include "cache.h"
#include "fuzz.h"
#include "kube_internal.h"

#define KL_PAGES 3
#define KL_DEPTH 64 /* kube_watch.c's JSON_DEPTH */

static bool kl_same(const char *got, const char *want)
{
    return got == want || (got != NULL && want != NULL && strcmp(got, want) == 0);
}

/* Checks the items element el should have added at w->items[*at], and moves *at past them. */
static void kl_check_item(const struct kube_watch *w, json_object *el, size_t *at)
{
    if (!json_object_is_type(el, json_type_object))
        return;
    json_object *md = fuzz_jobj(el, "metadata");
    bool bad = false;
    const char *ns = fuzz_jcstr(md, "namespace", &bad), *name = fuzz_jcstr(md, "name", &bad);
    const char *uid = fuzz_jcstr(md, "uid", &bad), *rv = fuzz_jcstr(md, "resourceVersion", &bad);
    const char *ann = fuzz_jcstr(fuzz_jobj(md, "annotations"), ANNOTATION_KEY, &bad);
    if (bad || ns == NULL || *ns == '\0' || name == NULL || *name == '\0')
        return;
    FUZZ_CHECK(*at < w->nitems);
    const struct kube_item *it = &w->items[*at];
    FUZZ_CHECK(kl_same(it->ns, ns) && kl_same(it->name, name));
    FUZZ_CHECK(kl_same(it->uid, uid) && kl_same(it->rv, rv));
    FUZZ_CHECK(kl_same(it->annotation, ann));
    (*at)++;
}

static void kl_page(struct kube_watch *w, const char *body, size_t len)
{
    size_t before = w->nitems;
    json_object *root = NULL;
    const char *rv = NULL, *cont = NULL;
    char why[256] = "";
    int rc = kube_list_parse(w, body, len, &root, &rv, &cont, why, sizeof(why));

    json_tokener *tok = json_tokener_new_ex(KL_DEPTH);
    json_object *list = json_tokener_parse_ex(tok, body, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(list);
        list = NULL;
    }
    json_tokener_free(tok);
    json_object *items = NULL;
    bool has_items = json_object_is_type(list, json_type_object) &&
                     json_object_object_get_ex(list, "items", &items) &&
                     (items == NULL || json_object_is_type(items, json_type_array));
    json_object *md = fuzz_jobj(list, "metadata");
    bool bad = false;
    const char *want_rv = fuzz_jcstr(md, "resourceVersion", &bad);
    const char *want_cont = fuzz_jcstr(md, "continue", &bad);
    bool ok = has_items && want_rv != NULL && *want_rv != '\0' && !bad;

    if (!ok) {
        FUZZ_CHECK(rc == -EINVAL && why[0] != '\0');
        FUZZ_CHECK(w->nitems == before);
    } else {
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(kl_same(rv, want_rv) && kl_same(cont, want_cont));
        size_t at = before;
        size_t n = items != NULL ? json_object_array_length(items) : 0;
        for (size_t i = 0; i < n; i++)
            kl_check_item(w, json_object_array_get_idx(items, i), &at);
        FUZZ_CHECK(at == w->nitems);
    }
    json_object_put(list);
    json_object_put(root);
}

int fuzz_kube_list(const uint8_t *data, size_t size)
{
    static uv_loop_t loop;
    static bool loop_ready;
    if (!loop_ready) {
        uv_loop_init(&loop);
        loop_ready = true;
    }
    fuzz_logs(size & 1);
    struct cache cache;
    cache_init(&cache, NULL, NULL);
    struct kube_watch w;
    kube_watch_init(&w, &loop, NULL, &cache, NULL, NULL, NULL);

    const char *in = (const char *)data;
    size_t off = 0;
    for (int page = 0; page < KL_PAGES; page++) {
        const char *nul = page + 1 < KL_PAGES ? memchr(in + off, '\0', size - off) : NULL;
        size_t len = nul ? (size_t)(nul - (in + off)) : size - off;
        kl_page(&w, in + off, len);
        if (nul == NULL)
            break;
        off += len + 1;
    }

    kube_watch_close(&w, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* closes the watch's timer */
    cache_free(&cache);
    return 0;
}

FUZZ_ENTRY(fuzz_kube_list)
