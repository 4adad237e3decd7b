/* Regular expressions with RE2's syntax and semantics, behind a small C API (rx.cc wraps
 * Google's RE2, the engine Envoy's safe_regex and so Ambassador's `regex_type: safe` use).
 * RE2 matches in time linear in the input whatever the pattern, so a regex from an annotation
 * cannot stall a worker; constructs that would need backtracking (backreferences,
 * look-around) are refused when the pattern is compiled.
 *
 * A compiled struct rx is immutable and may be used by any number of threads at once. */
#ifndef LEGATE_RX_H
#define LEGATE_RX_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rx;

#define RX_ICASE 0x1u /* ASCII and Unicode case folding */

/* Compiles pattern (NUL-terminated, UTF-8). Returns 0 and *out (free with rx_free), or
 * -EINVAL with RE2's reason in err ("missing ): (a"). */
int rx_compile(const char *pattern, unsigned flags, struct rx **out, char *err, size_t errlen);
/* Safe on NULL. */
void rx_free(struct rx *re);
/* Whether the whole of s (n bytes) matches. */
bool rx_full_match(const struct rx *re, const char *s, size_t n);
/* Checks a substitution for rx_replace_all: \0-\9 must name groups the pattern has, and a
 * backslash may only precede a digit or another backslash. 0, or -EINVAL with a reason. */
int rx_check_substitution(const struct rx *re, const char *sub, char *err, size_t errlen);
/* Replaces every non-overlapping match of re in s (n bytes) with sub (checked), writing at
 * most outlen bytes to out (no NUL). Returns the length, or -ENOSPC when it would not fit.
 * Allocates internally (RE2 builds a std::string): meant for the rarer rewrite paths. */
long rx_replace_all(const struct rx *re, const char *sub, const char *s, size_t n, char *out,
                    size_t outlen);

#ifdef __cplusplus
}
#endif

#endif
