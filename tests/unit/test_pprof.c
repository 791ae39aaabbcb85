/* pprof builder: build, encode, gunzip, decode with the generated unpacker, check what consumers need. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "exporter/encode/pprof.h"
#include "profile.pb-c.h"

#define PERIOD 10101010 /* 1e9 / 99 Hz */
#define TIME_NS 1700000000123456789LL
#define DURATION_NS 10000000000LL

typedef Perftools__Profiles__Profile Profile;

static const struct pprof_value_type cpu_types[] = { { "samples", "count" }, { "cpu", "nanoseconds" } };
static const struct pprof_value_type cpu_period = { "cpu", "nanoseconds" };

static struct pprof_builder *cpu_builder(void)
{
	struct pprof_builder *b = pprof_builder_new(cpu_types, 2, cpu_period, PERIOD);

	assert_non_null(b);
	return b;
}

static void gunzip(const void *in, size_t inlen, uint8_t **out, size_t *outlen)
{
	z_stream zs = { .next_in = (Bytef *)in, .avail_in = inlen };
	size_t cap = 4096;
	int ret;

	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK); /* gzip only: a zlib or raw body fails */
	*out = malloc(cap);
	*outlen = 0;
	do {
		if (*outlen == cap)
			*out = realloc(*out, cap *= 2);
		assert_non_null(*out);
		zs.next_out = *out + *outlen;
		zs.avail_out = cap - *outlen;
		ret = inflate(&zs, Z_NO_FLUSH);
		assert_true(ret == Z_OK || ret == Z_STREAM_END);
		*outlen = cap - zs.avail_out;
	} while (ret != Z_STREAM_END);
	assert_int_equal(zs.avail_in, 0);
	inflateEnd(&zs);
}

static Profile *encode_decode(struct pprof_builder *b)
{
	size_t gzlen, rawlen;
	uint8_t *raw;
	void *gz;
	Profile *p;

	assert_int_equal(pprof_encode_gzip(b, TIME_NS, DURATION_NS, &gz, &gzlen), 0);
	assert_true(gzlen > 2);
	assert_int_equal(((uint8_t *)gz)[0], 0x1f);
	assert_int_equal(((uint8_t *)gz)[1], 0x8b);
	gunzip(gz, gzlen, &raw, &rawlen);
	p = perftools__profiles__profile__unpack(NULL, rawlen, raw);
	assert_non_null(p);
	free(raw);
	free(gz);
	return p;
}

static const char *str(const Profile *p, int64_t idx)
{
	assert_true(idx >= 0 && (size_t)idx < p->n_string_table);
	return p->string_table[idx];
}

/* What every profile must satisfy: string_table[0] == "", unique strings, ids 1..N in order, every
 * reference in range, one value per sample type, a location in every sample. */
static void check_invariants(const Profile *p)
{
	assert_true(p->n_string_table >= 1);
	assert_string_equal(p->string_table[0], "");
	for (size_t i = 0; i < p->n_string_table; i++)
		for (size_t j = i + 1; j < p->n_string_table; j++)
			assert_string_not_equal(p->string_table[i], p->string_table[j]);
	for (size_t i = 0; i < p->n_mapping; i++) {
		assert_int_equal(p->mapping[i]->id, i + 1);
		str(p, p->mapping[i]->filename);
		str(p, p->mapping[i]->build_id);
	}
	for (size_t i = 0; i < p->n_function; i++) {
		assert_int_equal(p->function[i]->id, i + 1);
		str(p, p->function[i]->name);
		str(p, p->function[i]->system_name);
		str(p, p->function[i]->filename);
	}
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *l = p->location[i];

		assert_int_equal(l->id, i + 1);
		assert_true(l->mapping_id <= p->n_mapping);
		for (size_t j = 0; j < l->n_line; j++)
			assert_true(l->line[j]->function_id >= 1 && l->line[j]->function_id <= p->n_function);
	}
	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];

		assert_int_equal(s->n_value, p->n_sample_type);
		assert_true(s->n_location_id >= 1);
		for (size_t j = 0; j < s->n_location_id; j++)
			assert_true(s->location_id[j] >= 1 && s->location_id[j] <= p->n_location);
		for (size_t j = 0; j < s->n_label; j++) {
			str(p, s->label[j]->key);
			str(p, s->label[j]->str);
			str(p, s->label[j]->num_unit);
			assert_false(s->label[j]->str && s->label[j]->num);
		}
	}
}

static void check_cpu_header(const Profile *p)
{
	assert_int_equal(p->n_sample_type, 2);
	assert_string_equal(str(p, p->sample_type[0]->type), "samples");
	assert_string_equal(str(p, p->sample_type[0]->unit), "count");
	assert_string_equal(str(p, p->sample_type[1]->type), "cpu");
	assert_string_equal(str(p, p->sample_type[1]->unit), "nanoseconds");
	assert_non_null(p->period_type);
	assert_string_equal(str(p, p->period_type->type), "cpu");
	assert_string_equal(str(p, p->period_type->unit), "nanoseconds");
	assert_int_equal(p->period, PERIOD);
	assert_int_equal(p->time_nanos, TIME_NS);
	assert_int_equal(p->duration_nanos, DURATION_NS);
}

/* A leaf-first stack in a binary mapping plus a kernel frame; returns its length. */
static size_t make_stack(struct pprof_builder *b, uint64_t *locs, uint64_t leaf_addr)
{
	uint64_t exe = pprof_mapping(b, 0x400000, 0x500000, 0, "/usr/bin/app", "abcd1234", true);
	uint64_t kern = pprof_mapping(b, 0xffffffff81000000, 0xffffffff82000000, 0, "[kernel.kallsyms]", "",
				      true);
	uint64_t fmain = pprof_function(b, "main", "main", "app.c");
	uint64_t fwork = pprof_function(b, "work", "work", "app.c");
	uint64_t fsys = pprof_function(b, "do_syscall_64", "do_syscall_64", "");

	locs[0] = pprof_location(b, kern, 0xffffffff81001234, fsys);
	locs[1] = pprof_location(b, exe, leaf_addr, fwork);
	locs[2] = pprof_location(b, exe, 0x401000, fmain);
	for (size_t i = 0; i < 3; i++)
		assert_true(locs[i] >= 1);
	return 3;
}

static const Perftools__Profiles__Label *find_label(const Profile *p, const Perftools__Profiles__Sample *s,
						    const char *key)
{
	for (size_t i = 0; i < s->n_label; i++)
		if (!strcmp(str(p, s->label[i]->key), key))
			return s->label[i];
	return NULL;
}

static void test_empty_profile(void **state)
{
	struct pprof_builder *b = cpu_builder();
	Profile *p;

	(void)state;
	assert_int_equal(pprof_sample_count(b), 0);
	p = encode_decode(b);
	check_invariants(p);
	check_cpu_header(p);
	assert_int_equal(p->n_sample, 0);
	assert_int_equal(p->n_mapping, 0);
	assert_int_equal(p->n_location, 0);
	assert_int_equal(p->n_function, 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_ids_and_dedup(void **state)
{
	struct pprof_builder *b = cpu_builder();
	uint64_t m1, m2, m3, f1, f2, f3, f4, l1, l2, l3, l4, l5;
	Profile *p;

	(void)state;
	m1 = pprof_mapping(b, 0x1000, 0x2000, 0, "/bin/a", "aa", false);
	m2 = pprof_mapping(b, 0x3000, 0x4000, 0x1000, "/bin/a", "aa", false);
	m3 = pprof_mapping(b, 0x1000, 0x2000, 0, "/bin/a", "aa", true); /* same mapping, now symbolized */
	assert_int_equal(m1, 1);
	assert_int_equal(m2, 2);
	assert_int_equal(m3, m1);
	assert_int_equal(pprof_mapping(b, 0x1000, 0x2000, 0, "/bin/a", "bb", false), 3); /* other build id */

	f1 = pprof_function(b, "foo", "_Z3foov", "a.cc");
	f2 = pprof_function(b, "foo", "_Z3foov", "b.cc");
	f3 = pprof_function(b, "foo", "_Z3foov", "a.cc");
	f4 = pprof_function(b, "foo", NULL, "a.cc");
	assert_int_equal(f1, 1);
	assert_int_equal(f2, 2);
	assert_int_equal(f3, f1);
	assert_int_equal(f4, 3);

	l1 = pprof_location(b, m1, 0x1100, f1);
	l2 = pprof_location(b, m1, 0x1100, 0); /* unsymbolized: another location */
	l3 = pprof_location(b, m1, 0x1100, f1);
	l4 = pprof_location(b, 0, 0xdead, 0); /* outside any mapping */
	l5 = pprof_location(b, m2, 0x1100, f1);
	assert_int_equal(l1, 1);
	assert_int_equal(l2, 2);
	assert_int_equal(l3, l1);
	assert_int_equal(l4, 3);
	assert_int_equal(l5, 4);
	/* ids never handed out */
	assert_int_equal(pprof_location(b, 99, 0x1, 0), 0);
	assert_int_equal(pprof_location(b, m1, 0x1, 99), 0);

	assert_int_equal(pprof_add_sample(b, (uint64_t[]){ l1, l2, l4, l5 }, 4, (int64_t[]){ 1, PERIOD },
					  NULL, 0),
			 0);
	p = encode_decode(b);
	check_invariants(p);
	assert_int_equal(p->n_mapping, 3);
	assert_int_equal(p->n_function, 3);
	assert_int_equal(p->n_location, 4);
	assert_true(p->mapping[0]->has_functions);
	assert_false(p->mapping[1]->has_functions);
	assert_int_equal(p->mapping[1]->memory_start, 0x3000);
	assert_int_equal(p->mapping[1]->memory_limit, 0x4000);
	assert_int_equal(p->mapping[1]->file_offset, 0x1000);
	assert_string_equal(str(p, p->mapping[2]->build_id), "bb");
	assert_string_equal(str(p, p->function[0]->system_name), "_Z3foov");
	assert_string_equal(str(p, p->function[2]->system_name), "");
	assert_int_equal(p->location[0]->n_line, 1);
	assert_int_equal(p->location[0]->line[0]->function_id, f1);
	assert_int_equal(p->location[1]->n_line, 0);
	assert_int_equal(p->location[2]->mapping_id, 0);
	assert_int_equal(p->location[2]->address, 0xdead);
	assert_int_equal(p->location[3]->mapping_id, m2);
	assert_int_equal(p->sample[0]->n_location_id, 4);
	assert_int_equal(p->sample[0]->location_id[0], l1);
	assert_int_equal(p->sample[0]->location_id[3], l5);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_sample_merging(void **state)
{
	struct pprof_builder *b = cpu_builder();
	const struct pprof_label web[] = { { .key = "service", .str = "web" }, { .key = "pid", .num = 42 } };
	const struct pprof_label web_swapped[] = { web[1], web[0] };
	const struct pprof_label db[] = { { .key = "service", .str = "db" }, { .key = "pid", .num = 42 } };
	const struct pprof_label pid43[] = { { .key = "service", .str = "web" }, { .key = "pid", .num = 43 } };
	uint64_t locs[3], other[3];
	size_t n = make_stack(b, locs, 0x402000);
	Profile *p;

	(void)state;
	make_stack(b, other, 0x403000);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 1, PERIOD }, web, 2), 0);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 2, 2 * PERIOD }, web, 2), 0);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 1, PERIOD }, web_swapped, 2), 0);
	assert_int_equal(pprof_sample_count(b), 1);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 1, PERIOD }, db, 2), 0);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 1, PERIOD }, pid43, 2), 0);
	assert_int_equal(pprof_add_sample(b, other, n, (int64_t[]){ 1, PERIOD }, web, 2), 0);
	assert_int_equal(pprof_add_sample(b, locs, n - 1, (int64_t[]){ 1, PERIOD }, web, 2), 0);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 5, 5 * PERIOD }, NULL, 0), 0);
	assert_int_equal(pprof_sample_count(b), 6);

	p = encode_decode(b);
	check_invariants(p);
	check_cpu_header(p);
	assert_int_equal(p->n_sample, 6);
	assert_int_equal(p->sample[0]->value[0], 4);
	assert_int_equal(p->sample[0]->value[1], 4 * PERIOD);
	assert_int_equal(p->sample[1]->value[0], 1);
	assert_int_equal(p->sample[5]->value[0], 5);
	assert_int_equal(p->sample[5]->n_label, 0);
	assert_string_equal(str(p, find_label(p, p->sample[1], "service")->str), "db");
	assert_int_equal(find_label(p, p->sample[2], "pid")->num, 43);
	assert_int_equal(p->sample[3]->location_id[1], other[1]);
	assert_int_equal(p->sample[4]->n_location_id, n - 1);
	/* two stacks share all but the leaf frame, and both share the kernel frame */
	assert_int_equal(p->n_location, 4);
	assert_int_equal(p->n_mapping, 2);
	assert_int_equal(p->n_function, 3);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_labels_str_and_num(void **state)
{
	struct pprof_builder *b = cpu_builder();
	const struct pprof_label labels[] = {
		{ .key = "thread_name", .str = "worker-1" },
		{ .key = "pid", .num = 1234 },
		{ .key = "bytes", .num = 4096, .num_unit = "bytes" },
		{ .key = "empty", .str = "" }, /* dropped: it would read as numeric 0 */
		{ .key = "zero", .num = 0, .num_unit = "count" },
	};
	const Perftools__Profiles__Label *l;
	uint64_t locs[3];
	size_t n = make_stack(b, locs, 0x402000);
	Profile *p;

	(void)state;
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 1, PERIOD }, labels, 5), 0);
	p = encode_decode(b);
	check_invariants(p);
	assert_int_equal(p->sample[0]->n_label, 4);
	l = find_label(p, p->sample[0], "thread_name");
	assert_non_null(l);
	assert_string_equal(str(p, l->str), "worker-1");
	assert_int_equal(l->num, 0);
	assert_int_equal(l->num_unit, 0);
	l = find_label(p, p->sample[0], "pid");
	assert_non_null(l);
	assert_int_equal(l->str, 0);
	assert_int_equal(l->num, 1234);
	assert_int_equal(l->num_unit, 0);
	l = find_label(p, p->sample[0], "bytes");
	assert_non_null(l);
	assert_int_equal(l->num, 4096);
	assert_string_equal(str(p, l->num_unit), "bytes");
	assert_null(find_label(p, p->sample[0], "empty"));
	l = find_label(p, p->sample[0], "zero");
	assert_non_null(l);
	assert_string_equal(str(p, l->num_unit), "count");
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

/* Independent of the encoder's validator: decode every code point and check the RFC 3629 rules. */
static bool valid_utf8(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		uint32_t cp;
		int n;

		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0)
			n = 1, cp = *s & 0x1f;
		else if ((*s & 0xf0) == 0xe0)
			n = 2, cp = *s & 0x0f;
		else if ((*s & 0xf8) == 0xf0)
			n = 3, cp = *s & 0x07;
		else
			return false;
		for (int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

static void test_utf8_sanitizing(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain_ascii", "plain_ascii" },
		{ "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9d\x84\x9e", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9d\x84\x9e" },
		{ "bad\xff", "bad\xef\xbf\xbd" },
		{ "overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd" },
		{ "surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd" },
		{ "toobig\xf4\x90\x80\x80", "toobig\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\x80lead", "\xef\xbf\xbdlead" },
	};
	const size_t ncases = sizeof(cases) / sizeof(cases[0]);
	struct pprof_builder *b = cpu_builder();
	char longname[20000], badlabel[4000];
	struct pprof_label label = { .key = "comm\xfe", .str = badlabel };
	uint64_t funcs[sizeof(cases) / sizeof(cases[0])], mapping, loc;
	Profile *p;

	(void)state;
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	/* 3-byte characters, so truncation has to fall on a character boundary */
	for (size_t i = 0; i + 3 < sizeof(badlabel); i += 3)
		memcpy(badlabel + i, "\xe2\x9c\x93", 3);
	badlabel[sizeof(badlabel) - 4] = '\xff';
	badlabel[sizeof(badlabel) - 1] = '\0';

	for (size_t i = 0; i < ncases; i++)
		funcs[i] = pprof_function(b, cases[i].in, cases[i].in, "file\xc3");
	mapping = pprof_mapping(b, 0x1000, 0x2000, 0, longname, "\xff\xfe", false);
	loc = pprof_location(b, mapping, 0x1100, funcs[2]);
	assert_int_equal(pprof_add_sample(b, &loc, 1, (int64_t[]){ 1, PERIOD }, &label, 1), 0);

	p = encode_decode(b);
	check_invariants(p);
	for (size_t i = 0; i < p->n_string_table; i++)
		assert_true(valid_utf8(p->string_table[i]));
	for (size_t i = 0; i < ncases; i++) {
		const Perftools__Profiles__Function *f = p->function[funcs[i] - 1];

		assert_string_equal(str(p, f->name), cases[i].out);
		assert_string_equal(str(p, f->system_name), cases[i].out);
		assert_string_equal(str(p, f->filename), "file\xef\xbf\xbd");
	}
	assert_string_equal(str(p, p->mapping[0]->build_id), "\xef\xbf\xbd\xef\xbf\xbd");
	/* bounded, on a character boundary */
	assert_in_range(strlen(str(p, p->mapping[0]->filename)), 1024, 8192);
	assert_string_equal(str(p, p->sample[0]->label[0]->key), "comm\xef\xbf\xbd");
	assert_in_range(strlen(str(p, p->sample[0]->label[0]->str)), 1024, 2048);
	assert_int_equal(strlen(str(p, p->sample[0]->label[0]->str)) % 3, 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_values_per_sample_type(void **state)
{
	const struct pprof_value_type types[] = {
		{ "samples", "count" }, { "cpu", "nanoseconds" }, { "wall", "nanoseconds" }
	};
	struct pprof_builder *b = pprof_builder_new(types, 3, cpu_period, PERIOD);
	uint64_t locs[3];
	size_t n;
	Profile *p;

	(void)state;
	assert_non_null(b);
	n = make_stack(b, locs, 0x402000);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 1, 10, 100 }, NULL, 0), 0);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 2, 20, 200 }, NULL, 0), 0);
	assert_int_equal(pprof_add_sample(b, locs + 1, n - 1, (int64_t[]){ 7, 70, 700 }, NULL, 0), 0);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ INT64_MAX, 1, 1 }, NULL, 0), 0);
	p = encode_decode(b);
	check_invariants(p);
	assert_int_equal(p->n_sample_type, 3);
	assert_string_equal(str(p, p->sample_type[2]->type), "wall");
	assert_int_equal(p->n_sample, 2);
	assert_int_equal(p->sample[0]->n_value, 3);
	assert_int_equal(p->sample[0]->value[0], INT64_MAX); /* saturates instead of wrapping */
	assert_int_equal(p->sample[0]->value[1], 31);
	assert_int_equal(p->sample[0]->value[2], 301);
	assert_int_equal(p->sample[1]->value[0], 7);
	assert_int_equal(p->sample[1]->value[1], 70);
	assert_int_equal(p->sample[1]->value[2], 700);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

static void test_invalid_arguments(void **state)
{
	struct pprof_builder *b = cpu_builder();
	const struct pprof_label nokey = { .str = "v" };
	uint64_t locs[3], bad = 99, zero = 0;
	size_t n = make_stack(b, locs, 0x402000);
	const int64_t v[] = { 1, PERIOD };

	(void)state;
	assert_null(pprof_builder_new(cpu_types, 0, cpu_period, PERIOD));
	assert_int_equal(pprof_add_sample(b, locs, 0, v, NULL, 0), -EINVAL);
	assert_int_equal(pprof_add_sample(b, &bad, 1, v, NULL, 0), -EINVAL);
	assert_int_equal(pprof_add_sample(b, &zero, 1, v, NULL, 0), -EINVAL);
	assert_int_equal(pprof_add_sample(b, locs, n, NULL, NULL, 0), -EINVAL);
	assert_int_equal(pprof_add_sample(b, locs, n, v, &nokey, 1), -EINVAL);
	assert_int_equal(pprof_sample_count(b), 0);
	pprof_builder_free(b);
	pprof_builder_free(NULL);
}

/* Enough of everything to grow every table several times; every sample added twice merges. */
static void test_many_samples(void **state)
{
	enum { NMAPS = 50, NFUNCS = 3000, NSAMPLES = 20000, DEPTH = 24 };
	struct pprof_builder *b = cpu_builder();
	uint64_t maps[NMAPS], funcs[NFUNCS], locs[DEPTH];
	char name[64];
	Profile *p;

	(void)state;
	for (int i = 0; i < NMAPS; i++) {
		snprintf(name, sizeof(name), "/usr/lib/lib%d.so", i);
		maps[i] = pprof_mapping(b, 0x10000000ULL * (i + 1), 0x10000000ULL * (i + 1) + 0x100000, 0, name,
					"", true);
		assert_int_equal(maps[i], i + 1);
	}
	for (int i = 0; i < NFUNCS; i++) {
		snprintf(name, sizeof(name), "func_%d", i);
		funcs[i] = pprof_function(b, name, name, "");
		assert_int_equal(funcs[i], i + 1);
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t s = 0; s < NSAMPLES; s++) {
			for (uint32_t d = 0; d < DEPTH; d++) {
				/* the two leaf frames make every stack distinct */
				uint32_t f = d == 0 ? s % NFUNCS :
					     d == 1 ? s / NFUNCS :
						      (s * 7919 + d * 104729) % NFUNCS;

				locs[d] = pprof_location(b, maps[f % NMAPS], 0x10000000ULL * (f % NMAPS + 1) + f,
							 funcs[f]);
				assert_true(locs[d] >= 1);
			}
			assert_int_equal(pprof_add_sample(b, locs, DEPTH, (int64_t[]){ 1, PERIOD },
							  &(struct pprof_label){ .key = "cpu", .num = s % 4 }, 1),
					 0);
		}
		assert_int_equal(pprof_sample_count(b), NSAMPLES);
	}
	p = encode_decode(b);
	check_cpu_header(p);
	assert_int_equal(p->n_sample, NSAMPLES);
	assert_int_equal(p->n_function, NFUNCS);
	assert_int_equal(p->n_location, NFUNCS);
	for (size_t i = 0; i < p->n_sample; i++) {
		assert_int_equal(p->sample[i]->value[0], 2);
		assert_int_equal(p->sample[i]->value[1], 2 * PERIOD);
	}
	for (size_t i = 0; i < p->n_location; i++)
		assert_int_equal(p->location[i]->id, i + 1);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

/* A realistic profile on disk, for the pprofcheck tool and `go tool pprof`: set ANORAK_PPROF_OUT. */
static void test_write_sample_file(void **state)
{
	const char *path = getenv("ANORAK_PPROF_OUT");
	const struct pprof_label labels[] = {
		{ .key = "service_name", .str = "app" },
		{ .key = "pid", .num = 4242, .num_unit = "pid" },
		{ .key = "comm", .str = "app\xff" },
	};
	struct pprof_builder *b = cpu_builder();
	uint64_t locs[3], raw;
	size_t n = make_stack(b, locs, 0x402000), len;
	void *gz;
	FILE *f;

	(void)state;
	raw = pprof_location(b, 0, 0x7fff00001234, 0);
	assert_int_equal(pprof_add_sample(b, locs, n, (int64_t[]){ 3, 3 * PERIOD }, labels, 3), 0);
	assert_int_equal(pprof_add_sample(b, locs + 1, n - 1, (int64_t[]){ 1, PERIOD }, labels, 2), 0);
	assert_int_equal(pprof_add_sample(b, &raw, 1, (int64_t[]){ 2, 2 * PERIOD }, NULL, 0), 0);
	assert_int_equal(pprof_encode_gzip(b, TIME_NS, DURATION_NS, &gz, &len), 0);
	if (path) {
		f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(gz, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
	}
	free(gz);
	pprof_builder_free(b);
}

/* Inlined calls: one location, several Lines innermost first, each with its line; equal runs of lines
 * are one location, a different run (or line) another. */
static void test_inline_lines(void **state)
{
	struct pprof_builder *b = cpu_builder();
	uint64_t exe, fstep, fleaf, loc, other, locs[1];
	int64_t values[2] = { 1, PERIOD };
	Profile *p;

	(void)state;
	exe = pprof_mapping(b, 0x400000, 0x500000, 0, "/app/gowork", "", true);
	fstep = pprof_function(b, "main.step", "main.step", "/src/main.go");
	fleaf = pprof_function(b, "main.leaf", "main.leaf", "/src/main.go");
	const struct pprof_line lines[] = { { fstep, 14 }, { fleaf, 21 } };
	const struct pprof_line moved[] = { { fstep, 14 }, { fleaf, 22 } };
	loc = pprof_location_lines(b, exe, 0x401000, lines, 2);
	assert_true(loc >= 1);
	assert_int_equal(pprof_location_lines(b, exe, 0x401000, lines, 2), loc);
	other = pprof_location_lines(b, exe, 0x401000, moved, 2);
	assert_true(other >= 1 && other != loc);
	assert_int_equal(pprof_location(b, exe, 0x401000, fleaf), other + 1);
	const struct pprof_line unknown[] = { { 99, 1 } };
	assert_int_equal(pprof_location_lines(b, exe, 0x401000, unknown, 1), 0);
	locs[0] = loc;
	assert_int_equal(pprof_add_sample(b, locs, 1, values, NULL, 0), 0);
	p = encode_decode(b);
	check_invariants(p);
	assert_int_equal(p->n_location, 3);
	assert_int_equal(p->location[0]->n_line, 2);
	assert_int_equal(p->location[0]->line[0]->function_id, fstep);
	assert_int_equal(p->location[0]->line[0]->line, 14);
	assert_int_equal(p->location[0]->line[1]->function_id, fleaf);
	assert_int_equal(p->location[0]->line[1]->line, 21);
	assert_int_equal(p->location[1]->line[1]->line, 22);
	assert_int_equal(p->location[2]->n_line, 1);
	assert_int_equal(p->location[2]->line[0]->line, 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	pprof_builder_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_profile),
		cmocka_unit_test(test_ids_and_dedup),
		cmocka_unit_test(test_inline_lines),
		cmocka_unit_test(test_sample_merging),
		cmocka_unit_test(test_labels_str_and_num),
		cmocka_unit_test(test_utf8_sanitizing),
		cmocka_unit_test(test_values_per_sample_type),
		cmocka_unit_test(test_invalid_arguments),
		cmocka_unit_test(test_many_samples),
		cmocka_unit_test(test_write_sample_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
