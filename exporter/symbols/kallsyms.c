#include "exporter/symbols/kallsyms.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 1024             /* KSYM_NAME_LEN is 512, module names 56 */
/* Symbols have no size: one ends where the next begins, but never further than this, so an address in
 * the gap between the core kernel and the modules is not pinned on the last function before it. */
#define MAX_EXTENT (1024 * 1024)

/* A parsed symbol, while the table is built; its bytes become the symbol's address slot afterwards. */
struct ksym {
	uint64_t addr;
	uint32_t name;  /* offset in the pool */
	uint32_t order; /* rank of an alias, then line number: keeps the choice deterministic */
};

/* A module's symbols are one run of lines (file order) or of indexes (sorted): one entry per run names
 * their module. */
struct kmod_run {
	uint32_t first;  /* the run's first line (while parsing) or symbol index (in the table) */
	uint32_t module; /* offset in pool; 0 is "" (the core kernel) */
};

/* While parsing: the text symbols of the file in file order, one pool of names that the table keeps,
 * and the module runs by line. The table is built in these buffers, without a second copy. */
struct kparse {
	struct ksym *syms;
	size_t count, cap;
	char *pool;
	size_t pool_len, pool_cap;
	struct kmod_run *runs;
	size_t nruns, runs_cap;
	uint32_t prev_name; /* the last name added, which the next may share */
	size_t prev_len;
};

/* The table kept for lookups: 12 bytes a symbol plus its name, which a kernel built with function
 * padding shares with the __pfx_ symbol just before it (half of all symbols). */
struct kallsyms {
	uint64_t *addrs; /* sorted, unique */
	uint32_t *names; /* offsets in pool */
	size_t count;
	struct kmod_run *runs;
	size_t nruns;
	char *pool;
};

/* Grows *buf (of *cap elements of size bytes) to hold one more than n, doubling from first. */
static int grow(void **buf, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t c = *cap ? *cap * 2 : first;
	void *p;

	if (n < *cap)
		return 0;
	while (c <= n)
		c *= 2;
	p = realloc(*buf, c * size);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = c;
	return 0;
}

static int pool_add(struct kparse *k, const char *s, size_t len, uint32_t *off)
{
	int err;

	if (k->pool_len + len + 1 > UINT32_MAX)
		return -E2BIG;
	err = grow((void **)&k->pool, &k->pool_cap, k->pool_len + len, 1, 64 * 1024);
	if (err)
		return err;
	memcpy(k->pool + k->pool_len, s, len);
	k->pool[k->pool_len + len] = '\0';
	*off = (uint32_t)k->pool_len;
	k->pool_len += len + 1;
	return 0;
}

/* The name's offset: inside the previous name when it ends with this one (foo after __pfx_foo). */
static int name_add(struct kparse *k, const char *name, size_t len, uint32_t *off)
{
	int err;

	if (k->prev_len >= len && memcmp(k->pool + k->prev_name + k->prev_len - len, name, len) == 0) {
		*off = k->prev_name + (uint32_t)(k->prev_len - len);
		return 0;
	}
	err = pool_add(k, name, len, off);
	if (err)
		return err;
	k->prev_name = *off;
	k->prev_len = len;
	return 0;
}

static int syms_push(struct kparse *k, size_t max_symbols, const struct ksym *s)
{
	int err;

	if (k->count == max_symbols)
		return -E2BIG;
	err = grow((void **)&k->syms, &k->cap, k->count, sizeof(*k->syms), 4096);
	if (err)
		return err;
	k->syms[k->count++] = *s;
	return 0;
}

static bool is_text(char type)
{
	return type == 't' || type == 'T' || type == 'w' || type == 'W';
}

/* One parsed line: pointers into the line buffer. */
struct kline {
	uint64_t addr;
	char type;
	const char *name, *module;
	size_t name_len, module_len;
};

static int parse_line(char *line, struct kline *l)
{
	char *end, *p;

	line[strcspn(line, "\n")] = '\0';
	if (line[0] < '0' || (line[0] > '9' && (line[0] < 'a' || line[0] > 'f')))
		return -EINVAL;
	errno = 0;
	l->addr = strtoull(line, &end, 16);
	if (errno || end - line > 16 || end[0] != ' ' || !end[1] || end[2] != ' ')
		return -EINVAL;
	l->type = end[1];
	l->name = end + 3;
	l->name_len = strcspn(l->name, "\t ");
	if (l->name_len == 0)
		return -EINVAL;
	l->module = "";
	l->module_len = 0;
	p = (char *)l->name + l->name_len;
	if (*p == '\0')
		return 0;
	/* "\t[module]" */
	if (p[0] != '\t' || p[1] != '[' || !(end = strchr(p + 2, ']')) || end[1] != '\0' || end == p + 2)
		return -EINVAL;
	l->module = p + 2;
	l->module_len = (size_t)(end - (p + 2));
	return 0;
}

/* A module's symbols come in one run of lines: its name is interned once per run. */
static int module_add(struct kparse *k, const struct kline *l, uint32_t line_no)
{
	const char *last = k->pool + (k->nruns ? k->runs[k->nruns - 1].module : 0);
	struct kmod_run r = { .first = line_no };
	int err;

	if (k->nruns && strlen(last) == l->module_len && memcmp(last, l->module, l->module_len) == 0)
		return 0;
	if (l->module_len) {
		err = pool_add(k, l->module, l->module_len, &r.module);
		if (err)
			return err;
	}
	err = grow((void **)&k->runs, &k->runs_cap, k->nruns, sizeof(*k->runs), 16);
	if (err)
		return err;
	k->runs[k->nruns++] = r;
	return 0;
}

static int add_line(struct kparse *k, size_t max_symbols, const struct kline *l, uint32_t line_no)
{
	struct ksym s = { .addr = l->addr, .order = line_no };
	int err;

	/* Lowercase (local) after uppercase at the same address: global names are the ones people know. */
	if (l->type == 't' || l->type == 'w')
		s.order |= 1u << 31;
	err = module_add(k, l, line_no);
	if (!err)
		err = name_add(k, l->name, l->name_len, &s.name);
	if (!err)
		err = syms_push(k, max_symbols, &s);
	return err;
}

static int cmp_ksym(const struct ksym *x, const struct ksym *y)
{
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void sift_down(struct ksym *s, size_t root, size_t n)
{
	for (size_t child; (child = 2 * root + 1) < n; root = child) {
		if (child + 1 < n && cmp_ksym(&s[child], &s[child + 1]) < 0)
			child++;
		if (cmp_ksym(&s[root], &s[child]) >= 0)
			return;
		struct ksym t = s[root];

		s[root] = s[child];
		s[child] = t;
	}
}

/* In place (qsort would take a copy of the array): the file is sorted but for a few lines, most often. */
static void sort_syms(struct ksym *s, size_t n)
{
	size_t i = 1;

	while (i < n && cmp_ksym(&s[i - 1], &s[i]) < 0)
		i++;
	if (i >= n)
		return;
	for (i = n / 2; i-- > 0;)
		sift_down(s, i, n);
	for (i = n; i-- > 1;) {
		struct ksym t = s[0];

		s[0] = s[i];
		s[i] = t;
		sift_down(s, 0, i);
	}
}

static void sort_dedup(struct kparse *k)
{
	size_t m = 0;

	sort_syms(k->syms, k->count);
	for (size_t i = 0; i < k->count; i++) {
		if (m && k->syms[m - 1].addr == k->syms[i].addr)
			continue;
		k->syms[m++] = k->syms[i];
	}
	k->count = m;
}

static int parse_all(FILE *f, size_t max_symbols, struct kparse *k, size_t *zeros)
{
	char line[LINE_MAX_BYTES];
	uint32_t line_no = 0;
	uint32_t empty;
	int err;

	err = pool_add(k, "", 0, &empty); /* offset 0: the core kernel's module name */
	if (err)
		return err;
	while (fgets(line, sizeof(line), f)) {
		struct kline l;

		line_no++;
		if (!strchr(line, '\n') && !feof(f)) {
			int c;

			while ((c = getc(f)) != EOF && c != '\n')
				;
			continue;
		}
		if (parse_line(line, &l) || !is_text(l.type))
			continue;
		if (l.addr == 0) {
			(*zeros)++;
			continue;
		}
		err = add_line(k, max_symbols, &l, line_no & ~(1u << 31));
		if (err)
			return err;
	}
	return ferror(f) ? -EIO : 0;
}

/* The last of runs[0, n) that starts at or before first; run 0 starts at the first line or symbol. */
static const struct kmod_run *run_of(const struct kmod_run *runs, size_t n, uint32_t first)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (runs[mid].first <= first)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &runs[lo - 1];
}

/* Module (pool offset) of a symbol: the run of lines holding its line. */
static uint32_t module_of_line(const struct kparse *p, uint32_t order)
{
	return run_of(p->runs, p->nruns, order & ~(1u << 31))->module;
}

/* The module runs of the sorted symbols: a module whose addresses interleave with another's has more
 * than one. */
static int sorted_runs(const struct kparse *p, struct kallsyms *k)
{
	size_t cap = 0;

	for (size_t i = 0; i < p->count; i++) {
		uint32_t m = module_of_line(p, p->syms[i].order);
		int err;

		if (k->nruns && (k->runs[k->nruns - 1].module == m ||
				 strcmp(p->pool + k->runs[k->nruns - 1].module, p->pool + m) == 0))
			continue;
		err = grow((void **)&k->runs, &cap, k->nruns, sizeof(*k->runs), 16);
		if (err)
			return err;
		k->runs[k->nruns++] = (struct kmod_run){ .first = (uint32_t)i, .module = m };
	}
	return 0;
}

/* The sorted symbols into the lookup table: names into their own array, addresses packed in place over
 * the parse array (slot i is written after entries up to i were read), and every buffer cut to size. */
static int build(struct kparse *p, struct kallsyms *k)
{
	int err = sorted_runs(p, k);
	void *shrunk;

	if (err)
		return err;
	k->names = malloc(p->count * sizeof(*k->names));
	if (!k->names)
		return -ENOMEM;
	for (size_t i = 0; i < p->count; i++) {
		uint64_t addr = p->syms[i].addr;

		k->names[i] = p->syms[i].name;
		memcpy((char *)p->syms + i * sizeof(addr), &addr, sizeof(addr));
	}
	k->count = p->count;
	k->addrs = (uint64_t *)p->syms;
	p->syms = NULL;
	if ((shrunk = realloc(k->addrs, k->count * sizeof(*k->addrs))))
		k->addrs = shrunk;
	if ((shrunk = realloc(k->runs, k->nruns * sizeof(*k->runs))))
		k->runs = shrunk;
	k->pool = p->pool;
	p->pool = NULL;
	if ((shrunk = realloc(k->pool, p->pool_len)))
		k->pool = shrunk;
	return 0;
}

static void kparse_free(struct kparse *p)
{
	free(p->syms);
	free(p->pool);
	free(p->runs);
}

int kallsyms_parse(FILE *f, size_t max_symbols, struct kallsyms **out)
{
	struct kparse p = { 0 };
	struct kallsyms *k = NULL;
	size_t zeros = 0;
	int err;

	err = parse_all(f, max_symbols, &p, &zeros);
	if (!err && p.count == 0)
		err = zeros ? -EPERM : -ENOENT;
	if (!err) {
		sort_dedup(&p);
		k = calloc(1, sizeof(*k));
		err = k ? build(&p, k) : -ENOMEM;
	}
	kparse_free(&p);
	if (err) {
		kallsyms_free(k);
		return err;
	}
	*out = k;
	return 0;
}

int kallsyms_load(const char *path, size_t max_symbols, struct kallsyms **out)
{
	FILE *f = fopen(path, "re");
	int err;

	if (!f)
		return -errno;
	err = kallsyms_parse(f, max_symbols, out);
	fclose(f);
	return err;
}

void kallsyms_free(struct kallsyms *k)
{
	if (!k)
		return;
	free(k->addrs);
	free(k->names);
	free(k->runs);
	free(k->pool);
	free(k);
}

size_t kallsyms_count(const struct kallsyms *k)
{
	return k->count;
}

/* Module of symbol idx: the run of sorted symbols holding it. */
static const char *module_of(const struct kallsyms *k, size_t idx)
{
	return k->pool + run_of(k->runs, k->nruns, (uint32_t)idx)->module;
}

const char *kallsyms_lookup(const struct kallsyms *k, uint64_t addr, const char **module)
{
	size_t lo = 0, hi = k->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (k->addrs[mid] <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || addr - k->addrs[lo - 1] >= MAX_EXTENT)
		return NULL;
	*module = module_of(k, lo - 1);
	return k->pool + k->names[lo - 1];
}
