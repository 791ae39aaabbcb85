#include "exporter/symbols/perfmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* Entries examined below an address when looking for the latest region covering it: overlaps come from
 * code memory reuse and are shallow. */
#define OVERLAP_SCAN 32

struct pm_entry {
	uint64_t start, size;
	uint32_t name; /* offset in pool */
	uint32_t seq;  /* line order: later wins */
};

struct perfmap {
	struct pm_entry *e;
	size_t count, cap;
	char *pool;
	size_t pool_len, pool_cap;
};

/* Returns buf grown to hold need elements (unchanged if it already does), NULL when out of memory. */
static void *grow(void *buf, size_t *cap, size_t need, size_t elem, size_t first)
{
	size_t c = *cap ? *cap : first;
	void *p;

	if (need <= *cap)
		return buf;
	while (c < need)
		c *= 2;
	p = realloc(buf, c * elem);
	if (p)
		*cap = c;
	return p;
}

static int parse_hex(const char **p, uint64_t *v)
{
	const char *s = *p;
	char *end;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	/* strtoull would accept blanks and a sign first. */
	if (text_hex_digit(*s) < 0)
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 16);
	if (errno || *end != ' ')
		return -EINVAL;
	*p = end + 1;
	return 0;
}

static int add_line(struct perfmap *m, const char *line, uint32_t seq)
{
	uint64_t start, size;
	const char *p = line;
	size_t len;
	void *grown;

	if (parse_hex(&p, &start) || parse_hex(&p, &size) || size == 0 || start + size < start)
		return 0;
	len = strcspn(p, "\r\n");
	if (len == 0 || m->pool_len + len + 1 > UINT32_MAX)
		return 0;
	if (!(grown = grow(m->pool, &m->pool_cap, m->pool_len + len + 1, 1, 64 * 1024)))
		return -ENOMEM;
	m->pool = grown;
	if (!(grown = grow(m->e, &m->cap, m->count + 1, sizeof(*m->e), 1024)))
		return -ENOMEM;
	m->e = grown;
	memcpy(m->pool + m->pool_len, p, len);
	m->pool[m->pool_len + len] = '\0';
	m->e[m->count++] = (struct pm_entry){ start, size, (uint32_t)m->pool_len, seq };
	m->pool_len += len + 1;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct pm_entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int perfmap_parse(FILE *f, size_t max_entries, struct perfmap **out)
{
	char line[PERFMAP_LINE_MAX];
	struct perfmap *m;
	uint32_t seq = 0;
	int err = 0;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	while (m->count < max_entries && seq < UINT32_MAX && fgets(line, sizeof(line), f)) {
		if (!strchr(line, '\n') && !feof(f)) {
			int c;

			while ((c = getc(f)) != EOF && c != '\n')
				;
			continue;
		}
		err = add_line(m, line, seq++);
		if (err)
			break;
	}
	if (!err && ferror(f))
		err = -EIO;
	if (err) {
		perfmap_free(m);
		return err;
	}
	if (m->count > 1)
		qsort(m->e, m->count, sizeof(*m->e), cmp_entry);
	*out = m;
	return 0;
}

void perfmap_free(struct perfmap *p)
{
	if (!p)
		return;
	free(p->e);
	free(p->pool);
	free(p);
}

size_t perfmap_count(const struct perfmap *p)
{
	return p->count;
}

size_t perfmap_bytes(const struct perfmap *p)
{
	return sizeof(*p) + p->cap * sizeof(*p->e) + p->pool_cap;
}

const char *perfmap_lookup(const struct perfmap *p, uint64_t addr)
{
	const struct pm_entry *best = NULL;
	size_t lo = 0, hi = p->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->e[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo, n = 0; i > 0 && n < OVERLAP_SCAN; i--, n++) {
		const struct pm_entry *e = &p->e[i - 1];

		if (addr - e->start < e->size && (!best || e->seq > best->seq))
			best = e;
	}
	return best ? p->pool + best->name : NULL;
}
