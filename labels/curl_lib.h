/* libcurl, loaded on first use: linked, it and what it needs (krb5, LDAP, GnuTLS through librtmp and
 * libldap, libssh2...) are 3.5 MiB of every daemon's RSS, and only Kubernetes discovery uses it. */
#ifndef ANORAK_CURL_LIB_H
#define ANORAK_CURL_LIB_H

#include <curl/curl.h>

struct curl_lib {
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	CURLcode (*easy_perform)(CURL *h);
	void (*easy_cleanup)(CURL *h);
	const char *(*easy_strerror)(CURLcode rc);
	char *(*easy_escape)(CURL *h, const char *s, int len);
	void (*free)(void *p);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};

/* libcurl's functions, the library loaded and initialised (curl_global_init) by the first call; NULL,
 * logged once, when it cannot be. Thread-safe. */
const struct curl_lib *curl_lib(void);

#endif
