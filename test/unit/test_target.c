/* Tests for proxy/target.c: request-target forms, Host syntax, path normalisation. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "target.h"

static bool eq(const char *p, size_t n, const char *want)
{
    return p != NULL && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* ---- splitting --------------------------------------------------------------------------- */

START_TEST(target_origin_form_splits_path_and_query)
{
    struct px_target t;
    const char *why = NULL;
    const char *s = "/a/b?x=1&y";
    ck_assert_int_eq(px_target_split(s, strlen(s), false, &t, &why), 0);
    ck_assert(t.authority == NULL);
    ck_assert(eq(t.path, t.path_len, "/a/b"));
    ck_assert(eq(t.query, t.query_len, "x=1&y"));
    ck_assert(!t.asterisk);

    s = "/only";
    ck_assert_int_eq(px_target_split(s, strlen(s), false, &t, &why), 0);
    ck_assert(t.query == NULL);
    /* "//host/x" is a path, not an authority. */
    s = "//evil.example/x";
    ck_assert_int_eq(px_target_split(s, strlen(s), false, &t, &why), 0);
    ck_assert(t.authority == NULL);
    ck_assert(eq(t.path, t.path_len, "//evil.example/x"));
}
END_TEST

START_TEST(target_absolute_form_gives_authority_and_origin_path)
{
    struct px_target t;
    const char *why = NULL;
    const char *s = "http://Example.COM:8080/p/q?z";
    ck_assert_int_eq(px_target_split(s, strlen(s), false, &t, &why), 0);
    ck_assert(eq(t.authority, t.authority_len, "Example.COM:8080"));
    ck_assert(eq(t.path, t.path_len, "/p/q"));
    ck_assert(eq(t.query, t.query_len, "z"));

    s = "HTTPS://h";
    ck_assert_int_eq(px_target_split(s, strlen(s), false, &t, &why), 0);
    ck_assert(eq(t.authority, t.authority_len, "h"));
    ck_assert(eq(t.path, t.path_len, "/"));
    ck_assert(t.query == NULL);

    s = "http://h?q";
    ck_assert_int_eq(px_target_split(s, strlen(s), false, &t, &why), 0);
    ck_assert(eq(t.path, t.path_len, "/"));
    ck_assert(eq(t.query, t.query_len, "q"));

    s = "http://[::1]:80/x";
    ck_assert_int_eq(px_target_split(s, strlen(s), false, &t, &why), 0);
    ck_assert(eq(t.authority, t.authority_len, "[::1]:80"));
}
END_TEST

START_TEST(target_refusals)
{
    static const char *const bad[] = {
        "http://user:pw@h/x", /* userinfo */
        "http://@h/x",
        "ftp://h/x",   /* only http and https */
        "http:///x",   /* empty host */
        "http://:80/", /* empty host with a port */
        "http://a b/",
        "http://h:99999/",
        "foo",     /* relative */
        "h:80",    /* authority-form outside CONNECT */
        "/a\tb",   /* llhttp lets a tab through */
        "/a#frag", /* fragments are never sent */
        "/a?b#c",
        "/a\x01",
        "/a\x7f",
        "*x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct px_target t;
        const char *why = NULL;
        ck_assert_msg(px_target_split(bad[i], strlen(bad[i]), false, &t, &why) == -EINVAL,
                      "accepted %s", bad[i]);
        ck_assert(why != NULL && *why);
    }
}
END_TEST

START_TEST(target_asterisk_only_for_options)
{
    struct px_target t;
    const char *why = NULL;
    ck_assert_int_eq(px_target_split("*", 1, true, &t, &why), 0);
    ck_assert(t.asterisk);
    ck_assert_int_eq(px_target_split("*", 1, false, &t, &why), -EINVAL);
}
END_TEST

START_TEST(target_host_syntax)
{
    static const char *const good[] = { "",         "example.com", "example.com:8080",  "h:",
                                        "10.0.0.1", "[::1]",       "[2001:db8::1]:443", "a-b_c~d.e",
                                        "x%41y",    "a!$&'()*+,;=" };
    static const char *const bad[] = { "a b",     "a/b",  "u@h", "a\\b",  "h:80:80", "h:x",
                                       "h:65536", "[::1", "[]",  "[::g]", "x%4",     "x%zz",
                                       "h\tx",    "a?b",  "a#b", "[::1]x" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(px_host_is_valid(good[i], strlen(good[i])), "refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!px_host_is_valid(bad[i], strlen(bad[i])), "accepted %s", bad[i]);
}
END_TEST

/* ---- normalisation ----------------------------------------------------------------------- */

struct norm_case {
    const char *in;
    const char *out; /* NULL: refused */
    bool merge;
};

static const struct norm_case norm_cases[] = {
    { "/", "/", false },
    { "/a/b", "/a/b", false },
    { "/a/b/", "/a/b/", false },
    { "/a/./b", "/a/b", false },
    { "/a/.", "/a/", false },
    { "/./", "/", false },
    { "/.", "/", false },
    { "/a/../b", "/b", false },
    { "/a/..", "/", false },
    { "/a/b/../../c/", "/c/", false },
    { "/public/../admin/x", "/admin/x", false },
    { "/public/%2e%2e/admin/x", "/admin/x", false },
    { "/public/%2E%2E/admin/x", "/admin/x", false },
    { "/public/.%2e/admin/x", "/admin/x", false },
    { "/public/%2e./admin/x", "/admin/x", false },
    { "/public/%2e/x", "/public/x", false },
    { "/...", "/...", false },
    { "/a/.../b", "/a/.../b", false },
    { "/.a/..b/", "/.a/..b/", false },
    /* Unreserved escapes are decoded (any case); the others are kept as sent. */
    { "/%61dmin/", "/admin/", false },
    { "/%7Euser/%7e", "/~user/~", false },
    { "/%41%5a%30%2D%5F", "/AZ0-_", false },
    { "/caf%c3%A9", "/caf%c3%A9", false },
    { "/a%20b", "/a%20b", false },
    { "/a%25b", "/a%25b", false },
    { "/%252e%252e/x", "/%252e%252e/x", false },
    { "/a;x=1/b", "/a;x=1/b", false },
    /* Empty segments are kept unless merge_slashes; dot segments count them (RFC 3986). */
    { "//a", "//a", false },
    { "/a//b/", "/a//b/", false },
    { "/a//../b", "/a/b", false },
    { "//..", "/", false },
    { "//a", "/a", true },
    { "/a///b//", "/a/b/", true },
    { "//", "/", true },
    { "/a//../b", "/b", true },
    /* Refused. */
    { "/..", NULL, false },
    { "/../a", NULL, false },
    { "/a/../..", NULL, false },
    { "/a/../../b", NULL, false },
    { "/%2e%2e/a", NULL, false },
    { "/public/../../admin", NULL, false },
    { "/a%2fb", NULL, false },
    { "/a%2Fb", NULL, false },
    { "/a%5cb", NULL, false },
    { "/a%5Cb", NULL, false },
    { "/a\\b", NULL, false },
    { "/a%00b", NULL, false },
    { "/a%", NULL, false },
    { "/a%4", NULL, false },
    { "/a%zz", NULL, false },
    { "/a%4g", NULL, false },
    { "a/b", NULL, false },
};

START_TEST(target_normalize_table)
{
    const struct norm_case *c = &norm_cases[_i];
    size_t n = strlen(c->in);
    char *out = malloc(n + 1);
    const char *why = NULL;
    long len = px_path_normalize(c->in, n, c->merge, out, &why);
    if (c->out == NULL) {
        ck_assert_msg(len == -EINVAL, "%s: accepted as %.*s", c->in, (int)(len > 0 ? len : 0), out);
        ck_assert(why != NULL && *why);
    } else {
        ck_assert_msg(len > 0 && eq(out, (size_t)len, c->out), "%s (merge %d): got %.*s, want %s",
                      c->in, c->merge, (int)(len > 0 ? len : 0), out, c->out);
    }
    free(out);
}
END_TEST

START_TEST(target_normalize_is_idempotent_and_never_longer)
{
    for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
        const struct norm_case *c = &norm_cases[i];
        if (c->out == NULL)
            continue;
        size_t n = strlen(c->in);
        char a[256], b[256];
        const char *why = NULL;
        long l1 = px_path_normalize(c->in, n, c->merge, a, &why);
        ck_assert(l1 > 0 && (size_t)l1 <= n);
        long l2 = px_path_normalize(a, (size_t)l1, c->merge, b, &why);
        ck_assert_msg(l2 == l1 && memcmp(a, b, (size_t)l1) == 0, "not idempotent: %s", c->in);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("target");
    TCase *tc = tcase_create("target");
    tcase_add_test(tc, target_origin_form_splits_path_and_query);
    tcase_add_test(tc, target_absolute_form_gives_authority_and_origin_path);
    tcase_add_test(tc, target_refusals);
    tcase_add_test(tc, target_asterisk_only_for_options);
    tcase_add_test(tc, target_host_syntax);
    tcase_add_loop_test(tc, target_normalize_table, 0,
                        (int)(sizeof(norm_cases) / sizeof(norm_cases[0])));
    tcase_add_test(tc, target_normalize_is_idempotent_and_never_longer);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
