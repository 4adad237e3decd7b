/* The annotation and its documents: cutting the text into documents (one bad document never
 * hides another), each document's header (apiVersion, kind, name, ambassador_id), where its
 * errors go, and the dispatch of its keys to the keyword tables of annotation_mapping.c and
 * annotation_module.c. */
#include "annotation.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotation_internal.h"
#include "log.h"
#include "route.h"
#include "utf8.h"
#include "strmap.h"
#include "xalloc.h"
#include "ytree.h"

/* An annotation holds at most 256 KiB, so this only stops pathological inputs from turning
 * each byte into a node. */
#define MAX_NODES_PER_DOC 100000

/* ---- where problems go ---- */

static void push_diag(struct route_error **v, size_t *n, const struct doc_ctx *d, const char *field,
                      int line, const char *msg)
{
    /* Grows one at a time: annotations carry a handful of problems, not thousands. */
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    struct route_error *e = &(*v)[(*n)++];
    e->ns = xstrdup(d->o->ns);
    e->svc = xstrdup(d->o->svc);
    e->mapping = xstrdup(d->name ? d->name : d->label);
    e->field = xstrdup(field);
    e->line = line;
    e->message = xstrdup(msg);
    /* Messages quote the annotation and are cut to fixed sizes, possibly inside a character;
     * they travel as JSON to the proxy (which reads strictly) and into Events. */
    utf8_scrub(e->message);
    if (e->field != NULL)
        utf8_scrub(e->field);
}

/* The document's struct value_ctx callbacks. */
static void on_error(void *arg, const char *field, int line, const char *msg)
{
    struct doc_ctx *d = arg;
    push_diag(&d->res->errors, &d->res->nerrors, d, field, line, msg);
}

static void on_warning(void *arg, const char *field, int line, const char *msg)
{
    struct doc_ctx *d = arg;
    push_diag(&d->res->warnings, &d->res->nwarnings, d, field, line, msg);
}

void doc_error(struct doc_ctx *d, const char *field, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    on_error(d, field, line, msg);
}

void doc_warn(struct doc_ctx *d, const char *field, int line, const char *msg)
{
    on_warning(d, field, line, msg);
}

bool doc_has_errors(const struct doc_ctx *d)
{
    return d->res->nerrors > d->first_error;
}

/* ---- did you mean ---- */

size_t annotation_edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n > MAXLEN || m > MAXLEN)
        return (size_t)-1;
    size_t dp[MAXLEN + 1][MAXLEN + 1];
    for (size_t i = 0; i <= n; i++)
        dp[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        dp[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = dp[i - 1][j] + 1;
            if (dp[i][j - 1] + 1 < best)
                best = dp[i][j - 1] + 1;
            if (dp[i - 1][j - 1] + cost < best)
                best = dp[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                dp[i - 2][j - 2] + 1 < best)
                best = dp[i - 2][j - 2] + 1;
            dp[i][j] = best;
        }
    }
    return dp[n][m];
}

/* Returns the one candidate within distance 2 of word that is closer than every other, or
 * NULL (none close, or a tie: a guess between two would mislead). Very short words are close
 * to too much to suggest anything. */
static const char *suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = 3;
    bool tie = false;
    for (size_t i = 0; i < n; i++) {
        size_t dist = annotation_edit_distance(word, cands[i]);
        if (dist < bestd) {
            bestd = dist;
            best = cands[i];
            tie = false;
        } else if (dist == bestd) {
            tie = true;
        }
    }
    if (best == NULL || tie || bestd >= strlen(word))
        return NULL;
    return best;
}

/* ---- keys ---- */

void doc_unknown_key(struct doc_ctx *d, const char *const *names, size_t n, const char *what,
                     const struct ytree_node *k)
{
    const char *hint = suggest(k->value, names, n);
    if (hint != NULL)
        doc_error(d, k->value, k->line, "unknown %s \"%s\" (did you mean \"%s\"?)", what, k->value,
                  hint);
    else
        doc_error(d, k->value, k->line, "unknown %s \"%s\"", what, k->value);
}

void doc_read_field(struct doc_ctx *d, const struct field_table *t, const struct ytree_node *k,
                    const struct ytree_node *v, void *obj)
{
    const char *name = k->value, *p;
    for (size_t i = 0; i < t->nfields; i++) {
        const struct field *f = &t->fields[i];
        if (strcmp(f->name, name) == 0) {
            if (!(f->flags & F_COMMON))
                f->parse(d, f, v, obj);
            return;
        }
    }
    for (size_t i = 0; (p = annotation_policy_field(t->module, i)) != NULL; i++) {
        if (strcmp(p, name) == 0) {
            const struct field f = FIELD(p, t->policy, 0, 0, 0);
            t->policy(d, &f, v, obj);
            return;
        }
    }
    for (size_t i = 0; i < t->nnot_yet; i++) {
        if (strcmp(t->not_yet[i], name) == 0) {
            doc_error(d, name, k->line, "%s %s is not supported yet", t->what, name);
            return;
        }
    }
    /* Every name the object has, for "did you mean". */
    const char *names[128];
    size_t n = 0;
    for (size_t i = 0; i < t->nfields && n < ARRAY_SIZE(names); i++)
        names[n++] = t->fields[i].name;
    for (size_t i = 0; n < ARRAY_SIZE(names) && (p = annotation_policy_field(t->module, i)); i++)
        names[n++] = p;
    for (size_t i = 0; i < t->nnot_yet && n < ARRAY_SIZE(names); i++)
        names[n++] = t->not_yet[i];
    doc_unknown_key(d, names, n, t->what, k);
}

static const char *const api_versions[] = { "ambassador/v0", "ambassador/v1",
                                            "getambassador.io/v2" };
/* Ambassador kinds Legate reads but does not act on yet: a warning, not an error. */
static const char *const other_kinds[] = {
    "TLSContext", "AuthService", "RateLimitService",           "TracingService",
    "TCPMapping", "LogService",  "KubernetesServiceResolver",  "ConsulResolver",
    "Host",       "DevPortal",   "KubernetesEndpointResolver",
};

enum doc_kind { DOC_SKIP, DOC_MAPPING, DOC_MODULE };

/* ---- one document ---- */

/* ambassador_id: a string or a list of strings. Returns 1 when the document is for us, 0 when
 * it is for another Ambassador, -EINVAL after recording an error. */
static int check_ambassador_id(struct doc_ctx *d, const struct ytree_node *v)
{
    const char *want = d->o->ambassador_id ? d->o->ambassador_id : ANNOTATION_DEFAULT_ID;
    if (v == NULL)
        return strcmp(want, ANNOTATION_DEFAULT_ID) == 0;
    if (v->type == YTREE_SCALAR) {
        const char *s = value_string(&d->report, "ambassador_id", v);
        return s == NULL ? -EINVAL : strcmp(s, want) == 0;
    }
    if (v->type != YTREE_SEQ)
        return value_type_error(&d->report, "ambassador_id", v, "a string or a list of strings");
    int match = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct ytree_node *id = v->kids[i];
        if (id->type != YTREE_SCALAR || ytree_is_null(id))
            return value_type_error(&d->report, "ambassador_id", id, "a string");
        match = match || strcmp(id->value, want) == 0;
    }
    return match;
}

/* The field of the warning on an object that is skipped rather than applied. */
#define SKIPPED_FIELD "kind"

void doc_warn_skipped(struct doc_ctx *d, int line, const char *what)
{
    if (doc_has_errors(d))
        return;
    char msg[160];
    snprintf(msg, sizeof(msg), "%s is not supported yet", what);
    doc_warn(d, SKIPPED_FIELD, line, msg);
}

bool annotation_warning_is_skip(const struct route_error *w)
{
    return w->field != NULL && strcmp(w->field, SKIPPED_FIELD) == 0;
}

/* Reads apiVersion, kind and name. Returns what the document is: a Mapping or the ambassador
 * Module, whose fields should be read (errors may still have been recorded), or something to
 * skip (after a warning or an error). */
static enum doc_kind read_header(struct doc_ctx *d, const struct ytree_node *root,
                                 const struct ytree_node *const common[4])
{
    const struct ytree_node *api = common[0], *kind = common[1], *name = common[2];
    const char *s;

    if (api == NULL) {
        doc_error(d, "apiVersion", root->line, "missing required field \"apiVersion\"");
    } else if ((s = value_string(&d->report, "apiVersion", api)) != NULL) {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(api_versions); i++)
            if (strcmp(s, api_versions[i]) == 0)
                break;
        if (i == ARRAY_SIZE(api_versions))
            doc_error(d, "apiVersion", api->line,
                      "apiVersion: unsupported \"%s\" (expected ambassador/v0, ambassador/v1 "
                      "or getambassador.io/v2)",
                      s);
    }

    if (kind == NULL) {
        doc_error(d, "kind", root->line, "missing required field \"kind\"");
        return DOC_SKIP;
    }
    if ((s = value_string(&d->report, "kind", kind)) == NULL)
        return DOC_SKIP;
    enum doc_kind k = DOC_MAPPING;
    if (strcmp(s, "Module") == 0) {
        k = DOC_MODULE;
    } else if (strcmp(s, "Mapping") != 0) {
        for (size_t i = 0; i < ARRAY_SIZE(other_kinds); i++) {
            if (strcmp(s, other_kinds[i]) == 0) {
                char what[96];
                snprintf(what, sizeof(what), "kind %s", s);
                doc_warn_skipped(d, kind->line, what);
                return DOC_SKIP;
            }
        }
        const char *kinds[ARRAY_SIZE(other_kinds) + 2];
        kinds[0] = "Mapping";
        kinds[1] = "Module";
        memcpy(kinds + 2, other_kinds, sizeof(other_kinds));
        const char *hint = suggest(s, kinds, ARRAY_SIZE(kinds));
        if (hint != NULL)
            doc_error(d, "kind", kind->line, "kind: unknown kind \"%s\" (did you mean \"%s\"?)", s,
                      hint);
        else
            doc_error(d, "kind", kind->line, "kind: unknown kind \"%s\"", s);
        return DOC_SKIP;
    }

    if (name == NULL)
        doc_error(d, "name", root->line, "missing required field \"name\"");
    else if ((s = value_string(&d->report, "name", name)) != NULL && *s == '\0')
        doc_error(d, "name", name->line, "name: must not be empty");
    return k;
}

static void parse_document(struct doc_ctx *d, const struct ytree_doc *doc)
{
    const struct ytree_node *root = doc->root;
    static const char *const common_names[4] = { "apiVersion", "kind", "name", "ambassador_id" };
    const struct ytree_node *common[4] = { NULL, NULL, NULL, NULL };
    struct strmap seen;

    strmap_init(&seen);
    d->doc = doc->index;
    d->name = NULL;
    d->first_error = d->res->nerrors;
    snprintf(d->label, sizeof(d->label), "<document %d>", doc->index);

    if (root == NULL || ytree_is_null(root)) {
        /* Ambassador 0.40 stopped at an empty document; it hides nothing here. */
        log_debug("empty document skipped", "ns=%s svc=%s document=%d", d->o->ns, d->o->svc,
                  doc->index);
        goto out;
    }
    if (root->type != YTREE_MAP) {
        char got[96];
        ytree_describe(root, got, sizeof(got));
        doc_error(d, NULL, root->line,
                  "document %d: expected a map (apiVersion, kind, name, ...), got %s", doc->index,
                  got);
        goto out;
    }

    /* Errors name the Mapping as soon as it has a usable name. */
    const struct ytree_node *name = ytree_map_get(root, "name");
    if (name != NULL && ytree_is_text(name))
        d->name = name->value;

    /* Keys: strings, each once. The common ones are looked at first. */
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct ytree_node *k = root->kids[i];
        if (!ytree_is_text(k)) {
            char got[96];
            ytree_describe(k, got, sizeof(got));
            doc_error(d, NULL, k->line, "keys must be strings, got %s", got);
            continue;
        }
        const struct ytree_node *first = strmap_get(&seen, k->value);
        if (first != NULL) {
            doc_error(d, k->value, k->line, "duplicate key \"%s\" (first on line %d)", k->value,
                      first->line);
            continue;
        }
        strmap_put(&seen, k->value, root->kids[i]);
        for (size_t c = 0; c < 4; c++)
            if (strcmp(k->value, common_names[c]) == 0)
                common[c] = root->kids[i + 1];
    }

    int ours = check_ambassador_id(d, common[3]);
    if (ours == 0) {
        log_debug("object for another ambassador_id ignored", "ns=%s svc=%s mapping=%s", d->o->ns,
                  d->o->svc, d->name ? d->name : d->label);
        d->res->nignored++;
        goto out;
    }
    switch (read_header(d, root, common)) {
    case DOC_MAPPING:
        mapping_parse(d, root, &seen, common[2]);
        break;
    case DOC_MODULE:
        module_parse(d, root, &seen, common[2]);
        break;
    case DOC_SKIP:
        break;
    }
out:
    strmap_free(&seen, NULL);
}

/* ---- the annotation ---- */

/* A "---" at the start of a line always starts a document: YAML forbids it inside every kind
 * of scalar. */
static bool is_doc_marker(const char *p, const char *end)
{
    return end - p >= 3 && p[0] == '-' && p[1] == '-' && p[2] == '-' &&
           (end - p == 3 || p[3] == ' ' || p[3] == '\t' || p[3] == '\r' || p[3] == '\n');
}

/* Returns the start of the line after the one at p, counting line breaks as libyaml does
 * (its marks give the error's line): CRLF, a lone CR, LF, and U+0085, U+2028, U+2029. Counting
 * LF only put the restart point too far down, and a document after the broken one was lost. */
static const char *after_line_break(const char *p, const char *end)
{
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n')
            return p + 1;
        if (c == '\r')
            return p + 1 < end && p[1] == '\n' ? p + 2 : p + 1;
        if (c == 0xc2 && p + 1 < end && (unsigned char)p[1] == 0x85)
            return p + 2;
        if (c == 0xe2 && p + 2 < end && (unsigned char)p[1] == 0x80 &&
            ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9))
            return p + 3;
        p++;
    }
    return end;
}

/* Where to start again after a syntax error: the first "---" line of text that is at or after
 * the error's line (an unclosed bracket is reported on the next marker, which starts a good
 * document) and after the broken document's own start (or the parse would fail again in the
 * same place). Lines are 0-based within text. Returns the byte offset and sets *line, or
 * returns len when no document follows. */
static size_t resume_point(const char *text, size_t len, int err_line, int doc_line, int *line)
{
    const char *end = text + len;
    int l = 0;
    for (const char *p = text; p < end; l++) {
        if (l >= 1 && l >= err_line && l > doc_line && is_doc_marker(p, end)) {
            *line = l;
            return (size_t)(p - text);
        }
        p = after_line_break(p, end);
    }
    return len;
}

void annotation_parse(const char *text, size_t len, const struct annotation_opts *o,
                      struct annotation_result *out)
{
    struct doc_ctx d = { .o = o, .res = out };
    d.report = (struct value_ctx){ on_error, on_warning, &d };
    size_t pos = 0;
    int line0 = 0; /* lines of text before pos */
    int ndocs = 0;

    memset(out, 0, sizeof(*out));
    if (len > ANNOTATION_MAX) {
        snprintf(d.label, sizeof(d.label), "<annotation>");
        doc_error(&d, NULL, 0, "annotation is %zu bytes, over the %d-byte limit", len,
                  ANNOTATION_MAX);
        return;
    }
    /* One libyaml parser reads documents until the end or a syntax error. libyaml cannot go on
     * after an error, so a new parser starts at the next document: each document stands
     * alone, and the common case still costs a single parser (their 64 KiB of buffers per
     * parser are not free). */
    while (pos < len) {
        struct ytree_parser p;
        struct ytree_doc doc;
        struct ytree_error err;
        int rc;
        ytree_parser_init(&p, text + pos, len - pos, line0, MAX_NODES_PER_DOC);
        while ((rc = ytree_parser_next(&p, &doc, &err)) == 1) {
            doc.index = ++ndocs;
            parse_document(&d, &doc);
            ytree_doc_free(&doc);
        }
        int doc_line = p.doc_line;
        ytree_parser_free(&p);
        if (rc == 0)
            break;

        int next_line = 0;
        size_t next = err.line > 0 ? resume_point(text + pos, len - pos, err.line - 1 - line0,
                                                  doc_line, &next_line)
                                   : len - pos;
        d.doc = ++ndocs;
        d.name = NULL;
        snprintf(d.label, sizeof(d.label), "<document %d>", ndocs);
        doc_error(&d, NULL, err.line, "%s; this document is ignored%s", err.msg,
                  next < len - pos ? ", the documents after it are still read" : "");
        pos += next;
        line0 += next_line;
    }
}

void annotation_result_free(struct annotation_result *r)
{
    for (size_t i = 0; i < r->nmappings; i++)
        mapping_free_fields(&r->mappings[i]);
    for (size_t i = 0; i < r->nerrors; i++)
        route_error_free_fields(&r->errors[i]);
    for (size_t i = 0; i < r->nwarnings; i++)
        route_error_free_fields(&r->warnings[i]);
    free(r->mappings);
    free(r->errors);
    free(r->warnings);
    module_free(r->module);
    memset(r, 0, sizeof(*r));
}
