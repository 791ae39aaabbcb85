/*
 * The flame graph of Pyroscope's query API: the merged call tree of the selected records (one node per
 * path of function names), cut to max_nodes as Pyroscope cuts it, in either of Pyroscope's forms.
 */
#include "exporter/encode/flamegraph.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/htab.h"

/* --- the call tree ------------------------------------------------------------------------------- */

struct node {
	uint32_t parent, name;
	uint32_t first_child, next_sibling; /* index + 1 */
	int64_t self, total;
};

struct tree {
	struct selection *sel;
	struct strset names;
	struct node *nodes; /* nodes[0] is the root */
	uint32_t n, cap;
	struct htab index; /* (parent, name) -> node index */
	uint64_t epoch;
	uint32_t *loc_names; /* per location of the epoch: index + 1 of its names in name_runs */
	uint32_t *name_runs; /* per location: a count, then that many name ids, outermost first */
	uint32_t name_runs_len, name_runs_cap;
	uint32_t *stack_leaf; /* per stack of the epoch: its leaf node + 1 */
	uint32_t loc_names_cap;
	char addr[32];
};

static uint32_t node_hash(uint32_t parent, uint32_t name)
{
	uint64_t h = ((uint64_t)parent << 32 | name) * 0x9e3779b97f4a7c15ULL;

	return (uint32_t)(h >> 32);
}

static bool node_eq(const void *ctx, uint32_t id, const void *key)
{
	const struct node *c = &((const struct tree *)ctx)->nodes[id], *k = key;

	return c->parent == k->parent && c->name == k->name;
}

static int64_t tree_child(struct tree *t, uint32_t parent, uint32_t name)
{
	struct node key = { .parent = parent, .name = name };
	uint32_t hash = node_hash(parent, name);
	struct htab_slot *slot;

	if (htab_reserve(&t->index))
		return -ENOMEM;
	slot = htab_find(&t->index, hash, node_eq, t, &key);
	if (htab_used(slot))
		return htab_id(slot);
	if (t->n == t->cap) {
		uint32_t cap = t->cap * 2;
		struct node *nodes = realloc(t->nodes, cap * sizeof(*nodes));

		if (!nodes)
			return -ENOMEM;
		t->nodes = nodes;
		t->cap = cap;
	}
	t->nodes[t->n] = (struct node){ .parent = parent, .name = name,
					.next_sibling = t->nodes[parent].first_child };
	t->nodes[parent].first_child = t->n + 1;
	htab_set(&t->index, slot, hash, t->n);
	return t->n++;
}

static int tree_init(struct tree *t, struct selection *sel)
{
	memset(t, 0, sizeof(*t));
	t->sel = sel;
	t->cap = 1024;
	t->nodes = calloc(t->cap, sizeof(*t->nodes));
	if (!t->nodes || strset_add(&t->names, "total") < 0)
		return -ENOMEM;
	t->n = 1;
	return 0;
}

static void tree_free(struct tree *t)
{
	strset_free(&t->names);
	free(t->nodes);
	htab_free(&t->index);
	free(t->loc_names);
	free(t->name_runs);
	free(t->stack_leaf);
}

static int tree_epoch(struct tree *t, const struct history_window *w)
{
	const struct history_dict_sizes n = w->sizes;

	if (t->epoch == history_epoch_id(w->epoch))
		return 0;
	free(t->loc_names);
	free(t->stack_leaf);
	t->loc_names_cap = n.locations;
	t->loc_names = calloc(n.locations + 1, sizeof(*t->loc_names));
	t->name_runs_len = 0;
	t->stack_leaf = calloc(n.stacks + 1, sizeof(*t->stack_leaf));
	if (!t->loc_names || !t->stack_leaf)
		return -ENOMEM;
	t->epoch = history_epoch_id(w->epoch);
	return 0;
}

static int name_runs_reserve(struct tree *t, uint32_t n)
{
	uint32_t cap = t->name_runs_cap ? t->name_runs_cap : 1024;
	uint32_t *grown;

	if (t->name_runs_len + n <= t->name_runs_cap)
		return 0;
	while (cap < t->name_runs_len + n)
		cap *= 2;
	grown = realloc(t->name_runs, cap * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	t->name_runs = grown;
	t->name_runs_cap = cap;
	return 0;
}

/* A frame's names, outermost first: one node per Line, so an inlined call is a node of its own as
 * Pyroscope draws it; its address when it has no Line. *names is valid until the next call. Returns
 * their count, or -ENOMEM. */
static int location_names(struct tree *t, const struct history_epoch *ep, uint32_t id, const uint32_t **names)
{
	if (!t->loc_names[id]) {
		struct history_location loc;
		uint32_t *run;

		history_location(ep, id, &loc);
		if (!loc.nlines) {
			snprintf(t->addr, sizeof(t->addr), "0x%llx", (unsigned long long)loc.address);
			loc.lines[0].name = t->addr;
			loc.nlines = 1;
		}
		if (name_runs_reserve(t, (uint32_t)loc.nlines + 1))
			return -ENOMEM;
		run = t->name_runs + t->name_runs_len;
		run[0] = (uint32_t)loc.nlines;
		for (size_t i = 0; i < loc.nlines; i++) {
			int64_t name = strset_add(&t->names, loc.lines[loc.nlines - 1 - i].name);

			if (name < 0)
				return -ENOMEM;
			run[1 + i] = (uint32_t)name;
		}
		t->loc_names[id] = t->name_runs_len + 1;
		t->name_runs_len += (uint32_t)loc.nlines + 1;
	}
	*names = t->name_runs + t->loc_names[id];
	return (int)(*names)[-1];
}

static int tree_add_window(void *ctx, const struct history_window *w)
{
	struct tree *t = ctx;

	if (tree_epoch(t, w))
		return -ENOMEM;
	for (size_t i = 0; i < w->n; i++) {
		const struct history_record *rec = &w->records[i];
		const uint32_t *locs;
		size_t nlocs;
		uint32_t node = 0;
		int64_t v;

		if (!selection_keeps(t->sel, w, rec))
			continue;
		v = selection_value(t->sel, rec);
		t->nodes[0].total += v;
		/* A stack seen before in this epoch: add along the path from its leaf. */
		if (t->stack_leaf[rec->stack]) {
			node = t->stack_leaf[rec->stack] - 1;
			t->nodes[node].self += v;
			for (; node; node = t->nodes[node].parent)
				t->nodes[node].total += v;
			continue;
		}
		nlocs = history_stack(w->epoch, rec->stack, &locs);
		for (size_t k = nlocs; k-- > 0;) {
			const uint32_t *names;
			int nnames = location_names(t, w->epoch, locs[k], &names);

			if (nnames < 0)
				return -ENOMEM;
			for (int j = 0; j < nnames; j++) {
				int64_t child = tree_child(t, node, names[j]);

				if (child < 0)
					return -ENOMEM;
				node = (uint32_t)child;
				t->nodes[node].total += v;
			}
		}
		t->nodes[node].self += v;
		t->stack_leaf[rec->stack] = node + 1;
	}
	return 0;
}

static int cmp_int64_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* The smallest total a node needs to be drawn: the max_nodes-th largest total (Pyroscope's
 * minValue), 0 when every node fits. */
static int min_value(const struct tree *t, int64_t max_nodes, int64_t *out)
{
	*out = 0;
	if (max_nodes < 1 || t->n - 1 <= (uint64_t)max_nodes)
		return 0;

	int64_t *totals = malloc((t->n - 1) * sizeof(*totals));
	if (!totals)
		return -ENOMEM;
	for (uint32_t i = 1; i < t->n; i++)
		totals[i - 1] = t->nodes[i].total;
	qsort(totals, t->n - 1, sizeof(*totals), cmp_int64_desc);
	*out = totals[max_nodes - 1];
	free(totals);
	return 0;
}

struct level {
	int64_t *values;
	size_t n, cap;
};

struct frame {
	uint32_t node;   /* UINT32_MAX: an "other" node */
	uint32_t level;
	int64_t x, other_total;
};

struct fg_builder {
	struct tree *t;
	struct level *levels;
	size_t nlevels, levels_cap;
	struct frame *stack;
	size_t nstack, stack_cap;
	uint32_t *children;
	size_t children_cap;
	struct strset out_names; /* in the order Pyroscope assigns them */
	int64_t max_self;
};

static const struct tree *sort_tree;

static int cmp_child(const void *a, const void *b)
{
	const struct tree *t = sort_tree;

	return strcmp(t->names.strs[t->nodes[*(const uint32_t *)a].name],
		      t->names.strs[t->nodes[*(const uint32_t *)b].name]);
}

static int push_frame(struct fg_builder *b, struct frame f)
{
	if (b->nstack == b->stack_cap) {
		size_t cap = b->stack_cap ? b->stack_cap * 2 : 256;
		struct frame *s = realloc(b->stack, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		b->stack = s;
		b->stack_cap = cap;
	}
	b->stack[b->nstack++] = f;
	return 0;
}

static int level_push(struct fg_builder *b, uint32_t level, const int64_t v[4])
{
	if (level >= b->nlevels) {
		if (level >= b->levels_cap) {
			size_t cap = b->levels_cap ? b->levels_cap * 2 : 64;
			struct level *l = realloc(b->levels, cap * sizeof(*l));

			if (!l)
				return -ENOMEM;
			memset(l + b->levels_cap, 0, (cap - b->levels_cap) * sizeof(*l));
			b->levels = l;
			b->levels_cap = cap;
		}
		b->nlevels = level + 1;
	}
	struct level *l = &b->levels[level];
	if (l->n + 4 > l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		int64_t *vals = realloc(l->values, cap * sizeof(*vals));

		if (!vals)
			return -ENOMEM;
		l->values = vals;
		l->cap = cap;
	}
	memcpy(l->values + l->n, v, 4 * sizeof(*v));
	l->n += 4;
	return 0;
}

/* Children of node sorted by name (Pyroscope keeps them so), into b->children; returns how many. */
static int64_t sorted_children(struct fg_builder *b, uint32_t node)
{
	size_t n = 0;

	for (uint32_t c = b->t->nodes[node].first_child; c; c = b->t->nodes[c - 1].next_sibling) {
		if (n == b->children_cap) {
			size_t cap = b->children_cap ? b->children_cap * 2 : 256;
			uint32_t *ch = realloc(b->children, cap * sizeof(*ch));

			if (!ch)
				return -ENOMEM;
			b->children = ch;
			b->children_cap = cap;
		}
		b->children[n++] = c - 1;
	}
	sort_tree = b->t;
	if (n > 1) /* qsort must not be given NULL, even for nothing */
		qsort(b->children, n, sizeof(*b->children), cmp_child);
	return (int64_t)n;
}

/* Pyroscope's NewFlameGraph: a depth-first walk with an explicit stack (children pushed in name
 * order, so popped in reverse), names numbered as nodes are popped, each node's self before its
 * children on the x axis, children under min_value folded into one "other" node; then each level is
 * reversed (ascending x) and its x offsets delta-encoded. */
static int flame_levels(struct fg_builder *b, int64_t min_val)
{
	const struct tree *t = b->t;
	int err = push_frame(b, (struct frame){ .node = 0 });

	while (!err && b->nstack) {
		struct frame f = b->stack[--b->nstack];
		bool other = f.node == UINT32_MAX;
		const char *name = other ? "other" : f.node == 0 ? "total" : t->names.strs[t->nodes[f.node].name];
		int64_t self = other ? f.other_total : t->nodes[f.node].self;
		int64_t total = other ? f.other_total : t->nodes[f.node].total;
		int64_t idx = strset_add(&b->out_names, name), x = f.x, other_total = 0;

		if (idx < 0)
			return -ENOMEM;
		if (self > b->max_self)
			b->max_self = self;
		err = level_push(b, f.level, (int64_t[4]){ x, total, self, idx });
		if (err || other)
			continue;
		x += self;
		int64_t n = sorted_children(b, f.node);
		if (n < 0)
			return -ENOMEM;
		/* Pushing does not touch b->children: the next sorted_children call comes after a pop. */
		for (int64_t i = 0; i < n && !err; i++) {
			const struct node *c = &t->nodes[b->children[i]];

			if (c->total >= min_val && strcmp(t->names.strs[c->name], "other") != 0) {
				err = push_frame(b, (struct frame){ .node = b->children[i], .level = f.level + 1, .x = x });
				x += c->total;
			} else {
				other_total += c->total;
			}
		}
		if (!err && other_total)
			err = push_frame(b, (struct frame){ .node = UINT32_MAX, .level = f.level + 1, .x = x,
							    .other_total = other_total });
	}
	if (err)
		return err;
	for (size_t i = 0; i < b->nlevels; i++) {
		struct level *l = &b->levels[i];
		int64_t prev = 0;

		/* Reverse the 4-tuples: they were appended in pop order, right to left. */
		for (size_t lo = 0, hi = l->n - 4; lo < hi; lo += 4, hi -= 4) {
			int64_t tmp[4];

			memcpy(tmp, l->values + lo, sizeof(tmp));
			memcpy(l->values + lo, l->values + hi, sizeof(tmp));
			memcpy(l->values + hi, tmp, sizeof(tmp));
		}
		for (size_t k = 0; k < l->n; k += 4) {
			l->values[k] -= prev;
			prev += l->values[k] + l->values[k + 1];
		}
	}
	return 0;
}

static void fg_builder_free(struct fg_builder *b)
{
	for (size_t i = 0; i < b->levels_cap; i++)
		free(b->levels[i].values);
	free(b->levels);
	free(b->stack);
	free(b->children);
	strset_free(&b->out_names);
}

/* --- tree format ---------------------------------------------------------------------------------- */

struct bytes_out {
	uint8_t *p;
	size_t n, cap;
};

static int bytes_put(struct bytes_out *o, const void *data, size_t len)
{
	if (o->n + len > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;

		while (cap < o->n + len)
			cap *= 2;
		uint8_t *p = realloc(o->p, cap);
		if (!p)
			return -ENOMEM;
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->n, data, len);
	o->n += len;
	return 0;
}

static int bytes_varint(struct bytes_out *o, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;

	while (v >= 0x80) {
		b[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[n++] = (uint8_t)v;
	return bytes_put(o, b, n);
}

static int bytes_node(struct bytes_out *o, const char *name, int64_t self)
{
	size_t len = strlen(name);

	return bytes_varint(o, len) ?: bytes_put(o, name, len) ?: bytes_varint(o, (uint64_t)self);
}

/* Pyroscope's tree bytes (its model.Tree marshalled with max_nodes): depth first with an explicit stack
 * from a nameless root, each node as varint name length, name, varint self and varint number of
 * children; children are pushed in name order (so popped last first); those whose total is under
 * min_val are folded into one "other" child, added to a child of that name when there is one. */
static int tree_bytes(struct fg_builder *b, int64_t min_val, struct bytes_out *out)
{
	const struct tree *t = b->t;
	int err;

	if (!t->nodes[0].first_child)
		return 0;
	err = push_frame(b, (struct frame){ .node = 0 });
	while (!err && b->nstack) {
		struct frame f = b->stack[--b->nstack];

		if (f.node == UINT32_MAX) {
			err = bytes_node(out, "other", f.other_total) ?: bytes_varint(out, 0);
			continue;
		}
		err = bytes_node(out, f.node ? t->names.strs[t->nodes[f.node].name] : "",
				 t->nodes[f.node].self + f.other_total);
		int64_t n = err ? 0 : sorted_children(b, f.node), other = 0, kept = 0;
		if (n < 0)
			return -ENOMEM;
		int64_t named_other = -1;
		for (int64_t i = 0; i < n; i++) {
			const struct node *c = &t->nodes[b->children[i]];

			if (strcmp(t->names.strs[c->name], "other") == 0)
				named_other = i;
			else if (c->total < min_val)
				other += c->total;
		}
		bool synthetic = other && named_other < 0;
		/* Pushing does not touch b->children: the next sorted_children call comes after a pop. */
		for (int64_t i = 0; i < n && !err; i++) {
			uint32_t k = b->children[i];
			const struct node *c = &t->nodes[k];
			bool is_other = i == named_other;

			if (!is_other && c->total < min_val)
				continue;
			if (synthetic && strcmp("other", t->names.strs[c->name]) < 0) {
				err = push_frame(b, (struct frame){ .node = UINT32_MAX, .other_total = other });
				synthetic = false;
				kept++;
			}
			err = err ?: push_frame(b, (struct frame){ .node = k, .other_total = is_other ? other : 0 });
			kept++;
		}
		if (!err && synthetic) {
			err = push_frame(b, (struct frame){ .node = UINT32_MAX, .other_total = other });
			kept++;
		}
		err = err ?: bytes_varint(out, (uint64_t)kept);
	}
	return err;
}

/* --- the graph ----------------------------------------------------------------------------------- */

struct flamegraph {
	struct tree t;
	struct fg_builder b;
	Querier__V1__Level *levels, **level_ptrs;
};

struct flamegraph *flamegraph_new(struct selection *sel)
{
	struct flamegraph *fg = calloc(1, sizeof(*fg));

	if (!fg)
		return NULL;
	fg->b.t = &fg->t;
	if (tree_init(&fg->t, sel)) {
		flamegraph_free(fg);
		return NULL;
	}
	return fg;
}

int flamegraph_add_window(void *fg, const struct history_window *w)
{
	return tree_add_window(&((struct flamegraph *)fg)->t, w);
}

int flamegraph_tree_bytes(struct flamegraph *fg, int64_t max_nodes, uint8_t **data, size_t *len)
{
	struct bytes_out out = { 0 };
	int64_t min_val;
	int err = min_value(&fg->t, max_nodes, &min_val) ?: tree_bytes(&fg->b, min_val, &out);

	if (err) {
		free(out.p);
		return err;
	}
	*data = out.p;
	*len = out.n;
	return 0;
}

int flamegraph_message(struct flamegraph *fg, int64_t max_nodes, Querier__V1__FlameGraph *out)
{
	struct fg_builder *b = &fg->b;
	int64_t min_val;
	int err = min_value(&fg->t, max_nodes, &min_val) ?: flame_levels(b, min_val);

	if (err)
		return err;
	fg->levels = calloc(b->nlevels ? b->nlevels : 1, sizeof(*fg->levels));
	fg->level_ptrs = calloc(b->nlevels ? b->nlevels : 1, sizeof(*fg->level_ptrs));
	if (!fg->levels || !fg->level_ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < b->nlevels; i++) {
		querier__v1__level__init(&fg->levels[i]);
		fg->levels[i].n_values = b->levels[i].n;
		fg->levels[i].values = b->levels[i].values;
		fg->level_ptrs[i] = &fg->levels[i];
	}
	out->n_names = b->out_names.n;
	out->names = b->out_names.strs;
	out->n_levels = b->nlevels;
	out->levels = fg->level_ptrs;
	out->total = fg->t.nodes[0].total;
	out->max_self = b->max_self;
	return 0;
}

void flamegraph_free(struct flamegraph *fg)
{
	if (!fg)
		return;
	free(fg->levels);
	free(fg->level_ptrs);
	fg_builder_free(&fg->b);
	tree_free(&fg->t);
	free(fg);
}
