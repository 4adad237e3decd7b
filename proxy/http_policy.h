/* The traffic policy of a client connection's requests (http_policy.c), hooked into http.c's
 * request life at a few points: which canary member serves it, whether it may go at all (CORS
 * preflight, legate_rate_limit, circuit breakers), the timeouts of an attempt
 * (connect_timeout_ms, per_try_timeout, idle_timeout_ms), whether a failed attempt is tried
 * again (retry_policy) and the request body kept for that, and the CORS lines of responses.
 *
 * State lives in a struct px_pol per client connection, allocated on its first routed request
 * and kept for the next ones; it owns one timer. Decisions are policy.c's and cors.c's. */
#ifndef LEGATE_PROXY_HTTP_POLICY_H
#define LEGATE_PROXY_HTTP_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Request bodies up to what the read buffer holds (PX_RBUF_SIZE with the head) stay there
 * until the request is done, so a retry can send them again; one that outgrows it is not
 * retried once a body byte has left. Pieces are remembered up to this count. */
#define PX_POL_REPLAY_SPANS 64

/* The member of r's canary group that serves this request (r when it has none). */
const struct route *px_pol_pick(struct px_conn *c, const struct route *r);
/* After c->route, c->cluster and c->resp_edits are set: answers a CORS preflight, a request
 * over legate_rate_limit (429) or over max_requests (503), and adds the CORS lines to the
 * response. Returns 0 to go on, -1 when the request was answered. */
int px_pol_admit(struct px_conn *c);
/* After px_upstream_acquire attached c->up (new_conn: a connection is being opened): counts
 * it against max_connections and max_pending_requests, arms connect_timeout_ms and
 * per_try_timeout. Returns 0, or -1 when a circuit breaker answered 503. */
int px_pol_attempt(struct px_conn *c, bool new_conn);
/* The attempt's connection is ready. */
void px_pol_ready(struct px_conn *c);
/* upstream_error's question: try again after this failure (its `what`)? Counts the retry. */
bool px_pol_retry_failure(struct px_conn *c, const char *what);
/* relay's question on a final response head: drop it and try again? Counts the retry. */
bool px_pol_retry_status(struct px_conn *c, int status);
/* The status of the proxy's answer to a failed attempt: 504 after a timeout of ours. */
int px_pol_failure_status(struct px_conn *c, int status);
/* Before a local answer: its CORS lines (statuses other than 404), in c->local_headers. */
void px_pol_local_headers(struct px_conn *c, int status);
/* Bytes moved on the request's connections (idle_timeout_ms). */
void px_pol_activity(struct px_conn *c);
/* Request body bytes rb[off, off+len) left for the upstream. */
void px_pol_record(struct px_conn *c, uint32_t off, uint32_t len);
/* What px_pol_replay may add, in iovecs. */
unsigned px_pol_replay_room(const struct px_conn *c);
/* After the head of a retry, the body bytes an earlier attempt sent: appends them to bufs
 * (from index n) and returns the new count. */
unsigned px_pol_replay(struct px_conn *c, uv_buf_t *bufs, unsigned n);
/* make_room's question: must the read buffer keep the request for a retry? Gives that up
 * (and says no) once the buffer is full. */
bool px_pol_keep_buffer(struct px_conn *c);
/* The request ended (answered, or its connection closed). */
void px_pol_request_end(struct px_conn *c);
/* The client connection is closing: frees the policy state (after its timer closes). */
void px_pol_conn_closed(struct px_conn *c);

#endif
