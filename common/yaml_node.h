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

#endif
