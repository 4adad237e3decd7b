/* Request shadowing (shadow.c): a Mapping with `shadow: true` mirrors its group's requests.
 *
 * A copy of the request as it goes upstream (rewritten path, the route's header edits) is
 * sent to the shadow cluster with "-shadow" added to the Host name (before any port, as
 * Envoy does) and `Connection: close`; its answer is read and dropped. The copy is sent once
 * the whole request was read, on a connection of its own, so nothing about the shadow (slow,
 * dead, refusing) can delay or fail the real request. Bounded: a request whose body exceeds
 * PX_SHADOW_BODY_MAX is not shadowed, a worker has at most PX_SHADOW_INFLIGHT copies in
 * flight (more are skipped), and each copy lives at most PX_SHADOW_TIMEOUT_MS. Shadows to
 * https clusters are skipped. */
#ifndef LEGATE_PROXY_SHADOW_H
#define LEGATE_PROXY_SHADOW_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

#define PX_SHADOW_BODY_MAX   (64 * 1024)
#define PX_SHADOW_INFLIGHT   64
#define PX_SHADOW_TIMEOUT_MS 5000

/* After the upstream head is built from f: starts collecting a copy when c's route shadows
 * (and its percent draws this request). */
void px_shadow_start(struct px_conn *c, const struct px_h1_forward *f);
/* Request body bytes as parsed (de-chunked); final: the request ended, the copy is sent. */
void px_shadow_feed(struct px_conn *c, const char *data, size_t len, bool final);
/* The request ended before it was read whole: the copy is dropped. Safe when there is none. */
void px_shadow_abandon(struct px_conn *c);
/* Copies in flight on this thread (for tests). */
unsigned px_shadow_inflight(void);

#endif
