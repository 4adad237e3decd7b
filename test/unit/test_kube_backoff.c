/* Tests for controller/kube_backoff.c: the reflector's backoff arithmetic. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"
#include "kube_internal.h"

static struct kube_backoff fresh(void)
{
    struct kube_backoff b;
    kube_backoff_init(&b, KUBE_BACKOFF_BASE_MS, KUBE_BACKOFF_CAP_MS, KUBE_BACKOFF_RESET_MS);
    return b;
}

START_TEST(backoff_doubles_from_800ms_with_jitter_in_d_2d)
{
    /* rnd 0 gives the low end d; rnd ≡ d-1 (mod d) the high end 2d-1. */
    const uint64_t steps[] = { 800, 1600, 3200, 6400, 12800 };
    struct kube_backoff lo = fresh(), hi = fresh();
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        uint64_t d = steps[i];
        ck_assert_uint_eq(kube_backoff_next(&lo, 1000 + i, 0), d);
        ck_assert_uint_eq(kube_backoff_next(&hi, 1000 + i, d - 1), 2 * d - 1);
    }
}
END_TEST

START_TEST(backoff_never_reaches_the_cap_and_keeps_jitter_there)
{
    struct kube_backoff b = fresh();
    uint64_t min = UINT64_MAX, max = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t d = kube_backoff_next(&b, 1000 + (uint64_t)i, kube_rand());
        ck_assert_uint_lt(d, KUBE_BACKOFF_CAP_MS);
        if (i >= 10) { /* long past the growth: the step sits at cap/2 */
            ck_assert_uint_ge(d, KUBE_BACKOFF_CAP_MS / 2);
            min = d < min ? d : min;
            max = d > max ? d : max;
        }
    }
    /* Replicas must not retry in lockstep at the cap: delays spread over the range. */
    ck_assert_uint_lt(min, KUBE_BACKOFF_CAP_MS / 2 + 1000);
    ck_assert_uint_gt(max, KUBE_BACKOFF_CAP_MS - 1000);
}
END_TEST

START_TEST(backoff_random_delays_fill_d_to_2d)
{
    struct kube_backoff b = fresh();
    uint64_t min = UINT64_MAX, max = 0;
    for (int i = 0; i < 5000; i++) {
        b.step_ms = 800; /* stay on the first step */
        uint64_t d = kube_backoff_next(&b, 1000, kube_rand());
        ck_assert_uint_ge(d, 800);
        ck_assert_uint_lt(d, 1600);
        min = d < min ? d : min;
        max = d > max ? d : max;
    }
    ck_assert_uint_lt(min, 850);
    ck_assert_uint_gt(max, 1550);
}
END_TEST

START_TEST(backoff_resets_after_two_quiet_minutes)
{
    struct kube_backoff b = fresh();
    uint64_t t = 5000;
    for (int i = 0; i < 6; i++)
        kube_backoff_next(&b, t, 0);
    /* One millisecond short of the quiet period: still backing off hard. */
    t += KUBE_BACKOFF_RESET_MS - 1;
    ck_assert_uint_ge(kube_backoff_next(&b, t, 0), KUBE_BACKOFF_CAP_MS / 2);
    /* Two full minutes since that failure: back to the first step. */
    t += KUBE_BACKOFF_RESET_MS;
    ck_assert_uint_eq(kube_backoff_next(&b, t, 0), 800);
    ck_assert_uint_eq(kube_backoff_next(&b, t + 1, 0), 1600);
}
END_TEST

START_TEST(rand_range_stays_in_bounds)
{
    int seen_low = 0, seen_high = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t v = kube_rand_range(KUBE_WATCH_TIMEOUT_MIN_S, KUBE_WATCH_TIMEOUT_MAX_S);
        ck_assert_uint_ge(v, 300);
        ck_assert_uint_lt(v, 600);
        seen_low |= v == 300;
        seen_high |= v == 599;
    }
    ck_assert(seen_low && seen_high);
    ck_assert_uint_eq(kube_rand_range(5, 5), 5);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        backoff_doubles_from_800ms_with_jitter_in_d_2d,
        backoff_never_reaches_the_cap_and_keeps_jitter_there,
        backoff_random_delays_fill_d_to_2d,
        backoff_resets_after_two_quiet_minutes,
        rand_range_stays_in_bounds,
        NULL,
    };
    return harness_main("kube_backoff", 0, NULL, NULL, tests);
}
