#include "exporter/encode/pyroscope.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/htab.h"
#include "common/text.h"
#include "exporter/store/history.h"
#include "querier/v1/querier.pb-c.h"
#include "labels/selector.h"

#define MS 1000000LL
#define MAX_MATCHERS 16
#define MAX_SPANS 1024
#define MAX_GROUP_BY 16

/* --- replies --------------------------------------------------------------------------------------- */

static const struct {
	const char *code;
	int status;
} connect_codes[] = {
	{ "invalid_argument", 400 }, { "unimplemented", 501 }, { "internal", 500 },
	{ "resource_exhausted", 429 },
};

/* Connect's error: JSON {"code", "message"} with the code's HTTP status. The message often quotes
 * client input, so json-c escapes it: its output is sized from the escaped text, never guessed. */
int connect_error_reply(struct http_reply *r, const char *code, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	const char *text;
	char msg[512];
	size_t len;
	va_list ap;

	if (!o)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (json_object_object_add(o, "code", json_object_new_string(code)) ||
	    json_object_object_add(o, "message", json_object_new_string(msg)) ||
	    !(text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len)) ||
	    !(r->body = malloc(len + 1))) {
		json_object_put(o);
		return -ENOMEM;
	}
	memcpy(r->body, text, len + 1);
	json_object_put(o);
	r->status = 500;
	for (size_t i = 0; i < sizeof(connect_codes) / sizeof(connect_codes[0]); i++)
		if (strcmp(connect_codes[i].code, code) == 0)
			r->status = connect_codes[i].status;
	r->content_type = "application/json";
	r->len = len;
	return 0;
}

static int message_reply(struct http_reply *r, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	void *out = malloc(len ? len : 1);

	if (!out)
		return connect_error_reply(r, "internal", "out of memory");
	protobuf_c_message_pack(m, out);
	r->status = 200;
	r->content_type = "application/proto";
	r->body = out;
	r->len = len;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* --- common request parts -------------------------------------------------------------------------- */

struct selection {
	struct selector selectors[MAX_MATCHERS];
	size_t nselectors;
	struct history_filter filter;
	int64_t start_ns, end_ns;
	bool cpu_ns;      /* the value is cpu nanoseconds (else the sample count) */
	uint8_t (*spans)[8];
	size_t nspans;
};

static void selection_free(struct selection *s)
{
	for (size_t i = 0; i < s->nselectors; i++)
		selector_free(&s->selectors[i]);
	history_filter_free(&s->filter);
	free(s->spans);
}

static int add_selector(struct selection *s, const char *text, struct http_reply *r)
{
	char why[256];

	if (s->nselectors == MAX_MATCHERS)
		return connect_error_reply(r, "invalid_argument", "more than %d matchers", MAX_MATCHERS) ?: -EINVAL;
	if (selector_parse(text, &s->selectors[s->nselectors], why, sizeof(why)))
		return connect_error_reply(r, "invalid_argument", "label selector %.200s: %s", text, why) ?: -EINVAL;
	s->nselectors++;
	s->filter.selectors = s->selectors;
	s->filter.n = s->nselectors;
	return 0;
}

/* Milliseconds; 0 and 0 (not given) is everything kept. */
static int set_range(struct selection *s, int64_t start_ms, int64_t end_ms, struct http_reply *r)
{
	if (!start_ms && !end_ms) {
		s->start_ns = INT64_MIN;
		s->end_ns = INT64_MAX;
		return 0;
	}
	if (end_ms <= start_ms || start_ms < 0 || end_ms > INT64_MAX / MS)
		return connect_error_reply(r, "invalid_argument", "invalid time range: start %lld, end %lld (ms)",
				   (long long)start_ms, (long long)end_ms) ?: -EINVAL;
	s->start_ns = start_ms * MS;
	s->end_ns = end_ms * MS;
	return 0;
}

static const struct {
	const char *id, *sample_type, *sample_unit;
	bool cpu_ns;
} profile_types[] = {
	{ "process_cpu:cpu:nanoseconds:cpu:nanoseconds", "cpu", "nanoseconds", true },
	{ "process_cpu:samples:count:cpu:nanoseconds", "samples", "count", false },
};
#define NTYPES (sizeof(profile_types) / sizeof(profile_types[0]))

static int set_type(struct selection *s, const char *id, struct http_reply *r)
{
	for (size_t i = 0; i < NTYPES; i++) {
		if (strcmp(id, profile_types[i].id) == 0) {
			s->cpu_ns = profile_types[i].cpu_ns;
			return 0;
		}
	}
	return connect_error_reply(r, "invalid_argument", "unknown profile type \"%.200s\": this server has %s and %s",
			   id, profile_types[0].id, profile_types[1].id) ?: -EINVAL;
}

static int set_spans(struct selection *s, char **spans, size_t n, struct http_reply *r)
{
	if (n > MAX_SPANS)
		return connect_error_reply(r, "invalid_argument", "more than %d span ids", MAX_SPANS) ?: -EINVAL;
	s->spans = calloc(n ? n : 1, sizeof(*s->spans));
	if (!s->spans)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (strlen(spans[i]) != 16)
			return connect_error_reply(r, "invalid_argument", "span id \"%.40s\" is not 16 hex digits",
					   spans[i]) ?: -EINVAL;
		for (int k = 0; k < 8; k++) {
			int b = text_hex_byte(spans[i] + 2 * k);

			if (b < 0)
				return connect_error_reply(r, "invalid_argument", "span id \"%s\" is not 16 hex digits",
						   spans[i]) ?: -EINVAL;
			s->spans[i][k] = (uint8_t)b;
		}
	}
	s->nspans = n;
	return 0;
}

static bool selected(struct selection *s, const struct history_window *w, const struct history_record *rec)
{
	if (!rec->frequency || !history_filter_match(&s->filter, w, rec->labels))
		return false;
	if (!s->spans)
		return true;
	if (!rec->traced)
		return false;
	for (size_t i = 0; i < s->nspans; i++)
		if (!memcmp(s->spans[i], rec->span_id, 8))
			return true;
	return false;
}

static int64_t value_of(const struct selection *s, const struct history_record *rec)
{
	return s->cpu_ns ? (int64_t)rec->count * (1000000000LL / rec->frequency) : (int64_t)rec->count;
}

/* --- flame graph ----------------------------------------------------------------------------------- */

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
	uint32_t *loc_names; /* per location of the epoch: name id + 1 */
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
	t->stack_leaf = calloc(n.stacks + 1, sizeof(*t->stack_leaf));
	if (!t->loc_names || !t->stack_leaf)
		return -ENOMEM;
	t->epoch = history_epoch_id(w->epoch);
	return 0;
}

/* A frame's name: its function, or its address when it has none. */
static int64_t location_name(struct tree *t, const struct history_epoch *ep, uint32_t id)
{
	if (t->loc_names[id])
		return t->loc_names[id] - 1;

	struct history_location loc;
	history_location(ep, id, &loc);
	if (!loc.function)
		snprintf(t->addr, sizeof(t->addr), "0x%llx", (unsigned long long)loc.address);
	int64_t name = strset_add(&t->names, loc.function ? loc.function : t->addr);
	if (name >= 0)
		t->loc_names[id] = (uint32_t)name + 1;
	return name;
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

		if (!selected(t->sel, w, rec))
			continue;
		v = value_of(t->sel, rec);
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
			int64_t name = location_name(t, w->epoch, locs[k]), child;

			if (name < 0)
				return -ENOMEM;
			child = tree_child(t, node, (uint32_t)name);
			if (child < 0)
				return -ENOMEM;
			node = (uint32_t)child;
			t->nodes[node].total += v;
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

/* What sel selects, merged, packed as a SelectMergeStacktracesResponse (the same fields as
 * SelectMergeSpanProfileResponse): the flame graph, or with tree_format Pyroscope's tree bytes. */
static int merge_reply(struct history *h, struct selection *sel, int64_t max_nodes, bool tree_format,
		       struct http_reply *r)
{
	struct tree t;
	struct fg_builder b = { .t = &t };
	struct bytes_out tree_out = { 0 };
	int64_t min_val;
	int err = tree_init(&t, sel);

	if (!err) {
		err = history_query(h, sel->start_ns, sel->end_ns, tree_add_window, &t, NULL, NULL);
		if (err == -ENOENT)
			err = 0;
	}
	if (!err)
		err = min_value(&t, max_nodes ? max_nodes : PYROSCOPE_DEFAULT_MAX_NODES, &min_val);
	if (!err && tree_format) {
		err = tree_bytes(&b, min_val, &tree_out);
		if (!err) {
			Querier__V1__SelectMergeStacktracesResponse resp = QUERIER__V1__SELECT_MERGE_STACKTRACES_RESPONSE__INIT;

			resp.tree.data = tree_out.p;
			resp.tree.len = tree_out.n;
			err = message_reply(r, &resp.base);
		}
	} else if (!err) {
		err = flame_levels(&b, min_val);
	}
	if (!err && !tree_format) {
		Querier__V1__FlameGraph fg = QUERIER__V1__FLAME_GRAPH__INIT;
		Querier__V1__SelectMergeStacktracesResponse resp = QUERIER__V1__SELECT_MERGE_STACKTRACES_RESPONSE__INIT;
		Querier__V1__Level *levels = calloc(b.nlevels ? b.nlevels : 1, sizeof(*levels));
		Querier__V1__Level **level_ptrs = calloc(b.nlevels ? b.nlevels : 1, sizeof(*level_ptrs));

		if (levels && level_ptrs) {
			for (size_t i = 0; i < b.nlevels; i++) {
				querier__v1__level__init(&levels[i]);
				levels[i].n_values = b.levels[i].n;
				levels[i].values = b.levels[i].values;
				level_ptrs[i] = &levels[i];
			}
			fg.n_names = b.out_names.n;
			fg.names = b.out_names.strs;
			fg.n_levels = b.nlevels;
			fg.levels = level_ptrs;
			fg.total = t.nodes[0].total;
			fg.max_self = b.max_self;
			resp.flamegraph = &fg;
			err = message_reply(r, &resp.base);
		} else {
			err = -ENOMEM;
		}
		free(levels);
		free(level_ptrs);
	}
	free(tree_out.p);
	fg_builder_free(&b);
	tree_free(&t);
	if (err == -ENOMEM)
		return connect_error_reply(r, "resource_exhausted", "out of memory merging the profiles");
	return err;
}

/* --- series ---------------------------------------------------------------------------------------- */

struct series {
	char **label_names, **label_values; /* the group_by labels the series has */
	size_t nlabels;
	double *sums;
	uint32_t *profiles;   /* windows that added to each point */
	uint64_t last_window; /* the window `in_window` is the value of */
	double in_window;
	double total;
};

struct share {
	size_t point;
	double fraction;
};

struct series_query {
	struct selection *sel;
	char **group_by;
	size_t ngroup_by;
	int64_t start_ms, step_ms;
	size_t npoints;
	struct strset keys;        /* series key -> index in series */
	struct series *series;
	size_t nseries;            /* made (keys may have one more after a failure) */
	uint64_t window;           /* count of windows visited, identifies the current one */
	uint32_t *touched;         /* series with samples in the current window */
	size_t ntouched, touched_cap;
	struct share *shares;      /* npoints */
	uint64_t epoch;
	int32_t *labels_series;    /* per label set of the epoch: series index + 1, 0 unknown */
	uint32_t labels_cap;
	bool too_many;
};

static int64_t find_series(struct series_query *q, const struct history_window *w, uint32_t labels_id)
{
	const struct history_epoch *ep = w->epoch;
	const struct label *ls;
	size_t nls = history_labels(ep, labels_id, &ls);
	char key[4096];
	size_t klen = 0;
	const char *vals[MAX_GROUP_BY];

	if (q->epoch != history_epoch_id(ep)) {
		free(q->labels_series);
		q->labels_series = calloc(w->sizes.labelsets + 1, sizeof(*q->labels_series));
		if (!q->labels_series)
			return -ENOMEM;
		q->epoch = history_epoch_id(ep);
	}
	if (q->labels_series[labels_id])
		return q->labels_series[labels_id] - 1;
	for (size_t g = 0; g < q->ngroup_by; g++) {
		vals[g] = NULL;
		for (size_t i = 0; i < nls; i++)
			if (strcmp(ls[i].name, q->group_by[g]) == 0)
				vals[g] = ls[i].value;
		klen += snprintf(key + klen, klen < sizeof(key) ? sizeof(key) - klen : 0, "%s%s\x1f",
				 vals[g] ? "=" : "!", vals[g] ? vals[g] : "");
		if (klen >= sizeof(key))
			klen = sizeof(key) - 1;
	}
	key[klen] = '\0';
	uint32_t before = q->keys.n;
	int64_t idx = strset_add(&q->keys, key);
	if (idx < 0)
		return -ENOMEM;
	if (q->keys.n > before) {
		if (q->keys.n > PYROSCOPE_MAX_SERIES || (uint64_t)q->keys.n * q->npoints > PYROSCOPE_MAX_SERIES_POINTS) {
			q->too_many = true;
			return -E2BIG;
		}
		struct series *grown = realloc(q->series, q->keys.n * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		q->series = grown;
		struct series *s = &q->series[idx];
		memset(s, 0, sizeof(*s));
		q->nseries = q->keys.n;
		s->label_names = calloc(q->ngroup_by + 1, sizeof(char *));
		s->label_values = calloc(q->ngroup_by + 1, sizeof(char *));
		s->sums = calloc(q->npoints, sizeof(*s->sums));
		s->profiles = calloc(q->npoints, sizeof(*s->profiles));
		if (!s->label_names || !s->label_values || !s->sums || !s->profiles)
			return -ENOMEM;
		for (size_t g = 0; g < q->ngroup_by; g++) {
			if (!vals[g])
				continue;
			s->label_names[s->nlabels] = q->group_by[g];
			s->label_values[s->nlabels] = strdup(vals[g]);
			if (!s->label_values[s->nlabels++])
				return -ENOMEM;
		}
	}
	q->labels_series[labels_id] = (int32_t)idx + 1;
	return idx;
}

/* Point k stands for the step (T - step, T] before its time T = start + k * step, as Pyroscope's
 * rangeSeries counts a profile in the first step at or after it; the first and last points also take
 * what lies before and after the range. A window is spread over the steps it covers in proportion to
 * its time in each: a step finer than the window gets the window's rate at each point it covers
 * (the ring keeps nothing finer) instead of one point with all of it and empty ones around, and a
 * step that is no multiple of the window (Grafana's 15 s) does not alias a steady load into points of
 * alternately one and two windows. Totals stay those of the whole windows. */
static size_t window_shares(struct series_query *q, int64_t start_ns, int64_t end_ns)
{
	const int64_t first = q->start_ms * MS, step = q->step_ms * MS;
	const size_t last = q->npoints - 1;
	size_t k0 = start_ns <= first ? 0 : (size_t)((start_ns - first + step - 1) / step);
	size_t k1 = end_ns <= first ? 0 : (size_t)((end_ns - first + step - 1) / step), n = 0;

	k0 = k0 > last ? last : k0;
	k1 = k1 > last ? last : k1;
	if (end_ns <= start_ns) {
		q->shares[0] = (struct share){ k0, 1.0 };
		return 1;
	}
	for (size_t k = k0; k <= k1; k++) {
		int64_t t = first + (int64_t)k * step;
		int64_t lo = k == 0 ? INT64_MIN : t - step, hi = k == last ? INT64_MAX : t;
		int64_t overlap = (end_ns < hi ? end_ns : hi) - (start_ns > lo ? start_ns : lo);

		if (overlap > 0)
			q->shares[n++] = (struct share){ k, (double)overlap / (double)(end_ns - start_ns) };
	}
	return n;
}

static int series_add_window(void *ctx, const struct history_window *w)
{
	struct series_query *q = ctx;

	q->window++;
	q->ntouched = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct history_record *rec = &w->records[i];
		int64_t idx;

		if (!selected(q->sel, w, rec))
			continue;
		idx = find_series(q, w, rec->labels);
		if (idx < 0)
			return (int)idx;
		struct series *s = &q->series[idx];
		if (s->last_window != q->window) {
			if (q->ntouched == q->touched_cap) {
				size_t cap = q->touched_cap ? 2 * q->touched_cap : 64;
				uint32_t *t = realloc(q->touched, cap * sizeof(*t));

				if (!t)
					return -ENOMEM;
				q->touched = t;
				q->touched_cap = cap;
			}
			q->touched[q->ntouched++] = (uint32_t)idx;
			s->last_window = q->window;
			s->in_window = 0;
		}
		s->in_window += (double)value_of(q->sel, rec);
	}
	if (!q->ntouched)
		return 0;

	size_t nshares = window_shares(q, w->start_ns, w->end_ns);
	for (size_t i = 0; i < q->ntouched; i++) {
		struct series *s = &q->series[q->touched[i]];

		s->total += s->in_window;
		for (size_t k = 0; k < nshares; k++) {
			s->sums[q->shares[k].point] += s->in_window * q->shares[k].fraction;
			s->profiles[q->shares[k].point]++;
		}
	}
	return 0;
}

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	for (size_t i = 0; i < x->nlabels && i < y->nlabels; i++) {
		int c = strcmp(x->label_names[i], y->label_names[i]) ?: strcmp(x->label_values[i], y->label_values[i]);

		if (c)
			return c;
	}
	return (x->nlabels > y->nlabels) - (x->nlabels < y->nlabels);
}

static int cmp_series_total(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	return (x->total < y->total) - (x->total > y->total);
}

static void series_free(struct series_query *q)
{
	for (size_t i = 0; i < q->nseries; i++) {
		struct series *s = &q->series[i];

		for (size_t l = 0; s->label_values && l < s->nlabels; l++)
			free(s->label_values[l]);
		free(s->label_names);
		free(s->label_values);
		free(s->sums);
		free(s->profiles);
	}
	free(q->series);
	free(q->touched);
	free(q->shares);
	free(q->labels_series);
	strset_free(&q->keys);
}

static int series_reply(struct series_query *q, bool average, int64_t limit, struct http_reply *r)
{
	size_t n = q->keys.n, npoints_total = 0, p = 0, l = 0;
	int err = 0;

	if (limit > 0 && (size_t)limit < n) {
		qsort(q->series, n, sizeof(*q->series), cmp_series_total);
		for (size_t i = limit; i < n; i++) {
			for (size_t k = 0; k < q->series[i].nlabels; k++)
				free(q->series[i].label_values[k]);
			q->series[i].nlabels = 0;
		}
		/* The dropped ones stay allocated for series_free. */
		n = (size_t)limit;
	}
	if (n > 1)
		qsort(q->series, n, sizeof(*q->series), cmp_series);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < q->npoints; k++)
			npoints_total += q->series[i].profiles[k] != 0;

	Types__V1__Series *series = calloc(n + 1, sizeof(*series));
	Types__V1__Series **series_ptrs = calloc(n + 1, sizeof(*series_ptrs));
	Types__V1__Point *points = calloc(npoints_total + 1, sizeof(*points));
	Types__V1__Point **point_ptrs = calloc(npoints_total + 1, sizeof(*point_ptrs));
	size_t nlabels_total = 0;
	for (size_t i = 0; i < n; i++)
		nlabels_total += q->series[i].nlabels;
	Types__V1__LabelPair *pairs = calloc(nlabels_total + 1, sizeof(*pairs));
	Types__V1__LabelPair **pair_ptrs = calloc(nlabels_total + 1, sizeof(*pair_ptrs));

	if (!series || !series_ptrs || !points || !point_ptrs || !pairs || !pair_ptrs) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct series *s = &q->series[i];

		types__v1__series__init(&series[i]);
		series[i].labels = pair_ptrs + l;
		series[i].n_labels = s->nlabels;
		for (size_t k = 0; k < s->nlabels; k++, l++) {
			types__v1__label_pair__init(&pairs[l]);
			pairs[l].name = s->label_names[k];
			pairs[l].value = s->label_values[k];
			pair_ptrs[l] = &pairs[l];
		}
		series[i].points = point_ptrs + p;
		for (size_t k = 0; k < q->npoints; k++) {
			if (!s->profiles[k])
				continue;
			types__v1__point__init(&points[p]);
			points[p].value = average ? s->sums[k] / s->profiles[k] : s->sums[k];
			points[p].timestamp = q->start_ms + (int64_t)k * q->step_ms;
			point_ptrs[p] = &points[p];
			series[i].n_points++;
			p++;
		}
		series_ptrs[i] = &series[i];
	}
	Querier__V1__SelectSeriesResponse resp = QUERIER__V1__SELECT_SERIES_RESPONSE__INIT;
	resp.n_series = n;
	resp.series = series_ptrs;
	err = message_reply(r, &resp.base);
out:
	free(series);
	free(series_ptrs);
	free(points);
	free(point_ptrs);
	free(pairs);
	free(pair_ptrs);
	return err;
}

static int select_series(struct history *h, const Querier__V1__SelectSeriesRequest *req, struct http_reply *r)
{
	struct selection sel = { 0 };
	struct series_query q = { .sel = &sel, .group_by = req->group_by, .ngroup_by = req->n_group_by };
	int err = set_type(&sel, req->profile_typeid, r) ?: add_selector(&sel, req->label_selector, r) ?:
		  set_range(&sel, req->start, req->end, r);

	if (err)
		goto out;
	if (!req->start || req->n_group_by > MAX_GROUP_BY || !(req->step >= 0.001) || req->step > 1e9) {
		err = connect_error_reply(r, "invalid_argument",
				  "SelectSeries needs start and end, a step of at least 1 ms and at most %d group_by labels",
				  MAX_GROUP_BY);
		goto out;
	}
	q.start_ms = req->start;
	q.step_ms = (int64_t)llround(req->step * 1000);
	if ((req->end - req->start) / q.step_ms + 1 > PYROSCOPE_MAX_POINTS) {
		err = connect_error_reply(r, "invalid_argument",
				  "too many points: (end - start) / step is above %d, use a larger step", PYROSCOPE_MAX_POINTS);
		goto out;
	}
	q.npoints = (size_t)((req->end - req->start + q.step_ms - 1) / q.step_ms) + 1;
	q.shares = calloc(q.npoints, sizeof(*q.shares));
	if (!q.shares) {
		err = connect_error_reply(r, "resource_exhausted", "out of memory building the series");
		goto out;
	}
	err = history_query(h, sel.start_ns, sel.end_ns, series_add_window, &q, NULL, NULL);
	if (err == -ENOENT)
		err = 0;
	if (err == -E2BIG)
		err = connect_error_reply(r, "invalid_argument",
				  "more than %d series, or %d points in all: group by fewer labels or use a larger step",
				  PYROSCOPE_MAX_SERIES, PYROSCOPE_MAX_SERIES_POINTS);
	else if (!err)
		err = series_reply(&q, req->aggregation == TYPES__V1__TIME_SERIES_AGGREGATION_TYPE__TIME_SERIES_AGGREGATION_TYPE_AVERAGE,
				   req->limit, r);
	if (err == -ENOMEM)
		err = connect_error_reply(r, "resource_exhausted", "out of memory building the series");
out:
	series_free(&q);
	selection_free(&sel);
	return err < 0 && err != -ENOMEM ? 0 : err;
}

/* --- label names and values ----------------------------------------------------------------------- */

struct label_query {
	struct selection *sel;
	const char *name; /* NULL: collect names */
	struct strset found;
	uint64_t epoch;
	uint8_t *seen; /* per label set of the epoch */
};

static int labels_add_window(void *ctx, const struct history_window *w)
{
	struct label_query *q = ctx;

	if (q->epoch != history_epoch_id(w->epoch)) {
		free(q->seen);
		q->seen = calloc(w->sizes.labelsets + 1, 1);
		if (!q->seen)
			return -ENOMEM;
		q->epoch = history_epoch_id(w->epoch);
	}
	for (size_t i = 0; i < w->n; i++) {
		const struct history_record *rec = &w->records[i];
		const struct label *ls;
		size_t nls;

		if (q->seen[rec->labels] || !selected(q->sel, w, rec))
			continue;
		q->seen[rec->labels] = 1;
		nls = history_labels(w->epoch, rec->labels, &ls);
		for (size_t k = 0; k < nls; k++) {
			if (q->name && strcmp(ls[k].name, q->name) != 0)
				continue;
			if (strset_add(&q->found, q->name ? ls[k].value : ls[k].name) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static int label_query(struct history *h, const char *name, char **matchers, size_t nmatchers, int64_t start,
		       int64_t end, struct http_reply *r)
{
	struct selection sel = { 0 };
	struct label_query q = { .sel = &sel, .name = name };
	int err = set_range(&sel, start, end, r);

	for (size_t i = 0; i < nmatchers && !err; i++)
		err = add_selector(&sel, matchers[i], r);
	if (!err) {
		err = history_query(h, sel.start_ns, sel.end_ns, labels_add_window, &q, NULL, NULL);
		if (err == -ENOENT)
			err = 0;
	}
	if (!err) {
		if (q.found.n > 1)
			qsort(q.found.strs, q.found.n, sizeof(char *), cmp_str);
		/* LabelNamesResponse and LabelValuesResponse are the same message: names = 1. */
		Types__V1__LabelNamesResponse resp = TYPES__V1__LABEL_NAMES_RESPONSE__INIT;
		resp.n_names = q.found.n;
		resp.names = q.found.strs;
		err = message_reply(r, &resp.base);
	} else if (err == -ENOMEM) {
		err = connect_error_reply(r, "resource_exhausted", "out of memory");
	}
	strset_free(&q.found);
	free(q.seen);
	selection_free(&sel);
	return err < 0 && err != -ENOMEM ? 0 : err;
}

/* --- methods --------------------------------------------------------------------------------------- */

static int profile_types_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__ProfileTypesRequest *req = querier__v1__profile_types_request__unpack(NULL, len, body);
	Types__V1__ProfileType types[NTYPES], *ptrs[NTYPES];
	Querier__V1__ProfileTypesResponse resp = QUERIER__V1__PROFILE_TYPES_RESPONSE__INIT;

	(void)h;
	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.ProfileTypesRequest");
	querier__v1__profile_types_request__free_unpacked(req, NULL);
	for (size_t i = 0; i < NTYPES; i++) {
		types__v1__profile_type__init(&types[i]);
		types[i].id = (char *)profile_types[i].id;
		types[i].name = HISTORY_PROFILE_NAME;
		types[i].sample_type = (char *)profile_types[i].sample_type;
		types[i].sample_unit = (char *)profile_types[i].sample_unit;
		types[i].period_type = "cpu";
		types[i].period_unit = "nanoseconds";
		ptrs[i] = &types[i];
	}
	resp.n_profile_types = NTYPES;
	resp.profile_types = ptrs;
	return message_reply(r, &resp.base);
}

static int label_names_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Types__V1__LabelNamesRequest *req = types__v1__label_names_request__unpack(NULL, len, body);
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode types.v1.LabelNamesRequest");
	err = label_query(h, NULL, req->matchers, req->n_matchers, req->start, req->end, r);
	types__v1__label_names_request__free_unpacked(req, NULL);
	return err;
}

static int label_values_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Types__V1__LabelValuesRequest *req = types__v1__label_values_request__unpack(NULL, len, body);
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode types.v1.LabelValuesRequest");
	if (!*req->name)
		err = connect_error_reply(r, "invalid_argument", "LabelValues needs a label name");
	else
		err = label_query(h, req->name, req->matchers, req->n_matchers, req->start, req->end, r);
	types__v1__label_values_request__free_unpacked(req, NULL);
	return err;
}

static int merge_stacktraces_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__SelectMergeStacktracesRequest *req =
		querier__v1__select_merge_stacktraces_request__unpack(NULL, len, body);
	struct selection sel = { 0 };
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.SelectMergeStacktracesRequest");
	err = set_type(&sel, req->profile_typeid, r) ?: add_selector(&sel, req->label_selector, r) ?:
	      set_range(&sel, req->start, req->end, r);
	if (!err)
		err = merge_reply(h, &sel, req->max_nodes, req->format == QUERIER__V1__PROFILE_FORMAT__PROFILE_FORMAT_TREE, r);
	selection_free(&sel);
	querier__v1__select_merge_stacktraces_request__free_unpacked(req, NULL);
	return err < 0 && err != -ENOMEM ? 0 : err;
}

static int merge_span_profile_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__SelectMergeSpanProfileRequest *req =
		querier__v1__select_merge_span_profile_request__unpack(NULL, len, body);
	struct selection sel = { 0 };
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.SelectMergeSpanProfileRequest");
	err = set_type(&sel, req->profile_typeid, r) ?: add_selector(&sel, req->label_selector, r) ?:
	      set_range(&sel, req->start, req->end, r) ?: set_spans(&sel, req->span_selector, req->n_span_selector, r);
	if (!err)
		err = merge_reply(h, &sel, req->max_nodes, req->format == QUERIER__V1__PROFILE_FORMAT__PROFILE_FORMAT_TREE, r);
	selection_free(&sel);
	querier__v1__select_merge_span_profile_request__free_unpacked(req, NULL);
	return err < 0 && err != -ENOMEM ? 0 : err;
}

static int select_series_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__SelectSeriesRequest *req = querier__v1__select_series_request__unpack(NULL, len, body);
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.SelectSeriesRequest");
	err = select_series(h, req, r);
	querier__v1__select_series_request__free_unpacked(req, NULL);
	return err;
}

/* What the ring covers; Grafana asks it to tell "no data yet" from an empty range. */
static int profile_stats_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Types__V1__GetProfileStatsRequest *req = types__v1__get_profile_stats_request__unpack(NULL, len, body);
	Types__V1__GetProfileStatsResponse resp = TYPES__V1__GET_PROFILE_STATS_RESPONSE__INIT;
	int64_t first = 0, last = 0;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode types.v1.GetProfileStatsRequest");
	types__v1__get_profile_stats_request__free_unpacked(req, NULL);
	/* An empty range visits no window and only reports the covered range. */
	history_query(h, INT64_MIN, INT64_MIN, NULL, NULL, &first, &last);
	resp.data_ingested = last != 0;
	resp.oldest_profile_time = first / MS;
	resp.newest_profile_time = last / MS;
	return message_reply(r, &resp.base);
}

static const struct {
	const char *name;
	int (*serve)(struct history *h, const void *body, size_t len, struct http_reply *r);
} methods[] = {
	{ "ProfileTypes", profile_types_method },
	{ "LabelNames", label_names_method },
	{ "LabelValues", label_values_method },
	{ "SelectMergeStacktraces", merge_stacktraces_method },
	{ "SelectSeries", select_series_method },
	{ "SelectMergeSpanProfile", merge_span_profile_method },
	{ "GetProfileStats", profile_stats_method },
};

int pyroscope_serve(struct history *h, const char *method, const void *body, size_t len, struct http_reply *reply)
{
	memset(reply, 0, sizeof(*reply));
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(method, methods[i].name) != 0)
			continue;
		int err = methods[i].serve(h, body ? body : "", len, reply);

		/* Whatever failed without an answer of its own (a window that would not decode). */
		if (!reply->body)
			return connect_error_reply(reply, err == -ENOMEM ? "resource_exhausted" : "internal",
					   "%s failed: %s", method, strerror(err < 0 ? -err : EIO));
		return 0;
	}
	return connect_error_reply(reply, "unimplemented", "anorak does not serve querier.v1.QuerierService/%.100s",
			   method);
}
