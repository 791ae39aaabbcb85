/* The config file (--config.file): job_name and relabel_configs, in Prometheus' syntax.
 *
 *   job_name: kubernetes-pods     # the job label (set before relabeling); default "anorak"
 *   relabel_configs:              # Prometheus relabel_configs, validated as Prometheus does
 *     - source_labels: [__meta_kubernetes_namespace]
 *       target_label: namespace
 *
 * Parsing is strict like Prometheus' (unknown keys and wrong types are errors). Errors name the line:
 * "line 4: relabel configuration for hashmod requires non-zero modulus". */
#ifndef ANORAK_CONFIG_H
#define ANORAK_CONFIG_H

#include <stddef.h>

#include "labels/relabel.h"

#define ANORAK_CONFIG_MAX_BYTES (1 << 20)
#define ANORAK_CONFIG_MAX_RULES 1000
#define ANORAK_DEFAULT_JOB_NAME "anorak"

struct anorak_file_config {
	char *job_name;
	struct relabel_rules rules;
};

/* The config used without --config.file (text in config.c, documented there). */
extern const char anorak_default_config[];

/* Parses len bytes of YAML. On error returns -EINVAL (-EFBIG when too large, -ENOMEM) and writes
 * a one-line message with the line number. */
int anorak_config_parse(const char *yaml, size_t len, struct anorak_file_config **out, char *err,
			size_t errlen);
/* Reads and parses path; messages start with the path. */
int anorak_config_load(const char *path, struct anorak_file_config **out, char *err, size_t errlen);
void anorak_config_free(struct anorak_file_config *cfg);

#endif
