/* Tests for controller/kube_split.c: a watch stream cut anywhere still yields whole events. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
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

/* A splitter with a cap and the lines it has handed out. */
struct split {
    struct kube_split s;
    struct lines l;
};

static void split_open(struct split *sp, size_t cap, int stop_after)
{
    kube_split_init(&sp->s, cap);
    sp->l = (struct lines){ .stop_after = stop_after };
}

static int split_feed(struct split *sp, const char *p, size_t n)
{
    return kube_split_feed(&sp->s, p, n, on_line, &sp->l);
}

static void split_close(struct split *sp)
{
    lines_free(&sp->l);
    kube_split_free(&sp->s);
}

/* Asserts that exactly the n lines of want were handed out, in order. */
static void check_lines(const struct lines *l, const char *const *want, size_t n)
{
    ck_assert_uint_eq(l->n, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(l->v[i], want[i]);
}

static const char stream[] = "{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n"
                             "{\"type\":\"BOOKMARK\"}\n"
                             "{\"type\":\"MODIFIED\",\"object\":{\"b\":\"x\\ny\"}}\n";
static const char *const want[] = {
    "{\"type\":\"ADDED\",\"object\":{\"a\":1}}",
    "{\"type\":\"BOOKMARK\"}",
    "{\"type\":\"MODIFIED\",\"object\":{\"b\":\"x\\ny\"}}",
};

START_TEST(split_every_two_cut_points_gives_the_same_events)
{
    size_t n = strlen(stream);
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            struct split sp;
            split_open(&sp, 1024, 0);
            ck_assert_int_eq(split_feed(&sp, stream, i), 0);
            ck_assert_int_eq(split_feed(&sp, stream + i, j - i), 0);
            ck_assert_int_eq(split_feed(&sp, stream + j, n - j), 0);
            check_lines(&sp.l, want, 3);
            ck_assert_uint_eq(kube_split_pending(&sp.s), 0);
            split_close(&sp);
        }
    }
}
END_TEST

START_TEST(split_one_byte_at_a_time)
{
    struct split sp;
    split_open(&sp, 1024, 0);
    for (size_t i = 0; stream[i]; i++)
        ck_assert_int_eq(split_feed(&sp, stream + i, 1), 0);
    check_lines(&sp.l, want, 3);
    split_close(&sp);
}
END_TEST

START_TEST(split_holds_an_unfinished_line_until_its_newline)
{
    struct split sp;
    split_open(&sp, 1024, 0);
    ck_assert_int_eq(split_feed(&sp, "{\"a\":1}\n{\"b\"", 12), 0);
    ck_assert_uint_eq(sp.l.n, 1);
    ck_assert_uint_eq(kube_split_pending(&sp.s), 4);
    ck_assert_int_eq(split_feed(&sp, ":2}\n", 4), 0);
    check_lines(&sp.l, (const char *const[]){ "{\"a\":1}", "{\"b\":2}" }, 2);
    split_close(&sp);
}
END_TEST

START_TEST(split_strips_crlf_and_skips_empty_lines)
{
    struct split sp;
    split_open(&sp, 1024, 0);
    const char *in = "\n{}\r\n\r\n\n[1]\n";
    ck_assert_int_eq(split_feed(&sp, in, strlen(in)), 0);
    check_lines(&sp.l, (const char *const[]){ "{}", "[1]" }, 2);
    split_close(&sp);
}
END_TEST

START_TEST(split_line_at_the_cap_passes_one_over_fails)
{
    char line[40];
    memset(line, 'x', 16);
    line[16] = '\n';
    struct split sp;
    split_open(&sp, 16, 0);
    /* Exactly the cap, whole in one feed and cut across two. */
    ck_assert_int_eq(split_feed(&sp, line, 17), 0);
    ck_assert_int_eq(split_feed(&sp, line, 9), 0);
    ck_assert_int_eq(split_feed(&sp, line + 9, 8), 0);
    ck_assert_uint_eq(sp.l.n, 2);
    ck_assert_uint_eq(strlen(sp.l.v[1]), 16);

    /* One byte over: in one feed, */
    memset(line, 'y', 17);
    line[17] = '\n';
    ck_assert_int_eq(split_feed(&sp, line, 18), -E2BIG);
    /* across feeds (the tail alone passes the cap before any newline), */
    kube_split_reset(&sp.s);
    ck_assert_int_eq(split_feed(&sp, line, 10), 0);
    ck_assert_int_eq(split_feed(&sp, line + 10, 8), -E2BIG);
    /* and without any newline at all: the buffer never grows past the cap. */
    kube_split_reset(&sp.s);
    ck_assert_int_eq(split_feed(&sp, line, 17), -E2BIG);
    ck_assert_uint_le(kube_split_pending(&sp.s), 16);
    ck_assert_uint_eq(sp.l.n, 2);
    split_close(&sp);
}
END_TEST

START_TEST(split_callback_can_stop_the_feed)
{
    struct split sp;
    split_open(&sp, 1024, 2);
    ck_assert_int_eq(split_feed(&sp, stream, strlen(stream)), 7);
    ck_assert_uint_eq(sp.l.n, 2);
    split_close(&sp);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        split_every_two_cut_points_gives_the_same_events,
        split_one_byte_at_a_time,
        split_holds_an_unfinished_line_until_its_newline,
        split_strips_crlf_and_skips_empty_lines,
        split_line_at_the_cap_passes_one_over_fails,
        split_callback_can_stop_the_feed,
        NULL,
    };
    return harness_main("kube_split", 0, NULL, NULL, tests);
}
