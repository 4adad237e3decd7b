/* Tests for common/frame.c: the control protocol's length-prefixed frames. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "harness.h"

START_TEST(frame_encode_is_big_endian_length_then_payload)
{
    struct buf out;
    buf_init(&out, 1024);
    ck_assert_int_eq(frame_encode(&out, "{\"a\":1}", 7), 0);
    ck_assert_uint_eq(out.len, 11);
    ck_assert_int_eq(memcmp(out.data, "\0\0\0\x07{\"a\":1}", 11), 0);

    char big[300];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(frame_encode(&out, big, sizeof(big)), 0);
    const unsigned char *h = (const unsigned char *)out.data + 11;
    ck_assert_uint_eq(h[0], 0);
    ck_assert_uint_eq(h[1], 0);
    ck_assert_uint_eq(h[2], 1);
    ck_assert_uint_eq(h[3], 300 - 256);
    ck_assert_uint_eq(out.len, 11 + 4 + 300);
    buf_free(&out);
}
END_TEST

START_TEST(frame_encode_past_cap_leaves_buffer_unchanged)
{
    struct buf out;
    buf_init(&out, 16);
    ck_assert_int_eq(frame_encode(&out, "abcd", 4), 0);
    /* Header fits, payload does not: nothing of this frame may remain. */
    ck_assert_int_eq(frame_encode(&out, "0123456789", 10), -E2BIG);
    ck_assert_uint_eq(out.len, 8);
    ck_assert_int_eq(memcmp(out.data,
                            "\0\0\0\x04"
                            "abcd",
                            8),
                     0);
    /* A length that does not fit 32 bits is refused before the payload is read. */
    ck_assert_int_eq(frame_encode(&out, "", (size_t)UINT32_MAX + 1), -EMSGSIZE);
    ck_assert_uint_eq(out.len, 8);
    buf_free(&out);
}
END_TEST

START_TEST(frame_decode_byte_by_byte)
{
    struct buf enc;
    buf_init(&enc, 1024);
    ck_assert_int_eq(frame_encode(&enc, "hello", 5), 0);
    ck_assert_int_eq(frame_encode(&enc, "", 0), 0);
    ck_assert_int_eq(frame_encode(&enc, "world!", 6), 0);

    struct frame_decoder d;
    frame_decoder_init(&d, 64);
    const char *want[] = { "hello", "", "world!" };
    size_t got = 0;
    for (size_t i = 0; i < enc.len; i++) {
        ck_assert_int_eq(frame_decoder_feed(&d, enc.data + i, 1), 0);
        const char *p;
        size_t n;
        int rc;
        while ((rc = frame_decoder_next(&d, &p, &n)) == 1) {
            ck_assert_uint_lt(got, 3);
            ck_assert_uint_eq(n, strlen(want[got]));
            ck_assert_int_eq(memcmp(p, want[got], n), 0);
            got++;
        }
        ck_assert_int_eq(rc, 0);
    }
    ck_assert_uint_eq(got, 3);
    frame_decoder_free(&d);
    buf_free(&enc);
}
END_TEST

START_TEST(frame_decode_many_in_one_feed)
{
    struct buf enc;
    buf_init(&enc, 4096);
    for (int i = 0; i < 50; i++) {
        char p[16];
        int n = snprintf(p, sizeof(p), "msg-%d", i);
        ck_assert_int_eq(frame_encode(&enc, p, (size_t)n), 0);
    }
    /* Plus the first two bytes of one more header. */
    ck_assert_int_eq(buf_append(&enc, "\0\0", 2), 0);

    /* The decoder holds at most one maximal frame and a header: size it for the batch. */
    struct frame_decoder d;
    frame_decoder_init(&d, 1024);
    ck_assert_int_eq(frame_decoder_feed(&d, enc.data, enc.len), 0);
    const char *p;
    size_t n;
    for (int i = 0; i < 50; i++) {
        char want[16];
        snprintf(want, sizeof(want), "msg-%d", i);
        ck_assert_int_eq(frame_decoder_next(&d, &p, &n), 1);
        ck_assert_uint_eq(n, strlen(want));
        ck_assert_int_eq(memcmp(p, want, n), 0);
    }
    ck_assert_int_eq(frame_decoder_next(&d, &p, &n), 0);
    /* The rest of that header and its payload complete it. */
    ck_assert_int_eq(frame_decoder_feed(&d, "\0\x03xyz", 5), 0);
    ck_assert_int_eq(frame_decoder_next(&d, &p, &n), 1);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(p, "xyz", 3), 0);
    ck_assert_int_eq(frame_decoder_next(&d, &p, &n), 0);
    frame_decoder_free(&d);
    buf_free(&enc);
}
END_TEST

START_TEST(frame_decode_at_cap_and_over)
{
    struct frame_decoder d;
    frame_decoder_init(&d, 8);
    const char *p;
    size_t n;
    /* Exactly the cap is fine. */
    ck_assert_int_eq(frame_decoder_feed(&d,
                                        "\0\0\0\x08"
                                        "12345678",
                                        12),
                     0);
    ck_assert_int_eq(frame_decoder_next(&d, &p, &n), 1);
    ck_assert_uint_eq(n, 8);
    /* One over the cap is refused as soon as the header is in, before any payload. */
    ck_assert_int_eq(frame_decoder_feed(&d, "\0\0\0\x09", 4), 0);
    ck_assert_int_eq(frame_decoder_next(&d, &p, &n), -EMSGSIZE);
    frame_decoder_free(&d);

    /* A huge announced length is refused the same way, without buffering. */
    frame_decoder_init(&d, FRAME_MAX_DEFAULT);
    ck_assert_int_eq(frame_decoder_feed(&d, "\xff\xff\xff\xff", 4), 0);
    ck_assert_int_eq(frame_decoder_next(&d, &p, &n), -EMSGSIZE);
    frame_decoder_free(&d);
}
END_TEST

START_TEST(frame_decoder_feed_over_buffer_cap)
{
    struct frame_decoder d;
    frame_decoder_init(&d, 8);
    /* More than one frame plus a header cannot be buffered at once. */
    char junk[32] = { 0 };
    ck_assert_int_eq(frame_decoder_feed(&d, junk, 17), -E2BIG);
    ck_assert_int_eq(frame_decoder_feed(&d, junk, 16), 0);
    frame_decoder_free(&d);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        frame_encode_is_big_endian_length_then_payload,
        frame_encode_past_cap_leaves_buffer_unchanged,
        frame_decode_byte_by_byte,
        frame_decode_many_in_one_feed,
        frame_decode_at_cap_and_over,
        frame_decoder_feed_over_buffer_cap,
        NULL,
    };
    return harness_main("frame", 0, NULL, NULL, tests);
}
