/* Canary groups and shadows (groups.c).
 *
 * Mappings whose match criteria are identical (method, GET when absent; prefix and its
 * flags; host; headers; query parameters; precedence) are one Ambassador group. Its members
 * split the traffic by `weight`: unweighted members share equally what the weighted ones
 * leave, and a member whose weight would take the group's total past 100 is refused (an error
 * on that Mapping; the others keep routing). A `shadow: true` Mapping of the group is not a
 * route: a copy of each request the group serves goes to its service.
 *
 * The compiler admits every Mapping as it meets it (groups_admit), then, once the routes are
 * sorted, groups_finish makes each group's members consecutive (its leader, the first in
 * source order, first), writes their shares and attaches the shadow. */
#ifndef LEGATE_CONTROLLER_GROUPS_H
#define LEGATE_CONTROLLER_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "annotation.h"
#include "strmap.h"

struct group;

struct groups {
    struct strmap index;   /* match key -> struct group * */
    struct strmap members; /* "ns/mapping" of each member -> its group, rank and weight */
    struct group **v;      /* by id */
    size_t n;
    size_t cap;
};

#define GROUPS_MEMBER 0 /* the Mapping routes; its route carries its group */
#define GROUPS_SHADOW 1 /* the Mapping was taken as its group's shadow (moved out: zeroed) */

void groups_init(struct groups *g);
/* Frees the groups and the shadows nobody took. */
void groups_free(struct groups *g);

/* Admits m, found in Service ns/svc, to the group of key (its match key). Returns
 * GROUPS_MEMBER or GROUPS_SHADOW, or -EINVAL with a message in msg when it is refused (its
 * weight takes the total past 100, or the group already has a shadow). The groups remember a
 * member by namespace and Mapping name (unique in a namespace) until groups_finish; its route
 * is left as it is. */
int groups_admit(struct groups *g, const char *key, const char *ns, const char *svc,
                 struct mapping *m, char *msg, size_t msglen);

/* Returns the cluster index for a shadow Mapping's upstream (adding the cluster). */
typedef uint32_t (*groups_cluster_cb)(void *arg, const struct mapping *shadow);
/* Called for a shadow whose group has no Mapping to mirror. */
typedef void (*groups_orphan_cb)(void *arg, const char *ns, const char *svc,
                                 const struct mapping *shadow);

/* Reorders t's routes (sorted by route_sort) so that each group's members follow its leader,
 * sets the leader's group_size and every member's weight (groups of one: neither), and
 * attaches shadows to every member; those routes get a policy of their own
 * (route_policy_mut), the others are left as they are. */
void groups_finish(struct groups *g, struct route_table *t, groups_cluster_cb cluster,
                   groups_orphan_cb orphan, void *arg);

#endif
