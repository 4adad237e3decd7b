/* Tests for common/buf.c, common/log.c and common/opts.c. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "log.h"
#include "opts.h"
#include "utf8.h"

START_TEST(buf_append_past_cap_fails_and_keeps_content)
{
    struct buf b;
    buf_init(&b, 8);
    ck_assert_int_eq(buf_append(&b, "abcdef", 6), 0);
    ck_assert_int_eq(buf_append(&b, "ghi", 3), -E2BIG);
    ck_assert_uint_eq(b.len, 6);
    ck_assert_str_eq(b.data, "abcdef");
    ck_assert_int_eq(buf_append(&b, "gh", 2), 0);
    ck_assert_str_eq(b.data, "abcdefgh");
    buf_consume(&b, 3);
    ck_assert_str_eq(b.data, "defgh");
    ck_assert_int_eq(buf_printf(&b, "%d", 123), 0);
    ck_assert_str_eq(b.data, "defgh123");
    ck_assert_int_eq(buf_printf(&b, "%d", 4), -E2BIG);
    buf_free(&b);
}
END_TEST

START_TEST(buf_printf_longer_than_scratch)
{
    struct buf b;
    buf_init(&b, 4096);
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(buf_printf(&b, "<%s>", big), 0);
    ck_assert_uint_eq(b.len, 1001);
    ck_assert_int_eq(b.data[0], '<');
    ck_assert_int_eq(b.data[1000], '>');
    buf_free(&b);
}
END_TEST

/* Runs log_emit with stderr redirected to a temp file and returns what was written. */
static char *capture_log(int format, void (*fn)(void))
{
    char path[] = "/tmp/legate-logtest-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    log_configure(LOG_LEVEL_INFO, format, "test");
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char out[4096];
    ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return out;
}

static void emit_sample(void)
{
    log_warn("invalid mapping", "ns=%s svc=%s line=%d error=%s", "default", "web", 4,
             "bad \"value\" here");
    log_debug("not shown", "k=%s", "v");
}

START_TEST(log_logfmt_quotes_values_and_filters_levels)
{
    const char *out = capture_log(LOG_FORMAT_LOGFMT, emit_sample);
    ck_assert_ptr_nonnull(strstr(out, "level=warn component=test msg=\"invalid mapping\""));
    ck_assert_ptr_nonnull(
        strstr(out, " ns=default svc=web line=4 error=\"bad \\\"value\\\" here\""));
    ck_assert_ptr_null(strstr(out, "not shown"));
    ck_assert_int_eq(out[strlen(out) - 1], '\n');
}
END_TEST

START_TEST(log_json_is_one_object_per_line)
{
    const char *out = capture_log(LOG_FORMAT_JSON, emit_sample);
    ck_assert_ptr_nonnull(strstr(out, "\"level\":\"warn\""));
    ck_assert_ptr_nonnull(strstr(out, "\"msg\":\"invalid mapping\""));
    ck_assert_ptr_nonnull(strstr(out, "\"line\":4"));
    ck_assert_ptr_nonnull(strstr(out, "\"error\":\"bad \\\"value\\\" here\""));
    ck_assert_int_eq(out[0], '{');
    ck_assert_ptr_nonnull(strstr(out, "}\n"));
    int lines = 0;
    for (const char *c = out; *c; c++)
        lines += *c == '\n';
    ck_assert_int_eq(lines, 1);
}
END_TEST

START_TEST(parse_hostport_forms)
{
    char host[64];
    uint16_t port;
    ck_assert_int_eq(parse_hostport("127.0.0.1:8080", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_uint_eq(port, 8080);
    ck_assert_int_eq(parse_hostport("[::1]:80", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(parse_hostport("nohost", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(parse_hostport(":80", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(parse_hostport("h:0", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(parse_hostport("h:65536", host, sizeof(host), &port), -EINVAL);
    ck_assert_int_eq(parse_hostport("h:80x", host, sizeof(host), &port), -EINVAL);
}
END_TEST

START_TEST(parse_uint_is_strict)
{
    uint64_t v;
    ck_assert_int_eq(parse_uint("42", 0, 100, &v), 0);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(parse_uint("-1", 0, 100, &v), -EINVAL);
    ck_assert_int_eq(parse_uint("101", 0, 100, &v), -EINVAL);
    ck_assert_int_eq(parse_uint("", 0, 100, &v), -EINVAL);
    ck_assert_int_eq(parse_uint(" 4", 0, 100, &v), -EINVAL);
}
END_TEST

START_TEST(utf8_scrub_replaces_cut_and_invalid_sequences)
{
    char cut[] = "ok \xe6\x97"; /* a character cut by truncation */
    char mid[] = "a\xe6\x97"
                 "b \xc3\xa9";                             /* cut in the middle, then a good one */
    char bad[] = "\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80"; /* overlong, surrogate, too big */
    utf8_scrub(cut);
    utf8_scrub(mid);
    utf8_scrub(bad);
    ck_assert_str_eq(cut, "ok ??");
    ck_assert_str_eq(mid, "a??"
                          "b \xc3\xa9");
    ck_assert_str_eq(bad, "?? ??? ????");
    ck_assert_uint_eq(utf8_valid_prefix("ab\xe6\x97\xa5\xe6", 6), 5);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        buf_append_past_cap_fails_and_keeps_content,
        buf_printf_longer_than_scratch,
        log_logfmt_quotes_values_and_filters_levels,
        log_json_is_one_object_per_line,
        parse_hostport_forms,
        parse_uint_is_strict,
        utf8_scrub_replaces_cut_and_invalid_sequences,
        NULL,
    };
    return harness_main("common", 0, NULL, NULL, tests);
}
