/* What the YAML parsers of the config file and the web config share: errors that name the line, and
 * YAML 1.1 nulls as Go's yaml.v2 (Prometheus, exporter-toolkit) resolves them. */
#ifndef ANORAK_YAML_NODE_H
#define ANORAK_YAML_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

/* Writes "line N: <message>" to err and returns -EINVAL. */
int yaml_node_error(char *err, size_t errlen, const yaml_node_t *node, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A plain ~, null, Null, NULL or empty scalar, or one tagged !!null. */
bool yaml_node_is_null(const yaml_node_t *node);

/* "a sequence", "a mapping" or "a scalar", for messages. */
const char *yaml_node_kind(const yaml_node_t *node);

/* A walk over a mapping's pairs, in order. Both config parsers walk with it and word its problems. */
struct yaml_pairs {
	yaml_document_t *doc;
	const yaml_node_t *map;
	const yaml_node_pair_t *next;
	const yaml_node_t *key, *value; /* the pair visited, or key the node at fault */
};

enum yaml_pairs_result {
	YAML_PAIRS_END = 0,
	YAML_PAIRS_PAIR = 1,
	YAML_PAIRS_KEY_NOT_STRING = -1, /* key: the key (or the mapping when it is missing) */
	YAML_PAIRS_KEY_TWICE = -2,      /* key: its second appearance */
};

/* Starts a walk over map: a null node is an empty mapping (yaml.v2 leaves the struct zero). False
 * when map is neither. */
bool yaml_pairs_begin(struct yaml_pairs *it, yaml_document_t *doc, const yaml_node_t *map);

/* The next pair (a scalar key not seen before in the mapping) into it->key and it->value. */
enum yaml_pairs_result yaml_pairs_next(struct yaml_pairs *it);

/* The visited key's text. */
static inline const char *yaml_pairs_key(const struct yaml_pairs *it)
{
	return (const char *)it->key->data.scalar.value;
}

#endif
