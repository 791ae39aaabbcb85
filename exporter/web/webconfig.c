#include "exporter/web/webconfig.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/yaml_node.h"

#define AUTH_CACHE_SIZE 64
#define BCRYPT_LEN 60
#define SESSION_ID_CONTEXT "anorak"

/* A bcrypt hash of a random password: unknown users cost as much as known ones, so timing does not tell
 * which user names exist (exporter-toolkit does the same). */
static const char dummy_hash[] = "$2b$10$mRfMYxltatk2MzUTMK3rOuXqvWGPd1vIyzfsHceyy5p9IzTDqA8l.";

/* --- parsing ---------------------------------------------------------------------------------------- */

struct parse {
	yaml_document_t *doc;
	const char *dir;
	const yaml_node_t *key; /* of the field being parsed: where unknown fields are reported */
	char *err;
	size_t errlen;
};

#define node_error(p, node, ...) yaml_node_error((p)->err, (p)->errlen, node, __VA_ARGS__)

/* A string value (a null one is ""); anything but a scalar is an error. */
static int get_string(struct parse *p, const char *key, const yaml_node_t *v, const char **out)
{
	if (v->type != YAML_SCALAR_NODE)
		return node_error(p, v, "%s must be a string", key);
	*out = yaml_node_is_null(v) ? "" : (const char *)v->data.scalar.value;
	return 0;
}

static int set_path(struct parse *p, const yaml_node_t *v, const char *key, char **dst)
{
	const char *s = NULL;
	int err = get_string(p, key, v, &s);

	if (err)
		return err;
	free(*dst);
	*dst = NULL;
	if (!*s)
		return 0;
	if (s[0] == '/' || !p->dir)
		*dst = strdup(s);
	else if (asprintf(dst, "%s/%s", p->dir, s) < 0)
		*dst = NULL;
	return *dst ? 0 : -ENOMEM;
}

typedef int (*field_fn)(struct parse *p, const char *key, const yaml_node_t *v, void *arg);

/* Calls fn for each key of a mapping (a null node is an empty mapping); keys must be unique strings. */
static int each_pair(struct parse *p, const yaml_node_t *map, const char *what, field_fn fn, void *arg)
{
	struct yaml_pairs it;
	int rc;

	if (!yaml_pairs_begin(&it, p->doc, map))
		return node_error(p, map, "%s must be a mapping", what);
	while ((rc = yaml_pairs_next(&it)) == YAML_PAIRS_PAIR) {
		p->key = it.key;
		rc = fn(p, yaml_pairs_key(&it), it.value, arg);
		if (rc)
			return rc;
	}
	if (rc == YAML_PAIRS_KEY_NOT_STRING)
		return node_error(p, it.key, "%s: keys must be strings", what);
	if (rc == YAML_PAIRS_KEY_TWICE)
		return node_error(p, it.key, "%s: key \"%s\" already set", what, yaml_pairs_key(&it));
	return 0;
}

static const char *const client_auth_names[] = {
	[WEBCONFIG_NO_CLIENT_CERT] = "NoClientCert",
	[WEBCONFIG_REQUEST_CLIENT_CERT] = "RequestClientCert",
	[WEBCONFIG_REQUIRE_ANY_CLIENT_CERT] = "RequireAnyClientCert",
	[WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN] = "VerifyClientCertIfGiven",
	[WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT] = "RequireAndVerifyClientCert",
};

static const struct {
	const char *name;
	int version;
} tls_versions[] = {
	{ "TLS10", TLS1_VERSION }, { "TLS11", TLS1_1_VERSION }, { "TLS12", TLS1_2_VERSION },
	{ "TLS13", TLS1_3_VERSION },
};

static int get_tls_version(struct parse *p, const char *key, const yaml_node_t *v, int *out)
{
	const char *s = NULL;
	int err = get_string(p, key, v, &s);

	if (err)
		return err;
	for (size_t i = 0; i < sizeof(tls_versions) / sizeof(tls_versions[0]); i++) {
		if (!strcmp(s, tls_versions[i].name)) {
			*out = tls_versions[i].version;
			return 0;
		}
	}
	return node_error(p, v, "unknown TLS version: %s (TLS10, TLS11, TLS12 or TLS13)", s);
}

/* exporter-toolkit keys that anorak refuses by name instead of ignoring. */
static const char *const tls_unsupported[] = {
	"cert", "key", "client_ca", "client_allowed_sans", "cipher_suites", "prefer_server_cipher_suites",
	"curve_preferences",
};

struct tls_fields {
	struct webconfig_data *d;
	bool auth_set;
};

static int tls_field(struct parse *p, const char *key, const yaml_node_t *v, void *arg)
{
	struct tls_fields *t = arg;
	struct webconfig_data *d = t->d;
	const char *s = NULL;
	int err;

	if (!strcmp(key, "cert_file"))
		return set_path(p, v, key, &d->cert_file);
	if (!strcmp(key, "key_file"))
		return set_path(p, v, key, &d->key_file);
	if (!strcmp(key, "client_ca_file"))
		return set_path(p, v, key, &d->client_ca_file);
	if (!strcmp(key, "min_version"))
		return get_tls_version(p, key, v, &d->min_version);
	if (!strcmp(key, "max_version"))
		return get_tls_version(p, key, v, &d->max_version);
	if (!strcmp(key, "client_auth_type")) {
		if ((err = get_string(p, key, v, &s)))
			return err;
		for (size_t i = 0; i < sizeof(client_auth_names) / sizeof(client_auth_names[0]); i++) {
			if (!strcmp(s, client_auth_names[i]) || (!*s && i == WEBCONFIG_NO_CLIENT_CERT)) {
				d->client_auth = i;
				t->auth_set = *s != '\0';
				return 0;
			}
		}
		return node_error(p, v, "invalid client_auth_type: %s", s);
	}
	for (size_t i = 0; i < sizeof(tls_unsupported) / sizeof(tls_unsupported[0]); i++)
		if (!strcmp(key, tls_unsupported[i]))
			return node_error(p, p->key, "tls_server_config.%s is not supported by anorak", key);
	return node_error(p, p->key, "unknown field \"%s\" in tls_server_config", key);
}

/* bcrypt as crypt(3) writes it: $2a$, $2b$, $2x$ or $2y$, a cost of 04..31, 53 characters of salt and
 * hash in bcrypt's base64. */
static bool bcrypt_hash_valid(const char *h)
{
	static const char alphabet[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	int cost;

	if (strlen(h) != BCRYPT_LEN || h[0] != '$' || h[1] != '2' || !strchr("abxy", h[2]) ||
	    h[3] != '$' || h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return false;
	cost = (h[4] - '0') * 10 + (h[5] - '0');
	if (cost < 4 || cost > 31)
		return false;
	return strspn(h + 7, alphabet) == BCRYPT_LEN - 7;
}

static int user_field(struct parse *p, const char *key, const yaml_node_t *v, void *arg)
{
	struct webconfig_data *d = arg;
	struct webconfig_user *u;
	const char *hash = NULL;
	int err;

	if ((err = get_string(p, key, v, &hash)))
		return err;
	if (!*key)
		return node_error(p, v, "basic_auth_users: empty user name");
	if (strchr(key, ':'))
		return node_error(p, v, "basic_auth_users: user name \"%s\" contains ':'", key);
	if (!bcrypt_hash_valid(hash))
		return node_error(p, v, "basic_auth_users: the password of \"%s\" is not a bcrypt hash", key);
	if (d->nusers == WEBCONFIG_MAX_USERS)
		return node_error(p, v, "basic_auth_users: more than %d users", WEBCONFIG_MAX_USERS);
	u = reallocarray(d->users, d->nusers + 1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	d->users = u;
	u = &d->users[d->nusers];
	u->name = strdup(key);
	u->hash = strdup(hash);
	if (!u->name || !u->hash) {
		free(u->name);
		free(u->hash);
		return -ENOMEM;
	}
	d->nusers++;
	return 0;
}

/* exporter-toolkit's rules: TLS is on when any of cert, key, client auth or client CA is set, and then
 * needs both certificate and key; client CAs need a client auth policy. */
static int check_tls(struct parse *p, const yaml_node_t *node, struct tls_fields *t)
{
	struct webconfig_data *d = t->d;

	d->tls = d->cert_file || d->key_file || d->client_ca_file || t->auth_set;
	if (!d->tls)
		return 0;
	if (!d->cert_file)
		return node_error(p, node, "tls_server_config: missing cert_file");
	if (!d->key_file)
		return node_error(p, node, "tls_server_config: missing key_file");
	if (d->client_ca_file && d->client_auth == WEBCONFIG_NO_CLIENT_CERT)
		return node_error(p, node, "tls_server_config: client_ca_file is set without a client_auth_type");
	if (d->min_version > d->max_version)
		return node_error(p, node, "tls_server_config: min_version is above max_version");
	return 0;
}

static int top_field(struct parse *p, const char *key, const yaml_node_t *v, void *arg)
{
	struct webconfig_data *d = arg;

	if (!strcmp(key, "tls_server_config")) {
		struct tls_fields t = { .d = d };
		int err = each_pair(p, v, key, tls_field, &t);

		return err ? err : check_tls(p, v, &t);
	}
	if (!strcmp(key, "basic_auth_users"))
		return each_pair(p, v, key, user_field, d);
	if (!strcmp(key, "http_server_config") || !strcmp(key, "rate_limit"))
		return node_error(p, p->key, "%s is not supported by anorak", key);
	return node_error(p, p->key, "unknown field \"%s\" in the web config", key);
}

void webconfig_data_free(struct webconfig_data *d)
{
	if (!d)
		return;
	free(d->cert_file);
	free(d->key_file);
	free(d->client_ca_file);
	for (size_t i = 0; i < d->nusers; i++) {
		free(d->users[i].name);
		free(d->users[i].hash);
	}
	free(d->users);
	free(d);
}

int webconfig_parse(const char *yaml, size_t len, const char *dir, struct webconfig_data **out, char *err,
		    size_t errlen)
{
	struct webconfig_data *d;
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int rc = 0;

	*out = NULL;
	if (len > WEBCONFIG_MAX_BYTES) {
		snprintf(err, errlen, "web config of %zu bytes is larger than the limit of %d bytes", len,
			 WEBCONFIG_MAX_BYTES);
		return -EFBIG;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !yaml_parser_initialize(&parser)) {
		free(d);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->min_version = TLS1_2_VERSION;
	d->max_version = TLS1_3_VERSION;
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "line %zu: %s", parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "invalid YAML");
		rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
		yaml_parser_delete(&parser);
		webconfig_data_free(d);
		return rc;
	}
	root = yaml_document_get_root_node(&doc);
	if (root) {
		struct parse p = { .doc = &doc, .dir = dir, .err = err, .errlen = errlen };

		rc = each_pair(&p, root, "web config", top_field, d);
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc) {
		webconfig_data_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

/* --- TLS -------------------------------------------------------------------------------------------- */

/* The first OpenSSL error of the thread, for messages. */
static const char *ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (!e)
		return "unknown error";
	ERR_error_string_n(e, buf, len);
	return buf;
}

/* Request and RequireAny ask for a certificate without checking it, as Go does. */
static int accept_any(int preverify, X509_STORE_CTX *ctx)
{
	(void)preverify, (void)ctx;
	return 1;
}

static int configure_ctx(SSL_CTX *ctx, const struct webconfig_data *d, char *err, size_t errlen)
{
	static const struct {
		int mode;
		bool any;
	} policy[] = {
		[WEBCONFIG_NO_CLIENT_CERT] = { SSL_VERIFY_NONE, false },
		[WEBCONFIG_REQUEST_CLIENT_CERT] = { SSL_VERIFY_PEER, true },
		[WEBCONFIG_REQUIRE_ANY_CLIENT_CERT] = { SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, true },
		[WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN] = { SSL_VERIFY_PEER, false },
		[WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT] = { SSL_VERIFY_PEER |
								 SSL_VERIFY_FAIL_IF_NO_PEER_CERT, false },
	};
	char why[256];

	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, d->cert_file) != 1) {
		snprintf(err, errlen, "cannot load cert_file %s: %s", d->cert_file, ssl_error(why, sizeof(why)));
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, d->key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "cannot load key_file %s: %s", d->key_file, ssl_error(why, sizeof(why)));
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "key_file %s does not match cert_file %s", d->key_file, d->cert_file);
		ERR_clear_error();
		return -EINVAL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, d->min_version) ||
	    !SSL_CTX_set_max_proto_version(ctx, d->max_version)) {
		snprintf(err, errlen, "cannot set the TLS versions: %s", ssl_error(why, sizeof(why)));
		return -EINVAL;
	}
	if (d->client_ca_file) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(d->client_ca_file);

		if (!names || SSL_CTX_load_verify_locations(ctx, d->client_ca_file, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			snprintf(err, errlen, "cannot load client_ca_file %s: %s", d->client_ca_file,
				 ssl_error(why, sizeof(why)));
			return -EINVAL;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	} else if (d->client_auth != WEBCONFIG_NO_CLIENT_CERT && !policy[d->client_auth].any) {
		/* Like Go with no ClientCAs: the system's roots. */
		SSL_CTX_set_default_verify_paths(ctx);
	}
	SSL_CTX_set_verify(ctx, policy[d->client_auth].mode, policy[d->client_auth].any ? accept_any : NULL);
	/* Session resumption with client certificates needs a session id context. */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
				       sizeof(SESSION_ID_CONTEXT) - 1);
	return 0;
}

/* Loads everything into a throwaway context, so a bad certificate is an error at load time. */
static int check_tls_files(const struct webconfig_data *d, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int rc;

	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context");
		return -ENOMEM;
	}
	rc = configure_ctx(ctx, d, err, errlen);
	SSL_CTX_free(ctx);
	return rc;
}

/* Double quotes would end a logfmt value early. */
static void log_safe(char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			*s = '\'';
}

/* --- the live config -------------------------------------------------------------------------------- */

struct webconfig {
	char *path, *dir;
	pthread_mutex_t lock;
	struct webconfig_data *data; /* in force; replaced whole on reload */
	struct stat st;              /* of the file data came from */
	struct webconfig_data *tls;  /* what the listener was set up with */
	unsigned char cache[AUTH_CACHE_SIZE][32]; /* SHA-256 of user, password and hash that passed */
	size_t ncache, next_cache;
};

static int read_file(const char *path, char **buf, size_t *len, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	size_t cap = WEBCONFIG_MAX_BYTES + 1;
	ssize_t n;

	if (fd < 0)
		return -errno;
	*buf = malloc(cap);
	*len = 0;
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	if (fstat(fd, st))
		rc = -errno;
	while (!rc && *len < cap && (n = read(fd, *buf + *len, cap - *len)) != 0) {
		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			*len += (size_t)n;
	}
	close(fd);
	if (rc) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

/* Reads, parses and checks the file. */
static int load_data(const char *path, const char *dir, struct webconfig_data **out, struct stat *st,
		     char *err, size_t errlen)
{
	char msg[512], *buf = NULL;
	size_t len = 0;
	int rc = read_file(path, &buf, &len, st);

	if (rc) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	rc = webconfig_parse(buf, len, dir, out, msg, sizeof(msg));
	free(buf);
	if (!rc && (*out)->tls && (rc = check_tls_files(*out, msg, sizeof(msg)))) {
		webconfig_data_free(*out);
		*out = NULL;
	}
	if (rc) {
		snprintf(err, errlen, "%s: %s", path, msg);
		log_safe(err);
	}
	return rc;
}

int webconfig_load(const char *path, struct webconfig **out, char *err, size_t errlen)
{
	struct webconfig *w = calloc(1, sizeof(*w));
	char *copy;
	int rc;

	*out = NULL;
	if (!w || !(w->path = strdup(path)) || !(copy = strdup(path))) {
		if (w)
			free(w->path);
		free(w);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	w->dir = strdup(dirname(copy));
	free(copy);
	if (!w->dir) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	rc = load_data(path, w->dir, &w->data, &w->st, err, errlen);
	if (rc)
		goto fail;
	pthread_mutex_init(&w->lock, NULL);
	w->tls = w->data;
	*out = w;
	return 0;
fail:
	free(w->dir);
	free(w->path);
	free(w);
	return rc;
}

void webconfig_free(struct webconfig *w)
{
	if (!w)
		return;
	if (w->tls != w->data)
		webconfig_data_free(w->tls);
	webconfig_data_free(w->data);
	pthread_mutex_destroy(&w->lock);
	free(w->dir);
	free(w->path);
	free(w);
}

bool webconfig_tls(const struct webconfig *w)
{
	return w && w->tls->tls;
}

int webconfig_setup_tls(struct webconfig *w, void *ssl_ctx)
{
	char err[512];
	int rc = configure_ctx(ssl_ctx, w->tls, err, sizeof(err));

	if (rc) {
		log_safe(err);
		log_error("cannot set up TLS", "file=\"%s\" err=\"%s\"", w->path, err);
	}
	return rc;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool same_tls(const struct webconfig_data *a, const struct webconfig_data *b)
{
	return a->tls == b->tls && str_eq(a->cert_file, b->cert_file) && str_eq(a->key_file, b->key_file) &&
	       str_eq(a->client_ca_file, b->client_ca_file) && a->client_auth == b->client_auth &&
	       a->min_version == b->min_version && a->max_version == b->max_version;
}

static bool file_changed(const struct stat *a, const struct stat *b)
{
	return a->st_ino != b->st_ino || a->st_dev != b->st_dev || a->st_size != b->st_size ||
	       a->st_mtim.tv_sec != b->st_mtim.tv_sec || a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

void webconfig_refresh(struct webconfig *w)
{
	struct webconfig_data *d;
	struct stat st;
	char err[512];

	if (!w || stat(w->path, &st))
		return; /* a file being replaced can be missing for a moment: keep what is in force */
	pthread_mutex_lock(&w->lock);
	if (!file_changed(&st, &w->st))
		goto out;
	w->st = st; /* a bad file is reported once, not on every request */
	if (load_data(w->path, w->dir, &d, &st, err, sizeof(err))) {
		log_error("web config not reloaded, the previous one stays in force", "err=\"%s\"", err);
		goto out;
	}
	if (!same_tls(d, w->tls))
		log_warn("web config: tls_server_config changed, it applies when anorak restarts",
			 "file=\"%s\"", w->path);
	if (w->data != w->tls)
		webconfig_data_free(w->data);
	w->data = d;
	w->ncache = w->next_cache = 0;
	log_info("web config reloaded", "file=\"%s\" users=%zu", w->path, d->nusers);
out:
	pthread_mutex_unlock(&w->lock);
}

/* --- basic auth ------------------------------------------------------------------------------------- */

bool webconfig_password_ok(const char *password, const char *hash)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd)); /* ~32 KiB: not on a worker's stack */
	const char *out;
	bool ok;

	if (!cd)
		return false;
	out = crypt_r(password, hash, cd);
	ok = out && out[0] != '*' && strlen(out) == strlen(hash) && CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
	free(cd);
	return ok;
}

static void cache_key(const char *user, const char *password, const char *hash, unsigned char key[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 32;

	memset(key, 0, 32);
	if (!md)
		return;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) && EVP_DigestUpdate(md, user, strlen(user) + 1) &&
	    EVP_DigestUpdate(md, password, strlen(password) + 1) && EVP_DigestUpdate(md, hash, strlen(hash)))
		EVP_DigestFinal_ex(md, key, &n);
	EVP_MD_CTX_free(md);
}

/* "Basic base64(user:password)" -> user and password in buf (NUL-separated); -EINVAL when malformed. */
static int decode_basic(const char *header, char *buf, size_t buflen, char **user, char **password)
{
	size_t len, padding = 0;
	char *colon;
	int n;

	if (!header || strncasecmp(header, "Basic ", 6) != 0)
		return -EINVAL;
	header += 6;
	while (*header == ' ')
		header++;
	len = strlen(header);
	if (len == 0 || len % 4 || len / 4 * 3 >= buflen)
		return -EINVAL;
	n = EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)header, (int)len);
	if (n < 0)
		return -EINVAL;
	padding = (header[len - 1] == '=') + (header[len - 2] == '=');
	n -= (int)padding;
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n) || !(colon = strchr(buf, ':')))
		return -EINVAL;
	*colon = '\0';
	*user = buf;
	*password = colon + 1;
	return 0;
}

int webconfig_authorize(struct webconfig *w, const char *authorization)
{
	char buf[1024], *user, *password, *hash = NULL;
	unsigned char key[32];
	bool ok = false;

	pthread_mutex_lock(&w->lock);
	if (!w->data->nusers) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	if (decode_basic(authorization, buf, sizeof(buf), &user, &password)) {
		pthread_mutex_unlock(&w->lock);
		return -EACCES;
	}
	for (size_t i = 0; i < w->data->nusers; i++)
		if (!strcmp(w->data->users[i].name, user))
			hash = strdup(w->data->users[i].hash);
	if (hash) {
		cache_key(user, password, hash, key);
		for (size_t i = 0; i < w->ncache && !ok; i++)
			ok = CRYPTO_memcmp(w->cache[i], key, sizeof(key)) == 0;
	}
	pthread_mutex_unlock(&w->lock);
	if (ok)
		goto out;
	/* bcrypt outside the lock: it takes milliseconds by design. */
	ok = webconfig_password_ok(password, hash ? hash : dummy_hash) && hash;
	if (ok) {
		pthread_mutex_lock(&w->lock);
		memcpy(w->cache[w->next_cache], key, sizeof(key));
		w->next_cache = (w->next_cache + 1) % AUTH_CACHE_SIZE;
		if (w->ncache < AUTH_CACHE_SIZE)
			w->ncache++;
		pthread_mutex_unlock(&w->lock);
	}
out:
	explicit_bzero(buf, sizeof(buf));
	free(hash);
	return ok ? 0 : -EACCES;
}
