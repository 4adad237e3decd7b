#include "route_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "route_arena.h"
#include "xalloc.h"

/* ---- writing ---- */

void route_jw_init(struct route_jw *w, struct buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

void route_jw_init_tree(struct route_jw *w)
{
    memset(w, 0, sizeof(*w));
}

int route_jw_finish(struct route_jw *w)
{
    if (w->out != NULL && w->out->data != NULL)
        w->out->data[w->out->len] = '\0';
    return w->err;
}

json_object *route_jw_tree(struct route_jw *w)
{
    json_object *root = w->root;
    w->root = NULL;
    return root;
}

static void put_slow(struct route_jw *w, const void *p, size_t n)
{
    w->err = buf_append(w->out, p, n);
}

/* Appends text. The common case writes straight into the buffer's spare room, leaving a byte
 * for the NUL that route_jw_finish puts back; buf_append handles growth and the cap. Inlined,
 * so the one- and two-byte pieces become plain stores. */
static inline void put(struct route_jw *w, const void *p, size_t n)
{
    struct buf *b = w->out;
    if (w->err != 0)
        return;
    if (b->cap - b->len > n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return;
    }
    put_slow(w, p, n);
}

/* A comma unless this is the first member or element of the open container. */
static void separate(struct route_jw *w)
{
    if (w->depth > 0 && w->more[w->depth - 1])
        put(w, ",", 1);
    if (w->depth > 0)
        w->more[w->depth - 1] = true;
}

/* Before a value: separated from the one before in an array; an object's value follows its
 * key, which was. */
static void before_value(struct route_jw *w)
{
    if (w->after_key)
        w->after_key = false;
    else
        separate(w);
}

/* Tree mode: hangs v under the pending key of the open object, at the end of the open array,
 * or at the root. Keys are the field tables' literals, so json-c need not copy them. */
static void attach(struct route_jw *w, json_object *v)
{
    if (w->depth == 0) {
        json_object_put(w->root);
        w->root = v;
    } else if (w->key != NULL) {
        json_object_object_add_ex(w->node[w->depth - 1], w->key, v,
                                  JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_KEY_IS_CONSTANT);
        w->key = NULL;
    } else {
        json_object_array_add(w->node[w->depth - 1], v);
    }
}

void route_jw_open(struct route_jw *w, char kind)
{
    json_object *node = NULL;
    if (w->out == NULL) {
        node = kind == '{' ? json_object_new_object() : json_object_new_array();
        attach(w, node);
    } else {
        before_value(w);
        put(w, &kind, 1);
    }
    if (w->depth == ROUTE_JW_DEPTH) {
        abort(); /* the field tables nest a few levels deep: a bug, not input */
    }
    w->node[w->depth] = node;
    w->closer[w->depth] = kind == '{' ? '}' : ']';
    w->more[w->depth++] = false;
}

void route_jw_close(struct route_jw *w)
{
    if (w->depth == 0)
        return;
    w->depth--;
    if (w->out != NULL)
        put(w, &w->closer[w->depth], 1);
}

void route_jw_key(struct route_jw *w, const char *key)
{
    if (w->out == NULL) {
        w->key = key;
        return;
    }
    separate(w);
    put(w, "\"", 1);
    put(w, key, strlen(key));
    put(w, "\":", 2);
    w->after_key = true;
}

void route_jw_str(struct route_jw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    static const char two_letter[0x20] = {
        ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
    };
    if (w->out == NULL) {
        attach(w, s ? json_object_new_string(s) : NULL);
        return;
    }
    before_value(w);
    if (s == NULL) {
        put(w, "null", 4);
        return;
    }
    put(w, "\"", 1);
    /* json-c's escapes: the two-letter forms for \b \t \n \f \r " \\, \u00XX for the other
     * control bytes, everything else (DEL and UTF-8 included) as is. */
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(w, run, (size_t)(p - run));
        run = p + 1;
        char e[6] = { '\\', (char)c, '0', '0', 0, 0 };
        size_t n = 2;
        if (c < 0x20 && (e[1] = two_letter[c]) == 0) {
            e[1] = 'u';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            n = 6;
        }
        put(w, e, n);
    }
    put(w, run, strlen(run));
    put(w, "\"", 1);
}

void route_jw_int(struct route_jw *w, int64_t v)
{
    if (w->out == NULL) {
        attach(w, json_object_new_int64(v));
        return;
    }
    /* Decimal digits from the right; the magnitude as unsigned so INT64_MIN works. */
    char tmp[24];
    size_t at = sizeof(tmp);
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--at] = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    if (v < 0)
        tmp[--at] = '-';
    before_value(w);
    put(w, tmp + at, sizeof(tmp) - at);
}

void route_jw_bool(struct route_jw *w, bool v)
{
    if (w->out == NULL) {
        attach(w, json_object_new_boolean(v));
        return;
    }
    before_value(w);
    if (v)
        put(w, "true", 4);
    else
        put(w, "false", 5);
}

/* ---- reading ---- */

const char *route_jr_label(struct route_jr *r)
{
    if (r->index == SIZE_MAX)
        snprintf(r->label, sizeof(r->label), "%s", r->what);
    else
        snprintf(r->label, sizeof(r->label), "%s[%zu]", r->what, r->index);
    return r->label;
}

int route_jr_fail(struct route_jr *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

char *route_jr_str(struct route_jr *r, json_object *v, bool intern)
{
    const char *s = json_object_get_string(v);
    size_t n = strlen(s);
    return intern ? route_arena_intern(r->arena, s, n) : route_arena_strndup(r->arena, s, n);
}

void *route_jr_alloc(struct route_jr *r, size_t n)
{
    return route_arena_alloc(r->arena, n);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

int route_jr_cluster(struct route_jr *r, const char *name, uint32_t *idx)
{
    const struct route_table *t = r->t;
    if (r->cluster_slots == NULL) {
        /* Built at the first reference, once every cluster has been read; the first cluster
         * of a name wins, as a linear search would find it. */
        size_t n = 16;
        while (n < t->nclusters * 2)
            n *= 2;
        r->cluster_slots = xcalloc(n, sizeof(*r->cluster_slots));
        r->ncluster_slots = n;
        for (size_t i = 0; i < t->nclusters; i++) {
            size_t k = name_hash(t->clusters[i].name) & (n - 1);
            for (; r->cluster_slots[k] != 0; k = (k + 1) & (n - 1))
                if (strcmp(t->clusters[r->cluster_slots[k] - 1].name, t->clusters[i].name) == 0)
                    break;
            if (r->cluster_slots[k] == 0)
                r->cluster_slots[k] = (uint32_t)i + 1;
        }
    }
    size_t mask = r->ncluster_slots - 1;
    for (size_t k = name_hash(name) & mask; r->cluster_slots[k] != 0; k = (k + 1) & mask) {
        uint32_t i = r->cluster_slots[k] - 1;
        if (strcmp(t->clusters[i].name, name) == 0) {
            *idx = i;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- field tables ---- */

/* Where a field's struct starts: policy members live in the struct route_policy the route
 * points at. */
static const void *member_base(const void *base, const struct route_field *f)
{
    if (f->flags & ROUTE_F_POLICY)
        return ((const struct route *)base)->policy;
    return base;
}

/* The same, for reading into: a route still sharing route_policy_none gets a zeroed policy of
 * its own in the table's arena at its first policy key, so routes without any stay small. */
static void *member_base_mut(struct route_jr *r, void *base, const struct route_field *f)
{
    if (!(f->flags & ROUTE_F_POLICY))
        return base;
    struct route *rt = base;
    if (rt->policy == &route_policy_none)
        rt->policy = route_jr_alloc(r, sizeof(*rt->policy));
    return (void *)rt->policy; /* the route's own, in the arena */
}

void route_json_write_fields(struct route_jw *w, const struct route_field *f, size_t n,
                             const void *base, const struct route_table *t)
{
    route_jw_open(w, '{');
    for (size_t i = 0; i < n; i++)
        f[i].ops->write(w, &f[i], member_base(base, &f[i]), t);
    route_jw_close(w);
}

/* The index of key in f, looking from hint on first: objects written by route_jw_* list their
 * keys in table order, so the next key is almost always the next field. */
static size_t find_field(const struct route_field *f, size_t n, const char *key, size_t hint)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (hint + k) % n;
        if (strcmp(f[i].name, key) == 0)
            return i;
    }
    return n;
}

int route_json_read_fields(struct route_jr *r, const struct route_field *f, size_t n,
                           json_object *o, void *base)
{
    uint64_t seen = 0;
    size_t hint = 0;
    if (!json_object_is_type(o, json_type_object))
        return route_jr_fail(r, "%s: expected an object", route_jr_label(r));
    json_object_object_foreach(o, key, val)
    {
        size_t i = find_field(f, n, key, hint);
        if (i == n)
            return route_jr_fail(r, "%s: unknown key \"%s\"", route_jr_label(r), key);
        seen |= (uint64_t)1 << i;
        hint = i + 1;
        if (f[i].ops->read(r, &f[i], val, member_base_mut(r, base, &f[i])) != 0)
            return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(f[i].flags & ROUTE_F_REQUIRED))
            continue;
        /* A required string given as null is missing too. */
        if (!(seen & ((uint64_t)1 << i)) ||
            (f[i].ops == &route_json_str &&
             *ROUTE_CFIELD(member_base(base, &f[i]), &f[i], char *) == NULL))
            return route_jr_fail(r, "%s: missing \"%s\"", route_jr_label(r), f[i].name);
    }
    return 0;
}

bool route_json_fields_eq(const struct route_field *f, size_t n, const void *a, const void *b)
{
    for (size_t i = 0; i < n; i++)
        if (!f[i].ops->eq(&f[i], member_base(a, &f[i]), member_base(b, &f[i])))
            return false;
    return true;
}
