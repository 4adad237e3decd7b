/* What the fuzz targets (fuzz/fuzz_*.c) share: their entry points, the invariant check, and the
 * oracles in fuzz/oracle.c that more than one target uses.
 *
 * Each target file defines fuzz_<name>() and, through FUZZ_ENTRY(fuzz_<name>) unless
 * LEGATE_FUZZ_NO_MAIN is defined, the LLVMFuzzerTestOneInput that calls it. The regression test
 * (test/unit/test_fuzz_regressions.c) includes every target file and oracle.c with
 * LEGATE_FUZZ_NO_MAIN and replays the stored inputs through the same functions, so a target's
 * static helpers carry a short prefix of their own: the files share one translation unit there.
 *
 * A target returns 0 for every input. Anything it finds wrong (a sanitizer report, or an
 * invariant below failing) ends the process: that is what libFuzzer records as a crash. */
#ifndef LEGATE_FUZZ_H
#define LEGATE_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "route-t.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int fuzz_annotation(const uint8_t *data, size_t size);
int fuzz_snapshot(const uint8_t *data, size_t size);
int fuzz_watch_split(const uint8_t *data, size_t size);
int fuzz_kubeconfig(const uint8_t *data, size_t size);
int fuzz_exec_cred(const uint8_t *data, size_t size);
int fuzz_request_head(const uint8_t *data, size_t size);
int fuzz_request_target(const uint8_t *data, size_t size);
int fuzz_kube_list(const uint8_t *data, size_t size);
int fuzz_source_dir(const uint8_t *data, size_t size);
int fuzz_push_reply(const uint8_t *data, size_t size);

/* The libFuzzer entry point of a target file, calling fn; nothing in the regression test, which
 * includes every target file in one translation unit. */
#ifdef LEGATE_FUZZ_NO_MAIN
#define FUZZ_ENTRY(fn)
#else
#define FUZZ_ENTRY(fn)                                                                             \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                   \
    {                                                                                              \
        return fn(data, size);                                                                     \
    }
#endif

/* Prints what failed and where, then aborts. */
void fuzz_fail(const char *what, const char *file, int line) __attribute__((noreturn));

/* Not assert(): it must hold in every build, NDEBUG or not. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(#cond, __FILE__, __LINE__);                                                  \
    } while (0)

/* Whether the open issue named `issue` (docs/fuzzing.md, "Findings") is to be ignored: true
 * when the comma-separated list in $LEGATE_FUZZ_IGNORE names it. Long runs set it so that a
 * known, reported bug does not stop them at the first input that shows it again; the smoke
 * test and `make unit` never do, so the stored regression fails until the fix lands. */
bool fuzz_ignore(const char *issue);

/* Sends every log line through the formatter (hostile values included) at debug level, in
 * logfmt or JSON as json says. The lines go to stderr; `make fuzz` runs with -close_fd_mask=2,
 * which discards them and keeps the sanitizers' reports. LEGATE_FUZZ_LOG=off turns logging
 * off (the unit test's replays). */
void fuzz_logs(bool json);

/* The controller's push path and the proxy's control path back to back, for t: JSON as
 * push.c writes it (route_snapshot_write), one frame, the frame decoder, the proxy's reader
 * (px_control_parse), route_table_from_json. Returns the table the proxy would load (caller
 * frees), or NULL with the proxy's reason in err. */
struct route_table *fuzz_wire_roundtrip(const struct route_table *t, char *err, size_t errlen);

/* The router's contract (proxy/router.h) as a linear scan over t, with its regexes compiled
 * here. fuzz_ref_new returns NULL when the router may refuse t (a regex that does not compile,
 * a host_regex or method_regex without a value, a Host longer than 255 bytes). */
struct fuzz_ref;
struct fuzz_ref *fuzz_ref_new(const struct route_table *t);
void fuzz_ref_free(struct fuzz_ref *ref);
/* The index of the first route whose every predicate matches req, or -1. */
long fuzz_ref_match(const struct fuzz_ref *ref, const struct px_request_view *req);

/* Runs req through the router and the linear scan and aborts unless they agree; for a match,
 * also checks px_rewrite_target, px_router_rewrite and px_router_location against their
 * contracts. Returns the matched index or -1. */
long fuzz_check_match(const struct px_router *r, const struct fuzz_ref *ref,
                      const struct px_request_view *req);

#define FUZZ_REQ_HEADERS 16
#define FUZZ_REQ_PATH    512
#define FUZZ_REQ_HOST    300

/* A request made to match one route, then changed as `variant`'s bits say (FUZZ_VARIANT_*).
 * Regex predicates are not satisfied on purpose (a regex's language is not enumerated). */
struct fuzz_req {
    struct px_request_view v;
    struct px_header headers[FUZZ_REQ_HEADERS];
    char path[FUZZ_REQ_PATH];
    char host[FUZZ_REQ_HOST];
    struct buf query; /* buf_init before the first use */
};

#define FUZZ_VARIANT_LONGER   0x01u /* path + "/x" */
#define FUZZ_VARIANT_CASE     0x02u /* path with ASCII letters' case flipped */
#define FUZZ_VARIANT_PORT     0x04u /* Host + ":8080" */
#define FUZZ_VARIANT_HOSTCASE 0x08u /* Host upper-cased */
#define FUZZ_VARIANT_NOHDR    0x10u /* last header dropped */
#define FUZZ_VARIANT_METHOD   0x20u /* another method */
#define FUZZ_VARIANT_NOHOST   0x40u /* no Host */
#define FUZZ_VARIANT_SHORTER  0x80u /* path one byte shorter */

/* Fills q (borrowing strings from rt) with a request that matches rt when variant is 0 and rt
 * has no regex predicate. */
void fuzz_req_for_route(struct fuzz_req *q, const struct route *rt, unsigned variant);

/* Checks a router against as many requests as budget allows: for each route, its own request
 * (which must match that route or an earlier one) and variants chosen by seed, each compared
 * with the linear scan. */
void fuzz_check_router(const struct px_router *r, const struct fuzz_ref *ref, uint64_t seed,
                       size_t budget);

/* Whether s (NUL-terminated) is valid UTF-8 (RFC 3629: no overlongs, surrogates or code
 * points past U+10FFFF), as json-c's JSON_TOKENER_VALIDATE_UTF8 requires. */
bool fuzz_is_utf8(const char *s);
/* Whether every string a route error of t carries is valid UTF-8. */
bool fuzz_errors_are_utf8(const struct route_table *t);

/* Aborts unless p (n bytes), normalised from in_len bytes with merge_slashes = merge, is what
 * target.h promises: it begins with '/', is no longer than what it came from, holds no dot
 * segment, no escape of an unreserved character, slash, backslash or NUL, no backslash, no
 * "//" when merging slashes, and normalising it again changes nothing. */
void fuzz_check_normalized(size_t in_len, const char *p, size_t n, bool merge);

/* The value of the hex digit c (either case), or -1. */
int fuzz_hex(char c);

/* json-c lookups written apart from the code under test: the string (borrowed) or object
 * member key of o, or NULL when o is NULL, has no such member, or it has another type. */
struct json_object;
const char *fuzz_jstr(const struct json_object *o, const char *key);
struct json_object *fuzz_jobj(const struct json_object *o, const char *key);
/* fuzz_jstr for a string a C string can hold exactly: one with a NUL byte gives NULL and sets
 * *cut (which is otherwise left alone). */
const char *fuzz_jcstr(const struct json_object *o, const char *key, bool *cut);

#endif
