/* --web.config.file: the exporter-toolkit format's parsing and checks, bcrypt with crypt(3), basic auth
 * with its cache, and reloading when the file changes. TLS serving is tested end to end in
 * tests/integration/test_web_config.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "exporter/web/webconfig.h"

static int parse(const char *yaml, const char *dir, struct webconfig_data **d, char *err, size_t errlen)
{
	err[0] = '\0';
	return webconfig_parse(yaml, strlen(yaml), dir, d, err, errlen);
}

/* A bcrypt hash of password at the lowest cost, so the tests stay fast; prefix $2b$ or $2y$ (htpasswd). */
static char *bcrypt_as(const char *prefix, const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	static struct crypt_data cd;
	const char *h;

	assert_non_null(crypt_gensalt_rn(prefix, 4, NULL, 0, salt, sizeof(salt)));
	h = crypt_r(password, salt, &cd);
	assert_non_null(h);
	assert_int_equal(strlen(h), 60);
	return strdup(h);
}

static char *bcrypt(const char *password)
{
	return bcrypt_as("$2b$", password);
}

static void test_full_config(void **state)
{
	(void)state;
	struct webconfig_data *d;
	char err[256];

	assert_int_equal(parse("tls_server_config:\n"
			       "  cert_file: server.crt\n"
			       "  key_file: /etc/anorak/server.key\n"
			       "  client_auth_type: RequireAndVerifyClientCert\n"
			       "  client_ca_file: ca.crt\n"
			       "  min_version: TLS13\n"
			       "basic_auth_users:\n"
			       "  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze\n"
			       "  bob: $2b$04$BMPGnDQEWf7wfunY3knlye3slNWhOgoHgfXSM183YGTqfX53J9uY6\n",
			       "/etc/anorak", &d, err, sizeof(err)),
			 0);
	assert_true(d->tls);
	assert_string_equal(d->cert_file, "/etc/anorak/server.crt");
	assert_string_equal(d->key_file, "/etc/anorak/server.key");
	assert_string_equal(d->client_ca_file, "/etc/anorak/ca.crt");
	assert_int_equal(d->client_auth, WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT);
	assert_int_equal(d->min_version, TLS1_3_VERSION);
	assert_int_equal(d->max_version, TLS1_3_VERSION);
	assert_int_equal(d->nusers, 2);
	assert_string_equal(d->users[0].name, "alice");
	assert_string_equal(d->users[1].name, "bob");
	webconfig_data_free(d);
}

static void test_defaults(void **state)
{
	(void)state;
	static const char *const plain[] = {
		"", "# nothing\n", "basic_auth_users:\n", "tls_server_config:\n", "tls_server_config: {}\n",
		"tls_server_config:\n  client_auth_type: \"\"\n",
	};
	struct webconfig_data *d;
	char err[256];

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		assert_int_equal(parse(plain[i], "/x", &d, err, sizeof(err)), 0);
		assert_false(d->tls);
		assert_int_equal(d->nusers, 0);
		assert_int_equal(d->min_version, TLS1_2_VERSION);
		webconfig_data_free(d);
	}
	/* Only cert and key: TLS without client certificates, TLS 1.2 and up. */
	assert_int_equal(parse("tls_server_config: {cert_file: a, key_file: b}\n", NULL, &d, err, sizeof(err)), 0);
	assert_true(d->tls);
	assert_string_equal(d->cert_file, "a");
	assert_int_equal(d->client_auth, WEBCONFIG_NO_CLIENT_CERT);
	assert_int_equal(d->max_version, TLS1_3_VERSION);
	webconfig_data_free(d);
}

static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *yaml, *message;
	} cases[] = {
		{ "tls_server_config:\n  cert_file: a\n", "line 2: tls_server_config: missing key_file" },
		{ "tls_server_config:\n  key_file: a\n", "line 2: tls_server_config: missing cert_file" },
		{ "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
		  "line 2: tls_server_config: missing cert_file" },
		{ "tls_server_config: {cert_file: a, key_file: b, client_ca_file: c}\n",
		  "line 1: tls_server_config: client_ca_file is set without a client_auth_type" },
		{ "tls_server_config: {cert_file: a, key_file: b, client_auth_type: Sometimes}\n",
		  "line 1: invalid client_auth_type: Sometimes" },
		{ "tls_server_config: {cert_file: a, key_file: b, min_version: TLS14}\n",
		  "line 1: unknown TLS version: TLS14 (TLS10, TLS11, TLS12 or TLS13)" },
		{ "tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, max_version: TLS12}\n",
		  "line 1: tls_server_config: min_version is above max_version" },
		{ "tls_server_config:\n  cert_file: a\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
		  "line 3: tls_server_config.cipher_suites is not supported by anorak" },
		{ "tls_server_config:\n  certfile: a\n", "line 2: unknown field \"certfile\" in tls_server_config" },
		{ "tls_server_config:\n  cert_file: [a]\n", "line 2: cert_file must be a string" },
		{ "tls_server_config: yes\n", "line 1: tls_server_config must be a mapping" },
		{ "rate_limit: {interval: 1s, burst: 20}\n", "line 1: rate_limit is not supported by anorak" },
		{ "http_server_config: {http2: false}\n", "line 1: http_server_config is not supported by anorak" },
		{ "basic_auth_user:\n  a: b\n", "line 1: unknown field \"basic_auth_user\" in the web config" },
		{ "basic_auth_users:\n  alice: secret\n",
		  "line 2: basic_auth_users: the password of \"alice\" is not a bcrypt hash" },
		{ "basic_auth_users:\n  alice: $2b$03$BMPGnDQEWf7wfunY3knlye3slNWhOgoHgfXSM183YGTqfX53J9uY6\n",
		  "line 2: basic_auth_users: the password of \"alice\" is not a bcrypt hash" },
		{ "basic_auth_users:\n  a:b: $2b$04$BMPGnDQEWf7wfunY3knlye3slNWhOgoHgfXSM183YGTqfX53J9uY6\n",
		  "line 2: basic_auth_users: user name \"a:b\" contains ':'" },
		{ "basic_auth_users:\n  alice: $2b$04$BMPGnDQEWf7wfunY3knlye3slNWhOgoHgfXSM183YGTqfX53J9uY6\n"
		  "  alice: $2b$04$BMPGnDQEWf7wfunY3knlye3slNWhOgoHgfXSM183YGTqfX53J9uY6\n",
		  "line 3: basic_auth_users: key \"alice\" already set" },
		{ "- a\n", "line 1: web config must be a mapping" },
		{ "tls_server_config: {\n", "line 2: did not find expected node content" },
	};
	struct webconfig_data *d = (void *)1;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].yaml, "/x", &d, err, sizeof(err)), -EINVAL);
		assert_null(d);
		if (strcmp(err, cases[i].message)) {
			print_error("case %zu: %s\n  got:  %s\n  want: %s\n", i, cases[i].yaml, err, cases[i].message);
			fail();
		}
	}
}

static void test_bcrypt(void **state)
{
	(void)state;
	char *h = bcrypt("s3cret"), *y = bcrypt_as("$2y$", "s3cret");

	assert_true(webconfig_password_ok("s3cret", h));
	assert_false(webconfig_password_ok("s3cret ", h));
	assert_false(webconfig_password_ok("", h));
	assert_true(webconfig_password_ok("s3cret", y));
	assert_false(webconfig_password_ok("S3cret", y));
	/* A hash crypt(3) cannot use fails closed. */
	assert_false(webconfig_password_ok("s3cret", "$2b$04$"));
	free(h);
	free(y);
}

static char *basic(const char *user, const char *password)
{
	unsigned char raw[256], enc[400];
	char *out;
	int n = snprintf((char *)raw, sizeof(raw), "%s:%s", user, password);

	EVP_EncodeBlock(enc, raw, n);
	assert_true(asprintf(&out, "Basic %s", enc) > 0);
	return out;
}

struct fixture {
	char dir[64], path[96];
};

static void write_file(const char *path, const char *text)
{
	char tmp[128];
	FILE *f;

	/* Renamed into place, as configuration management does: the inode changes. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void users_file(const char *path, const char *user, const char *password)
{
	char *h = bcrypt(password), text[256];

	snprintf(text, sizeof(text), "basic_auth_users:\n  %s: %s\n", user, h);
	write_file(path, text);
	free(h);
}

static void test_authorize_and_reload(void **state)
{
	(void)state;
	struct fixture fx = { .dir = "/tmp/anorak-webconfig-XXXXXX" };
	char err[512], *good, *wrong, *unknown, *bob;
	struct webconfig *w;

	assert_non_null(mkdtemp(fx.dir));
	snprintf(fx.path, sizeof(fx.path), "%s/web.yml", fx.dir);
	users_file(fx.path, "alice", "s3cret");
	assert_int_equal(webconfig_load(fx.path, &w, err, sizeof(err)), 0);
	assert_false(webconfig_tls(w));

	good = basic("alice", "s3cret");
	wrong = basic("alice", "s3cre");
	unknown = basic("mallory", "s3cret");
	bob = basic("bob", "hunter2");
	assert_int_equal(webconfig_authorize(w, good), 0);
	assert_int_equal(webconfig_authorize(w, good), 0); /* from the cache */
	assert_int_equal(webconfig_authorize(w, wrong), -EACCES);
	assert_int_equal(webconfig_authorize(w, unknown), -EACCES);
	assert_int_equal(webconfig_authorize(w, NULL), -EACCES);
	assert_int_equal(webconfig_authorize(w, "Bearer abc"), -EACCES);
	assert_int_equal(webconfig_authorize(w, "Basic !!!!"), -EACCES);
	assert_int_equal(webconfig_authorize(w, "Basic YWxpY2U="), -EACCES); /* "alice", no colon */
	assert_int_equal(webconfig_authorize(w, "basic YWxpY2U6czNjcmV0"), 0); /* the scheme's case */

	/* Users change: the cached alice must not outlive her entry. */
	users_file(fx.path, "bob", "hunter2");
	webconfig_refresh(w);
	assert_int_equal(webconfig_authorize(w, good), -EACCES);
	assert_int_equal(webconfig_authorize(w, bob), 0);

	/* A broken file keeps the last good config. */
	write_file(fx.path, "basic_auth_users:\n  bob: plaintext\n");
	webconfig_refresh(w);
	assert_int_equal(webconfig_authorize(w, bob), 0);

	/* No users: everything is allowed. */
	write_file(fx.path, "basic_auth_users: {}\n");
	webconfig_refresh(w);
	assert_int_equal(webconfig_authorize(w, NULL), 0);

	webconfig_free(w);
	free(good);
	free(wrong);
	free(unknown);
	free(bob);
	unlink(fx.path);
	rmdir(fx.dir);
}

static void test_load_errors(void **state)
{
	(void)state;
	char dir[] = "/tmp/anorak-webconfig-XXXXXX", path[96], err[512];
	struct webconfig *w = (void *)1;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/web.yml", dir);
	assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), -ENOENT);
	assert_null(w);
	assert_non_null(strstr(err, "web.yml: No such file or directory"));

	/* Relative paths are relative to the file, and the files must load. */
	write_file(path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
	assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot load cert_file"));
	assert_non_null(strstr(err, "/server.crt"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);

	write_file(path, "basic_auth_users:\n  alice: x\n");
	assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "web.yml: line 2: basic_auth_users: the password of 'alice' is not a bcrypt hash"));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bcrypt),
		cmocka_unit_test(test_authorize_and_reload),
		cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
