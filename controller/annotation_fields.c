/* The per-type field parsers of the keyword tables (annotation_internal.h): one function per
 * kind of value, parameterised by its table row, so that every field of a kind reads, checks
 * and reports the same way. Scalars go through annotation_value.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "annotation_internal.h"
#include "rx.h"
#include "xalloc.h"

int field_string(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    const char *s = value_string(&d->report, f->name, v);
    if (s == NULL)
        return -EINVAL;
    /* rewrite: "" means "leave the path alone", which the route model spells NULL. */
    if (*s == '\0' && !(f->flags & F_EMPTY_NULL)) {
        doc_error(d, f->name, v->line, "%s: must not be empty", f->name);
        return -EINVAL;
    }
    char **dst = FIELD_AT(obj, f, char *);
    free(*dst);
    *dst = *s ? xstrdup(s) : NULL;
    /* path_redirect, prefix_redirect. */
    if ((f->flags & F_PATH) && (*s != '/' || strpbrk(s, "\r\n") != NULL)) {
        doc_error(d, f->name, v->line, "%s: \"%s\" must be a path starting with \"/\"", f->name, s);
        return -EINVAL;
    }
    /* server_name: sent in a header line. */
    if ((f->flags & F_NO_CONTROL) && value_has_control(s)) {
        doc_error(d, f->name, v->line, "%s: control characters are not allowed", f->name);
        return -EINVAL;
    }
    return 0;
}

int field_bool(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    return value_bool(&d->report, f->name, v, FIELD_AT(obj, f, bool));
}

/* timeout_ms of a Mapping and cluster_request_timeout_ms of the Module remember that they were
 * set (F_SET), so the Module's default fills only the Mappings that left it out. */
int field_uint(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    if (value_uint(&d->report, f->name, v, 0, f->max, f->unit ? f->unit : "",
                   FIELD_AT(obj, f, uint32_t)) != 0)
        return -EINVAL;
    if (f->flags & F_SET)
        *(bool *)((char *)obj + f->noff) = true;
    return 0;
}

int field_int32(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    int64_t i = 0;
    int rc = value_int(&d->report, f->name, v, &i);
    if (rc == -EINVAL)
        return rc;
    if (rc != 0 || i < INT32_MIN || i > INT32_MAX) {
        doc_error(d, f->name, v->line, "%s: %s is out of range", f->name, v->value);
        return -EINVAL;
    }
    *FIELD_AT(obj, f, int32_t) = (int32_t)i;
    return 0;
}

int field_ignored(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    (void)obj;
    char msg[160];
    snprintf(msg, sizeof(msg), "%s is ignored: Legate has no Envoy to pass it to", f->name);
    doc_warn(d, f->name, v->line, msg);
    return 0;
}

int field_check_regex(struct doc_ctx *d, const char *field, int line, const char *pattern,
                      unsigned flags, struct rx **keep)
{
    struct rx *re = NULL;
    char why[256];
    if (rx_compile(pattern, flags, &re, why, sizeof(why)) != 0) {
        doc_error(d, field, line, "%s: invalid regex \"%s\": %s", field, pattern, why);
        return -EINVAL;
    }
    if (keep != NULL)
        *keep = re;
    else
        rx_free(re);
    return 0;
}

/* ---- header edits ---- */

/* Headers the proxy owns: framing, hop-by-hop, and Host (host_rewrite sets it). Editing them
 * through add_/remove_ would break the message or bypass the proxy's own handling. */
static bool is_reserved_header(const char *name)
{
    static const char *const reserved[] = { "host",       "content-length", "transfer-encoding",
                                            "connection", "keep-alive",     "te",
                                            "trailer",    "upgrade",        "proxy-connection" };
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* A header name to add or remove: "field: <what n is> is not a valid header name" otherwise.
 * Returns 0 or -EINVAL after reporting. */
static int header_name(struct doc_ctx *d, const char *field, const struct ytree_node *n)
{
    if (ytree_is_text(n) && value_is_token(n->value))
        return 0;
    char got[96];
    ytree_describe(n, got, sizeof(got));
    doc_error(d, field, n->line, "%s: %s is not a valid header name", field, got);
    return -EINVAL;
}

/* Envoy expands %VARIABLE% in added header values and wants "%%" for a literal "%". Legate
 * expands no variables: "%%" becomes "%", any other "%" is refused rather than sent as
 * written (it would differ from what Ambassador sent). Returns a new string or NULL after
 * recording an error. */
static char *header_value(struct doc_ctx *d, const char *field, const struct ytree_node *v)
{
    if (v->type != YTREE_SCALAR || ytree_is_null(v) || strlen(v->value) != v->len) {
        value_type_error(&d->report, field, v, "a string, or {value, append}");
        return NULL;
    }
    if (strpbrk(v->value, "\r\n") != NULL) {
        doc_error(d, field, v->line, "%s: a header value cannot hold a line break", field);
        return NULL;
    }
    char *out = xmalloc(v->len + 1), *o = out;
    for (const char *s = v->value; *s; s++) {
        if (*s == '%' && s[1] == '%') {
            s++;
        } else if (*s == '%') {
            doc_error(d, field, v->line,
                      "%s: %%VARIABLE%% substitution is not supported yet (write %%%% for a "
                      "literal %%)",
                      field);
            free(out);
            return NULL;
        }
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

/* One entry of add_*_headers: a string, or (v2) {value: string, append: bool}; append (the
 * default) adds a line, false replaces. Returns a new value string or NULL after reporting. */
static char *header_add_value(struct doc_ctx *d, const char *field, const struct ytree_node *val,
                              bool *append)
{
    const struct ytree_node *value = val;
    *append = true;
    if (val->type == YTREE_MAP) {
        value = ytree_map_get(val, "value");
        const struct ytree_node *ap = ytree_map_get(val, "append");
        bool bad_key = false;
        for (size_t j = 0; j + 1 < val->nkids; j += 2)
            bad_key = bad_key || !ytree_is_text(val->kids[j]) ||
                      (strcmp(val->kids[j]->value, "value") != 0 &&
                       strcmp(val->kids[j]->value, "append") != 0);
        if (bad_key || value == NULL) {
            doc_error(d, field, val->line, "%s: expected {value: string, append: boolean}", field);
            return NULL;
        }
        if (ap != NULL && ytree_get_bool(ap, append) != 0) {
            value_type_error(&d->report, field, ap, "a boolean for append");
            return NULL;
        }
    }
    return header_value(d, field, value);
}

int field_header_adds(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                      void *obj)
{
    if (v->type != YTREE_MAP)
        return value_type_error(&d->report, f->name, v, "a map of header names to values");
    struct route_header_add *arr = FIELD_ARRAY(obj, f, struct route_header_add, v->nkids / 2);
    size_t *n = FIELD_COUNT(obj, f);
    int rc = 0;
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct ytree_node *k = v->kids[i];
        if (header_name(d, f->name, k) != 0) {
            rc = -EINVAL;
            continue;
        }
        char field[160];
        snprintf(field, sizeof(field), "%s.%s", f->name, k->value);
        bool dup = false;
        for (size_t j = 0; j < *n; j++)
            dup = dup || strcasecmp(arr[j].name, k->value) == 0;
        if (dup || is_reserved_header(k->value)) {
            doc_error(d, field, k->line,
                      dup ? "%s: header listed twice (names are case-insensitive)"
                          : "%s: the proxy sets this header itself; it cannot be added",
                      field);
            rc = -EINVAL;
            continue;
        }
        bool append;
        char *s = header_add_value(d, field, v->kids[i + 1], &append);
        if (s == NULL) {
            rc = -EINVAL;
            continue;
        }
        arr[(*n)++] = (struct route_header_add){ xstrdup(k->value), s, append };
    }
    return rc;
}

int field_header_removes(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                         void *obj)
{
    const struct ytree_node *const *items = &v;
    size_t nitems = 1;
    if (v->type == YTREE_SEQ) {
        items = (const struct ytree_node *const *)v->kids;
        nitems = v->nkids;
    } else if (v->type != YTREE_SCALAR) {
        return value_type_error(&d->report, f->name, v, "a header name or a list of them");
    }
    char **arr = FIELD_ARRAY(obj, f, char *, nitems);
    size_t *n = FIELD_COUNT(obj, f);
    int rc = 0;
    for (size_t i = 0; i < nitems; i++) {
        const struct ytree_node *it = items[i];
        if (header_name(d, f->name, it) != 0) {
            rc = -EINVAL;
        } else if (is_reserved_header(it->value)) {
            doc_error(d, f->name, it->line,
                      "%s: \"%s\" is handled by the proxy itself; it cannot be removed", f->name,
                      it->value);
            rc = -EINVAL;
        } else {
            arr[(*n)++] = value_lower(xstrdup(it->value));
        }
    }
    return rc;
}
