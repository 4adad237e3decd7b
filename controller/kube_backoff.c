/* Backoff between failed attempts to reach the API server, and the random numbers behind its
 * jitter and the watch timeouts.
 *
 * Jitter matters more than the exact curve: every replica of the controller watches the same
 * server, and after an API server restart they must not all come back in the same
 * millisecond. */
#include "kube_internal.h"

#include <time.h>
#include <unistd.h>

void kube_backoff_init(struct kube_backoff *b, uint64_t base_ms, uint64_t cap_ms, uint64_t reset_ms)
{
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->cap_ms = cap_ms >= 2 * b->base_ms ? cap_ms : 2 * b->base_ms;
    b->reset_ms = reset_ms;
    b->step_ms = b->base_ms;
    b->last_ms = 0;
    b->failed = false;
}

uint64_t kube_backoff_next(struct kube_backoff *b, uint64_t now_ms, uint64_t rnd)
{
    /* A quiet period ends the streak: the next failure is treated as the first. */
    if (b->failed && now_ms - b->last_ms >= b->reset_ms)
        b->step_ms = b->base_ms;
    b->failed = true;
    b->last_ms = now_ms;

    uint64_t d = b->step_ms;
    uint64_t delay = d + rnd % d; /* [d, 2d) */
    /* The step stops at cap/2, so every delay stays below the cap and keeps its jitter. */
    uint64_t half = b->cap_ms / 2;
    b->step_ms = d * 2 < half ? d * 2 : half;
    return delay;
}

static uint64_t rand_state;

static uint64_t seed(void)
{
    uint64_t s = 0;
    if (uv_random(NULL, NULL, &s, sizeof(s), 0, NULL) != 0 || s == 0) {
        /* No entropy source: jitter between replicas still differs by pid and time. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    return s != 0 ? s : 0x9e3779b97f4a7c15ULL;
}

uint64_t kube_rand(void)
{
    /* xorshift64*: plenty for jitter; the loop thread is the only caller. */
    if (rand_state == 0)
        rand_state = seed();
    rand_state ^= rand_state >> 12;
    rand_state ^= rand_state << 25;
    rand_state ^= rand_state >> 27;
    return rand_state * 0x2545f4914f6cdd1dULL;
}

uint64_t kube_rand_range(uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + kube_rand() % (hi - lo);
}
