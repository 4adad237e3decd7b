/* Helpers shared by the unit suites; see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* ---- expectations in a client thread ---- */

char harness_failure[512];

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    if (harness_failure[0] != '\0')
        return;
    const char *base = strrchr(file, '/');
    int n =
        snprintf(harness_failure, sizeof(harness_failure), "%s:%d: ", base ? base + 1 : file, line);
    if (n < 0 || (size_t)n >= sizeof(harness_failure))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(harness_failure + n, sizeof(harness_failure) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- a server in the main thread, a blocking client in another ---- */

static uv_async_t done_async;
static harness_stop_cb stop_server;

static void on_done(uv_async_t *a)
{
    stop_server();
    uv_close((uv_handle_t *)a, NULL);
}

void harness_serve(harness_start_cb start, harness_stop_cb stop, const char *addr,
                   harness_client_cb client)
{
    uv_loop_t loop;
    pthread_t th;
    harness_failure[0] = '\0';
    harness_quiet_logs();
    stop_server = stop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(start(&loop, addr), 0);
    ck_assert_int_eq(uv_async_init(&loop, &done_async, on_done), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, client, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle was closed */
    ck_assert_msg(harness_failure[0] == '\0', "%s", harness_failure);
}

void *harness_client_done(void)
{
    uv_async_send(&done_async);
    return NULL;
}

/* ---- blocking sockets ---- */

/* Connects fd to sa and sets the receive timeout; returns fd, or -1 with fd closed. */
static int connect_with_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_s)
{
    if (fd < 0)
        return -1;
    if (connect(fd, sa, len) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = { .tv_sec = timeout_s };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

int harness_connect_unix(const char *path, int timeout_s)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    return connect_with_timeout(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&sa, sizeof(sa),
                                timeout_s);
}

int harness_connect_tcp(int port, int timeout_s)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return connect_with_timeout(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&sa, sizeof(sa),
                                timeout_s);
}

int harness_send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int harness_recv_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = recv(fd, c, n, 0);
        if (r == 0)
            return 0;
        if (r < 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 1;
}

bool harness_is_closed_by_peer(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- JSON fields ---- */

const char *harness_json_str(json_object *o, const char *k)
{
    json_object *v = NULL;
    const char *s = NULL;
    if (o != NULL && json_object_object_get_ex(o, k, &v) && v != NULL)
        s = json_object_get_string(v);
    return s ? s : "";
}

int64_t harness_json_int(json_object *o, const char *k)
{
    json_object *v;
    return o != NULL && json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

/* ---- loops with deadlines ---- */

static harness_pred_cb want;

static void on_tick(uv_timer_t *t)
{
    if (want())
        uv_stop(t->loop);
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

bool harness_run_until(uv_loop_t *loop, harness_pred_cb pred, unsigned timeout_ms)
{
    uv_timer_t tick, deadline;
    want = pred;
    uv_timer_init(loop, &tick);
    uv_timer_init(loop, &deadline);
    uv_timer_start(&tick, on_tick, 2, 2);
    uv_timer_start(&deadline, on_deadline, timeout_ms, 0);
    if (!pred())
        uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* the timers' close callbacks: they live on this stack */
    return pred();
}

static bool never(void)
{
    return false;
}

void harness_run_for(uv_loop_t *loop, unsigned ms)
{
    harness_run_until(loop, never, ms);
}

void harness_close_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* ---- suites ---- */

void harness_quiet_logs(void)
{
    log_configure(LOG_LEVEL_ERROR + 1, LOG_FORMAT_LOGFMT, "test");
}

int harness_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int harness_main(const char *name, int timeout_s, SFun setup, SFun teardown,
                 const TTest *const tests[])
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(name);
    if (timeout_s > 0)
        tcase_set_timeout(tc, timeout_s);
    if (setup || teardown)
        tcase_add_checked_fixture(tc, setup, teardown);
    for (size_t i = 0; tests[i] != NULL; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
