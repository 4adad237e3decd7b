/* Tests for controller/kube_split.c: a watch stream cut anywhere still yields whole events. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kube_internal.h"

#define MAX_LINES 16

struct lines {
    char *v[MAX_LINES];
    size_t n;
    int stop_after; /* return 7 from the callback after this many lines; 0: never */
};

static int on_line(void *arg, const char *line, size_t len)
{
    struct lines *l = arg;
    ck_assert_uint_lt(l->n, MAX_LINES);
    l->v[l->n] = strndup(line, len);
    l->n++;
    return l->stop_after > 0 && (int)l->n >= l->stop_after ? 7 : 0;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

static const char stream[] = "{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n"
                             "{\"type\":\"BOOKMARK\"}\n"
                             "{\"type\":\"MODIFIED\",\"object\":{\"b\":\"x\\ny\"}}\n";
static const char *const want[] = {
    "{\"type\":\"ADDED\",\"object\":{\"a\":1}}",
    "{\"type\":\"BOOKMARK\"}",
    "{\"type\":\"MODIFIED\",\"object\":{\"b\":\"x\\ny\"}}",
};

static void check_want(const struct lines *l)
{
    ck_assert_uint_eq(l->n, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_str_eq(l->v[i], want[i]);
}

START_TEST(split_every_two_cut_points_gives_the_same_events)
{
    size_t n = strlen(stream);
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            struct kube_split s;
            struct lines l = { 0 };
            kube_split_init(&s, 1024);
            ck_assert_int_eq(kube_split_feed(&s, stream, i, on_line, &l), 0);
            ck_assert_int_eq(kube_split_feed(&s, stream + i, j - i, on_line, &l), 0);
            ck_assert_int_eq(kube_split_feed(&s, stream + j, n - j, on_line, &l), 0);
            check_want(&l);
            ck_assert_uint_eq(kube_split_pending(&s), 0);
            lines_free(&l);
            kube_split_free(&s);
        }
    }
}
END_TEST

START_TEST(split_one_byte_at_a_time)
{
    struct kube_split s;
    struct lines l = { 0 };
    kube_split_init(&s, 1024);
    for (size_t i = 0; stream[i]; i++)
        ck_assert_int_eq(kube_split_feed(&s, stream + i, 1, on_line, &l), 0);
    check_want(&l);
    lines_free(&l);
    kube_split_free(&s);
}
END_TEST

START_TEST(split_holds_an_unfinished_line_until_its_newline)
{
    struct kube_split s;
    struct lines l = { 0 };
    kube_split_init(&s, 1024);
    ck_assert_int_eq(kube_split_feed(&s, "{\"a\":1}\n{\"b\"", 12, on_line, &l), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(kube_split_pending(&s), 4);
    ck_assert_int_eq(kube_split_feed(&s, ":2}\n", 4, on_line, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.v[1], "{\"b\":2}");
    lines_free(&l);
    kube_split_free(&s);
}
END_TEST

START_TEST(split_strips_crlf_and_skips_empty_lines)
{
    struct kube_split s;
    struct lines l = { 0 };
    kube_split_init(&s, 1024);
    const char *in = "\n{}\r\n\r\n\n[1]\n";
    ck_assert_int_eq(kube_split_feed(&s, in, strlen(in), on_line, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.v[0], "{}");
    ck_assert_str_eq(l.v[1], "[1]");
    lines_free(&l);
    kube_split_free(&s);
}
END_TEST

START_TEST(split_line_at_the_cap_passes_one_over_fails)
{
    char line[40];
    memset(line, 'x', 16);
    line[16] = '\n';
    struct kube_split s;
    struct lines l = { 0 };
    kube_split_init(&s, 16);
    /* Exactly the cap, whole in one feed and cut across two. */
    ck_assert_int_eq(kube_split_feed(&s, line, 17, on_line, &l), 0);
    ck_assert_int_eq(kube_split_feed(&s, line, 9, on_line, &l), 0);
    ck_assert_int_eq(kube_split_feed(&s, line + 9, 8, on_line, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_uint_eq(strlen(l.v[1]), 16);

    /* One byte over: in one feed, */
    memset(line, 'y', 17);
    line[17] = '\n';
    ck_assert_int_eq(kube_split_feed(&s, line, 18, on_line, &l), -E2BIG);
    /* across feeds (the tail alone passes the cap before any newline), */
    kube_split_reset(&s);
    ck_assert_int_eq(kube_split_feed(&s, line, 10, on_line, &l), 0);
    ck_assert_int_eq(kube_split_feed(&s, line + 10, 8, on_line, &l), -E2BIG);
    /* and without any newline at all: the buffer never grows past the cap. */
    kube_split_reset(&s);
    ck_assert_int_eq(kube_split_feed(&s, line, 17, on_line, &l), -E2BIG);
    ck_assert_uint_le(kube_split_pending(&s), 16);
    ck_assert_uint_eq(l.n, 2);
    lines_free(&l);
    kube_split_free(&s);
}
END_TEST

START_TEST(split_callback_can_stop_the_feed)
{
    struct kube_split s;
    struct lines l = { .stop_after = 2 };
    kube_split_init(&s, 1024);
    ck_assert_int_eq(kube_split_feed(&s, stream, strlen(stream), on_line, &l), 7);
    ck_assert_uint_eq(l.n, 2);
    lines_free(&l);
    kube_split_free(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kube_split");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, split_every_two_cut_points_gives_the_same_events);
    tcase_add_test(tc, split_one_byte_at_a_time);
    tcase_add_test(tc, split_holds_an_unfinished_line_until_its_newline);
    tcase_add_test(tc, split_strips_crlf_and_skips_empty_lines);
    tcase_add_test(tc, split_line_at_the_cap_passes_one_over_fails);
    tcase_add_test(tc, split_callback_can_stop_the_feed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
