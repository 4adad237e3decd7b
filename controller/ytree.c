#include "ytree.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route_arena.h"
#include "xalloc.h"

void ytree_parser_init(struct ytree_parser *p, const char *text, size_t len, int line_offset,
                       size_t max_nodes)
{
    memset(p, 0, sizeof(*p));
    yaml_parser_initialize(&p->yp);
    yaml_parser_set_input_string(&p->yp, (const unsigned char *)text, len);
    p->text = text;
    p->len = len;
    p->line_offset = line_offset;
    p->max_nodes = max_nodes;
    p->doc_line = -1;
    strmap_init(&p->anchors);
}

void ytree_parser_free(struct ytree_parser *p)
{
    yaml_parser_delete(&p->yp);
    strmap_free(&p->anchors, NULL);
}

/* ---- arena ---- */

/* A document's nodes and strings live in one bump arena (the one route tables use): freeing
 * the document frees a few chunks. */
static void *doc_alloc(struct ytree_doc *d, size_t n)
{
    if (d->arena == NULL)
        d->arena = route_arena_new();
    return route_arena_alloc(d->arena, n);
}

void ytree_doc_free(struct ytree_doc *d)
{
    route_arena_free(d->arena);
    memset(d, 0, sizeof(*d));
}

static int mark_line(const struct ytree_parser *p, yaml_mark_t m)
{
    return (int)m.line + 1 + p->line_offset;
}

/* libyaml fills problem_mark for scanner and parser errors, but reader errors (bad UTF-8,
 * control characters) only carry a byte offset: count the newlines before it. */
static void set_yaml_error(struct ytree_parser *p, struct ytree_error *err)
{
    const yaml_parser_t *y = &p->yp;
    const char *problem = y->problem ? y->problem : "unknown error";
    if (y->error == YAML_READER_ERROR) {
        int line = 1;
        for (size_t i = 0; i < y->problem_offset && i < p->len; i++)
            line += p->text[i] == '\n';
        err->line = line + p->line_offset;
        snprintf(err->msg, sizeof(err->msg), "YAML syntax error: %s", problem);
    } else if (y->error == YAML_MEMORY_ERROR) {
        err->line = 0;
        snprintf(err->msg, sizeof(err->msg), "YAML parser out of memory");
    } else {
        err->line = mark_line(p, y->problem_mark);
        if (y->context != NULL)
            snprintf(err->msg, sizeof(err->msg), "YAML syntax error: %s (%s on line %d)", problem,
                     y->context, mark_line(p, y->context_mark));
        else
            snprintf(err->msg, sizeof(err->msg), "YAML syntax error: %s", problem);
    }
}

static struct ytree_node *new_node(struct ytree_doc *d, enum ytree_type type, int line)
{
    struct ytree_node *n = doc_alloc(d, sizeof(*n));
    n->type = type;
    n->line = line;
    d->nnodes++;
    return n;
}

/* Doubling in the arena wastes at most the final size again; documents are short-lived. */
static void add_kid(struct ytree_doc *d, struct ytree_node *parent, struct ytree_node *kid)
{
    if (parent->nkids == parent->capkids) {
        size_t cap = parent->capkids ? parent->capkids * 2 : 8;
        struct ytree_node **kids = doc_alloc(d, cap * sizeof(*kids));
        if (parent->nkids > 0)
            memcpy(kids, parent->kids, parent->nkids * sizeof(*kids));
        parent->kids = kids;
        parent->capkids = cap;
    }
    parent->kids[parent->nkids++] = kid;
}

/* An open collection and the anchor it registers once complete. */
struct frame {
    struct ytree_node *node;
    char *anchor;
};

static enum ytree_style scalar_style(yaml_scalar_style_t s)
{
    switch (s) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        return YTREE_QUOTED;
    case YAML_LITERAL_SCALAR_STYLE:
        return YTREE_LITERAL;
    case YAML_FOLDED_SCALAR_STYLE:
        return YTREE_FOLDED;
    default:
        return YTREE_PLAIN;
    }
}

static void set_error(struct ytree_error *err, int line, const char *msg)
{
    err->line = line;
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
}

int ytree_parser_next(struct ytree_parser *p, struct ytree_doc *doc, struct ytree_error *err)
{
    struct frame stack[YTREE_MAX_DEPTH];
    size_t depth = 0;
    yaml_event_t ev;
    bool have_ev = false;
    int rc = -EINVAL;

    memset(doc, 0, sizeof(*doc));
    err->line = 0;
    err->msg[0] = '\0';
    if (p->done)
        return 0;
    strmap_free(&p->anchors, NULL); /* anchors are scoped to one document */

    for (;;) {
        /* libyaml may return 1 with no event once it has failed: check error too. */
        if (!yaml_parser_parse(&p->yp, &ev) || p->yp.error != YAML_NO_ERROR) {
            set_yaml_error(p, err);
            goto out;
        }
        have_ev = true;
        int line = mark_line(p, ev.start_mark);
        struct ytree_node *n = NULL;
        char *anchor = NULL;

        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
            p->started = true;
            break;
        case YAML_STREAM_END_EVENT:
            p->done = true;
            rc = 0;
            goto out; /* not a failure: there is simply no document left */
        case YAML_DOCUMENT_START_EVENT:
            doc->line = line;
            p->doc_line = (int)ev.start_mark.line;
            doc->index = ++p->ndocs;
            break;
        case YAML_DOCUMENT_END_EVENT:
            yaml_event_delete(&ev);
            return 1;
        case YAML_ALIAS_EVENT:
            n = strmap_get(&p->anchors, (const char *)ev.data.alias.anchor);
            if (n == NULL) {
                char msg[200];
                snprintf(msg, sizeof(msg), "YAML: unknown alias *%.100s",
                         (const char *)ev.data.alias.anchor);
                set_error(err, line, msg);
                goto out;
            }
            break;
        case YAML_SCALAR_EVENT:
            n = new_node(doc, YTREE_SCALAR, line);
            n->style = scalar_style(ev.data.scalar.style);
            n->len = ev.data.scalar.length;
            n->value = doc_alloc(doc, n->len + 1);
            memcpy(n->value, ev.data.scalar.value, n->len);
            if (ev.data.scalar.anchor != NULL)
                strmap_put(&p->anchors, (const char *)ev.data.scalar.anchor, n);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == YTREE_MAX_DEPTH) {
                set_error(err, line, "YAML: nesting deeper than 64 levels");
                goto out;
            }
            n = new_node(doc, ev.type == YAML_MAPPING_START_EVENT ? YTREE_MAP : YTREE_SEQ, line);
            anchor = (char *)(ev.type == YAML_MAPPING_START_EVENT ? ev.data.mapping_start.anchor
                                                                  : ev.data.sequence_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            /* The parser guarantees balance; the collection is complete now, so its anchor
             * can be referred to from here on (never from inside itself: no cycles). */
            depth--;
            if (stack[depth].anchor != NULL) {
                strmap_put(&p->anchors, stack[depth].anchor, stack[depth].node);
                free(stack[depth].anchor);
            }
            break;
        default:
            break;
        }

        if (doc->nnodes > p->max_nodes) {
            char msg[100];
            snprintf(msg, sizeof(msg), "YAML: document has more than %zu nodes", p->max_nodes);
            set_error(err, line, msg);
            goto out;
        }
        if (n != NULL) {
            if (depth > 0)
                add_kid(doc, stack[depth - 1].node, n);
            else
                doc->root = n;
            if (n->type != YTREE_SCALAR && ev.type != YAML_ALIAS_EVENT) {
                stack[depth].node = n;
                stack[depth].anchor = xstrdup(anchor);
                depth++;
            }
        }
        yaml_event_delete(&ev);
        have_ev = false;
    }

out:
    if (have_ev)
        yaml_event_delete(&ev);
    while (depth > 0)
        free(stack[--depth].anchor);
    if (rc != 0)
        p->done = true; /* libyaml cannot resume after an error */
    ytree_doc_free(doc);
    return rc;
}

/* ---- scalars ---- */

static bool is_one_of(const struct ytree_node *n, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(n->value, *words) == 0)
            return true;
    return false;
}

static const char *const null_words[] = { "", "~", "null", "Null", "NULL", NULL };
static const char *const true_words[] = { "true", "True", "TRUE", "yes", "Yes",
                                          "YES",  "on",   "On",   "ON",  NULL };
static const char *const false_words[] = { "false", "False", "FALSE", "no",  "No",
                                           "NO",    "off",   "Off",   "OFF", NULL };

bool ytree_is_null(const struct ytree_node *n)
{
    return n->type == YTREE_SCALAR && n->style == YTREE_PLAIN && is_one_of(n, null_words);
}

int ytree_get_bool(const struct ytree_node *n, bool *out)
{
    if (n->type != YTREE_SCALAR || n->style != YTREE_PLAIN)
        return -EINVAL;
    if (is_one_of(n, true_words))
        *out = true;
    else if (is_one_of(n, false_words))
        *out = false;
    else
        return -EINVAL;
    return 0;
}

int ytree_get_int(const struct ytree_node *n, int64_t *out)
{
    if (n->type != YTREE_SCALAR || n->style != YTREE_PLAIN || n->len == 0 ||
        strlen(n->value) != n->len)
        return -EINVAL;
    const char *s = n->value;
    if (*s == '-' || *s == '+')
        s++;
    if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(n->value, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *out = v;
    return 0;
}

static bool looks_float(const char *s)
{
    char *end = NULL;
    if (*s == '\0')
        return false;
    if (strcmp(s, ".inf") == 0 || strcmp(s, "-.inf") == 0 || strcmp(s, ".nan") == 0 ||
        strcmp(s, ".NaN") == 0 || strcmp(s, ".Inf") == 0)
        return true;
    /* strtod also takes "inf", "nan" and hex, which YAML does not: require a digit. */
    if (strpbrk(s, "0123456789") == NULL || strpbrk(s, "xXnN") != NULL)
        return false;
    strtod(s, &end);
    return *end == '\0';
}

enum ytree_kind ytree_scalar_kind(const struct ytree_node *n)
{
    int64_t i;
    bool b;
    if (n->style != YTREE_PLAIN)
        return YTREE_K_STR;
    if (ytree_is_null(n))
        return YTREE_K_NULL;
    if (ytree_get_bool(n, &b) == 0)
        return YTREE_K_BOOL;
    if (ytree_get_int(n, &i) != -EINVAL)
        return YTREE_K_INT;
    if (looks_float(n->value))
        return YTREE_K_FLOAT;
    return YTREE_K_STR;
}

bool ytree_is_text(const struct ytree_node *n)
{
    return n->type == YTREE_SCALAR && n->len > 0 && strlen(n->value) == n->len && !ytree_is_null(n);
}

const struct ytree_node *ytree_map_get(const struct ytree_node *map, const char *key)
{
    if (map == NULL || map->type != YTREE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const struct ytree_node *k = map->kids[i];
        if (k->type == YTREE_SCALAR && strcmp(k->value, key) == 0)
            return map->kids[i + 1];
    }
    return NULL;
}

void ytree_describe(const struct ytree_node *n, char *out, size_t outlen)
{
    if (n->type == YTREE_SEQ) {
        snprintf(out, outlen, "a list");
        return;
    }
    if (n->type == YTREE_MAP) {
        snprintf(out, outlen, "a map");
        return;
    }
    static const char *const names[] = { "null", "boolean", "integer", "number", "string" };
    enum ytree_kind k = ytree_scalar_kind(n);
    if (k == YTREE_K_NULL) {
        snprintf(out, outlen, "null");
        return;
    }
    /* Quote strings (they may hold spaces); cut long values so one message stays one line. */
    char v[48];
    size_t i, j = 0;
    for (i = 0; i < n->len && j + 1 < sizeof(v); i++) {
        unsigned char c = (unsigned char)n->value[i];
        v[j++] = c < 0x20 ? ' ' : (char)c;
    }
    v[j] = '\0';
    const char *more = i < n->len ? "..." : "";
    if (k == YTREE_K_STR)
        snprintf(out, outlen, "string \"%s%s\"", v, more);
    else
        snprintf(out, outlen, "%s %s%s", names[k], v, more);
}
