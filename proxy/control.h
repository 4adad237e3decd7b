/* The control server: the proxy's end of the controller ⇄ proxy Unix socket
 * (docs/control-protocol.md). It runs on the main thread's loop, accepts one controller at a
 * time (a newer connection replaces the older), says `hello`, and turns every `snapshot`
 * frame into a published px_snapshot answered with `ack`, or into a `nack` that keeps the old
 * table. */
#ifndef LEGATE_PROXY_CONTROL_H
#define LEGATE_PROXY_CONTROL_H

#include <stddef.h>

#include <uv.h>

struct json_object;

/* Creates the socket at path with mode 0600 (a stale file there is unlinked; a missing parent
 * directory is an error) and starts listening on loop. Returns 0 or a negative libuv error
 * (print it with uv_strerror); the reason is also logged. Call once, on the main thread. */
int px_control_start(uv_loop_t *loop, const char *path);
/* The same, and when gid >= 0 the socket belongs to that group with mode 0660, so that a
 * controller running under another user of the group may connect (--control-socket-group). */
int px_control_start_group(uv_loop_t *loop, const char *path, long gid);
/* Closes the listener and any controller connection and removes the socket file. The handles
 * finish closing on the next loop iteration, so run the loop after this before closing it.
 * Safe when not started. */
void px_control_stop(void);

/* Reads one control frame's payload (len bytes) as the server does: one JSON value, strictly
 * (JSON_TOKENER_STRICT, valid UTF-8), followed by blanks only. Returns it (the caller puts
 * it), or NULL with a static reason in *why. Pure: the fuzz target calls it too. */
struct json_object *px_control_parse(const char *payload, size_t len, const char **why);

#endif
