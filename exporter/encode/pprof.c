/*
 * pprof profile builder and encoder. Every table (strings, mappings, functions, locations, samples)
 * is an append-only array indexed by an open-addressing hash table, so interning is O(1) and ids are
 * simply index + 1 in emission order, which is what Parca requires.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/htab.h"
#include "common/text.h"
#include "exporter/encode/pprof.h"
#include "profile.pb-c.h"

/* Per-table entry cap: keeps indices in uint32_t and a runaway scrape from exhausting the host. */
#define PPROF_MAX_ENTRIES (1u << 22)
/* Longer strings are truncated; long C++/Rust symbols fit, a corrupt one cannot bloat the profile. */
#define PPROF_MAX_STRING 8192
/* Pyroscope rejects label values longer than this. */
#define PPROF_MAX_LABEL_VALUE 2048
#define PPROF_MAX_STACK 4096
#define PPROF_MAX_LINES 64 /* inlined calls at one address */
#define PPROF_MAX_LABELS 128
#define PPROF_MAX_TYPES 16

#define GZ_INITIAL_OUT (64 * 1024)
#define GZ_STAGE (16 * 1024)

struct mapping {
	uint64_t start, limit, offset;
	uint32_t filename, build_id;
	bool has_functions;
};

struct function {
	uint32_t name, system_name, filename;
};

struct location {
	uint64_t mapping_id, address;
	size_t line_off; /* into line_pool */
	uint32_t nline;
};

struct label {
	uint32_t key, str, unit;
	int64_t num;
};

struct sample {
	size_t loc_off, lbl_off; /* into loc_pool and lbl_pool */
	uint32_t nloc, nlbl;
};

struct vec {
	void *data;
	size_t len, cap;
};

struct pprof_builder {
	struct vec strs, maps, funcs, locs, samples; /* char *, struct mapping, ... */
	struct htab str_ht, map_ht, func_ht, loc_ht, sample_ht;
	struct vec loc_pool, lbl_pool, val_pool; /* uint64_t, struct label, int64_t */
	struct vec line_pool;			 /* struct pprof_line: each location's run */
	uint32_t *type_strs;			 /* type, unit string indices per sample type */
	size_t ntypes;
	uint32_t period_type, period_unit;
	int64_t period;
};

/* --- growable arrays -------------------------------------------------------------------------------- */

static int vec_reserve(struct vec *v, size_t extra, size_t elem, size_t max)
{
	size_t need = v->len + extra, cap;
	void *data;

	if (need < v->len || need > max)
		return -ENOMEM;
	/* Allocated even for 0 more: callers take pointers into the tail, and NULL + 0 is undefined. */
	if (need <= v->cap && v->data)
		return 0;
	cap = v->cap ? v->cap : 16;
	while (cap < need)
		cap *= 2;
	data = reallocarray(v->data, cap, elem);
	if (!data)
		return -ENOMEM;
	v->data = data;
	v->cap = cap;
	return 0;
}

/* --- strings ---------------------------------------------------------------------------------------- */

static bool needs_sanitizing(const char *s, size_t max)
{
	size_t n = text_utf8_valid_prefix(s);

	return s[n] || n > max;
}

/* A malloc'd copy of s with each byte that is not part of valid UTF-8 replaced by U+FFFD, truncated at a
 * character boundary to at most max bytes. */
static char *sanitize(const char *s, size_t max)
{
	static const char repl[] = TEXT_REPLACEMENT_UTF8;
	size_t i = 0, o = 0, n = strlen(s), len;
	char *out;

	out = malloc((n < max / 3 ? 3 * n : max) + 1); /* each byte becomes at most 3 */
	if (!out)
		return NULL;
	while (s[i]) {
		n = text_utf8_seq_len(s + i);
		len = n ? n : sizeof(repl) - 1;
		if (o + len > max)
			break;
		memcpy(out + o, n ? s + i : repl, len);
		o += len;
		i += n ? n : 1;
	}
	out[o] = '\0';
	return out;
}

struct str_key {
	const char *s;
	size_t len;
};

static bool str_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct pprof_builder *b = ctx;
	const struct str_key *k = key;
	const char *s = ((char **)b->strs.data)[idx];

	return !strncmp(s, k->s, k->len) && !s[k->len];
}

/* Interns s ("" for NULL) into *idx. Only a string not seen before is copied. */
static int intern(struct pprof_builder *b, const char *s, size_t max, uint32_t *idx)
{
	char *copy = NULL;
	struct str_key key;
	struct htab_slot *slot;
	uint32_t hash;
	int err;

	*idx = 0;
	if (!s || !*s)
		return 0;
	if (needs_sanitizing(s, max)) {
		copy = sanitize(s, max);
		if (!copy)
			return -ENOMEM;
		s = copy;
	}
	key.s = s;
	key.len = strlen(s);
	hash = htab_hash_bytes(s, key.len);
	err = htab_reserve(&b->str_ht) ?: vec_reserve(&b->strs, 1, sizeof(char *), PPROF_MAX_ENTRIES);
	if (err)
		goto out;
	slot = htab_find(&b->str_ht, hash, str_eq, b, &key);
	if (htab_used(slot)) {
		*idx = htab_id(slot);
		goto out;
	}
	if (!copy && !(copy = strdup(s))) {
		err = -ENOMEM;
		goto out;
	}
	*idx = b->strs.len;
	((char **)b->strs.data)[b->strs.len++] = copy;
	htab_set(&b->str_ht, slot, hash, *idx);
	return 0;
out:
	free(copy);
	return err;
}

/* --- builder ---------------------------------------------------------------------------------------- */

static int builder_init(struct pprof_builder *b, const struct pprof_value_type *sample_types,
			struct pprof_value_type period_type)
{
	struct htab *tabs[] = { &b->str_ht, &b->map_ht, &b->func_ht, &b->loc_ht, &b->sample_ht };
	int err = 0;

	for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]) && !err; i++)
		err = htab_reserve(tabs[i]);
	b->type_strs = calloc(2 * b->ntypes, sizeof(*b->type_strs));
	if (err || !b->type_strs || vec_reserve(&b->strs, 1, sizeof(char *), PPROF_MAX_ENTRIES))
		return -ENOMEM;
	/* string_table[0] must be "": a static literal that pprof_builder_free skips */
	((const char **)b->strs.data)[b->strs.len++] = "";
	for (size_t i = 0; i < b->ntypes && !err; i++)
		err = intern(b, sample_types[i].type, PPROF_MAX_STRING, &b->type_strs[2 * i]) ?:
		      intern(b, sample_types[i].unit, PPROF_MAX_STRING, &b->type_strs[2 * i + 1]);
	return err ?: intern(b, period_type.type, PPROF_MAX_STRING, &b->period_type) ?:
		      intern(b, period_type.unit, PPROF_MAX_STRING, &b->period_unit);
}

struct pprof_builder *pprof_builder_new(const struct pprof_value_type *sample_types, size_t ntypes,
					struct pprof_value_type period_type, int64_t period)
{
	struct pprof_builder *b;

	if (!sample_types || !ntypes || ntypes > PPROF_MAX_TYPES)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->ntypes = ntypes;
	b->period = period;
	if (builder_init(b, sample_types, period_type)) {
		pprof_builder_free(b);
		return NULL;
	}
	return b;
}

void pprof_builder_free(struct pprof_builder *b)
{
	if (!b)
		return;
	for (size_t i = 1; i < b->strs.len; i++)
		free(((char **)b->strs.data)[i]);
	free(b->strs.data);
	free(b->maps.data);
	free(b->funcs.data);
	free(b->locs.data);
	free(b->samples.data);
	free(b->loc_pool.data);
	free(b->lbl_pool.data);
	free(b->line_pool.data);
	free(b->val_pool.data);
	htab_free(&b->str_ht);
	htab_free(&b->map_ht);
	htab_free(&b->func_ht);
	htab_free(&b->loc_ht);
	htab_free(&b->sample_ht);
	free(b->type_strs);
	free(b);
}

size_t pprof_sample_count(const struct pprof_builder *b)
{
	return b->samples.len;
}

/* --- mappings, functions, locations ------------------------------------------------------------------ */

static bool mapping_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct pprof_builder *b = ctx;
	const struct mapping *m = &((struct mapping *)b->maps.data)[idx], *k = key;

	return m->start == k->start && m->limit == k->limit && m->offset == k->offset &&
	       m->filename == k->filename && m->build_id == k->build_id;
}

uint64_t pprof_mapping(struct pprof_builder *b, uint64_t start, uint64_t limit, uint64_t offset,
		       const char *filename, const char *build_id, bool has_functions)
{
	struct mapping key = { .start = start, .limit = limit, .offset = offset,
			       .has_functions = has_functions };
	struct htab_slot *slot;
	uint32_t hash;

	if (intern(b, filename, PPROF_MAX_STRING, &key.filename) ||
	    intern(b, build_id, PPROF_MAX_STRING, &key.build_id) || htab_reserve(&b->map_ht) ||
	    vec_reserve(&b->maps, 1, sizeof(key), PPROF_MAX_ENTRIES))
		return 0;
	hash = htab_hash32(htab_mix(htab_mix(htab_mix(htab_mix(htab_mix(0, start), limit), offset),
					key.filename), key.build_id));
	slot = htab_find(&b->map_ht, hash, mapping_eq, b, &key);
	if (htab_used(slot)) {
		/* symbolized through any caller means the server need not re-symbolize it */
		((struct mapping *)b->maps.data)[htab_id(slot)].has_functions |= has_functions;
		return htab_id(slot) + 1;
	}
	((struct mapping *)b->maps.data)[b->maps.len] = key;
	htab_set(&b->map_ht, slot, hash, b->maps.len);
	return ++b->maps.len;
}

static bool function_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct pprof_builder *b = ctx;
	const struct function *f = &((struct function *)b->funcs.data)[idx], *k = key;

	return f->name == k->name && f->system_name == k->system_name && f->filename == k->filename;
}

uint64_t pprof_function(struct pprof_builder *b, const char *name, const char *system_name,
			const char *filename)
{
	struct function key;
	struct htab_slot *slot;
	uint32_t hash;

	if (intern(b, name, PPROF_MAX_STRING, &key.name) ||
	    intern(b, system_name, PPROF_MAX_STRING, &key.system_name) ||
	    intern(b, filename, PPROF_MAX_STRING, &key.filename) || htab_reserve(&b->func_ht) ||
	    vec_reserve(&b->funcs, 1, sizeof(key), PPROF_MAX_ENTRIES))
		return 0;
	hash = htab_hash32(htab_mix(htab_mix(htab_mix(0, key.name), key.system_name), key.filename));
	slot = htab_find(&b->func_ht, hash, function_eq, b, &key);
	if (htab_used(slot))
		return htab_id(slot) + 1;
	((struct function *)b->funcs.data)[b->funcs.len] = key;
	htab_set(&b->func_ht, slot, hash, b->funcs.len);
	return ++b->funcs.len;
}

/* A key's lines sit at the end of line_pool (reserved, not yet counted) until it is added. */
static bool location_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct pprof_builder *b = ctx;
	const struct location *l = &((struct location *)b->locs.data)[idx], *k = key;
	const struct pprof_line *lines = b->line_pool.data;

	return l->mapping_id == k->mapping_id && l->address == k->address && l->nline == k->nline &&
	       !memcmp(lines + l->line_off, lines + k->line_off, k->nline * sizeof(*lines));
}

uint64_t pprof_location_lines(struct pprof_builder *b, uint64_t mapping_id, uint64_t address,
			      const struct pprof_line *lines, size_t nlines)
{
	struct location key = { .mapping_id = mapping_id, .address = address, .line_off = b->line_pool.len,
				.nline = (uint32_t)nlines };
	struct htab_slot *slot;
	uint64_t h;
	uint32_t hash;

	if (mapping_id > b->maps.len || nlines > PPROF_MAX_LINES || htab_reserve(&b->loc_ht) ||
	    vec_reserve(&b->locs, 1, sizeof(key), PPROF_MAX_ENTRIES) ||
	    vec_reserve(&b->line_pool, nlines, sizeof(*lines), SIZE_MAX / sizeof(*lines)))
		return 0;
	h = htab_mix(htab_mix(0, mapping_id), address);
	for (size_t i = 0; i < nlines; i++) {
		if (!lines[i].function_id || lines[i].function_id > b->funcs.len)
			return 0;
		h = htab_mix(htab_mix(h, lines[i].function_id), (uint64_t)lines[i].line);
	}
	hash = htab_hash32(h);
	memcpy((struct pprof_line *)b->line_pool.data + key.line_off, lines, nlines * sizeof(*lines));
	slot = htab_find(&b->loc_ht, hash, location_eq, b, &key);
	if (htab_used(slot))
		return htab_id(slot) + 1;
	b->line_pool.len += nlines;
	((struct location *)b->locs.data)[b->locs.len] = key;
	htab_set(&b->loc_ht, slot, hash, b->locs.len);
	return ++b->locs.len;
}

/* Also 0 for an id that was never handed out: a location must not point at nothing. */
uint64_t pprof_location(struct pprof_builder *b, uint64_t mapping_id, uint64_t address,
			uint64_t function_id)
{
	struct pprof_line line = { .function_id = function_id };

	if (function_id > b->funcs.len)
		return 0;
	return pprof_location_lines(b, mapping_id, address, &line, function_id ? 1 : 0);
}

/* --- samples ---------------------------------------------------------------------------------------- */

struct sample_key {
	const uint64_t *locs;
	const struct label *lbls;
	uint32_t nloc, nlbl;
};

static bool sample_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct pprof_builder *b = ctx;
	const struct sample *s = &((struct sample *)b->samples.data)[idx];
	const struct sample_key *k = key;
	const struct label *lbls = (struct label *)b->lbl_pool.data + s->lbl_off;

	if (s->nloc != k->nloc || s->nlbl != k->nlbl ||
	    memcmp((uint64_t *)b->loc_pool.data + s->loc_off, k->locs, k->nloc * sizeof(*k->locs)))
		return false;
	for (uint32_t i = 0; i < k->nlbl; i++)
		if (lbls[i].key != k->lbls[i].key || lbls[i].str != k->lbls[i].str ||
		    lbls[i].unit != k->lbls[i].unit || lbls[i].num != k->lbls[i].num)
			return false;
	return true;
}

static uint32_t sample_hash(const struct sample_key *k)
{
	uint64_t h = htab_mix(k->nloc, k->nlbl);

	for (uint32_t i = 0; i < k->nloc; i++)
		h = htab_mix(h, k->locs[i]);
	for (uint32_t i = 0; i < k->nlbl; i++)
		h = htab_mix(htab_mix(htab_mix(htab_mix(h, k->lbls[i].key), k->lbls[i].str),
				      k->lbls[i].unit), (uint64_t)k->lbls[i].num);
	return htab_hash32(h);
}

/* Interns labels into out, sorted stably by key so that the same set given in another order merges;
 * stable, so repeated keys keep the caller's order (consumers take the first value of a key). Labels with
 * an empty string value are dropped: on the wire they would read as a numeric 0. */
static int intern_labels(struct pprof_builder *b, const struct pprof_label *in, size_t n,
			 struct label *out, uint32_t *nout)
{
	uint32_t k = 0;
	int err;

	for (size_t i = 0; i < n; i++) {
		struct label l = { .num = in[i].num };
		uint32_t j;

		if (!in[i].key || !*in[i].key)
			return -EINVAL;
		if (in[i].str && !*in[i].str)
			continue;
		err = intern(b, in[i].key, PPROF_MAX_STRING, &l.key) ?:
		      in[i].str ? intern(b, in[i].str, PPROF_MAX_LABEL_VALUE, &l.str) :
				  intern(b, in[i].num_unit, PPROF_MAX_STRING, &l.unit);
		if (err)
			return err;
		if (in[i].str)
			l.num = 0;
		for (j = k; j > 0 && out[j - 1].key > l.key; j--)
			out[j] = out[j - 1];
		out[j] = l;
		k++;
	}
	*nout = k;
	return 0;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

int pprof_add_sample(struct pprof_builder *b, const uint64_t *location_ids, size_t nlocations,
		     const int64_t *values, const struct pprof_label *labels, size_t nlabels)
{
	struct sample_key key = { .nloc = nlocations };
	struct sample *s;
	struct htab_slot *slot;
	int64_t *vals;
	uint32_t hash;
	int err;

	if (!location_ids || !nlocations || nlocations > PPROF_MAX_STACK || !values ||
	    (nlabels && !labels) || nlabels > PPROF_MAX_LABELS)
		return -EINVAL;
	for (size_t i = 0; i < nlocations; i++)
		if (!location_ids[i] || location_ids[i] > b->locs.len)
			return -EINVAL;
	err = htab_reserve(&b->sample_ht) ?:
	      vec_reserve(&b->samples, 1, sizeof(*s), PPROF_MAX_ENTRIES) ?:
	      vec_reserve(&b->loc_pool, nlocations, sizeof(uint64_t), SIZE_MAX / sizeof(uint64_t)) ?:
	      vec_reserve(&b->lbl_pool, nlabels, sizeof(struct label), SIZE_MAX / sizeof(struct label)) ?:
	      vec_reserve(&b->val_pool, b->ntypes, sizeof(int64_t), SIZE_MAX / sizeof(int64_t));
	if (err)
		return err;
	/* Build the key in the pools' free tails: they become the sample's storage if it is new. */
	key.locs = (uint64_t *)b->loc_pool.data + b->loc_pool.len;
	key.lbls = (struct label *)b->lbl_pool.data + b->lbl_pool.len;
	memcpy((uint64_t *)key.locs, location_ids, nlocations * sizeof(*location_ids));
	err = intern_labels(b, labels, nlabels, (struct label *)key.lbls, &key.nlbl);
	if (err)
		return err;
	hash = sample_hash(&key);
	slot = htab_find(&b->sample_ht, hash, sample_eq, b, &key);
	if (htab_used(slot)) {
		vals = (int64_t *)b->val_pool.data + (size_t)htab_id(slot) * b->ntypes;
		for (size_t i = 0; i < b->ntypes; i++)
			vals[i] = add_sat(vals[i], values[i]);
		return 0;
	}
	s = (struct sample *)b->samples.data + b->samples.len;
	*s = (struct sample){ .loc_off = b->loc_pool.len, .lbl_off = b->lbl_pool.len,
			      .nloc = key.nloc, .nlbl = key.nlbl };
	memcpy((int64_t *)b->val_pool.data + b->val_pool.len, values, b->ntypes * sizeof(*values));
	b->loc_pool.len += key.nloc;
	b->lbl_pool.len += key.nlbl;
	b->val_pool.len += b->ntypes;
	htab_set(&b->sample_ht, slot, hash, b->samples.len++);
	return 0;
}

/* --- encoding --------------------------------------------------------------------------------------- */

/* The profile is packed one table entry at a time, each through a message on the stack that points
 * into the builder's arrays: a view of the whole profile as protobuf-c messages would take ~100
 * bytes per sample and location on top of the builder, at the peak of every scrape. The bytes are
 * the ones protobuf-c packs for the whole message: its fields in number order, each repeated
 * element as tag, length and packed element. */
enum profile_field {
	PROFILE_SAMPLE_TYPE = 1,
	PROFILE_SAMPLE = 2,
	PROFILE_MAPPING = 3,
	PROFILE_LOCATION = 4,
	PROFILE_FUNCTION = 5,
	PROFILE_STRING_TABLE = 6,
};

static void put_varint(ProtobufCBuffer *buf, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	buf->append(buf, n, tmp);
}

static void put_delimited(ProtobufCBuffer *buf, enum profile_field field, size_t len)
{
	put_varint(buf, (uint64_t)field << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
	put_varint(buf, len);
}

static void put_message(ProtobufCBuffer *buf, enum profile_field field, const ProtobufCMessage *m)
{
	put_delimited(buf, field, protobuf_c_message_get_packed_size(m));
	protobuf_c_message_pack_to_buffer(m, buf);
}

static void put_sample_types(const struct pprof_builder *b, ProtobufCBuffer *buf)
{
	for (size_t i = 0; i < b->ntypes; i++) {
		Perftools__Profiles__ValueType vt = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;

		vt.type = b->type_strs[2 * i];
		vt.unit = b->type_strs[2 * i + 1];
		put_message(buf, PROFILE_SAMPLE_TYPE, &vt.base);
	}
}

static void put_samples(const struct pprof_builder *b, ProtobufCBuffer *buf)
{
	const struct label *lbls = b->lbl_pool.data;
	const struct sample *samples = b->samples.data;
	Perftools__Profiles__Label labels[PPROF_MAX_LABELS], *label_ptrs[PPROF_MAX_LABELS];

	for (size_t i = 0; i < b->samples.len; i++) {
		Perftools__Profiles__Sample s = PERFTOOLS__PROFILES__SAMPLE__INIT;
		const struct label *l = lbls + samples[i].lbl_off;

		for (uint32_t j = 0; j < samples[i].nlbl; j++) {
			perftools__profiles__label__init(&labels[j]);
			labels[j].key = l[j].key;
			labels[j].str = l[j].str;
			labels[j].num = l[j].num;
			labels[j].num_unit = l[j].unit;
			label_ptrs[j] = &labels[j];
		}
		s.n_location_id = samples[i].nloc;
		s.location_id = (uint64_t *)b->loc_pool.data + samples[i].loc_off;
		s.n_value = b->ntypes;
		s.value = (int64_t *)b->val_pool.data + i * b->ntypes;
		s.n_label = samples[i].nlbl;
		s.label = label_ptrs;
		put_message(buf, PROFILE_SAMPLE, &s.base);
	}
}

static void put_mappings(const struct pprof_builder *b, ProtobufCBuffer *buf)
{
	const struct mapping *maps = b->maps.data;

	for (size_t i = 0; i < b->maps.len; i++) {
		Perftools__Profiles__Mapping m = PERFTOOLS__PROFILES__MAPPING__INIT;

		m.id = i + 1;
		m.memory_start = maps[i].start;
		m.memory_limit = maps[i].limit;
		m.file_offset = maps[i].offset;
		m.filename = maps[i].filename;
		m.build_id = maps[i].build_id;
		m.has_functions = maps[i].has_functions;
		put_message(buf, PROFILE_MAPPING, &m.base);
	}
}

static void put_locations(const struct pprof_builder *b, ProtobufCBuffer *buf)
{
	const struct location *locs = b->locs.data;
	const struct pprof_line *pool = b->line_pool.data;
	Perftools__Profiles__Line lines[PPROF_MAX_LINES], *line_ptrs[PPROF_MAX_LINES];

	for (size_t i = 0; i < b->locs.len; i++) {
		Perftools__Profiles__Location l = PERFTOOLS__PROFILES__LOCATION__INIT;

		for (uint32_t j = 0; j < locs[i].nline; j++) {
			perftools__profiles__line__init(&lines[j]);
			lines[j].function_id = pool[locs[i].line_off + j].function_id;
			lines[j].line = pool[locs[i].line_off + j].line;
			line_ptrs[j] = &lines[j];
		}
		l.id = i + 1;
		l.mapping_id = locs[i].mapping_id;
		l.address = locs[i].address;
		l.n_line = locs[i].nline;
		l.line = line_ptrs;
		put_message(buf, PROFILE_LOCATION, &l.base);
	}
}

static void put_functions(const struct pprof_builder *b, ProtobufCBuffer *buf)
{
	const struct function *funcs = b->funcs.data;

	for (size_t i = 0; i < b->funcs.len; i++) {
		Perftools__Profiles__Function f = PERFTOOLS__PROFILES__FUNCTION__INIT;

		f.id = i + 1;
		f.name = funcs[i].name;
		f.system_name = funcs[i].system_name;
		f.filename = funcs[i].filename;
		put_message(buf, PROFILE_FUNCTION, &f.base);
	}
}

/* Every field of the profile, in number order. */
static void put_profile(const struct pprof_builder *b, int64_t time_nanos, int64_t duration_nanos,
			ProtobufCBuffer *buf)
{
	const char *const *strs = b->strs.data;
	Perftools__Profiles__ValueType period_type = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
	Perftools__Profiles__Profile rest = PERFTOOLS__PROFILES__PROFILE__INIT;

	put_sample_types(b, buf);
	put_samples(b, buf);
	put_mappings(b, buf);
	put_locations(b, buf);
	put_functions(b, buf);
	for (size_t i = 0; i < b->strs.len; i++) {
		size_t len = strlen(strs[i]);

		put_delimited(buf, PROFILE_STRING_TABLE, len);
		buf->append(buf, len, (const uint8_t *)strs[i]);
	}
	/* The fields after the tables: the repeated ones above are empty in this message. */
	period_type.type = b->period_type;
	period_type.unit = b->period_unit;
	rest.time_nanos = time_nanos;
	rest.duration_nanos = duration_nanos;
	rest.period_type = &period_type;
	rest.period = b->period;
	protobuf_c_message_pack_to_buffer(&rest.base, buf);
}

/* A ProtobufCBuffer that deflates what protobuf-c packs, so the uncompressed profile is never held. */
struct gz_buf {
	ProtobufCBuffer base;
	z_stream zs;
	unsigned char *out;
	size_t cap;
	int err;
	/* The profile comes in appends of a few bytes: deflate() is called on GZ_STAGE bytes at once. */
	size_t staged;
	uint8_t stage[GZ_STAGE];
};

static int gz_grow(struct gz_buf *g)
{
	size_t used = g->cap - g->zs.avail_out;
	size_t cap = g->cap ? g->cap * 2 : GZ_INITIAL_OUT;
	unsigned char *out;

	if (cap - used > UINT_MAX)
		cap = used + UINT_MAX;
	out = realloc(g->out, cap);
	if (!out)
		return -ENOMEM;
	g->out = out;
	g->cap = cap;
	g->zs.next_out = out + used;
	g->zs.avail_out = cap - used;
	return 0;
}

/* Deflates all pending input (Z_NO_FLUSH), or to the end of the stream (Z_FINISH). */
static int gz_run(struct gz_buf *g, int flush)
{
	int ret;

	for (;;) {
		if (!g->zs.avail_out && gz_grow(g))
			return -ENOMEM;
		ret = deflate(&g->zs, flush);
		if (ret == Z_STREAM_END)
			return 0;
		if (ret != Z_OK && ret != Z_BUF_ERROR)
			return -EIO;
		if (flush == Z_NO_FLUSH && !g->zs.avail_in && g->zs.avail_out)
			return 0;
	}
}

static void gz_deflate(struct gz_buf *g, size_t len, const uint8_t *data)
{
	while (len && !g->err) {
		uInt n = len > UINT_MAX ? UINT_MAX : len;

		g->zs.next_in = (Bytef *)data;
		g->zs.avail_in = n;
		g->err = gz_run(g, Z_NO_FLUSH);
		data += n;
		len -= n;
	}
}

static void gz_flush_stage(struct gz_buf *g)
{
	gz_deflate(g, g->staged, g->stage);
	g->staged = 0;
}

static void gz_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
	struct gz_buf *g = (struct gz_buf *)buf;

	if (g->staged + len > sizeof(g->stage))
		gz_flush_stage(g);
	if (len >= sizeof(g->stage)) {
		gz_deflate(g, len, data);
		return;
	}
	memcpy(g->stage + g->staged, data, len);
	g->staged += len;
}

int pprof_encode_gzip(struct pprof_builder *b, int64_t time_nanos, int64_t duration_nanos,
		      void **out, size_t *outlen)
{
	struct gz_buf *g = calloc(1, sizeof(*g));
	int err;

	if (!g)
		return -ENOMEM;
	g->base.append = gz_append;

	/* windowBits 15 + 16 writes a gzip header; best speed like Go's net/http/pprof, since this runs on
	 * every scrape and the stacks compress well anyway */
	if (deflateInit2(&g->zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(g);
		return -ENOMEM;
	}
	put_profile(b, time_nanos, duration_nanos, &g->base);
	gz_flush_stage(g);
	err = g->err ?: gz_run(g, Z_FINISH);
	deflateEnd(&g->zs);
	if (err) {
		free(g->out);
	} else {
		*out = g->out;
		*outlen = g->cap - g->zs.avail_out;
	}
	free(g);
	return err;
}
