/* The machinery of the route table's JSON form (docs/control-protocol.md), shared by route.c
 * and route_policy.c: a streaming writer that appends JSON text to a struct buf, the context
 * a table is read in, and the per-type ops one field table per struct drives.
 *
 * A field table lists a struct's keys in wire order; each entry names the ops of its type.
 * Writing, reading and comparing all walk the same table and call the same ops, so a key
 * cannot be written one way and read another, and a new type is one set of ops. */
#ifndef LEGATE_ROUTE_JSON_H
#define LEGATE_ROUTE_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct route_table;
struct route_arena;

/* ---- writing ---- */

#define ROUTE_JW_DEPTH 16

/* Writes JSON values in order, either as compact text appended to a struct buf or as a json-c
 * tree. The text is byte for byte what json-c prints for the tree
 * (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE; members in the order written).
 * Text errors are sticky: after the first (-E2BIG past the buffer's cap) nothing more is
 * written, and route_jw_finish reports it. */
struct route_jw {
    struct buf *out;   /* NULL: building a tree */
    json_object *root; /* tree: the outermost value */
    const char *key;   /* tree: the key the next value goes under (a literal, not copied) */
    int err;
    unsigned depth;
    json_object *node[ROUTE_JW_DEPTH]; /* tree: the container open at that depth */
    char closer[ROUTE_JW_DEPTH];       /* '}' or ']' of the container open at that depth */
    bool more[ROUTE_JW_DEPTH];         /* that container already holds something */
    bool after_key;                    /* text: the next value belongs to the key just written */
};

/* Text mode, appending to out. */
void route_jw_init(struct route_jw *w, struct buf *out);
/* Tree mode: route_jw_tree then hands over what was written. */
void route_jw_init_tree(struct route_jw *w);
/* Ends text mode (out is NUL-terminated again). Returns 0, or the first error. */
int route_jw_finish(struct route_jw *w);
/* Returns the tree written (caller owns), or NULL when nothing was. */
json_object *route_jw_tree(struct route_jw *w);
/* Opens an object ('{') or array ('['), as a value; route_jw_close ends the innermost one. */
void route_jw_open(struct route_jw *w, char kind);
void route_jw_close(struct route_jw *w);
/* Starts a member of the open object: its key, which must outlive a tree. The value follows. */
void route_jw_key(struct route_jw *w, const char *key);
/* Values. route_jw_str writes null for NULL. */
void route_jw_str(struct route_jw *w, const char *s);
void route_jw_int(struct route_jw *w, int64_t v);
void route_jw_bool(struct route_jw *w, bool v);

/* ---- reading ---- */

/* What a table is being read in: the table (its clusters are read before the routes refer to
 * them), the arena its strings and arrays go to, and where a failure is reported. The label
 * names the element being read ("routes[3]") and is formatted only when an error needs it. */
struct route_jr {
    struct route_table *t;
    struct route_arena *arena;
    char *err;
    size_t errlen;
    const char *what; /* "routes", "clusters", "errors", "settings" */
    size_t index;     /* SIZE_MAX: no index */
    char label[48];
    uint32_t *cluster_slots; /* cluster name index: open addressing of index + 1; 0 empty */
    size_t ncluster_slots;
};

/* "routes[3]", or "settings". Valid until the next call. */
const char *route_jr_label(struct route_jr *r);
/* Writes the printf-style reason into r->err and returns -EINVAL. */
int route_jr_fail(struct route_jr *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns a copy of string value v in the table's arena, shared with earlier copies of the same
 * text when intern is true. Like strdup of json_object_get_string: text after a NUL is cut. */
char *route_jr_str(struct route_jr *r, json_object *v, bool intern);
/* Returns n zeroed bytes in the table's arena. */
void *route_jr_alloc(struct route_jr *r, size_t n);
/* Finds a cluster of r->t by name (the first of that name). Returns 0 with *idx or -ENOENT. */
int route_jr_cluster(struct route_jr *r, const char *name, uint32_t *idx);

/* ---- field tables ---- */

struct route_field;

/* How one type is written, read and compared. base is the start of the member's struct: the
 * member is at f->off (ROUTE_FIELD), a list's count at f->noff, and f->arg says more where
 * one set of ops serves several types (integers of each width, lists of each element). */
struct route_json_ops {
    /* Writes "key": value, or nothing when the value is not set (then the key is omitted). */
    void (*write)(struct route_jw *w, const struct route_field *f, const void *base,
                  const struct route_table *t);
    /* Reads v into the zeroed (or defaulted) field. Returns 0, or -EINVAL through
     * route_jr_fail. Whatever was read lives in the arena and goes with the table. */
    int (*read)(struct route_jr *r, const struct route_field *f, json_object *v, void *base);
    bool (*eq)(const struct route_field *f, const void *a, const void *b);
};

enum {
    ROUTE_F_REQUIRED = 1u << 0, /* the key must be present (and, for strings, not null) */
    ROUTE_F_OMIT = 1u << 1,     /* booleans: written only when true */
    ROUTE_F_UNIQUE = 1u << 2,   /* strings: rarely repeated, copied without interning */
    ROUTE_F_POLICY = 1u << 3,   /* a member of the struct route_policy route.policy points at */
};

struct route_field {
    const char *name;
    const struct route_json_ops *ops;
    size_t off;  /* the member's offset in its struct (in struct route_policy: ROUTE_F_POLICY) */
    size_t noff; /* list types: where the element count (size_t) lives */
    unsigned flags;
    const void *arg; /* type-specific: an integer's width and range, a list's element kind */
};

#define ROUTE_FIELD(base, f, type)  ((type *)((char *)(base) + (f)->off))
#define ROUTE_CFIELD(base, f, type) ((const type *)((const char *)(base) + (f)->off))

/* char *: omitted when NULL, or written as null when ROUTE_F_REQUIRED (a table built in
 * memory may lack it; the reader refuses it then). Interned unless ROUTE_F_UNIQUE. */
extern const struct route_json_ops route_json_str;

/* Writes the members of a struct through its field table (as one object), reads them from
 * object o (every key must be in the table; 0 or -EINVAL through route_jr_fail), compares. */
void route_json_write_fields(struct route_jw *w, const struct route_field *f, size_t n,
                             const void *base, const struct route_table *t);
int route_json_read_fields(struct route_jr *r, const struct route_field *f, size_t n,
                           json_object *o, void *base);
bool route_json_fields_eq(const struct route_field *f, size_t n, const void *a, const void *b);

#endif
