/* A YAML document as a small tree, built from libyaml's event API.
 *
 * Why not libyaml's own document API (yaml_parser_load)? libyaml 0.2.5 aborts on an
 * assertion in loader.c when a document after the first has a syntax error (try
 * "a: 1\n---\nb: c: d"): user input must never take the process down. The event API reports
 * the same errors as return values. Building the tree ourselves also lets us cap depth and
 * node count, resolve aliases without cycles, and keep 1-based lines on every node.
 *
 * Aliases share the anchored node (no copy), and an anchor becomes usable only once its node
 * is complete, so the tree is acyclic. Tags are ignored: scalars are typed by YAML 1.1's
 * plain-scalar rules, as PyYAML (Ambassador's parser) did. */
#ifndef LEGATE_CONTROLLER_YTREE_H
#define LEGATE_CONTROLLER_YTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "strmap.h"

#define YTREE_MAX_DEPTH 64

enum ytree_type { YTREE_SCALAR, YTREE_SEQ, YTREE_MAP };
enum ytree_style { YTREE_PLAIN, YTREE_QUOTED, YTREE_LITERAL, YTREE_FOLDED };

struct ytree_node {
    enum ytree_type type;
    enum ytree_style style; /* scalars only */
    int line;               /* 1-based, plus the parser's line offset */
    char *value;            /* scalars: NUL-terminated copy (may hold NULs: use len) */
    size_t len;
    struct ytree_node **kids; /* sequences: items; maps: key, value, key, value, ... */
    size_t nkids;
    size_t capkids;
};

struct route_arena; /* common/route_arena.h */

/* A document owns all its nodes (in an arena: one allocation per few dozen nodes rather than
 * three per node, which kept glibc busy coalescing) and outlives its parser. */
struct ytree_doc {
    struct ytree_node *root;
    int line;  /* line of the document's start */
    int index; /* 1-based position of the document in the stream */
    size_t nnodes;
    struct route_arena *arena; /* common/route_arena.h; NULL until the first node */
};

struct ytree_error {
    int line; /* 1-based, plus the parser's line offset */
    char msg[256];
};

struct ytree_parser {
    yaml_parser_t yp;
    const char *text;
    size_t len;
    int line_offset;
    size_t max_nodes; /* per document */
    int ndocs;
    int doc_line; /* 0-based line (in text) of the last document start seen; -1: none */
    bool started; /* STREAM-START consumed */
    bool done;    /* stream end or error: nothing more to read */
    struct strmap anchors;
};

/* Prepares to read the documents of text (borrowed; must outlive the parser). line_offset is
 * added to every reported line (for text that starts inside a larger file or annotation).
 * max_nodes caps one document's nodes (aliases count once). */
void ytree_parser_init(struct ytree_parser *p, const char *text, size_t len, int line_offset,
                       size_t max_nodes);
void ytree_parser_free(struct ytree_parser *p);
/* Reads the next document. Returns 1 with *doc filled (free it with ytree_doc_free), 0 at the
 * end of the stream, or -EINVAL on a syntax error or a cap, with *err filled. libyaml cannot
 * resume after an error: later calls return 0. */
int ytree_parser_next(struct ytree_parser *p, struct ytree_doc *doc, struct ytree_error *err);
/* Frees the document's nodes. Safe on a zeroed doc. */
void ytree_doc_free(struct ytree_doc *d);

/* What a scalar means under YAML 1.1's plain-scalar rules; quoted and block scalars are always
 * strings. */
enum ytree_kind { YTREE_K_NULL, YTREE_K_BOOL, YTREE_K_INT, YTREE_K_FLOAT, YTREE_K_STR };
enum ytree_kind ytree_scalar_kind(const struct ytree_node *n);
/* True for a null scalar (empty plain, "~", "null", "Null", "NULL"). */
bool ytree_is_null(const struct ytree_node *n);
/* Reads a boolean (true/false/yes/no/on/off in their YAML 1.1 spellings). 0 or -EINVAL. */
int ytree_get_bool(const struct ytree_node *n, bool *out);
/* Reads a decimal integer scalar with an optional sign. 0, -EINVAL (not an integer), or
 * -ERANGE (does not fit int64_t). */
int ytree_get_int(const struct ytree_node *n, int64_t *out);
/* True for a scalar that reads as a string of non-zero length without NUL bytes. */
bool ytree_is_text(const struct ytree_node *n);
/* Returns the value of the first pair whose key is the scalar `key` (borrowed), or NULL. */
const struct ytree_node *ytree_map_get(const struct ytree_node *map, const char *key);
/* Writes what n is, for type errors: `string "high"`, `integer 5`, `a list`, `a map`, `null`.
 * Long values are cut. */
void ytree_describe(const struct ytree_node *n, char *out, size_t outlen);

#endif
