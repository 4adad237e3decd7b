/* The published route snapshot (snapshot.h).
 *
 * The current pointer and the reference taken on it must be one step, or a worker could read
 * the pointer, be preempted while the main thread swaps and releases the old snapshot, and
 * then take a reference on freed memory. A mutex makes the pair atomic; it is taken once per
 * worker wakeup (and by the admin listener), never per request, so it is not contended. The
 * reference count itself is atomic because requests release their references on workers
 * without the lock. */
#include "snapshot.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/time.h>

#include "policy.h"
#include "route.h"
#include "router.h"
#include "xalloc.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct px_snapshot *current;

/* Main thread only, like publish; read without a lock. */
static px_snapshot_publish_cb publish_cb;
static void *publish_arg;

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

struct px_snapshot *px_snapshot_new(struct route_table *table, char *err, size_t errlen)
{
    struct px_router *router = px_router_build(table, err, errlen);
    if (router == NULL) {
        route_table_free(table);
        return NULL;
    }
    /* Policy state carries over from the table being replaced (same cluster, same Mapping). */
    struct px_snapshot *prev = px_snapshot_current();
    struct px_policy *policy = px_policy_build(table, prev ? prev->policy : NULL, err, errlen);
    px_snapshot_release(prev);
    if (policy == NULL) {
        px_router_free(router);
        route_table_free(table);
        return NULL;
    }
    struct px_snapshot *s = xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->table = table;
    s->router = router;
    s->policy = policy;
    s->applied_at_ms = now_ms();
    return s;
}

struct px_snapshot *px_snapshot_ref(struct px_snapshot *s)
{
    /* Taking a reference needs no ordering: the caller already holds one, which keeps s alive
     * and its contents visible. */
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void px_snapshot_release(struct px_snapshot *s)
{
    if (s == NULL)
        return;
    /* Release so this thread's reads of the snapshot happen before the free; acquire on the
     * last reference so the free happens after every other thread's reads. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    px_router_free(s->router);
    px_policy_free(s->policy);
    route_table_free(s->table);
    free(s);
}

void px_snapshot_on_publish(px_snapshot_publish_cb cb, void *arg)
{
    publish_cb = cb;
    publish_arg = arg;
}

void px_snapshot_publish(struct px_snapshot *s)
{
    /* Not yet visible to any other thread, so it can still be written. */
    s->applied_at_ms = now_ms();
    pthread_mutex_lock(&current_lock);
    struct px_snapshot *old = current;
    current = s;
    pthread_mutex_unlock(&current_lock);
    px_snapshot_release(old);
    if (publish_cb != NULL)
        publish_cb(publish_arg);
}

struct px_snapshot *px_snapshot_current(void)
{
    pthread_mutex_lock(&current_lock);
    struct px_snapshot *s = px_snapshot_ref(current);
    pthread_mutex_unlock(&current_lock);
    return s;
}

void px_snapshot_clear(void)
{
    pthread_mutex_lock(&current_lock);
    struct px_snapshot *old = current;
    current = NULL;
    pthread_mutex_unlock(&current_lock);
    px_snapshot_release(old);
}
