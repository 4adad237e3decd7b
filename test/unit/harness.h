/* Helpers shared by the unit suites (test/unit/harness.c), so each exists once:
 *
 *   - a server on a uv loop in the test's main thread with a blocking client in a second
 *     thread that records its first failed expectation (test_control.c, test_admin.c);
 *   - blocking socket calls for such clients;
 *   - running a loop until a condition holds, always with a deadline (test_push.c,
 *     test_source_dir.c);
 *   - a suite's main(), from the list of its tests.
 *
 * The Makefile archives harness.o into libtest.a, linked into every suite; a suite that uses
 * none of this links none of it. */
#ifndef LEGATE_TEST_HARNESS_H
#define LEGATE_TEST_HARNESS_H

#include <check.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- expectations in a client thread ---- */

/* The first failed expectation of the client thread ("file.c:N: what"), "" while none.
 * harness_serve() asserts that it is empty once the client has returned. Check's ck_assert
 * cannot be used there: it must run in the thread that runs the test. */
extern char harness_failure[512];

/* Records a failure at file:line (printf-style message) unless one is recorded already. */
void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* In a client thread: on a false cond, records it and jumps to the function's `out:` label,
 * which cleans up and returns harness_client_done(). EXPECT_MSG says what failed in words,
 * for conditions checked in a loop over a table of cases. */
#define EXPECT_MSG(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_fail(__FILE__, __LINE__, __VA_ARGS__);                                         \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)
#define EXPECT(cond) EXPECT_MSG(cond, "%s", #cond)

/* ---- a server in the main thread, a blocking client in another ---- */

typedef int (*harness_start_cb)(uv_loop_t *loop, const char *addr);
typedef void (*harness_stop_cb)(void);
typedef void *(*harness_client_cb)(void *arg);

/* Quiets logging, starts the server with start(loop, addr) on a fresh loop (asserting 0),
 * runs client in a second thread and the loop until the client calls harness_client_done();
 * stop() then runs on the loop's thread. Asserts that the loop closes with every handle
 * closed, then that the client recorded no failure. */
void harness_serve(harness_start_cb start, harness_stop_cb stop, const char *addr,
                   harness_client_cb client);

/* Called by the client of harness_serve() once, on every path, last: wakes the loop to stop.
 * Returns NULL, the client's return value. */
void *harness_client_done(void);

/* ---- blocking sockets ---- */

/* Connects to a Unix stream socket, or to 127.0.0.1:port, with a receive timeout of
 * timeout_s seconds. Returns the descriptor, or -1 (nothing left open). */
int harness_connect_unix(const char *path, int timeout_s);
int harness_connect_tcp(int port, int timeout_s);

/* Sends all n bytes: 0, or -1 on an error (MSG_NOSIGNAL: a closed peer is an error, not a
 * signal). */
int harness_send_all(int fd, const void *p, size_t n);

/* Receives exactly n bytes: 1, 0 on EOF first, -1 on an error or the receive timeout. */
int harness_recv_all(int fd, void *p, size_t n);

/* True when the peer has closed: recv sees EOF (or a reset) rather than data or a timeout. */
bool harness_is_closed_by_peer(int fd);

/* A loopback TCP port free right now (the kernel's choice, released before returning). */
int harness_free_port(void);

/* ---- JSON fields ---- */

/* The value of key k of o as a string (json-c's form for a non-string); "" when o is NULL or
 * k is absent or null. */
const char *harness_json_str(json_object *o, const char *k);

/* The integer value of key k of o; -1 when o is NULL or k is absent. */
int64_t harness_json_int(json_object *o, const char *k);

/* ---- loops with deadlines ---- */

typedef bool (*harness_pred_cb)(void);

/* Runs loop until pred() holds (checked before and then every 2 ms) or timeout_ms passes.
 * Returns pred()'s final value; the loop's own handles are untouched. */
bool harness_run_until(uv_loop_t *loop, harness_pred_cb pred, unsigned timeout_ms);

/* Runs loop for ms milliseconds, whatever happens. */
void harness_run_for(uv_loop_t *loop, unsigned ms);

/* Runs loop until nothing is left (the close callbacks of what the test closed), then
 * asserts that it closes: a handle left open fails the test. */
void harness_close_loop(uv_loop_t *loop);

/* ---- suites ---- */

/* Logs only what is above error level: the suites' failures speak for themselves. */
void harness_quiet_logs(void);

/* Runs every test of s (Check's CK_NORMAL report) and frees it. Returns EXIT_SUCCESS when none
 * failed, else EXIT_FAILURE: what main() returns. For suites of more than one test case. */
int harness_run_suite(Suite *s);

/* A suite's main(): runs the NULL-terminated tests as one suite and test case both called
 * name, with a timeout of timeout_s seconds (0: Check's default) and the checked fixture
 * setup/teardown (each may be NULL); returns as harness_run_suite() does. */
int harness_main(const char *name, int timeout_s, SFun setup, SFun teardown,
                 const TTest *const tests[]);

#endif
