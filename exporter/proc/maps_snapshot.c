#include "exporter/proc/maps_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_READ_BYTES (16u << 10)
/* Fields of /proc/PID/stat that a new program's address space sets (x86-64 randomizes the stack's, so
 * they change at nearly every exec): startcode, endcode, startstack, then start_data through env_end. */
static const int identity_fields[MAPS_SNAPSHOT_IDENTITY_FIELDS] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };

struct maps_snapshot {
	atomic_int refs;
	int pid;
	uint64_t identity[MAPS_SNAPSHOT_IDENTITY_FIELDS];
	size_t len;
	char text[];
};

int maps_snapshot_parse_identity(const char *stat, uint64_t id[MAPS_SNAPSHOT_IDENTITY_FIELDS])
{
	int field = 2, want = 0;
	const char *p;

	/* The command name (field 2) may hold blanks and parentheses: fields resume after the last ')'. */
	p = strrchr(stat, ')');
	while (p && want < MAPS_SNAPSHOT_IDENTITY_FIELDS) {
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
		if (++field == identity_fields[want])
			id[want++] = strtoull(p, NULL, 10);
	}
	return want == MAPS_SNAPSHOT_IDENTITY_FIELDS ? 0 : -EINVAL;
}

static int read_identity(const char *proc_root, int pid, uint64_t *id)
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
	return maps_snapshot_parse_identity(buf, id);
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
	uint64_t identity[MAPS_SNAPSHOT_IDENTITY_FIELDS];
	struct maps_snapshot *m = NULL;
	char path[PATH_MAX];
	int fd, err;

	/* Identity first: an exec between the two reads makes the snapshot look stale, never current. */
	err = read_identity(proc_root, pid, identity);
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
	memcpy(m->identity, identity, sizeof(identity));
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
	uint64_t identity[MAPS_SNAPSHOT_IDENTITY_FIELDS];

	return read_identity(proc_root, m->pid, identity) == 0 &&
	       memcmp(identity, m->identity, sizeof(identity)) == 0;
}
