#include "common/yaml_node.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int yaml_node_error(char *err, size_t errlen, const yaml_node_t *node, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "line %zu: %s", node->start_mark.line + 1, msg);
	return -EINVAL;
}

bool yaml_node_is_null(const yaml_node_t *node)
{
	const char *s;

	if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    strcmp((const char *)node->tag, YAML_STR_TAG))
		return node->type == YAML_SCALAR_NODE && !strcmp((const char *)node->tag, YAML_NULL_TAG);
	s = (const char *)node->data.scalar.value;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

const char *yaml_node_kind(const yaml_node_t *node)
{
	return node->type == YAML_SEQUENCE_NODE ? "a sequence"
	       : node->type == YAML_MAPPING_NODE ? "a mapping"
						 : "a scalar";
}

bool yaml_pairs_begin(struct yaml_pairs *it, yaml_document_t *doc, const yaml_node_t *map)
{
	*it = (struct yaml_pairs){ .doc = doc, .map = map };
	if (map->type == YAML_MAPPING_NODE)
		it->next = map->data.mapping.pairs.start;
	return map->type == YAML_MAPPING_NODE || yaml_node_is_null(map);
}

/* Whether a key before it->next (the pair being visited) has text s. */
static bool key_seen(const struct yaml_pairs *it, const char *s)
{
	for (const yaml_node_pair_t *j = it->map->data.mapping.pairs.start; j < it->next - 1; j++) {
		const yaml_node_t *prev = yaml_document_get_node(it->doc, j->key);

		if (prev && prev->type == YAML_SCALAR_NODE && !strcmp((const char *)prev->data.scalar.value, s))
			return true;
	}
	return false;
}

enum yaml_pairs_result yaml_pairs_next(struct yaml_pairs *it)
{
	const yaml_node_pair_t *pair = it->next;

	if (!pair || pair >= it->map->data.mapping.pairs.top)
		return YAML_PAIRS_END;
	it->next++;
	it->key = yaml_document_get_node(it->doc, pair->key);
	it->value = yaml_document_get_node(it->doc, pair->value);
	if (!it->key || !it->value || it->key->type != YAML_SCALAR_NODE) {
		it->key = it->key ? it->key : it->map;
		return YAML_PAIRS_KEY_NOT_STRING;
	}
	return key_seen(it, yaml_pairs_key(it)) ? YAML_PAIRS_KEY_TWICE : YAML_PAIRS_PAIR;
}
