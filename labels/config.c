#include "labels/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "common/yaml_node.h"

/* The default config: what Prometheus users conventionally keep of a target's discovered labels.
 * Host targets keep the process name, systemd unit and container id; Kubernetes containers keep
 * namespace, pod and container, and the anorak.dev/sampling-frequency annotation becomes
 * __sampling_frequency__, which the sampler reads before the __ labels are removed. Pod labels are
 * not mapped (no labelmap of __meta_kubernetes_pod_label_*): every pprof sample carries every
 * label, and pod labels such as pod-template-hash add bytes without identifying anything the pod
 * name does not; add that rule to a config file to get them. A rule whose source labels are
 * absent leaves the target label unset, so one config serves both kinds of targets. */
const char anorak_default_config[] =
	"job_name: " ANORAK_DEFAULT_JOB_NAME "\n"
	"relabel_configs:\n"
	"  - source_labels: [__meta_process_comm]\n"
	"    target_label: comm\n"
	"  - source_labels: [__meta_systemd_unit]\n"
	"    target_label: systemd_unit\n"
	"  - source_labels: [__meta_container_id]\n"
	"    target_label: container_id\n"
	"  - source_labels: [__meta_kubernetes_namespace]\n"
	"    target_label: namespace\n"
	"  - source_labels: [__meta_kubernetes_pod_name]\n"
	"    target_label: pod\n"
	"  - source_labels: [__meta_kubernetes_pod_container_name]\n"
	"    target_label: container\n"
	"  - source_labels: [__meta_kubernetes_pod_annotation_anorak_dev_sampling_frequency]\n"
	"    target_label: __sampling_frequency__\n";

struct parse {
	yaml_document_t *doc;
	char *err;
	size_t errlen;
};

#define node_error(p, node, ...) yaml_node_error((p)->err, (p)->errlen, node, __VA_ARGS__)

static const char *scalar(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

/* A string field: any scalar as written (yaml.v2 turns numbers and booleans into their text); null
 * leaves the empty string, as yaml.v2 zeroes the field. */
static int get_string(struct parse *p, const yaml_node_t *node, const char *key, const char **out)
{
	if (node->type != YAML_SCALAR_NODE)
		return node_error(p, node, "%s: expected a string, got %s", key, yaml_node_kind(node));
	*out = yaml_node_is_null(node) ? "" : scalar(node);
	return 0;
}

static int get_modulus(struct parse *p, const yaml_node_t *node, uint64_t *out)
{
	const char *s;
	char *end = NULL;

	if (yaml_node_is_null(node)) {
		*out = 0;
		return 0;
	}
	if (node->type != YAML_SCALAR_NODE)
		return node_error(p, node, "modulus: expected an unsigned integer, got %s",
				  yaml_node_kind(node));
	s = scalar(node);
	errno = 0;
	/* A plain decimal or 0x number; a quoted one is a string to yaml.v2. */
	if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && *s >= '0' && *s <= '9')
		*out = strtoull(s, &end, 0);
	if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || *s < '0' || *s > '9' || *end ||
	    errno)
		return node_error(p, node, "modulus: \"%s\" is not an unsigned 64-bit integer", s);
	return 0;
}

static int get_source_labels(struct parse *p, const yaml_node_t *node, struct relabel_config *rc)
{
	yaml_node_item_t *item;
	size_t n;

	if (yaml_node_is_null(node))
		return 0;
	if (node->type != YAML_SEQUENCE_NODE)
		return node_error(p, node, "source_labels: expected a sequence of label names, got %s",
				  yaml_node_kind(node));
	n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	/* Never NULL once given, even empty: labeldrop/labelkeep refuse a given source_labels. */
	rc->source_labels = calloc(n + 1, sizeof(char *));
	if (!rc->source_labels)
		return -ENOMEM;
	for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
		yaml_node_t *v = yaml_document_get_node(p->doc, *item);
		const char *name;
		int err = get_string(p, v, "source_labels", &name);

		if (err)
			return err;
		/* Casting away const is safe: the strings live in the document while we use them. */
		rc->source_labels[rc->nsource_labels++] = (char *)name;
	}
	return 0;
}

/* Calls fn for each key/value of a mapping, refusing keys that appear twice. */
static int each_pair(struct parse *p, const yaml_node_t *map, const char *what,
		     int (*fn)(struct parse *, const char *key, const yaml_node_t *value, void *arg),
		     void *arg)
{
	struct yaml_pairs it;
	int rc;

	if (!yaml_pairs_begin(&it, p->doc, map))
		return node_error(p, map, "%s: expected a mapping, got %s", what, yaml_node_kind(map));
	while ((rc = yaml_pairs_next(&it)) == YAML_PAIRS_PAIR) {
		rc = fn(p, yaml_pairs_key(&it), it.value, arg);
		if (rc == -ENOENT)
			return node_error(p, it.key, "unknown field \"%s\" in %s", yaml_pairs_key(&it), what);
		if (rc)
			return rc;
	}
	if (rc == YAML_PAIRS_KEY_NOT_STRING)
		return node_error(p, it.key, "%s: keys must be strings", what);
	if (rc == YAML_PAIRS_KEY_TWICE)
		return node_error(p, it.key, "key \"%s\" already set in %s", yaml_pairs_key(&it), what);
	return 0;
}

static int rule_field(struct parse *p, const char *key, const yaml_node_t *v, void *arg)
{
	struct relabel_config *rc = arg;
	const char *s;
	int err;

	if (!strcmp(key, "source_labels"))
		return get_source_labels(p, v, rc);
	if (!strcmp(key, "modulus"))
		return get_modulus(p, v, &rc->modulus);
	if (strcmp(key, "separator") && strcmp(key, "regex") && strcmp(key, "target_label") &&
	    strcmp(key, "replacement") && strcmp(key, "action"))
		return -ENOENT;
	if ((err = get_string(p, v, key, &s)))
		return err;
	if (!strcmp(key, "separator")) {
		rc->separator = s;
	} else if (!strcmp(key, "regex")) {
		rc->regex = s;
	} else if (!strcmp(key, "target_label")) {
		rc->target_label = s;
	} else if (!strcmp(key, "replacement")) {
		rc->replacement = s;
	} else if (!*s) {
		rc->action = RELABEL_ACTION_NONE;
	} else if (relabel_action_parse(s, &rc->action)) {
		return node_error(p, v, "unknown relabel action \"%s\"", s);
	}
	return 0;
}

static int parse_rule(struct parse *p, const yaml_node_t *node, struct relabel_rules *rules)
{
	struct relabel_config rc;
	char msg[512];
	int err;

	if (yaml_node_is_null(node))
		return node_error(p, node, "empty or null target relabeling rule in scrape config");
	relabel_config_init(&rc);
	err = each_pair(p, node, "relabel_configs entry", rule_field, &rc);
	if (!err) {
		err = relabel_rules_add(rules, &rc, msg, sizeof(msg));
		if (err)
			node_error(p, node, "%s", msg);
	}
	free(rc.source_labels);
	return err;
}

static int parse_rules(struct parse *p, const yaml_node_t *node, struct relabel_rules *rules)
{
	yaml_node_item_t *item;

	if (yaml_node_is_null(node))
		return 0;
	if (node->type != YAML_SEQUENCE_NODE)
		return node_error(p, node, "relabel_configs: expected a sequence, got %s",
				  yaml_node_kind(node));
	for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
		yaml_node_t *v = yaml_document_get_node(p->doc, *item);
		int err;

		if (rules->n == ANORAK_CONFIG_MAX_RULES)
			return node_error(p, v, "relabel_configs: more than %d rules",
					  ANORAK_CONFIG_MAX_RULES);
		if ((err = parse_rule(p, v, rules)))
			return err;
	}
	return 0;
}

static int top_field(struct parse *p, const char *key, const yaml_node_t *v, void *arg)
{
	struct anorak_file_config *cfg = arg;
	const char *s;
	int err;

	if (!strcmp(key, "relabel_configs"))
		return parse_rules(p, v, &cfg->rules);
	if (strcmp(key, "job_name"))
		return -ENOENT;
	if ((err = get_string(p, v, key, &s)))
		return err;
	/* Prometheus refuses an empty job_name; only a missing one takes the default. */
	if (!*s)
		return node_error(p, v, "job_name is empty");
	free(cfg->job_name);
	cfg->job_name = strdup(s);
	return cfg->job_name ? 0 : -ENOMEM;
}

static int parse_document(yaml_document_t *doc, struct anorak_file_config *cfg, char *err,
			  size_t errlen)
{
	struct parse p = { .doc = doc, .err = err, .errlen = errlen };
	yaml_node_t *root = yaml_document_get_root_node(doc);

	/* An empty file, like an empty Prometheus config, is all defaults. */
	if (!root || yaml_node_is_null(root))
		return 0;
	return each_pair(&p, root, "config file", top_field, cfg);
}

int anorak_config_parse(const char *yaml, size_t len, struct anorak_file_config **out, char *err,
			size_t errlen)
{
	struct anorak_file_config *cfg;
	yaml_parser_t parser;
	yaml_document_t doc;
	int rc;

	*out = NULL;
	if (len > ANORAK_CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "config of %zu bytes is larger than the limit of %d bytes", len,
			 ANORAK_CONFIG_MAX_BYTES);
		return -EFBIG;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->job_name = strdup(ANORAK_DEFAULT_JOB_NAME)) ||
	    !yaml_parser_initialize(&parser)) {
		anorak_config_free(cfg);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	/* Like yaml.v2's Unmarshal, only the first document counts. */
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "line %zu: %s%s%s", parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "invalid YAML",
			 parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		anorak_config_free(cfg);
		return parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
	}
	rc = parse_document(&doc, cfg, err, errlen);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc) {
		anorak_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

/* Reads at most ANORAK_CONFIG_MAX_BYTES + 1 bytes, enough to tell the file is too large. */
static int read_bounded(const char *path, char **buf, size_t *len)
{
	size_t cap = ANORAK_CONFIG_MAX_BYTES + 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	*buf = malloc(cap);
	*len = 0;
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	while (*len < cap && (n = read(fd, *buf + *len, cap - *len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		*len += (size_t)n;
	}
	close(fd);
	if (rc) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

int anorak_config_load(const char *path, struct anorak_file_config **out, char *err, size_t errlen)
{
	char msg[512], *buf = NULL;
	size_t len = 0;
	int rc = read_bounded(path, &buf, &len);

	*out = NULL;
	if (rc) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
		return rc;
	}
	if (len > ANORAK_CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than the limit of %d bytes", path,
			 ANORAK_CONFIG_MAX_BYTES);
		free(buf);
		return -EFBIG;
	}
	rc = anorak_config_parse(buf, len, out, msg, sizeof(msg));
	if (rc)
		snprintf(err, errlen, "%s: %s", path, msg);
	free(buf);
	return rc;
}

void anorak_config_free(struct anorak_file_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->job_name);
	relabel_rules_free(&cfg->rules);
	free(cfg);
}
