#include "labels/labelset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Index of name, or of where it would be inserted (sets *found accordingly). */
static size_t find(const struct labelset *ls, const char *name, int *found)
{
	size_t lo = 0, hi = ls->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(ls->labels[mid].name, name);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static void remove_at(struct labelset *ls, size_t i)
{
	free(ls->labels[i].name);
	free(ls->labels[i].value);
	memmove(&ls->labels[i], &ls->labels[i + 1], (ls->n - i - 1) * sizeof(ls->labels[0]));
	ls->n--;
}

static int insert_at(struct labelset *ls, size_t i, const char *name, const char *value)
{
	char *n = strdup(name), *v = strdup(value);

	if (!n || !v)
		goto nomem;
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 8;
		struct label *grown = realloc(ls->labels, cap * sizeof(*grown));

		if (!grown)
			goto nomem;
		ls->labels = grown;
		ls->cap = cap;
	}
	memmove(&ls->labels[i + 1], &ls->labels[i], (ls->n - i) * sizeof(ls->labels[0]));
	ls->labels[i] = (struct label){ .name = n, .value = v };
	ls->n++;
	return 0;
nomem:
	free(n);
	free(v);
	return -ENOMEM;
}

int labelset_set(struct labelset *ls, const char *name, const char *value)
{
	int found;
	size_t i = find(ls, name, &found);

	if (!value || !*value) {
		if (found)
			remove_at(ls, i);
		return 0;
	}
	if (!found)
		return insert_at(ls, i, name, value);

	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	free(ls->labels[i].value);
	ls->labels[i].value = v;
	return 0;
}

const char *labelset_get(const struct labelset *ls, const char *name)
{
	int found;
	size_t i = find(ls, name, &found);

	return found ? ls->labels[i].value : NULL;
}

int labelset_copy(struct labelset *dst, const struct labelset *src)
{
	struct labelset copy = { 0 };

	/* Appending in order keeps the copy sorted without searching. */
	for (size_t i = 0; i < src->n; i++) {
		if (insert_at(&copy, i, src->labels[i].name, src->labels[i].value)) {
			labelset_free(&copy);
			return -ENOMEM;
		}
	}
	labelset_free(dst);
	*dst = copy;
	return 0;
}

int labelset_equal(const struct labelset *a, const struct labelset *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->labels[i].name, b->labels[i].name) ||
		    strcmp(a->labels[i].value, b->labels[i].value))
			return 0;
	}
	return 1;
}

void labelset_free(struct labelset *ls)
{
	for (size_t i = 0; i < ls->n; i++) {
		free(ls->labels[i].name);
		free(ls->labels[i].value);
	}
	free(ls->labels);
	*ls = (struct labelset){ 0 };
}
