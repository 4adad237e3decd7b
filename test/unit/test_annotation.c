/* Tests for controller/annotation.c: every way a getambassador.io/config annotation can be
 * wrong, and what a valid one turns into. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotation.h"
#include "harness.h"
#include "log.h"
#include "xalloc.h"

static struct annotation_result res;

static void parse_id(const char *text, const char *id)
{
    struct annotation_opts o = { .ns = "ns1", .svc = "svc1", .ambassador_id = id };
    annotation_result_free(&res);
    annotation_parse(text, strlen(text), &o, &res);
}

static void parse(const char *text)
{
    parse_id(text, NULL);
}

static void teardown(void)
{
    annotation_result_free(&res);
}

/* Returns the only error (asserting there is exactly one). */
static const struct route_error *only_error(void)
{
    ck_assert_msg(res.nerrors == 1, "want 1 error, got %zu (first: %s)", res.nerrors,
                  res.nerrors ? res.errors[0].message : "-");
    return &res.errors[0];
}

static void assert_contains(const char *hay, const char *needle)
{
    ck_assert_msg(hay != NULL && strstr(hay, needle) != NULL, "\"%s\" does not contain \"%s\"",
                  hay ? hay : "(null)", needle);
}

#define HDR                "apiVersion: ambassador/v1\nkind: Mapping\n"
#define GOOD(name, prefix) HDR "name: " name "\nprefix: " prefix "\nservice: up\n"

START_TEST(annotation_valid_mapping_gets_defaults)
{
    parse(GOOD("m1", "/foo/"));
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.nmappings, 1);
    const struct mapping *m = &res.mappings[0];
    ck_assert_str_eq(m->route.ns, "ns1");
    ck_assert_str_eq(m->route.svc, "svc1");
    ck_assert_str_eq(m->route.mapping, "m1");
    ck_assert_str_eq(m->route.prefix, "/foo/");
    ck_assert_str_eq(m->route.rewrite, "/"); /* Ambassador's default */
    ck_assert_uint_eq(m->route.timeout_ms, 3000);
    ck_assert(m->route.case_sensitive);
    ck_assert(!m->route.prefix_exact);
    ck_assert_ptr_null(m->route.method);
    ck_assert_ptr_null(m->route.host);
    ck_assert_int_eq(m->route.precedence, 0);
    ck_assert_str_eq(m->scheme, "http");
    ck_assert_str_eq(m->upstream_host, "up");
    ck_assert_uint_eq(m->upstream_port, 80);
    ck_assert_int_eq(m->doc, 1);
}
END_TEST

START_TEST(annotation_every_supported_field)
{
    parse("apiVersion: getambassador.io/v2\nkind: Mapping\nname: all\nprefix: /a/\n"
          "service: http://Web.Prod:8080\nrewrite: /b/\nhost_rewrite: example.org\n"
          "method: post\nprecedence: -7\ntimeout_ms: 0\nhost: a.example\n"
          "headers:\n  X-Canary: \"1\"\n  x-debug: true\nprefix_exact: true\n"
          "case_sensitive: false\nambassador_id: [other, default]\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.nmappings, 1);
    const struct route *r = &res.mappings[0].route;
    ck_assert_str_eq(r->rewrite, "/b/");
    ck_assert_str_eq(r->host_rewrite, "example.org");
    ck_assert_str_eq(r->method, "POST"); /* upper-cased */
    ck_assert_int_eq(r->precedence, -7);
    ck_assert_uint_eq(r->timeout_ms, 0);
    ck_assert_str_eq(r->host, "a.example");
    ck_assert(r->prefix_exact);
    ck_assert(!r->case_sensitive);
    ck_assert_uint_eq(r->nheaders, 2);
    ck_assert_str_eq(r->headers[0].name, "x-canary"); /* lower-cased */
    ck_assert_str_eq(r->headers[0].value, "1");
    ck_assert_str_eq(r->headers[1].name, "x-debug");
    ck_assert_ptr_null(r->headers[1].value); /* true: presence */
    ck_assert_str_eq(res.mappings[0].upstream_host, "web.prod");
    ck_assert_uint_eq(res.mappings[0].upstream_port, 8080);
}
END_TEST

START_TEST(annotation_empty_rewrite_means_no_rewrite)
{
    parse(GOOD("m1", "/foo/") "rewrite: \"\"\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_ptr_null(res.mappings[0].route.rewrite);
}
END_TEST

START_TEST(annotation_syntax_error_has_line_and_spares_other_documents)
{
    parse("---\n" GOOD("m1", "/a/") /* lines 2-6 */
          "---\n"                   /* line 7 */
          HDR "name: m2\n"          /* lines 8-10 */
          "prefix: [unclosed\n"     /* line 11 */
          "---\n" GOOD("m3", "/c/"));
    const struct route_error *e = only_error();
    assert_contains(e->message, "YAML syntax error");
    assert_contains(e->message, "still read");
    ck_assert_int_ge(e->line, 11);
    ck_assert_int_le(e->line, 12);
    ck_assert_str_eq(e->mapping, "<document 2>");
    ck_assert_str_eq(e->ns, "ns1");
    ck_assert_str_eq(e->svc, "svc1");
    ck_assert_uint_eq(res.nmappings, 2);
    ck_assert_str_eq(res.mappings[0].route.mapping, "m1");
    ck_assert_str_eq(res.mappings[1].route.mapping, "m3");
    ck_assert_int_eq(res.mappings[1].doc, 3);
}
END_TEST

/* libyaml 0.2.5's document loader aborts on this input; the event-based reader must not. */
START_TEST(annotation_syntax_error_in_later_document_does_not_abort)
{
    parse(GOOD("m1", "/a/") "...\nb: c: d\n");
    ck_assert_uint_eq(res.nmappings, 1);
    const struct route_error *e = only_error();
    assert_contains(e->message, "YAML syntax error");
    ck_assert_int_eq(e->line, 7);
}
END_TEST

/* The error sits on the broken document's own "---" line: reading resumes at the next one
 * (and does not loop on the same line). */
START_TEST(annotation_syntax_error_on_a_marker_line)
{
    parse(GOOD("m1", "/a/") "--- a: b: c\n---\n" GOOD("m3", "/c/"));
    const struct route_error *e = only_error();
    ck_assert_int_eq(e->line, 6);
    ck_assert_str_eq(e->mapping, "<document 2>");
    ck_assert_uint_eq(res.nmappings, 2);
    ck_assert_str_eq(res.mappings[1].route.mapping, "m3");
    ck_assert_int_eq(res.mappings[1].doc, 3);
    ck_assert_int_eq(res.mappings[1].line, 8);
}
END_TEST

START_TEST(annotation_empty_document_hides_nothing)
{
    parse(GOOD("m1", "/a/") "---\n---\n" GOOD("m3", "/c/"));
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.nmappings, 2);
    ck_assert_str_eq(res.mappings[1].route.mapping, "m3");
    ck_assert_int_eq(res.mappings[1].doc, 3);
    ck_assert_int_eq(res.mappings[1].line, 8);
}
END_TEST

START_TEST(annotation_non_map_document)
{
    parse("- a\n- b\n---\n" GOOD("m2", "/b/"));
    const struct route_error *e = only_error();
    assert_contains(e->message, "expected a map");
    assert_contains(e->message, "a list");
    ck_assert_str_eq(e->mapping, "<document 1>");
    ck_assert_int_eq(e->line, 1);
    ck_assert_uint_eq(res.nmappings, 1);
}
END_TEST

/* Documents with exactly one error, one row per kind of mistake: the error names the field,
 * the line and the Mapping (as far as the row says), and the Mapping is dropped. */
struct error_case {
    const char *what; /* the behaviour, for failure messages */
    const char *text;
    const char *field;    /* NULL: not checked */
    const char *message;  /* the whole message; NULL: not checked */
    const char *contains; /* a part of the message; NULL: not checked */
    int line;             /* 0: not checked */
    const char *mapping;  /* NULL: not checked */
};

/* Parses c->text and asserts what the row says. */
static void check_error_case(const struct error_case *c)
{
    parse(c->text);
    ck_assert_msg(res.nerrors == 1, "%s: %zu errors (first: %s)", c->what, res.nerrors,
                  res.nerrors ? res.errors[0].message : "-");
    const struct route_error *e = &res.errors[0];
    ck_assert_msg(c->field == NULL || (e->field != NULL && strcmp(e->field, c->field) == 0),
                  "%s: field %s, want %s", c->what, e->field ? e->field : "(null)", c->field);
    ck_assert_msg(c->message == NULL || strcmp(e->message, c->message) == 0,
                  "%s: message\n  got:  %s\n  want: %s", c->what, e->message, c->message);
    ck_assert_msg(c->contains == NULL || strstr(e->message, c->contains) != NULL,
                  "%s: \"%s\" does not contain \"%s\"", c->what, e->message, c->contains);
    ck_assert_msg(c->line == 0 || e->line == c->line, "%s: line %d, want %d", c->what, e->line,
                  c->line);
    ck_assert_msg(c->mapping == NULL || strcmp(e->mapping, c->mapping) == 0,
                  "%s: mapping %s, want %s", c->what, e->mapping, c->mapping);
    ck_assert_msg(res.nmappings == 0, "%s: the Mapping was kept", c->what); /* dropped whole */
}

START_TEST(annotation_one_error_per_mistake)
{
    static const struct error_case cases[] = {
        { "missing apiVersion", "kind: Mapping\nname: m1\nprefix: /a/\nservice: up\n", "apiVersion",
          "missing required field \"apiVersion\"", NULL, 0, "m1" },
        { "missing kind", "apiVersion: ambassador/v1\nname: m1\nprefix: /a/\nservice: up\n", "kind",
          NULL, "missing required field \"kind\"", 0, NULL },
        { "missing name", HDR "prefix: /a/\nservice: up\n", "name", NULL,
          "missing required field \"name\"", 0, "<document 1>" },
        { "bad apiVersion",
          "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: m1\nprefix: /a/\n"
          "service: up\n",
          "apiVersion", NULL, "unsupported \"getambassador.io/v3alpha1\"", 1, NULL },
        { "unknown kind, with a suggestion", "apiVersion: ambassador/v1\nkind: Maping\nname: m1\n",
          "kind", NULL, "did you mean \"Mapping\"?", 0, NULL },
        { "unknown key, with a suggestion", GOOD("m1", "/a/") "prefx_exact: true\n", "prefx_exact",
          "unknown field \"prefx_exact\" (did you mean \"prefix_exact\"?)", NULL, 6, NULL },
        { "unknown key, without a suggestion", GOOD("m1", "/a/") "frobnicate: 1\n", NULL,
          "unknown field \"frobnicate\"", NULL, 0, NULL },
        { "a string for an integer", GOOD("m1", "/a/") "precedence: high\n", "precedence",
          "precedence: expected an integer, got string \"high\"", NULL, 6, "m1" },
        { "a quoted number is a string", GOOD("m1", "/a/") "timeout_ms: \"100\"\n", NULL,
          "timeout_ms: expected an integer, got string \"100\"", NULL, 0, NULL },
        { "a list for a string", GOOD("m1", "/a/") "host:\n  - a.com\n  - b.com\n", "host",
          "host: expected a string, got a list", NULL, 0, NULL },
        { "a map for a boolean", GOOD("m1", "/a/") "case_sensitive: {a: 1}\n", "case_sensitive",
          "case_sensitive: expected a boolean, got a map", NULL, 0, NULL },
        { "a negative timeout", GOOD("m1", "/a/") "timeout_ms: -5\n", NULL, NULL,
          "timeout_ms: expected 0 to", 0, NULL },
        { "missing prefix", HDR "name: m1\nservice: up\n", "prefix",
          "missing required field \"prefix\"", NULL, 1, NULL },
        { "missing service", HDR "name: m1\nprefix: /a/\n", "service",
          "missing required field \"service\"", NULL, 0, NULL },
        { "a prefix without a leading slash", HDR "name: m1\nprefix: foo\nservice: up\n", NULL,
          NULL, "must start with \"/\"", 0, NULL },
        { "a service with a path", HDR "name: m1\nprefix: /a/\nservice: http://up:8080/api\n",
          "service", NULL, "has a path", 5, NULL },
        { "a field not supported yet", GOOD("m1", "/a/") "bypass_auth: true\n", "bypass_auth",
          "field bypass_auth is not supported yet", NULL, 0, NULL },
        { "a duplicate key", GOOD("m1", "/a/") "prefix: /b/\n", NULL,
          "duplicate key \"prefix\" (first on line 4)", NULL, 6, NULL },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        check_error_case(&cases[i]);
}
END_TEST

START_TEST(annotation_unsupported_kind_is_a_warning)
{
    parse("apiVersion: ambassador/v1\nkind: TLSContext\nname: ctx\nhosts: [a]\n---\n" GOOD(
        "m2", "/b/") "---\napiVersion: ambassador/v0\nkind: Module\nname: tls\nconfig: {}\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.nwarnings, 2);
    ck_assert_str_eq(res.warnings[0].message, "kind TLSContext is not supported yet");
    ck_assert_str_eq(res.warnings[0].mapping, "ctx");
    ck_assert_int_eq(res.warnings[0].line, 2);
    ck_assert_str_eq(res.warnings[1].message, "Module tls is not supported yet");
    ck_assert_uint_eq(res.nmappings, 1);
    ck_assert_ptr_null(res.module);
}
END_TEST

START_TEST(annotation_service_https_originates_tls)
{
    /* https:// and tls: true both originate TLS; the default port becomes 443. */
    parse(HDR "name: m1\nprefix: /a/\nservice: https://Up.ns\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_str_eq(res.mappings[0].scheme, "https");
    ck_assert_str_eq(res.mappings[0].upstream_host, "up.ns");
    ck_assert_uint_eq(res.mappings[0].upstream_port, 443);
    parse(HDR "name: m1\nprefix: /a/\ntls: true\nservice: up:8443\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_str_eq(res.mappings[0].scheme, "https");
    ck_assert_uint_eq(res.mappings[0].upstream_port, 8443);
    parse(HDR "name: m1\nprefix: /a/\nservice: up\n");
    ck_assert_str_eq(res.mappings[0].scheme, "http");
    ck_assert_uint_eq(res.mappings[0].upstream_port, 80);
    parse(HDR "name: m1\nprefix: /a/\nservice: up\ntls: upstream-ctx\n");
    ck_assert_str_eq(only_error()->message,
                     "tls: TLSContext \"upstream-ctx\" (client certificates) is not supported "
                     "yet; use tls: true or an https:// service");
}
END_TEST

START_TEST(annotation_service_bad_port)
{
    static const char *const bad[] = { "up:http", "up:0", "up:70000", "up:", "up:80:81" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char text[256];
        snprintf(text, sizeof(text), HDR "name: m1\nprefix: /a/\nservice: \"%s\"\n", bad[i]);
        check_error_case(
            &(struct error_case){ .what = bad[i], .text = text, .contains = "bad port" });
    }
}
END_TEST

START_TEST(annotation_service_forms)
{
    parse(HDR "name: m1\nprefix: /a/\nservice: \"[::1]:9000\"\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_str_eq(res.mappings[0].upstream_host, "::1");
    ck_assert_uint_eq(res.mappings[0].upstream_port, 9000);
    parse(HDR "name: m1\nprefix: /a/\nservice: ftp://up\n");
    assert_contains(only_error()->message, "unsupported scheme \"ftp\"");
    parse(HDR "name: m1\nprefix: /a/\nservice: \"user@up\"\n");
    assert_contains(only_error()->message, "bad host name");
}
END_TEST

START_TEST(annotation_method_upper_cased_and_checked)
{
    parse(GOOD("m1", "/a/") "method: get\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_str_eq(res.mappings[0].route.method, "GET");
    parse(GOOD("m1", "/a/") "method: \"GE T\"\n");
    assert_contains(only_error()->message, "is not an HTTP method");
}
END_TEST

START_TEST(annotation_ambassador_id_string_list_mismatch)
{
    /* Absent: only for the default id. */
    parse_id(GOOD("m1", "/a/"), "blue");
    ck_assert_uint_eq(res.nmappings, 0);
    ck_assert_uint_eq(res.nignored, 1);
    ck_assert_uint_eq(res.nerrors, 0);
    /* String. */
    parse_id(GOOD("m1", "/a/") "ambassador_id: blue\n", "blue");
    ck_assert_uint_eq(res.nmappings, 1);
    /* List. */
    parse_id(GOOD("m1", "/a/") "ambassador_id: [green, blue]\n", "blue");
    ck_assert_uint_eq(res.nmappings, 1);
    /* Mismatch: ignored quietly, even when otherwise invalid. */
    parse_id(GOOD("m1", "/a/") "ambassador_id: [green]\nbogus: 1\n", "blue");
    ck_assert_uint_eq(res.nmappings, 0);
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.nignored, 1);
    /* Wrong type. */
    parse(GOOD("m1", "/a/") "ambassador_id: {a: b}\n");
    ck_assert_str_eq(only_error()->field, "ambassador_id");
}
END_TEST

START_TEST(annotation_header_value_true_and_false)
{
    parse(GOOD("m1", "/a/") "headers:\n  x-present: true\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_ptr_null(res.mappings[0].route.headers[0].value);
    parse(GOOD("m1", "/a/") "headers:\n  x-present: false\n");
    const struct route_error *e = only_error();
    ck_assert_str_eq(e->field, "headers.x-present");
    ck_assert_int_eq(e->line, 7);
    parse(GOOD("m1", "/a/") "headers:\n  X-A: 1\n  x-a: 2\n");
    assert_contains(only_error()->message, "listed twice");
    parse(GOOD("m1", "/a/") "headers: [x]\n");
    assert_contains(only_error()->message, "expected a map");
}
END_TEST

START_TEST(annotation_reports_every_error_of_a_document)
{
    parse(HDR "name: m1\nprecedence: x\nweight: 101\n");
    /* precedence, weight, missing prefix, missing service */
    ck_assert_uint_eq(res.nerrors, 4);
    for (size_t i = 0; i < res.nerrors; i++)
        ck_assert_str_eq(res.errors[i].mapping, "m1");
}
END_TEST

START_TEST(annotation_oversized_is_refused)
{
    size_t n = ANNOTATION_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, '#', n);
    big[n] = '\0';
    parse(big);
    free(big);
    assert_contains(only_error()->message, "over the");
}
END_TEST

/* ---- Ambassador compatibility: every match and rewrite field ---- */

START_TEST(annotation_every_compat_field)
{
    parse("apiVersion: getambassador.io/v2\nkind: Mapping\nname: all\n"
          "prefix: \"/api/v[0-9]+/.*\"\nprefix_regex: true\nservice: https://api.prod\n"
          "method: \"GET|HEAD\"\nmethod_regex: true\n"
          "host: \"[a-z]+\\\\.example\\\\.com\"\nhost_regex: true\n"
          "headers:\n  x-a: \"1\"\nregex_headers:\n  X-Version: \"v[0-9]\"\n"
          "query_parameters:\n  debug: true\n  Page: \"2\"\n"
          "regex_query_parameters:\n  id: \"[0-9]+\"\n"
          "regex_rewrite:\n  pattern: \"/api/(.*)\"\n  substitution: \"/\\\\1\"\n"
          "auto_host_rewrite: true\n"
          "add_request_headers:\n  x-plain: one\n  x-obj: {value: two, append: false}\n"
          "  x-pct: \"100%%\"\n"
          "add_response_headers:\n  x-r: r\n"
          "remove_request_headers: X-Secret\n"
          "remove_response_headers: [server, x-powered-by]\n"
          "envoy_override: {foo: bar}\n");
    ck_assert_msg(res.nerrors == 0, "%s", res.nerrors ? res.errors[0].message : "");
    ck_assert_uint_eq(res.nmappings, 1);
    const struct mapping *m = &res.mappings[0];
    const struct route *r = &m->route;
    ck_assert(r->prefix_regex && r->method_regex && r->host_regex);
    ck_assert_str_eq(r->method, "GET|HEAD"); /* a regex is not upper-cased */
    ck_assert_uint_eq(r->nheaders, 2);
    ck_assert_str_eq(r->headers[1].name, "x-version");
    ck_assert(r->headers[1].regex && !r->headers[0].regex);
    ck_assert_uint_eq(r->nquery, 3);
    ck_assert_str_eq(r->query[0].name, "debug");
    ck_assert_ptr_null(r->query[0].value);
    ck_assert_str_eq(r->query[1].name, "Page"); /* parameter names keep their case */
    ck_assert(r->query[2].regex);
    ck_assert_str_eq(r->regex_rewrite.pattern, "/api/(.*)");
    ck_assert_str_eq(r->regex_rewrite.substitution, "/\\1");
    ck_assert_str_eq(r->host_rewrite, "api.prod"); /* auto_host_rewrite: the service's host */
    ck_assert_str_eq(m->scheme, "https");
    ck_assert_uint_eq(m->upstream_port, 443);
    ck_assert_uint_eq(r->nadd_request_headers, 3);
    ck_assert(r->add_request_headers[0].append);
    ck_assert_str_eq(r->add_request_headers[1].value, "two");
    ck_assert(!r->add_request_headers[1].append);
    ck_assert_str_eq(r->add_request_headers[2].value, "100%"); /* %% is a literal % */
    ck_assert_uint_eq(r->nremove_request_headers, 1);
    ck_assert_str_eq(r->remove_request_headers[0], "x-secret");
    ck_assert_uint_eq(r->nremove_response_headers, 2);
    /* envoy_override: accepted, reported as ignored. */
    ck_assert_uint_eq(res.nwarnings, 1);
    ck_assert_str_eq(res.warnings[0].field, "envoy_override");
    ck_assert_str_eq(res.warnings[0].message,
                     "envoy_override is ignored: Legate has no Envoy to pass it to");
}
END_TEST

START_TEST(annotation_redirect_fields)
{
    parse(GOOD("r1", "/old/") "host_redirect: true\nprefix_redirect: /new/\n"
                              "redirect_response_code: 308\n");
    ck_assert_uint_eq(res.nerrors, 0);
    const struct route *r = &res.mappings[0].route;
    ck_assert_str_eq(r->host_redirect, "up"); /* the service's host, no port unless written */
    ck_assert_ptr_null(r->redirect_scheme);
    ck_assert_str_eq(r->prefix_redirect, "/new/");
    ck_assert_uint_eq(r->redirect_code, 308);
    parse(HDR "name: r2\nprefix: /a/\nservice: https://[::1]:8443\nhost_redirect: true\n");
    ck_assert_str_eq(res.mappings[0].route.host_redirect, "[::1]:8443");
    ck_assert_str_eq(res.mappings[0].route.redirect_scheme, "https");
    parse(GOOD("r3", "/a/") "host_redirect: true\nregex_redirect:\n  pattern: /a/(.*)\n"
                            "  substitution: /b/\\1\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.mappings[0].route.redirect_code, 0); /* 301 when absent */
}
END_TEST

/* One case per kind of mistake in the new fields, with the exact text an author sees. */
START_TEST(annotation_compat_errors_exact_text)
{
    static const struct {
        const char *extra, *field, *message;
    } cases[] = {
        { "prefix_regex: true\nprefix: \"/a/(\"\n", "prefix",
          "prefix: invalid regex \"/a/(\": missing ): /a/(" },
        { "host: \"a(\"\nhost_regex: true\n", "host", "host: invalid regex \"a(\": missing ): a(" },
        { "method: \"(?<=G)ET\"\nmethod_regex: true\n", "method",
          "method: invalid regex \"(?<=G)ET\": invalid perl operator: (?<" },
        { "regex_headers:\n  x-v: \"[\"\n", "regex_headers.x-v",
          "regex_headers.x-v: invalid regex \"[\": missing ]: [" },
        { "regex_headers:\n  x-v: true\n", "regex_headers.x-v",
          "regex_headers.x-v: expected a regex string, got boolean true" },
        { "query_parameters:\n  a: \"1\"\n  a: \"2\"\n", "query_parameters.a",
          "query_parameters.a: parameter listed twice" },
        { "query_parameters: [a]\n", "query_parameters",
          "query_parameters: expected a map of parameter names to values, got a list" },
        { "regex_rewrite:\n  pattern: \"/(a)\"\n  substitution: \"/\\\\2\"\n", "regex_rewrite",
          "regex_rewrite.substitution: \"/\\2\": Rewrite schema requests 2 matches, but the "
          "regexp only has 1 parenthesized subexpressions." },
        { "regex_rewrite: /a/\n", "regex_rewrite",
          "regex_rewrite: expected {pattern: regex, substitution: string}, got string \"/a/\"" },
        { "path_redirect: /x\n", "path_redirect",
          "path_redirect: has no effect without host_redirect: true (Ambassador ignored it; "
          "Legate refuses the Mapping rather than proxy what was meant to redirect)" },
        { "host_redirect: true\npath_redirect: /x\nprefix_redirect: /y/\n", "prefix_redirect",
          "prefix_redirect: only one of path_redirect and prefix_redirect may be set" },
        { "host_redirect: true\nredirect_response_code: 304\n", "redirect_response_code",
          "redirect_response_code: 304 is not one of 301, 302, 303, 307, 308" },
        { "host_redirect: true\npath_redirect: moved\n", "path_redirect",
          "path_redirect: \"moved\" must be a path starting with \"/\"" },
        { "add_request_headers:\n  x-a: \"%DOWNSTREAM_REMOTE_ADDRESS%\"\n",
          "add_request_headers.x-a",
          "add_request_headers.x-a: %VARIABLE% substitution is not supported yet (write %% for a "
          "literal %)" },
        { "add_request_headers:\n  Host: other\n", "add_request_headers.Host",
          "add_request_headers.Host: the proxy sets this header itself; it cannot be added" },
        { "add_response_headers:\n  x-a: {value: v, append: maybe}\n", "add_response_headers.x-a",
          "add_response_headers.x-a: expected a boolean for append, got string \"maybe\"" },
        { "add_response_headers:\n  x-a: {valu: v}\n", "add_response_headers.x-a",
          "add_response_headers.x-a: expected {value: string, append: boolean}" },
        { "add_request_headers:\n  \"bad name\": v\n", "add_request_headers",
          "add_request_headers: string \"bad name\" is not a valid header name" },
        { "remove_request_headers: [x-a, content-length]\n", "remove_request_headers",
          "remove_request_headers: \"content-length\" is handled by the proxy itself; it cannot "
          "be removed" },
        { "remove_response_headers: {a: b}\n", "remove_response_headers",
          "remove_response_headers: expected a header name or a list of them, got a map" },
        { "bypass_auth: true\n", "bypass_auth", "field bypass_auth is not supported yet" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char text[1024];
        bool own_prefix = strstr(cases[i].extra, "\nprefix: ") != NULL;
        snprintf(text, sizeof(text), HDR "name: m1\nservice: up\n%s%s",
                 own_prefix ? "" : "prefix: /a/\n", cases[i].extra);
        check_error_case(&(struct error_case){ .what = cases[i].extra,
                                               .text = text,
                                               .field = cases[i].field,
                                               .message = cases[i].message });
        ck_assert_int_ge(res.errors[0].line, 5);
    }
}
END_TEST

/* ---- the ambassador Module ---- */

#define MODULE_HDR "apiVersion: getambassador.io/v2\nkind: Module\nname: ambassador\nconfig:\n"

START_TEST(annotation_module_settings)
{
    parse(MODULE_HDR "  use_remote_address: false\n  xff_num_trusted_hops: 2\n"
                     "  x_forwarded_proto_redirect: true\n  merge_slashes: true\n"
                     "  ip_allow:\n  - peer: 127.0.0.1\n  - remote: 10.0.0.0/8\n"
                     "  server_name: edge\n  regex_type: safe\n"
                     "  add_request_headers:\n    x-edge: \"1\"\n"
                     "  cluster_request_timeout_ms: 1500\n"
                     "---\n" GOOD("m1", "/a/"));
    ck_assert_msg(res.nerrors == 0, "%s", res.nerrors ? res.errors[0].message : "");
    ck_assert_uint_eq(res.nmappings, 1);
    ck_assert_ptr_nonnull(res.module);
    const struct route_settings *st = &res.module->settings;
    ck_assert(!st->use_remote_address);
    ck_assert_uint_eq(st->xff_num_trusted_hops, 2);
    ck_assert(st->x_forwarded_proto_redirect && st->merge_slashes);
    ck_assert_uint_eq(st->nip_allow, 2);
    ck_assert_str_eq(st->ip_allow[0].cidr, "127.0.0.1/32");
    ck_assert(!st->ip_allow[0].remote);
    ck_assert_str_eq(st->ip_allow[1].cidr, "10.0.0.0/8");
    ck_assert(st->ip_allow[1].remote);
    ck_assert_str_eq(st->server_name, "edge");
    ck_assert_uint_eq(res.module->nadd_request_headers, 1);
    ck_assert(res.module->timeout_set);
    ck_assert_uint_eq(res.module->timeout_ms, 1500);
    ck_assert_int_eq(res.module->name_line, 3);
    /* An empty Module keeps Ambassador's defaults. */
    parse("apiVersion: ambassador/v0\nkind: Module\nname: ambassador\nconfig: {}\n");
    ck_assert_ptr_nonnull(res.module);
    ck_assert(res.module->settings.use_remote_address);
    ck_assert(!res.module->settings.merge_slashes);
}
END_TEST

START_TEST(annotation_module_errors_exact_text)
{
    static const struct {
        const char *config, *field, *message;
    } cases[] = {
        { "  merge_slash: true\n", "merge_slash",
          "unknown Module key \"merge_slash\" (did you mean \"merge_slashes\"?)" },
        { "  keepalive: {}\n", "keepalive", "Module key keepalive is not supported yet" },
        { "  xff_num_trusted_hops: many\n", "xff_num_trusted_hops",
          "xff_num_trusted_hops: expected an integer, got string \"many\"" },
        { "  xff_num_trusted_hops: 100\n", "xff_num_trusted_hops",
          "xff_num_trusted_hops: expected 0 to 64, got 100" },
        { "  ip_allow:\n  - peer: 10.0.0.1/8\n", "ip_allow",
          "ip_allow: string \"10.0.0.1/8\" is not an address block (\"10.0.0.0/8\", "
          "\"2001:db8::/32\", or an address; host bits must be zero)" },
        { "  ip_deny:\n  - host: 10.0.0.0/8\n", "ip_deny",
          "ip_deny: expected {peer: CIDR} or {remote: CIDR}, got a map" },
        { "  ip_allow:\n  - peer: 127.0.0.1\n  ip_deny:\n  - peer: 10.0.0.0/8\n", "ip_deny",
          "ip_allow and ip_deny cannot both be set (Ambassador allows only one)" },
        { "  regex_type: fancy\n", "regex_type",
          "regex_type: expected safe or unsafe, got \"fancy\"" },
        { "  use_remote_address: sometimes\n", "use_remote_address",
          "use_remote_address: expected a boolean, got string \"sometimes\"" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char text[1024];
        snprintf(text, sizeof(text), MODULE_HDR "%s", cases[i].config);
        check_error_case(&(struct error_case){ .what = cases[i].config,
                                               .text = text,
                                               .field = cases[i].field,
                                               .message = cases[i].message,
                                               .mapping = "ambassador" });
        ck_assert_ptr_null(res.module); /* a broken Module is not used at all */
    }
    /* Top-level keys of a Module are checked too. */
    parse("apiVersion: ambassador/v1\nkind: Module\nname: ambassador\nconfg: {}\n");
    ck_assert_str_eq(only_error()->message,
                     "unknown Module key \"confg\" (did you mean \"config\"?)");
    /* Two in one annotation: the first is used. */
    parse(MODULE_HDR "  merge_slashes: true\n---\n" MODULE_HDR "  merge_slashes: false\n");
    ck_assert_str_eq(only_error()->message,
                     "a second ambassador Module in this annotation; the first (line 3) is used");
    ck_assert(res.module->settings.merge_slashes);
    /* regex_type: unsafe is read as safe, with a warning. */
    parse(MODULE_HDR "  regex_type: unsafe\n");
    ck_assert_uint_eq(res.nerrors, 0);
    ck_assert_uint_eq(res.nwarnings, 1);
    assert_contains(res.warnings[0].message, "unsafe is treated as safe");
}
END_TEST

START_TEST(annotation_edit_distance_counts_transpositions)
{
    ck_assert_uint_eq(annotation_edit_distance("prefix", "prefix"), 0);
    ck_assert_uint_eq(annotation_edit_distance("prefxi", "prefix"), 1);
    ck_assert_uint_eq(annotation_edit_distance("prfx", "prefix"), 2);
    ck_assert_uint_eq(annotation_edit_distance("", "abc"), 3);
}
END_TEST

int main(void)
{
    log_configure(LOG_LEVEL_ERROR, LOG_FORMAT_LOGFMT, "test");
    const TTest *const tests[] = {
        annotation_valid_mapping_gets_defaults,
        annotation_every_supported_field,
        annotation_empty_rewrite_means_no_rewrite,
        annotation_syntax_error_has_line_and_spares_other_documents,
        annotation_syntax_error_in_later_document_does_not_abort,
        annotation_syntax_error_on_a_marker_line,
        annotation_empty_document_hides_nothing,
        annotation_non_map_document,
        annotation_unsupported_kind_is_a_warning,
        annotation_one_error_per_mistake,
        annotation_service_https_originates_tls,
        annotation_service_bad_port,
        annotation_service_forms,
        annotation_method_upper_cased_and_checked,
        annotation_ambassador_id_string_list_mismatch,
        annotation_header_value_true_and_false,
        annotation_reports_every_error_of_a_document,
        annotation_oversized_is_refused,
        annotation_edit_distance_counts_transpositions,
        annotation_every_compat_field,
        annotation_redirect_fields,
        annotation_compat_errors_exact_text,
        annotation_module_settings,
        annotation_module_errors_exact_text,
        NULL,
    };
    return harness_main("annotation", 0, NULL, teardown, tests);
}
