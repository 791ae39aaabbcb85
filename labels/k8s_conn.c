#include "labels/k8s_conn.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "common/log.h"

#define KUBECONFIG_MAX_BYTES (4 << 20)
#define PATH_LEN 4096

struct kubeconfig {
	const char *path;
	yaml_document_t doc;
	char dir[PATH_LEN];
};

static int set_str(char **dst, const char *s, size_t len)
{
	*dst = strndup(s, len);
	return *dst ? 0 : -ENOMEM;
}

int k8s_conn_from_url(const char *url, struct k8s_conn *conn)
{
	size_t len = strlen(url);

	*conn = (struct k8s_conn){ 0 };
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		log_error("Kubernetes API server URL must start with http:// or https://", "url=\"%s\"",
			  url);
		return -EINVAL;
	}
	while (len && url[len - 1] == '/')
		len--;
	return set_str(&conn->server, url, len);
}

int k8s_conn_in_cluster(const char *sa_dir, struct k8s_conn *conn)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
	char url[512];

	*conn = (struct k8s_conn){ 0 };
	if (!host || !*host || !port || !*port) {
		log_error("not in a Kubernetes cluster: KUBERNETES_SERVICE_HOST/PORT unset", NULL);
		return -ENOENT;
	}
	snprintf(url, sizeof(url), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		 port);
	if (asprintf(&conn->token_file, "%s/token", sa_dir) < 0)
		conn->token_file = NULL;
	if (asprintf(&conn->ca.file, "%s/ca.crt", sa_dir) < 0)
		conn->ca.file = NULL;
	conn->server = strdup(url);
	if (!conn->server || !conn->token_file || !conn->ca.file) {
		k8s_conn_free(conn);
		return -ENOMEM;
	}
	return 0;
}

static void pem_free(struct k8s_pem *p)
{
	free(p->file);
	free(p->data);
}

void k8s_conn_free(struct k8s_conn *conn)
{
	free(conn->server);
	pem_free(&conn->ca);
	pem_free(&conn->cert);
	pem_free(&conn->key);
	free(conn->token);
	free(conn->token_file);
	*conn = (struct k8s_conn){ 0 };
}

/* --- kubeconfig ---------------------------------------------------------------------------------- */

static int bad(const struct kubeconfig *kc, const char *field, const char *problem)
{
	log_error("invalid kubeconfig", "file=\"%s\" field=%s err=\"%s\"", kc->path, field, problem);
	return -EINVAL;
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The value of key in a mapping node, or NULL. */
static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(yaml_document_get_node(doc, p->key));

		if (k && strcmp(k, key) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

static const char *map_str(struct kubeconfig *kc, yaml_node_t *map, const char *key)
{
	const char *s = scalar(map_get(&kc->doc, map, key));

	return s && *s ? s : NULL;
}

/* In a list like clusters: [{name: x, cluster: {...}}], the inner mapping (under field) named name. */
static yaml_node_t *named(struct kubeconfig *kc, const char *list, const char *field, const char *name)
{
	yaml_node_t *seq = map_get(&kc->doc, yaml_document_get_root_node(&kc->doc), list);

	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
	     i++) {
		yaml_node_t *entry = yaml_document_get_node(&kc->doc, *i);
		const char *n = map_str(kc, entry, "name");

		if (n && strcmp(n, name) == 0)
			return map_get(&kc->doc, entry, field);
	}
	return NULL;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 with padding; whitespace is ignored. */
static int b64_decode(const char *in, char **out, size_t *outlen)
{
	size_t n = strlen(in), o = 0;
	unsigned acc = 0, bits = 0;
	char *buf = malloc(n / 4 * 3 + 3);

	if (!buf)
		return -ENOMEM;
	for (const char *p = in; *p && *p != '='; p++) {
		int v = b64_value((unsigned char)*p);

		if (v < 0) {
			if (strchr(" \t\r\n", *p))
				continue;
			free(buf);
			return -EINVAL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
}

static int resolve_path(struct kubeconfig *kc, const char *p, char **out)
{
	if (p[0] == '/')
		*out = strdup(p);
	else if (asprintf(out, "%s/%s", kc->dir, p) < 0)
		*out = NULL;
	return *out ? 0 : -ENOMEM;
}

/* PEM from "<key>-data" (base64) or "<key>" (a path). */
static int get_pem(struct kubeconfig *kc, yaml_node_t *map, const char *key, struct k8s_pem *pem)
{
	char data_key[64];
	const char *data, *file;
	int err;

	snprintf(data_key, sizeof(data_key), "%s-data", key);
	data = map_str(kc, map, data_key);
	file = map_str(kc, map, key);
	if (data) {
		err = b64_decode(data, &pem->data, &pem->len);
		return err == -EINVAL ? bad(kc, data_key, "not base64") : err;
	}
	return file ? resolve_path(kc, file, &pem->file) : 0;
}

static int load_yaml(struct kubeconfig *kc)
{
	yaml_parser_t parser;
	struct stat st;
	FILE *f = fopen(kc->path, "r");
	int err = 0;

	if (!f) {
		err = -errno;
		log_error("cannot open kubeconfig", "file=\"%s\" err=\"%s\"", kc->path, strerror(-err));
		return err;
	}
	if (fstat(fileno(f), &st) == 0 && st.st_size > KUBECONFIG_MAX_BYTES) {
		fclose(f);
		return bad(kc, "-", "file larger than 4 MiB");
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &kc->doc)) {
		log_error("invalid kubeconfig YAML", "file=\"%s\" line=%zu err=\"%s\"", kc->path,
			  parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
		err = -EINVAL;
	} else if (!yaml_document_get_root_node(&kc->doc)) {
		yaml_document_delete(&kc->doc);
		err = bad(kc, "-", "empty document");
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return err;
}

static int cluster_fields(struct kubeconfig *kc, yaml_node_t *cluster, struct k8s_conn *conn)
{
	const char *server = map_str(kc, cluster, "server");
	const char *insecure = map_str(kc, cluster, "insecure-skip-tls-verify");
	int err;

	if (!server)
		return bad(kc, "cluster.server", "missing");
	if ((err = k8s_conn_from_url(server, conn)))
		return err;
	conn->insecure = insecure && strcmp(insecure, "true") == 0;
	return get_pem(kc, cluster, "certificate-authority", &conn->ca);
}

static int user_fields(struct kubeconfig *kc, yaml_node_t *user, struct k8s_conn *conn)
{
	const char *token = map_str(kc, user, "token"), *token_file = map_str(kc, user, "tokenFile");
	int err;

	if (map_get(&kc->doc, user, "exec") || map_get(&kc->doc, user, "auth-provider")) {
		log_error("kubeconfig user authenticates with exec or auth-provider, not supported",
			  "file=\"%s\"", kc->path);
		return -ENOTSUP;
	}
	if (token && !(conn->token = strdup(token)))
		return -ENOMEM;
	if (!token && token_file && (err = resolve_path(kc, token_file, &conn->token_file)))
		return err;
	if ((err = get_pem(kc, user, "client-certificate", &conn->cert)) ||
	    (err = get_pem(kc, user, "client-key", &conn->key)))
		return err;
	if (!(conn->cert.file || conn->cert.data) != !(conn->key.file || conn->key.data))
		return bad(kc, "user", "client certificate and key must come together");
	return 0;
}

static int from_document(struct kubeconfig *kc, struct k8s_conn *conn)
{
	yaml_node_t *root = yaml_document_get_root_node(&kc->doc), *ctx, *cluster, *user = NULL;
	const char *current = map_str(kc, root, "current-context"), *cname, *uname;
	int err;

	if (!current)
		return bad(kc, "current-context", "missing");
	if (!(ctx = named(kc, "contexts", "context", current)))
		return bad(kc, "contexts", "no entry for the current context");
	if (!(cname = map_str(kc, ctx, "cluster")) || !(cluster = named(kc, "clusters", "cluster", cname)))
		return bad(kc, "clusters", "no entry for the context's cluster");
	uname = map_str(kc, ctx, "user");
	if (uname && !(user = named(kc, "users", "user", uname)))
		return bad(kc, "users", "no entry for the context's user");
	if ((err = cluster_fields(kc, cluster, conn)))
		return err;
	return user ? user_fields(kc, user, conn) : 0;
}

int k8s_conn_from_kubeconfig(const char *path, struct k8s_conn *conn)
{
	struct kubeconfig kc = { .path = path };
	char copy[PATH_LEN];
	int err;

	*conn = (struct k8s_conn){ 0 };
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(kc.dir, sizeof(kc.dir), "%s", dirname(copy));
	if ((err = load_yaml(&kc)))
		return err;
	err = from_document(&kc, conn);
	yaml_document_delete(&kc.doc);
	if (err)
		k8s_conn_free(conn);
	return err;
}
