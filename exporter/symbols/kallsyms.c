#include "exporter/symbols/kallsyms.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 1024             /* KSYM_NAME_LEN is 512, module names 56 */
/* Symbols have no size: one ends where the next begins, but never further than this, so an address in
 * the gap between the core kernel and the modules is not pinned on the last function before it. */
#define MAX_EXTENT (1024 * 1024)

/* A parsed symbol, while the table is built. */
struct ksym {
	uint64_t addr;
	uint32_t name, module; /* offsets in the parse pool; module 0 is "" */
	uint32_t order;        /* rank of an alias, then line number: keeps the choice deterministic */
};

/* While parsing: the text symbols of the file, in file order. */
struct kparse {
	struct ksym *syms;
	size_t count, cap;
	char *pool;
	size_t pool_len, pool_cap;
};

/* Sorted, a module's symbols are one run of indexes: one entry per run names their module. */
struct kmod_run {
	uint32_t first;  /* index of the run's first symbol */
	uint32_t module; /* offset in pool; 0 is "" (the core kernel) */
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

static int pool_add(struct kparse *k, const char *s, size_t len, uint32_t *off)
{
	if (k->pool_len + len + 1 > UINT32_MAX)
		return -E2BIG;
	if (k->pool_len + len + 1 > k->pool_cap) {
		size_t cap = k->pool_cap ? k->pool_cap * 2 : 64 * 1024;
		char *p;

		while (cap < k->pool_len + len + 1)
			cap *= 2;
		p = realloc(k->pool, cap);
		if (!p)
			return -ENOMEM;
		k->pool = p;
		k->pool_cap = cap;
	}
	memcpy(k->pool + k->pool_len, s, len);
	k->pool[k->pool_len + len] = '\0';
	*off = (uint32_t)k->pool_len;
	k->pool_len += len + 1;
	return 0;
}

static int syms_push(struct kparse *k, size_t max_symbols, const struct ksym *s)
{
	if (k->count == max_symbols)
		return -E2BIG;
	if (k->count == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4096;
		struct ksym *p;

		if (cap > max_symbols)
			cap = max_symbols;
		p = realloc(k->syms, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		k->syms = p;
		k->cap = cap;
	}
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

static int add_line(struct kparse *k, size_t max_symbols, const struct kline *l, uint32_t line_no,
		    uint32_t *last_module)
{
	struct ksym s = { .addr = l->addr, .order = line_no };
	int err;

	/* Lowercase (local) after uppercase at the same address: global names are the ones people know. */
	if (l->type == 't' || l->type == 'w')
		s.order |= 1u << 31;
	err = pool_add(k, l->name, l->name_len, &s.name);
	if (err)
		return err;
	/* A module's symbols come in one run: intern its name once per run. */
	if (l->module_len == 0) {
		s.module = 0;
	} else if (*last_module && strlen(k->pool + *last_module) == l->module_len &&
		   memcmp(k->pool + *last_module, l->module, l->module_len) == 0) {
		s.module = *last_module;
	} else {
		err = pool_add(k, l->module, l->module_len, &s.module);
		if (err)
			return err;
		*last_module = s.module;
	}
	return syms_push(k, max_symbols, &s);
}

static int cmp_ksym(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void sort_dedup(struct kparse *k)
{
	size_t m = 0;

	if (k->count > 1)
		qsort(k->syms, k->count, sizeof(*k->syms), cmp_ksym);
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
	uint32_t line_no = 0, last_module = 0;
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
		err = add_line(k, max_symbols, &l, line_no & ~(1u << 31), &last_module);
		if (err)
			return err;
	}
	return ferror(f) ? -EIO : 0;
}

/* Whether sorted symbol i starts a run of its module's symbols. */
static bool starts_run(const struct kparse *p, size_t i)
{
	const struct ksym *s = p->syms;

	return i == 0 || (s[i].module != s[i - 1].module &&
			  strcmp(p->pool + s[i].module, p->pool + s[i - 1].module) != 0);
}

/* Bytes and module runs the table needs at most, before names are shared. */
static size_t table_size(const struct kparse *p, size_t *nruns)
{
	size_t len = 1;

	*nruns = 0;
	for (size_t i = 0; i < p->count; i++) {
		len += strlen(p->pool + p->syms[i].name) + 1;
		if (starts_run(p, i)) {
			len += strlen(p->pool + p->syms[i].module) + 1;
			(*nruns)++;
		}
	}
	return len;
}

/* The sorted symbols into the lookup table: exact-size arrays, and a pool where a name that ends the
 * previous symbol's name (foo after __pfx_foo) points into it instead of being copied. */
static int build(const struct kparse *p, struct kallsyms *k)
{
	size_t cap = table_size(p, &k->nruns), len = 0, prev_len = 0, r = 0;
	char *pool;

	if (cap > UINT32_MAX)
		return -E2BIG;
	k->addrs = malloc(p->count * sizeof(*k->addrs));
	k->names = malloc(p->count * sizeof(*k->names));
	k->runs = malloc(k->nruns * sizeof(*k->runs));
	k->pool = malloc(cap);
	if (!k->addrs || !k->names || !k->runs || !k->pool)
		return -ENOMEM;
	k->count = p->count;
	k->pool[len++] = '\0'; /* offset 0: the core kernel's module name */
	for (size_t i = 0; i < p->count; i++) {
		const char *name = p->pool + p->syms[i].name, *mod = p->pool + p->syms[i].module;
		size_t n = strlen(name), m;

		k->addrs[i] = p->syms[i].addr;
		if (starts_run(p, i)) {
			m = strlen(mod);
			k->runs[r++] = (struct kmod_run){ .first = (uint32_t)i, .module = m ? (uint32_t)len : 0 };
			if (m) {
				memcpy(k->pool + len, mod, m + 1);
				len += m + 1;
				prev_len = 0; /* the module name now ends the pool: no name to share */
			}
		}
		if (prev_len >= n && memcmp(k->pool + k->names[i - 1] + prev_len - n, name, n) == 0) {
			k->names[i] = k->names[i - 1] + (uint32_t)(prev_len - n);
		} else {
			k->names[i] = (uint32_t)len;
			memcpy(k->pool + len, name, n + 1);
			len += n + 1;
		}
		prev_len = n;
	}
	pool = realloc(k->pool, len);
	if (pool)
		k->pool = pool;
	return 0;
}

static void kparse_free(struct kparse *p)
{
	free(p->syms);
	free(p->pool);
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

/* Module of symbol idx: the last run starting at or before it. */
static const char *module_of(const struct kallsyms *k, size_t idx)
{
	size_t lo = 0, hi = k->nruns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (k->runs[mid].first <= idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return k->pool + k->runs[lo - 1].module; /* run 0 starts at index 0 */
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
