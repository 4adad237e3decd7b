/* libFuzzer target: a manifest file of the directory source (source_dir_parse).
 *
 * The input is a file's content. Whatever it is:
 *   - a refusal says why (a syntax error, with a line) and returns no Service; an accepted
 *     file's Services each have a namespace, a name and a uid (C strings, not empty), a line
 *     that is 0 or within the file, and parsing again gives the same;
 *   - "one file, many documents": when the file ends with a line break (and is not JSON),
 *     appending a document with one more Service yields the same Services, then that one.
 * When the input is JSON (json-c reads it, strictly), as a `*.json` manifest may be:
 *   - it is not refused (kubectl reads it), unless it breaks RFC 8259 in a way json-c lets
 *     through: a raw control character in a string, invalid UTF-8 (json-c takes overlong
 *     sequences and code points past U+10FFFF: such text is left out altogether);
 *   - its Services are the ones json-c's reading of it describes, by the rules of source_dir.h:
 *     the object itself, or each object item of a `List`/`ServiceList` (whose items may omit
 *     kind and apiVersion), when its kind is `Service` and apiVersion `v1`, with a
 *     metadata.name; namespace "default" when it has none; the annotation any scalar, and a
 *     Service whose annotation is a map, a list, or a string with a NUL byte is dropped. To
 *     compare those rules alone, json-c's reading is written back as YAML that only has one
 *     reading (every string double-quoted and escaped to ASCII) and that is parsed. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "source_dir_internal.h"
#include "xalloc.h"

#define SD_JSON_DEPTH 32 /* below ytree's cap of 64: a refusal for depth is not the point here */

static const char sd_sentinel[] = "---\napiVersion: v1\nkind: Service\nmetadata:\n"
                                  "  name: fuzz-sentinel\n  namespace: fuzz\n"
                                  "  annotations:\n    getambassador.io/config: x\n";

static bool sd_str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool sd_obj_eq(const struct dir_object *a, const struct dir_object *b)
{
    return sd_str_eq(a->ns, b->ns) && sd_str_eq(a->name, b->name) && sd_str_eq(a->uid, b->uid) &&
           sd_str_eq(a->version, b->version) && sd_str_eq(a->annotation, b->annotation) &&
           a->line == b->line;
}

static int sd_parse(const char *path, const char *text, size_t len, struct dir_objects *out)
{
    struct ytree_error err;
    memset(&err, 0, sizeof(err));
    int rc = source_dir_parse(path, text, len, out, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc == -EINVAL && err.msg[0] != '\0' && err.line >= 0);
        FUZZ_CHECK(out->n == 0 && out->v == NULL);
    }
    return rc;
}

static void sd_check_objects(const struct dir_objects *o, const char *text, size_t len)
{
    /* libyaml's line breaks: LF, CR (CRLF counts twice here: an upper bound), NEL, LS, PS. A
     * literal annotation block's first line is the one after its "|". */
    int lines = 2;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n' || text[i] == '\r' ||
                 (i + 1 < len && memcmp(text + i, "\xc2\x85", 2) == 0) ||
                 (i + 2 < len && (memcmp(text + i, "\xe2\x80\xa8", 3) == 0 ||
                                  memcmp(text + i, "\xe2\x80\xa9", 3) == 0));
    for (size_t i = 0; i < o->n; i++) {
        const struct dir_object *d = &o->v[i];
        FUZZ_CHECK(d->ns != NULL && d->ns[0] != '\0');
        FUZZ_CHECK(d->name != NULL && d->name[0] != '\0');
        FUZZ_CHECK(d->uid != NULL && d->uid[0] != '\0');
        FUZZ_CHECK(d->line >= 0 && d->line <= lines);
    }
}

/* ---- JSON, read by json-c ----------------------------------------------------------------- */

/* A scalar's text as ytree reads the YAML sd_yaml writes for it: a string is itself, a number
 * or boolean its JSON spelling, null has none. *nul is set for a string holding a NUL byte. */
static const char *sd_scalar(json_object *v, bool *nul)
{
    *nul = false;
    if (v == NULL || json_object_is_type(v, json_type_object) ||
        json_object_is_type(v, json_type_array))
        return NULL;
    if (json_object_is_type(v, json_type_string)) {
        *nul = strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v);
        return json_object_get_string(v);
    }
    return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static json_object *sd_get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

/* What source_dir.c's text_of gives: a scalar with text (not empty, no NUL), else NULL. */
static const char *sd_text(json_object *o, const char *key)
{
    bool nul;
    const char *s = sd_scalar(sd_get(o, key), &nul);
    return s != NULL && !nul && s[0] != '\0' ? s : NULL;
}

/* Checks that obj, read as a Service by source_dir.h's rules, is what got[*at] says (moving
 * *at past it), or that it yields none. */
static void sd_expect(json_object *obj, bool in_service_list, const struct dir_objects *got,
                      size_t *at)
{
    const char *kind = sd_text(obj, "kind"), *api = sd_text(obj, "apiVersion");
    if (kind == NULL && in_service_list) {
        kind = "Service";
        api = "v1";
    }
    if (!sd_str_eq(kind, "Service") || !sd_str_eq(api, "v1"))
        return;
    json_object *md = sd_get(obj, "metadata");
    const char *name = sd_text(md, "name");
    if (name == NULL)
        return;
    json_object *av = sd_get(sd_get(md, "annotations"), "getambassador.io/config");
    bool nul = false;
    const char *ann = sd_scalar(av, &nul);
    if (av != NULL && !json_object_is_type(av, json_type_string) && ann == NULL)
        return; /* a map or a list */
    if (av != NULL && json_object_is_type(av, json_type_null))
        ann = "null"; /* ytree keeps the plain scalar's text */
    if (nul)
        return;
    const char *ns = sd_text(md, "namespace");
    FUZZ_CHECK(*at < got->n);
    const struct dir_object *d = &got->v[(*at)++];
    FUZZ_CHECK(sd_str_eq(d->ns, ns ? ns : "default") && sd_str_eq(d->name, name));
    FUZZ_CHECK(sd_str_eq(d->version, sd_text(md, "resourceVersion")));
    FUZZ_CHECK(sd_str_eq(d->annotation, av != NULL ? ann : NULL));
    const char *uid = sd_text(md, "uid");
    FUZZ_CHECK(uid != NULL ? sd_str_eq(d->uid, uid) : strlen(d->uid) == 36);
}

/* Writes s (n bytes of UTF-8) as a YAML double-quoted scalar of ASCII only. false when s holds
 * what YAML cannot write (a surrogate code point, which json-c lets through). */
static bool sd_quote(struct buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 0 : c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
        if (i + k >= n && k > 0)
            return false;
        uint32_t cp = k == 0 ? c : c & (0x3fu >> k);
        for (size_t j = 1; j <= k; j++)
            cp = cp << 6 | (p[i + j] & 0x3fu);
        i += k + 1;
        if (cp >= 0xd800 && cp <= 0xdfff)
            return false;
        if (cp >= 0x20 && cp < 0x7f && cp != '"' && cp != '\\') {
            char ch = (char)cp;
            buf_append(b, &ch, 1);
        } else if (cp <= 0xffff) {
            buf_printf(b, "\\u%04X", (unsigned)cp);
        } else {
            buf_printf(b, "\\U%08X", (unsigned)cp);
        }
    }
    buf_append(b, "\"", 1);
    return true;
}

/* json-c's reading of o as YAML flow collections, keys explicit, strings quoted by sd_quote. */
static bool sd_yaml(struct buf *b, json_object *o)
{
    bool ok = true;
    switch (json_object_get_type(o)) {
    case json_type_object: {
        bool first = true;
        buf_append(b, "{", 1);
        json_object_object_foreach(o, key, val)
        {
            if (!first)
                buf_append(b, ", ", 2);
            first = false;
            /* "? ": an explicit key, which libyaml takes at any length (an implicit one only
             * up to 1024 characters). */
            ok = ok && buf_append(b, "? ", 2) == 0 && sd_quote(b, key, strlen(key)) &&
                 buf_append(b, ": ", 2) == 0 && sd_yaml(b, val);
        }
        buf_append(b, "}", 1);
        return ok;
    }
    case json_type_array:
        buf_append(b, "[", 1);
        for (size_t i = 0; ok && i < json_object_array_length(o); i++) {
            if (i > 0)
                buf_append(b, ", ", 2);
            ok = sd_yaml(b, json_object_array_get_idx(o, i));
        }
        buf_append(b, "]", 1);
        return ok;
    case json_type_string:
        return sd_quote(b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
    default: /* null, booleans and numbers keep their JSON spelling: plain YAML scalars */
        buf_append_str(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return true;
    }
}

/* Whether the strings of JSON text hold no raw control character, as RFC 8259 (and kubectl)
 * require and json-c does not. */
static bool sd_rfc_strings(const char *text, size_t len)
{
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        if (quoted && (unsigned char)text[i] < 0x20)
            return false;
        if (quoted && text[i] == '\\')
            i++; /* the escaped character */
        else if (text[i] == '"')
            quoted = !quoted;
    }
    return true;
}

/* json-c's strict reading of the whole text, with at most depth levels, or NULL. *json is set
 * when there is one (JSON null included). */
static json_object *sd_json(const char *text, size_t len, int depth, bool *json)
{
    json_tokener *tok = json_tokener_new_ex(depth);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    *json = json_tokener_get_error(tok) == json_tokener_success &&
            json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!*json) {
        json_object_put(root);
        root = NULL;
    }
    return root;
}

static void sd_check_json(const char *text, size_t len)
{
    bool json = false;
    json_object *root = sd_json(text, len, SD_JSON_DEPTH, &json);
    if (root == NULL)
        return;
    /* json-c's UTF-8 check lets overlong sequences and code points past U+10FFFF through:
     * such text is not JSON (RFC 8259), and libyaml refuses it. */
    char *copy = xstrndup(text, len);
    bool utf8 = strlen(copy) == len && fuzz_is_utf8(copy);
    free(copy);
    if (!utf8) {
        json_object_put(root);
        return;
    }
    struct dir_objects raw;
    FUZZ_CHECK(sd_parse("fuzz.json", text, len, &raw) == 0 || !sd_rfc_strings(text, len));
    source_dir_objects_free(&raw);

    struct buf y;
    buf_init(&y, (size_t)-1 / 2);
    if (sd_yaml(&y, root)) {
        struct dir_objects got;
        FUZZ_CHECK(sd_parse("fuzz.yaml", y.data, y.len, &got) == 0);
        size_t at = 0;
        const char *kind = sd_text(root, "kind");
        json_object *items = sd_get(root, "items");
        if ((sd_str_eq(kind, "List") || sd_str_eq(kind, "ServiceList")) &&
            json_object_is_type(items, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *it = json_object_array_get_idx(items, i);
                if (json_object_is_type(it, json_type_object))
                    sd_expect(it, sd_str_eq(kind, "ServiceList"), &got, &at);
            }
        } else if (json_object_is_type(root, json_type_object)) {
            sd_expect(root, false, &got, &at);
        }
        FUZZ_CHECK(at == got.n);
        source_dir_objects_free(&got);
    }
    buf_free(&y);
    json_object_put(root);
}

int fuzz_source_dir(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    fuzz_logs(size & 1);

    struct dir_objects a, b;
    int rc = sd_parse("fuzz.yaml", text, size, &a);
    FUZZ_CHECK(sd_parse("fuzz.yaml", text, size, &b) == rc && a.n == b.n);
    for (size_t i = 0; i < a.n; i++)
        FUZZ_CHECK(sd_obj_eq(&a.v[i], &b.v[i]));
    source_dir_objects_free(&b);
    sd_check_objects(&a, text, size);

    /* One more document after a line break (a file ending inside a line could be continued by
     * it; a UTF-16 file, announced by its byte order mark, could not take UTF-8 bytes). */
    bool utf16 =
        size >= 2 && ((data[0] == 0xff && data[1] == 0xfe) || (data[0] == 0xfe && data[1] == 0xff));
    /* Nor JSON: it is read as JSON (source_dir.c, json_for_yaml), which a YAML document after
     * it would end. */
    bool json = false;
    json_object_put(sd_json(text, size, YTREE_MAX_DEPTH, &json));
    if (rc == 0 && (size == 0 || text[size - 1] == '\n') && !utf16 && !json) {
        struct buf more;
        buf_init(&more, (size_t)-1 / 2);
        buf_append(&more, text, size);
        buf_append_str(&more, sd_sentinel);
        FUZZ_CHECK(sd_parse("fuzz.yaml", more.data, more.len, &b) == 0);
        FUZZ_CHECK(b.n == a.n + 1);
        for (size_t i = 0; i < a.n; i++)
            FUZZ_CHECK(sd_obj_eq(&a.v[i], &b.v[i]));
        FUZZ_CHECK(strcmp(b.v[a.n].name, "fuzz-sentinel") == 0 &&
                   strcmp(b.v[a.n].ns, "fuzz") == 0 && sd_str_eq(b.v[a.n].annotation, "x"));
        source_dir_objects_free(&b);
        buf_free(&more);
    }
    source_dir_objects_free(&a);

    sd_check_json(text, size);
    return 0;
}

FUZZ_ENTRY(fuzz_source_dir)
