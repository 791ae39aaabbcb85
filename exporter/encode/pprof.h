/*
 * pprof profile builder and encoder (perftools.profiles, protobuf-c, gzip). Interns strings, mappings,
 * functions and locations, numbers ids 1..N in emission order, merges identical samples.
 */
#ifndef ANORAK_PPROF_H
#define ANORAK_PPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pprof_builder;

struct pprof_value_type {
	const char *type, *unit;
};

/* A sample label: a string label when str != NULL, else numeric (num, optional num_unit). */
struct pprof_label {
	const char *key;
	const char *str;
	int64_t num;
	const char *num_unit;
};

/* sample_types: one value per sample per type (e.g. samples/count, cpu/nanoseconds). */
struct pprof_builder *pprof_builder_new(const struct pprof_value_type *sample_types, size_t ntypes,
					struct pprof_value_type period_type, int64_t period);
void pprof_builder_free(struct pprof_builder *b);

/* Each returns an id >= 1, or 0 when memory ran out. Equal arguments give the same id. */
uint64_t pprof_mapping(struct pprof_builder *b, uint64_t start, uint64_t limit, uint64_t offset,
		       const char *filename, const char *build_id, bool has_functions);
uint64_t pprof_function(struct pprof_builder *b, const char *name, const char *system_name,
			const char *filename);
/* function_id 0: an unsymbolized location (no Line). mapping_id 0: address outside any mapping. */
uint64_t pprof_location(struct pprof_builder *b, uint64_t mapping_id, uint64_t address,
			uint64_t function_id);

/* One Line of a location: a function, and the line in its file (0 unknown). */
struct pprof_line {
	uint64_t function_id;
	int64_t line;
};

/* A location with several Lines, innermost inlined call first (as Go writes them); nlines 0 is an
 * unsymbolized location. At most 64 lines. */
uint64_t pprof_location_lines(struct pprof_builder *b, uint64_t mapping_id, uint64_t address,
			      const struct pprof_line *lines, size_t nlines);

/* locations leaf first; values has one entry per sample type. Samples with the same locations and
 * labels are merged (values added). Negative errno on failure. */
int pprof_add_sample(struct pprof_builder *b, const uint64_t *location_ids, size_t nlocations,
		     const int64_t *values, const struct pprof_label *labels, size_t nlabels);

size_t pprof_sample_count(const struct pprof_builder *b);

/* Serializes and gzips the profile; *out is malloc'd. */
int pprof_encode_gzip(struct pprof_builder *b, int64_t time_nanos, int64_t duration_nanos,
		      void **out, size_t *outlen);

#endif
