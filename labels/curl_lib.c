#include "labels/curl_lib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

#include "common/log.h"

#define LIBCURL "libcurl.so.4"

static struct curl_lib lib;
static const struct curl_lib *loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *sym(void *h, const char *name, bool *ok)
{
	void *p = dlsym(h, name);

	if (!p) {
		log_error("libcurl lacks a function", "lib=" LIBCURL " function=%s", name);
		*ok = false;
	}
	return p;
}

static void load(void)
{
	CURLcode (*global_init)(long flags);
	void *h = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
	bool ok = true;

	if (!h) {
		log_error("cannot load libcurl", "lib=" LIBCURL " err=\"%s\"", dlerror());
		return;
	}
	global_init = sym(h, "curl_global_init", &ok);
	lib.easy_init = sym(h, "curl_easy_init", &ok);
	lib.easy_setopt = sym(h, "curl_easy_setopt", &ok);
	lib.easy_getinfo = sym(h, "curl_easy_getinfo", &ok);
	lib.easy_perform = sym(h, "curl_easy_perform", &ok);
	lib.easy_cleanup = sym(h, "curl_easy_cleanup", &ok);
	lib.easy_strerror = sym(h, "curl_easy_strerror", &ok);
	lib.easy_escape = sym(h, "curl_easy_escape", &ok);
	lib.free = sym(h, "curl_free", &ok);
	lib.slist_append = sym(h, "curl_slist_append", &ok);
	lib.slist_free_all = sym(h, "curl_slist_free_all", &ok);
	if (!ok)
		return;
	if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl", "lib=" LIBCURL);
		return;
	}
	loaded = &lib;
}

const struct curl_lib *curl_lib(void)
{
	pthread_once(&once, load);
	return loaded;
}
