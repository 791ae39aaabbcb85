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
