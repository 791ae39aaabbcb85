#include "labels/curl_lib.h"

#include <pthread.h>

#include "common/dynlib.h"
#include "common/log.h"

#define LIBCURL "libcurl.so.4"

static struct curl_lib lib;
static const struct curl_lib *loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	CURLcode (*global_init)(long flags);
	const struct dynlib_fn fns[] = {
		{ "curl_global_init", (void **)&global_init },
		{ "curl_easy_init", (void **)&lib.easy_init },
		{ "curl_easy_setopt", (void **)&lib.easy_setopt },
		{ "curl_easy_getinfo", (void **)&lib.easy_getinfo },
		{ "curl_easy_perform", (void **)&lib.easy_perform },
		{ "curl_easy_cleanup", (void **)&lib.easy_cleanup },
		{ "curl_easy_strerror", (void **)&lib.easy_strerror },
		{ "curl_easy_escape", (void **)&lib.easy_escape },
		{ "curl_free", (void **)&lib.free },
		{ "curl_slist_append", (void **)&lib.slist_append },
		{ "curl_slist_free_all", (void **)&lib.slist_free_all },
	};

	if (dynlib_load(LIBCURL, fns, sizeof(fns) / sizeof(fns[0])))
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
