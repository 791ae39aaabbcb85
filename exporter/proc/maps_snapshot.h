/* One read of /proc/PID/maps shared by everything that looks at a process when it is first sampled: the
 * kernel builds the text anew (walking the mappings, naming each file) for every read. */
#ifndef ANORAK_MAPS_SNAPSHOT_H
#define ANORAK_MAPS_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Larger maps (thousands of mappings) are not snapshotted: each consumer reads them itself. */
#define MAPS_SNAPSHOT_MAX_BYTES (4u << 20)

/* Fields of /proc/PID/stat that tell one program's address space from the next one's. */
#define MAPS_SNAPSHOT_IDENTITY_FIELDS 10

struct maps_snapshot; /* immutable and refcounted: handed between threads */

/* Which program a pid runs, from /proc/PID/stat: the address-space fields an exec sets, and its start
 * time (a reused pid has another). Small enough to keep where the mappings' text is not. */
struct proc_identity {
	uint64_t fields[MAPS_SNAPSHOT_IDENTITY_FIELDS];
	uint64_t start_ticks; /* starttime: clock ticks after boot */
};

int proc_identity_read(const char *proc_root, int pid, struct proc_identity *out);
/* Whether pid still runs the program id was read from: no exec, exit (nor reuse of the pid) since.
 * False when in doubt. */
bool proc_identity_current(const struct proc_identity *id, const char *proc_root, int pid);
/* Seconds since the process started. */
double proc_identity_age_seconds(const struct proc_identity *id);

/* Reads proc_root/pid/maps whole, with the process's identity (so a later exec can be told).
 * -EFBIG above MAPS_SNAPSHOT_MAX_BYTES; other negative errno when unreadable. */
int maps_snapshot_read(const char *proc_root, int pid, struct maps_snapshot **out);
struct maps_snapshot *maps_snapshot_get(struct maps_snapshot *m);
void maps_snapshot_put(struct maps_snapshot *m);

/* A stream of pid's mappings for procmaps_foreach: m's text when m is pid's, else proc_root/pid/maps
 * read afresh (m NULL: retries, refreshes). NULL with errno set. */
FILE *maps_snapshot_open(const struct maps_snapshot *m, const char *proc_root, int pid);

/* Whether m's process still runs the program m was read from: no exec (nor exit) since. False when in
 * doubt. */
bool maps_snapshot_current(const struct maps_snapshot *m, const char *proc_root);
/* The identity read with m's text. */
const struct proc_identity *maps_snapshot_identity(const struct maps_snapshot *m);

/* The identity fields from the text of a /proc/PID/stat; -EINVAL when some are missing. */
int maps_snapshot_parse_identity(const char *stat, uint64_t id[MAPS_SNAPSHOT_IDENTITY_FIELDS]);

#endif
