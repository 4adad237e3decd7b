/* Private to the annotation parser: annotation.c (documents, headers, dispatch),
 * annotation_fields.c (the per-type field parsers), annotation_mapping.c (the Mapping) and
 * annotation_module.c (the `ambassador` Module). Never included from elsewhere. */
#ifndef LEGATE_CONTROLLER_ANNOTATION_INTERNAL_H
#define LEGATE_CONTROLLER_ANNOTATION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annotation.h"
#include "annotation_value.h"
#include "strmap.h"
#include "xalloc.h"
#include "ytree.h"

struct rx;

/* ---- the document being read (annotation.c) ---- */

/* Where errors of the document being read go, and what they are attributed to. */
struct doc_ctx {
    const struct annotation_opts *o;
    struct annotation_result *res;
    struct value_ctx report; /* into res, attributed to this document (annotation_value.h) */
    char label[64];          /* the Mapping's name, or "<document N>" until it is known */
    const char *name;
    int doc;
    size_t first_error; /* res->nerrors when the document started */
};

/* Records an error (or a warning) of the document at line, naming field (NULL: none). */
void doc_error(struct doc_ctx *d, const char *field, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void doc_warn(struct doc_ctx *d, const char *field, int line, const char *msg);
/* True once the document has an error: it will not be used. */
bool doc_has_errors(const struct doc_ctx *d);

/* ---- keyword tables ---- */

struct field;
/* Reads v into obj (a struct mapping or struct module, as the table says). Returns 0, or
 * -EINVAL after recording an error. */
typedef int (*field_parse_cb)(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                              void *obj);

/* flags */
#define F_COMMON     0x001 /* apiVersion, kind, name, ambassador_id: read before the kind is known */
#define F_REQUIRED   0x002
#define F_REGEX      0x004 /* match maps: values are regexes */
#define F_QUERY      0x008 /* match maps: query parameters (names keep their case) */
#define F_SET        0x010 /* field_uint: also sets the bool at noff ("was given") */
#define F_EMPTY_NULL 0x020 /* field_string: "" is allowed and stored as NULL */
#define F_PATH       0x040 /* field_string: must start with "/", no line breaks */
#define F_NO_CONTROL 0x080 /* field_string: no control characters (sent in a header line) */

/* One key of a Mapping or of the Module's config: a row of a keyword table. */
struct field {
    const char *name;
    field_parse_cb parse; /* NULL only for F_COMMON keys */
    size_t off;           /* destination in the object */
    size_t noff;          /* lists and maps: where the element count lives; F_SET: the flag */
    unsigned flags;
    uint32_t max;     /* field_uint: the largest value accepted */
    const char *unit; /* field_uint: what the value counts, for the range error */
};

#define FIELD_AT(obj, f, type) ((type *)((char *)(obj) + (f)->off))
#define FIELD_COUNT(obj, f)    ((size_t *)((char *)(obj) + (f)->noff))
/* The array field f of obj (a T * at off, its count at noff), grown to hold `more` entries
 * after those it has (and one spare). Evaluates to the array. */
#define FIELD_ARRAY(obj, f, T, more)                                                               \
    (*FIELD_AT(obj, f, T *) =                                                                      \
         xrealloc(*FIELD_AT(obj, f, T *), (*FIELD_COUNT(obj, f) + (more) + 1) * sizeof(T)))

/* Rows: FIELD for most; FIELD_UINT (and FIELD_MILLIS) for field_uint, with its range and
 * unit. */
#define FIELD(name, parse, off, noff, flags)                                                       \
    {                                                                                              \
        name, parse, off, noff, flags, 0, NULL                                                     \
    }
#define FIELD_UINT(name, off, noff, flags, max, unit)                                              \
    {                                                                                              \
        name, field_uint, off, noff, flags, max, unit                                              \
    }
/* A duration in milliseconds: any uint32_t. */
#define FIELD_MILLIS(name, off, noff, flags)                                                       \
    FIELD_UINT(name, off, noff, flags, UINT32_MAX, " milliseconds")

/* The keys of one kind of object (a Mapping, the Module's config). */
struct field_table {
    const char *what; /* how errors name a key: "field", "Module key" */
    const struct field *fields;
    size_t nfields;
    /* The traffic-policy keys (annotation_policy_field(module, i)), all read by policy. */
    bool module;
    field_parse_cb policy;
    /* Keys Legate knows of and refuses: ignoring them would route differently from what the
     * author asked. Supporting one = giving it a row. */
    const char *const *not_yet;
    size_t nnot_yet;
};

/* A struct field_table from arrays. */
#define FIELD_TABLE(what, fields, module, policy, not_yet)                                         \
    {                                                                                              \
        what, fields, ARRAY_SIZE(fields), module, policy, not_yet, ARRAY_SIZE(not_yet)             \
    }

/* Dispatches key k (a text scalar) of an object to its row of t: "unknown <what>" (with a
 * suggestion) when it has none, "<what> X is not supported yet" for a refused key, nothing for
 * an F_COMMON key (the document's header reads those). */
void doc_read_field(struct doc_ctx *d, const struct field_table *t, const struct ytree_node *k,
                    const struct ytree_node *v, void *obj);
/* Reports k as an unknown <what>, suggesting the one name of names[0..n) it is close to. */
void doc_unknown_key(struct doc_ctx *d, const char *const *names, size_t n, const char *what,
                     const struct ytree_node *k);
/* Warns that the object (what: "kind TLSContext", "Module tls") is skipped, unless the
 * document already has an error. */
void doc_warn_skipped(struct doc_ctx *d, int line, const char *what);

/* ---- per-type parsers for table rows (annotation_fields.c) ---- */

/* A string into char *: never empty unless F_EMPTY_NULL; F_PATH, F_NO_CONTROL add checks. */
int field_string(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj);
/* A boolean into bool. */
int field_bool(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj);
/* An integer from 0 to f->max into uint32_t (F_SET: and sets the bool at noff). */
int field_uint(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj);
/* Any int32_t. */
int field_int32(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj);
/* add_request_headers, add_response_headers: a map of header names to values, appended to the
 * struct route_header_add array at off (count at noff). */
int field_header_adds(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                      void *obj);
/* remove_request_headers, remove_response_headers: a header name or a list of them, appended
 * (lower-cased) to the char * array at off (count at noff). */
int field_header_removes(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                         void *obj);
/* Accepted so that objects written for Ambassador load, and said to be ignored (a warning). */
int field_ignored(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj);

/* Compiles pattern only to check it (the proxy compiles its own copy): a bad pattern is the
 * author's error, reported on their Mapping, never a snapshot the proxy refuses. Keeps the
 * compiled regex in *keep when keep is not NULL. Returns 0 or -EINVAL after reporting. */
int field_check_regex(struct doc_ctx *d, const char *field, int line, const char *pattern,
                      unsigned flags, struct rx **keep);

/* ---- the objects ---- */

/* annotation_mapping.c: reads a Mapping document whose header was valid (keys in seen, each
 * mapped to its key node; name is the name value or NULL) and adds it to d->res unless it has
 * an error. */
void mapping_parse(struct doc_ctx *d, const struct ytree_node *root, const struct strmap *seen,
                   const struct ytree_node *name);
/* annotation_module.c: reads a Module document; the `ambassador` Module becomes d->res->module
 * unless it has an error (or an earlier one is there). */
void module_parse(struct doc_ctx *d, const struct ytree_node *root, const struct strmap *seen,
                  const struct ytree_node *name);

#endif
