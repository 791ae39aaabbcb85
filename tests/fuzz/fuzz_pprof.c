/* The pprof encoder round trip (exporter/encode/pprof.c): the input drives a builder (mappings, functions,
 * locations with up to MAX_LINES Lines, as inlined calls give them, and labelled samples, with strings taken from the input, so invalid UTF-8 and overlong
 * names included); the gzip'd profile is inflated and decoded with protobuf-c and must be consistent
 * with what was added: every id and string index resolves, every string is UTF-8, every sample's
 * stack is one that was added, every location has the Lines it was added with, and the values add
 * up. */
#include <zlib.h>

#include "fuzz_common.h"
#include "exporter/encode/pprof.h"
#include "profile.pb-c.h"

#define MAX_OPS 256
#define MAX_OBJS 64
#define MAX_STACK 8
#define MAX_LABELS 4
#define MAX_LINES 4

typedef Perftools__Profiles__Profile Profile;

struct reader {
	const uint8_t *p;
	size_t left;
};

static unsigned byte(struct reader *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static uint64_t u32(struct reader *r)
{
	uint64_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint64_t)byte(r) << (8 * i);
	return v;
}

/* A malloc'd string of up to 255 bytes (not NUL-containing) from the input, or NULL for length 0. */
static char *string(struct reader *r)
{
	size_t len = byte(r), n = 0;
	char *s;

	if (!len)
		return NULL;
	s = malloc(len + 1);
	if (!s)
		abort();
	while (n < len && r->left) {
		s[n] = (char)byte(r);
		n += s[n] != '\0';
	}
	s[n] = '\0';
	return s;
}

struct added {
	uint64_t addrs[MAX_STACK];
	size_t nloc, nlabels;
};

struct model {
	uint64_t maps[MAX_OBJS], funcs[MAX_OBJS], locs[MAX_OBJS], loc_addr[MAX_OPS + 1];
	struct pprof_line loc_lines[MAX_OPS + 1][MAX_LINES]; /* by location id */
	size_t loc_nlines[MAX_OPS + 1];
	size_t nmaps, nfuncs, nlocs;
	struct added samples[MAX_OPS];
	size_t nsamples;
	int64_t sums[2];
};

static void add_mapping(struct pprof_builder *b, struct model *m, struct reader *r)
{
	uint64_t start = u32(r) << 12, limit = start + ((u32(r) & 0xffff) << 12), offset = u32(r);
	char *file = string(r), *build_id = string(r);
	uint64_t id = pprof_mapping(b, start, limit, offset, file, build_id, byte(r) & 1);

	FUZZ_CHECK(id >= 1);
	if (m->nmaps < MAX_OBJS)
		m->maps[m->nmaps++] = id;
	free(file);
	free(build_id);
}

static void add_function(struct pprof_builder *b, struct model *m, struct reader *r)
{
	char *name = string(r), *system_name = string(r), *file = string(r);
	uint64_t id = pprof_function(b, name, system_name, file);

	FUZZ_CHECK(id >= 1);
	if (m->nfuncs < MAX_OBJS)
		m->funcs[m->nfuncs++] = id;
	free(name);
	free(system_name);
	free(file);
}

/* A location with one Line or none (pprof_location), or with several (pprof_location_lines). */
static void add_location(struct pprof_builder *b, struct model *m, struct reader *r)
{
	unsigned mi = byte(r), fi = byte(r);
	uint64_t map = m->nmaps && mi % 2 ? m->maps[mi / 2 % m->nmaps] : 0;
	struct pprof_line lines[MAX_LINES] = { 0 };
	size_t nlines = m->nfuncs && fi % 2 ? 1 + fi / 2 % MAX_LINES : 0;
	uint64_t addr = u32(r), id;

	for (size_t i = 0; i < nlines; i++)
		lines[i] = (struct pprof_line){ .function_id = m->funcs[byte(r) % m->nfuncs],
						.line = fi & 0x80 ? (int64_t)u32(r) : 0 };
	if (nlines == 1 && !lines[0].line)
		id = pprof_location(b, map, addr, lines[0].function_id);
	else
		id = pprof_location_lines(b, map, addr, lines, nlines);
	FUZZ_CHECK(id >= 1 && id <= MAX_OPS);
	memcpy(m->loc_lines[id], lines, sizeof(lines));
	m->loc_nlines[id] = nlines;
	m->loc_addr[id] = addr;
	if (m->nlocs < MAX_OBJS)
		m->locs[m->nlocs++] = id;
}

static void add_sample(struct pprof_builder *b, struct model *m, struct reader *r)
{
	struct pprof_label labels[MAX_LABELS];
	char *strs[2 * MAX_LABELS] = { 0 };
	uint64_t locs[MAX_STACK];
	size_t nloc = 1 + byte(r) % MAX_STACK, nlabels = byte(r) % (MAX_LABELS + 1), kept = 0;
	struct added *a = &m->samples[m->nsamples];
	int64_t values[2];

	values[0] = byte(r);
	values[1] = (int64_t)u32(r);

	if (!m->nlocs)
		return;
	for (size_t i = 0; i < nloc; i++) {
		locs[i] = m->locs[byte(r) % m->nlocs];
		a->addrs[i] = m->loc_addr[locs[i]];
	}
	for (size_t i = 0; i < nlabels; i++) {
		unsigned kind = byte(r);

		strs[2 * i] = string(r);
		strs[2 * i + 1] = kind & 1 ? string(r) : NULL;
		/* An empty key is refused by contract; an empty string value drops the label. */
		labels[i].key = strs[2 * i] && *strs[2 * i] ? strs[2 * i] : "k";
		labels[i].str = kind & 1 ? (strs[2 * i + 1] ? strs[2 * i + 1] : "") : NULL;
		labels[i].num = (int64_t)u32(r) - (1 << 16);
		labels[i].num_unit = kind & 2 ? "bytes" : NULL;
		kept += !(labels[i].str && !*labels[i].str);
	}
	FUZZ_CHECK(pprof_add_sample(b, locs, nloc, values, labels, nlabels) == 0);
	a->nloc = nloc;
	a->nlabels = kept;
	m->nsamples++;
	m->sums[0] += values[0];
	m->sums[1] += values[1];
	for (size_t i = 0; i < 2 * MAX_LABELS; i++)
		free(strs[i]);
}

static void gunzip(const void *in, size_t inlen, uint8_t **out, size_t *outlen)
{
	z_stream zs = { .next_in = (Bytef *)in, .avail_in = (uInt)inlen };
	size_t cap = 1 << 16;
	int ret;

	FUZZ_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK);
	*out = malloc(cap);
	*outlen = 0;
	do {
		if (*outlen == cap)
			*out = realloc(*out, cap *= 2);
		FUZZ_CHECK(*out);
		zs.next_out = *out + *outlen;
		zs.avail_out = (uInt)(cap - *outlen);
		ret = inflate(&zs, Z_NO_FLUSH);
		FUZZ_CHECK(ret == Z_OK || ret == Z_STREAM_END);
		*outlen = cap - zs.avail_out;
	} while (ret != Z_STREAM_END);
	FUZZ_CHECK(zs.avail_in == 0);
	inflateEnd(&zs);
}

static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
		           (*p & 0xf8) == 0xf0 ? 4 : 0;

		if (!n || (n == 2 && *p < 0xc2))
			return 0;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		p += n;
	}
	return 1;
}

static void check_str(const Profile *p, int64_t idx)
{
	FUZZ_CHECK(idx >= 0 && (size_t)idx < p->n_string_table);
}

static int was_added(const struct model *m, const uint64_t *addrs, size_t nloc, size_t nlabels)
{
	for (size_t i = 0; i < m->nsamples; i++)
		if (m->samples[i].nloc == nloc && m->samples[i].nlabels == nlabels &&
		    !memcmp(m->samples[i].addrs, addrs, nloc * sizeof(*addrs)))
			return 1;
	return 0;
}

static void check_profile(const Profile *p, const struct model *m, size_t nsamples)
{
	int64_t sums[2] = { 0, 0 };

	FUZZ_CHECK(p->n_string_table >= 1 && p->string_table[0][0] == '\0');
	for (size_t i = 0; i < p->n_string_table; i++)
		FUZZ_CHECK(utf8_valid(p->string_table[i]));
	FUZZ_CHECK(p->n_sample_type == 2 && p->period_type);
	for (size_t i = 0; i < p->n_mapping; i++) {
		FUZZ_CHECK(p->mapping[i]->id == i + 1);
		check_str(p, p->mapping[i]->filename);
		check_str(p, p->mapping[i]->build_id);
	}
	for (size_t i = 0; i < p->n_function; i++) {
		FUZZ_CHECK(p->function[i]->id == i + 1);
		check_str(p, p->function[i]->name);
		check_str(p, p->function[i]->system_name);
		check_str(p, p->function[i]->filename);
	}
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *l = p->location[i];

		FUZZ_CHECK(l->id == i + 1 && l->mapping_id <= p->n_mapping && l->n_line == m->loc_nlines[i + 1]);
		for (size_t j = 0; j < l->n_line; j++)
			FUZZ_CHECK(l->line[j]->function_id >= 1 && l->line[j]->function_id <= p->n_function &&
				   l->line[j]->function_id == m->loc_lines[i + 1][j].function_id &&
				   l->line[j]->line == m->loc_lines[i + 1][j].line);
	}
	FUZZ_CHECK(p->n_sample == nsamples);
	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];
		uint64_t addrs[MAX_STACK];

		FUZZ_CHECK(s->n_value == 2 && s->n_location_id >= 1 && s->n_location_id <= MAX_STACK);
		for (size_t j = 0; j < s->n_location_id; j++) {
			FUZZ_CHECK(s->location_id[j] >= 1 && s->location_id[j] <= p->n_location);
			addrs[j] = p->location[s->location_id[j] - 1]->address;
		}
		for (size_t j = 0; j < s->n_label; j++) {
			check_str(p, s->label[j]->key);
			check_str(p, s->label[j]->str);
			check_str(p, s->label[j]->num_unit);
			FUZZ_CHECK(s->label[j]->key != 0);
		}
		FUZZ_CHECK(was_added(m, addrs, s->n_location_id, s->n_label));
		sums[0] += s->value[0];
		sums[1] += s->value[1];
	}
	FUZZ_CHECK(sums[0] == m->sums[0] && sums[1] == m->sums[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pprof_value_type types[] = { { "samples", "count" }, { "cpu", "nanoseconds" } };
	struct reader r = { data, size };
	struct model *m = calloc(1, sizeof(*m));
	struct pprof_builder *b = pprof_builder_new(types, 2, types[1], 10101010);
	size_t gzlen, rawlen;
	uint8_t *raw;
	Profile *p;
	void *gz;

	FUZZ_CHECK(m && b);
	for (int op = 0; op < MAX_OPS && r.left; op++) {
		switch (byte(&r) % 4) {
		case 0: add_mapping(b, m, &r); break;
		case 1: add_function(b, m, &r); break;
		case 2: add_location(b, m, &r); break;
		default: add_sample(b, m, &r); break;
		}
	}
	FUZZ_CHECK(pprof_encode_gzip(b, 1700000000000000000LL, 10000000000LL, &gz, &gzlen) == 0);
	gunzip(gz, gzlen, &raw, &rawlen);
	p = perftools__profiles__profile__unpack(NULL, rawlen, raw);
	FUZZ_CHECK(p);
	check_profile(p, m, pprof_sample_count(b));
	perftools__profiles__profile__free_unpacked(p, NULL);
	free(raw);
	free(gz);
	pprof_builder_free(b);
	free(m);
	return 0;
}
