#include "exporter/proc/procmaps.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

#define DELETED_SUFFIX " (deleted)"
/* The kernel prints at most PATH_MAX of path after ~100 bytes of fields. */
#define LINE_MAX_BYTES (PATH_MAX + 256)

/* Hex number of 1..max_digits digits at *p; advances *p past it. */
static int parse_hex(const char **p, int max_digits, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	int n = 0;

	for (;; s++, n++) {
		int d = text_hex_digit(*s);

		if (d < 0)
			break;
		if (n == max_digits)
			return -EINVAL;
		x = x << 4 | (uint64_t)d;
	}
	if (n == 0)
		return -EINVAL;
	*v = x;
	*p = s;
	return 0;
}

static int parse_dec(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (x > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	*p = s;
	return 0;
}

static int expect(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

static int parse_perms(const char **p, struct procmaps_entry *e)
{
	const char *s = *p;

	if ((s[0] != 'r' && s[0] != '-') || (s[1] != 'w' && s[1] != '-') || (s[2] != 'x' && s[2] != '-') ||
	    (s[3] != 'p' && s[3] != 's'))
		return -EINVAL;
	e->readable = s[0] == 'r';
	e->writable = s[1] == 'w';
	e->executable = s[2] == 'x';
	e->shared = s[3] == 's';
	*p = s + 4;
	return 0;
}

/* Path: everything after the blanks that pad the inode column, minus the newline and " (deleted)". */
static int parse_path(const char *s, struct procmaps_entry *e)
{
	size_t len;

	while (*s == ' ' || *s == '\t')
		s++;
	len = strcspn(s, "\n");
	if (s[len] == '\n' && s[len + 1] != '\0')
		return -EINVAL;
	e->deleted = false;
	if (len >= sizeof(DELETED_SUFFIX) - 1 &&
	    memcmp(s + len - (sizeof(DELETED_SUFFIX) - 1), DELETED_SUFFIX, sizeof(DELETED_SUFFIX) - 1) == 0) {
		len -= sizeof(DELETED_SUFFIX) - 1;
		e->deleted = true;
	}
	if (len >= sizeof(e->path))
		return -ENAMETOOLONG;
	memcpy(e->path, s, len);
	e->path[len] = '\0';
	return 0;
}

int procmaps_parse_line(const char *line, struct procmaps_entry *e)
{
	uint64_t major, minor;
	const char *p = line;

	if (parse_hex(&p, 16, &e->start) || expect(&p, '-') || parse_hex(&p, 16, &e->end) ||
	    expect(&p, ' ') || parse_perms(&p, e) || expect(&p, ' ') || parse_hex(&p, 16, &e->offset) ||
	    expect(&p, ' ') || parse_hex(&p, 8, &major) || expect(&p, ':') || parse_hex(&p, 8, &minor) ||
	    expect(&p, ' ') || parse_dec(&p, &e->inode))
		return -EINVAL;
	if (e->end <= e->start || major > UINT32_MAX || minor > UINT32_MAX)
		return -EINVAL;
	e->dev_major = (uint32_t)major;
	e->dev_minor = (uint32_t)minor;
	/* Fields end with the inode: either the line ends or blanks lead to the path. */
	if (*p != '\0' && *p != '\n' && *p != ' ' && *p != '\t')
		return -EINVAL;
	return parse_path(p, e);
}

/* Skips the rest of a line that did not fit in the buffer. */
static void skip_line(FILE *f)
{
	int c;

	while ((c = getc(f)) != EOF && c != '\n')
		;
}

int procmaps_foreach(FILE *f, int (*cb)(const struct procmaps_entry *e, void *ctx), void *ctx)
{
	struct procmaps_entry *e;
	char *line;
	int ret = 0;

	/* Heap: both are PATH_MAX-sized and this runs on threads with small stacks. */
	line = malloc(LINE_MAX_BYTES);
	e = malloc(sizeof(*e));
	if (!line || !e) {
		free(line);
		free(e);
		return -ENOMEM;
	}
	while (fgets(line, LINE_MAX_BYTES, f)) {
		size_t len = strlen(line);

		if (len && line[len - 1] != '\n' && !feof(f)) {
			skip_line(f);
			continue;
		}
		if (procmaps_parse_line(line, e))
			continue;
		ret = cb(e, ctx);
		if (ret)
			break;
	}
	if (!ret && ferror(f))
		ret = -EIO;
	free(line);
	free(e);
	return ret;
}
