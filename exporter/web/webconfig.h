/*
 * --web.config.file: TLS and basic authentication in the exporter-toolkit web configuration format
 * (what Prometheus and node_exporter read):
 *
 *   tls_server_config:
 *     cert_file: server.crt            # relative paths are relative to the config file
 *     key_file: server.key
 *     client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
 *     client_ca_file: ca.crt
 *     min_version: TLS12               # TLS10..TLS13, default TLS12; max_version likewise (TLS13)
 *   basic_auth_users:
 *     alice: $2y$10$...                # bcrypt hashes, checked with crypt(3)
 *
 * Parsing is strict like exporter-toolkit's (unknown keys and wrong types are errors); the exporter-toolkit
 * keys anorak does not implement (cert, key, client_ca inline, client_allowed_sans, cipher_suites,
 * curve_preferences, prefer_server_cipher_suites, http_server_config, rate_limit) are refused by name
 * rather than ignored, so a config never silently means less than it says.
 *
 * The file is looked at again on every request (one stat): when it changed, basic_auth_users take
 * effect at once; a changed tls_server_config is logged and applies at the next start, because the
 * listening socket's TLS context is fixed when the server starts. A file that no longer parses is
 * logged and the last good config stays in force.
 */
#ifndef ANORAK_WEBCONFIG_H
#define ANORAK_WEBCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define WEBCONFIG_MAX_BYTES (1 << 20)
#define WEBCONFIG_MAX_USERS 1000

enum webconfig_client_auth {
	WEBCONFIG_NO_CLIENT_CERT,
	WEBCONFIG_REQUEST_CLIENT_CERT,
	WEBCONFIG_REQUIRE_ANY_CLIENT_CERT,
	WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN,
	WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT,
};

struct webconfig_user {
	char *name, *hash;
};

/* One parsed file. */
struct webconfig_data {
	bool tls;                   /* tls_server_config has settings: serve HTTPS */
	char *cert_file, *key_file, *client_ca_file; /* absolute or relative to the config's directory */
	enum webconfig_client_auth client_auth;
	int min_version, max_version; /* OpenSSL's TLS1_VERSION .. TLS1_3_VERSION */
	struct webconfig_user *users;
	size_t nusers;
};

/* Parses len bytes of YAML; dir resolves relative paths (NULL: keep them as written). On error returns
 * -EINVAL (-EFBIG, -ENOMEM) and writes a one-line message to err, naming the line where it can. */
int webconfig_parse(const char *yaml, size_t len, const char *dir, struct webconfig_data **out, char *err,
		    size_t errlen);
void webconfig_data_free(struct webconfig_data *d);

struct webconfig;

/* Reads and checks path (the certificate and key must load, the hashes must be bcrypt). -EINVAL etc.
 * with a message that starts with the path, fit for a logfmt value (no double quotes). */
int webconfig_load(const char *path, struct webconfig **out, char *err, size_t errlen);
void webconfig_free(struct webconfig *w);

/* Whether the server must listen with TLS (fixed at load). */
bool webconfig_tls(const struct webconfig *w);
/* Sets up an OpenSSL SSL_CTX (civetweb's init_ssl callback): certificate chain, key, TLS versions,
 * client certificate policy and CAs. 0, or -EINVAL (logged). */
int webconfig_setup_tls(struct webconfig *w, void *ssl_ctx);

/* Re-reads the file if it changed since it was last read (see above); w may be NULL. */
void webconfig_refresh(struct webconfig *w);
/* Checks an Authorization header value (NULL when absent) against basic_auth_users: 0 when allowed
 * (always, when there are no users), -EACCES when not. Successful checks are cached, so a scraper does
 * not pay for bcrypt on every request. */
int webconfig_authorize(struct webconfig *w, const char *authorization);

/* Checks password against a bcrypt hash with crypt(3), in constant time over the hash. */
bool webconfig_password_ok(const char *password, const char *hash);

#endif
