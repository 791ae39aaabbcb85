#include "common/dynlib.h"

#include <dlfcn.h>
#include <errno.h>

#include "common/log.h"

int dynlib_load(const char *lib, const struct dynlib_fn *fns, size_t nfns)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	int err = 0;

	if (!h) {
		log_error("cannot load a library", "lib=%s err=\"%s\"", lib, dlerror());
		return -ENOENT;
	}
	for (size_t i = 0; i < nfns; i++) {
		*fns[i].addr = dlsym(h, fns[i].name);
		if (!*fns[i].addr) {
			log_error("a library lacks a function", "lib=%s function=%s", lib, fns[i].name);
			err = -ENOSYS;
		}
	}
	return err;
}
