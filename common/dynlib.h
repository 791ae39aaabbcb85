/*
 * Libraries only some configurations use, loaded when first needed (dlopen) instead of linked, so a
 * daemon that does not use them does not carry them and what they pull in.
 */
#ifndef ANORAK_DYNLIB_H
#define ANORAK_DYNLIB_H

#include <stddef.h>

/* One function to resolve: its name and where its address goes. */
struct dynlib_fn {
	const char *name;
	void **addr;
};

/* Loads lib and resolves every function of fns. -ENOENT when the library cannot be loaded, -ENOSYS
 * when it lacks a function; each logged with the library's name. */
int dynlib_load(const char *lib, const struct dynlib_fn *fns, size_t nfns);

#endif
