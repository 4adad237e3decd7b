"""Object store: one global resourceVersion, a bounded event history and
the open watches.

Objects are stored per resource ("services", "events", ...) under the key
(namespace, name); cluster-scoped objects use "" as namespace. A stored dict
is never mutated after it is stored: every write stores a fresh dict, so
readers may keep references and serialize them without copying.

Every write takes the next resourceVersion, appends a history entry (type,
object, previous object) and pushes the event to each matching watch. The
history keeps the last `history_limit` entries over all resources; every
event with rv <= `compacted` is forgotten. A watch or continue token that
needs a forgotten event fails with Expired (410), like etcd compaction.

All methods expect the caller to hold `store.lock` when several calls must
be atomic (read-modify-write); each method also takes it itself (RLock).
"""

import collections
import copy
import os
import threading

Entry = collections.namedtuple("Entry", "rv type resource key obj prev")


class Expired(Exception):
    """The requested resourceVersion is older than the history window."""

    def __init__(self, requested, oldest):
        super().__init__("too old resource version: %s (%s)" % (requested, oldest))
        self.requested = requested
        self.oldest = oldest


class Watcher:
    """One open watch. The store pushes (type, obj) pairs into `queue`
    and writes a byte to the wake pipe so the serving thread, which sits in
    select() on the pipe and its client socket, wakes up at once."""

    def __init__(self, resource, namespace, match, info):
        self.resource = resource
        self.namespace = namespace      # None: every namespace
        self.match = match              # obj -> bool (field + label selectors)
        self.info = info                # dict shown by /_test/watches
        self.queue = collections.deque()
        self.closed = False             # set by close_all(); end the stream
        self.abort = False              # end without the terminating chunk
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)

    def fileno(self):
        return self._rfd

    def wake(self):
        try:
            os.write(self._wfd, b"x")
        except (BlockingIOError, OSError):
            pass    # pipe full (already awake) or closed

    def drain_wakeups(self):
        try:
            while os.read(self._rfd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close_fds(self):
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass

    def visible(self, namespace, obj):
        if self.namespace is not None and namespace != self.namespace:
            return False
        return self.match(obj)


def set_rv(obj, rv):
    """Set metadata.resourceVersion in place, right after uid when new
    (the field order of ObjectMeta)."""
    meta = obj["metadata"]
    if "resourceVersion" in meta:
        meta["resourceVersion"] = str(rv)
        return obj
    items = list(meta.items())
    at = next((i + 1 for i, (k, _) in enumerate(items) if k == "uid"), len(items))
    items.insert(at, ("resourceVersion", str(rv)))
    obj["metadata"] = dict(items)
    return obj


def with_rv(obj, rv):
    """Return a copy of obj whose metadata.resourceVersion is rv."""
    out = dict(obj)
    out["metadata"] = dict(obj.get("metadata") or {})
    return set_rv(out, rv)


def watch_event(watcher, entry):
    """Translate a history entry into the event this watcher sees, or None.

    Mirrors the watch cache: an object that starts matching the selectors
    arrives as ADDED, one that stops matching as DELETED (with its previous
    state at the new resourceVersion)."""
    ns = entry.key[0]
    if entry.type == "DELETED":
        return ("DELETED", entry.obj) if watcher.visible(ns, entry.prev) else None
    now = watcher.visible(ns, entry.obj)
    before = entry.prev is not None and watcher.visible(ns, entry.prev)
    if now and before:
        return ("MODIFIED", entry.obj)
    if now:
        return ("ADDED", entry.obj)
    if before:
        return ("DELETED", with_rv(entry.prev, entry.rv))
    return None


class Store:
    def __init__(self, history_limit=1000, initial_rv=1):
        self.lock = threading.RLock()
        self.rv = int(initial_rv)
        self.compacted = self.rv
        self.history_limit = max(1, int(history_limit))
        self.history = collections.deque()
        self.objects = collections.defaultdict(dict)   # resource -> {key: obj}
        self.watchers = set()
        self.stalled = False

    # -- reads ------------------------------------------------------------

    def get(self, resource, key):
        with self.lock:
            return self.objects[resource].get(key)

    def items(self, resource, namespace=None):
        """Current objects of a resource, sorted by key, and the current RV."""
        with self.lock:
            objs = self.objects[resource]
            keys = sorted(k for k in objs if namespace is None or k[0] == namespace)
            return [(k, objs[k]) for k in keys], self.rv

    def snapshot(self, resource, rv, namespace=None):
        """The objects of a resource as they were at rv, sorted by key.

        Rebuilt from the current state by undoing history newer than rv.
        Raises Expired when rv is older than the compaction point."""
        with self.lock:
            if rv < self.compacted:
                raise Expired(rv, self.compacted)
            state = dict(self.objects[resource])
            for e in reversed(self.history):
                if e.rv <= rv:
                    break
                if e.resource != resource:
                    continue
                if e.type == "ADDED":
                    state.pop(e.key, None)
                else:
                    state[e.key] = e.prev
            keys = sorted(k for k in state if namespace is None or k[0] == namespace)
            return [(k, state[k]) for k in keys]

    def all_objects(self):
        with self.lock:
            return {res: [o for _, o in sorted(objs.items())]
                    for res, objs in self.objects.items() if objs}

    # -- writes -----------------------------------------------------------

    def _record(self, etype, resource, key, obj, prev):
        entry = Entry(self.rv, etype, resource, key, obj, prev)
        self.history.append(entry)
        while len(self.history) > self.history_limit:
            self.compacted = self.history.popleft().rv
        for w in list(self.watchers):
            if w.resource != resource:
                continue
            ev = watch_event(w, entry)
            if ev is not None:
                w.queue.append(ev)
                w.wake()

    def write(self, resource, key, obj):
        """Store obj (a fresh dict, not shared) at the next RV; returns it.
        The event is ADDED or MODIFIED depending on whether key existed."""
        with self.lock:
            prev = self.objects[resource].get(key)
            self.rv += 1
            set_rv(obj, self.rv)
            self.objects[resource][key] = obj
            self._record("MODIFIED" if prev is not None else "ADDED", resource, key, obj, prev)
            return obj

    def remove(self, resource, key):
        """Delete key; returns the last state at the deletion RV, or None."""
        with self.lock:
            prev = self.objects[resource].pop(key, None)
            if prev is None:
                return None
            self.rv += 1
            gone = with_rv(prev, self.rv)
            self._record("DELETED", resource, key, gone, prev)
            return gone

    def seed(self, resource, key, obj):
        """Store an object at startup without a history entry."""
        with self.lock:
            self.rv += 1
            set_rv(obj, self.rv)
            self.objects[resource][key] = obj
            self.compacted = self.rv

    # -- watches ----------------------------------------------------------

    def open_watch(self, resource, namespace, match, since, info):
        """Register a watch; return (watcher, backlog events, current RV).

        since=None: synthetic ADDED for every current object (resourceVersion
        absent or "0"). Otherwise replay history newer than since; raises
        Expired when since is older than the compaction point."""
        with self.lock:
            w = Watcher(resource, namespace, match, info)
            backlog = []
            if since is None:
                for key, obj in self.items(resource, namespace)[0]:
                    if w.visible(key[0], obj):
                        backlog.append(("ADDED", obj))
            else:
                if since < self.compacted:
                    w.close_fds()
                    raise Expired(since, self.compacted)
                for e in self.history:
                    if e.rv > since and e.resource == resource:
                        ev = watch_event(w, e)
                        if ev is not None:
                            backlog.append(ev)
            self.watchers.add(w)
            return w, backlog, self.rv

    def close_watch(self, w):
        with self.lock:
            self.watchers.discard(w)
        w.close_fds()

    def close_all(self, abort=False):
        with self.lock:
            ws = list(self.watchers)
            for w in ws:
                w.closed = True
                w.abort = abort
                w.wake()
            return len(ws)

    def compact(self):
        """Forget all history: every RV older than the current one expires."""
        with self.lock:
            self.history.clear()
            self.compacted = self.rv
            return self.rv

    def set_stalled(self, stalled):
        with self.lock:
            self.stalled = stalled
            for w in self.watchers:
                w.wake()

    def watch_infos(self):
        with self.lock:
            return [copy.deepcopy(w.info) for w in self.watchers]
