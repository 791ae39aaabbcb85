#include "exporter/proc/maps_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FIRST_READ_BYTES (16u << 10)
/* Fields of /proc/PID/stat that a new program's address space sets (x86-64 randomizes the stack's, so
 * they change at nearly every exec): startcode, endcode, startstack, then start_data through env_end. */
static const int identity_fields[MAPS_SNAPSHOT_IDENTITY_FIELDS] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
static const int starttime_field = 22;

struct maps_snapshot {
	atomic_int refs;
	int pid;
	struct proc_identity identity;
	size_t len;
	char text[];
};

/* The fields numbered which[0] < which[1] < ... of a /proc/PID/stat text into out. */
static int parse_fields(const char *stat, const int *which, int n, uint64_t *out)
{
	int field = 2, want = 0;
	const char *p;

	/* The command name (field 2) may hold blanks and parentheses: fields resume after the last ')'. */
	p = strrchr(stat, ')');
	while (p && want < n) {
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
		if (++field == which[want])
			out[want++] = strtoull(p, NULL, 10);
	}
	return want == n ? 0 : -EINVAL;
}

int maps_snapshot_parse_identity(const char *stat, uint64_t id[MAPS_SNAPSHOT_IDENTITY_FIELDS])
{
	return parse_fields(stat, identity_fields, MAPS_SNAPSHOT_IDENTITY_FIELDS, id);
}

int proc_identity_read(const char *proc_root, int pid, struct proc_identity *out)
{
	/* 52 fields of at most 20 digits and a 16-byte name fit with room to spare. */
	char path[PATH_MAX], buf[2048];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%d/stat", proc_root, pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EINVAL;
	buf[n] = '\0';
	return maps_snapshot_parse_identity(buf, out->fields) ?:
	       parse_fields(buf, &starttime_field, 1, &out->start_ticks);
}

bool proc_identity_current(const struct proc_identity *id, const char *proc_root, int pid)
{
	struct proc_identity now;

	return proc_identity_read(proc_root, pid, &now) == 0 && memcmp(&now, id, sizeof(now)) == 0;
}

double proc_identity_age_seconds(const struct proc_identity *id)
{
	struct timespec boot;
	long ticks = sysconf(_SC_CLK_TCK);

	clock_gettime(CLOCK_BOOTTIME, &boot);
	return (double)boot.tv_sec + boot.tv_nsec / 1e9 - (double)id->start_ticks / (double)(ticks > 0 ? ticks : 100);
}

/* The whole file into a buffer that grows up to MAPS_SNAPSHOT_MAX_BYTES (plus a NUL). */
static int read_text(int fd, struct maps_snapshot **m)
{
	size_t cap = FIRST_READ_BYTES, len = 0;
	struct maps_snapshot *grown;
	ssize_t n;

	*m = malloc(sizeof(**m) + cap + 1);
	if (!*m)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap == MAPS_SNAPSHOT_MAX_BYTES)
				return -EFBIG;
			cap = cap * 2 > MAPS_SNAPSHOT_MAX_BYTES ? MAPS_SNAPSHOT_MAX_BYTES : cap * 2;
			grown = realloc(*m, sizeof(**m) + cap + 1);
			if (!grown)
				return -ENOMEM;
			*m = grown;
		}
		n = read(fd, (*m)->text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	(*m)->text[len] = '\0';
	(*m)->len = len;
	return 0;
}

int maps_snapshot_read(const char *proc_root, int pid, struct maps_snapshot **out)
{
	struct proc_identity identity;
	struct maps_snapshot *m = NULL;
	char path[PATH_MAX];
	int fd, err;

	/* Identity first: an exec between the two reads makes the snapshot look stale, never current. */
	err = proc_identity_read(proc_root, pid, &identity);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/%d/maps", proc_root, pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = read_text(fd, &m);
	close(fd);
	if (err) {
		free(m);
		return err;
	}
	atomic_init(&m->refs, 1);
	m->pid = pid;
	m->identity = identity;
	*out = m;
	return 0;
}

struct maps_snapshot *maps_snapshot_get(struct maps_snapshot *m)
{
	atomic_fetch_add(&m->refs, 1);
	return m;
}

void maps_snapshot_put(struct maps_snapshot *m)
{
	if (m && atomic_fetch_sub(&m->refs, 1) == 1)
		free(m);
}

FILE *maps_snapshot_open(const struct maps_snapshot *m, const char *proc_root, int pid)
{
	char path[PATH_MAX];

	/* fmemopen takes no empty buffer on older C libraries: the NUL ends an empty text as well. */
	if (m && m->pid == pid)
		return fmemopen((void *)m->text, m->len ? m->len : 1, "r");
	snprintf(path, sizeof(path), "%s/%d/maps", proc_root, pid);
	return fopen(path, "re");
}

bool maps_snapshot_current(const struct maps_snapshot *m, const char *proc_root)
{
	return proc_identity_current(&m->identity, proc_root, m->pid);
}

const struct proc_identity *maps_snapshot_identity(const struct maps_snapshot *m)
{
	return &m->identity;
}
