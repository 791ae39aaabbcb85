/* The CPython interpreters the Python tests run: every one present on the machine is used. */
#ifndef ANORAK_TEST_PYTHON_INTERPRETERS_H
#define ANORAK_TEST_PYTHON_INTERPRETERS_H

#include <stdbool.h>
#include <unistd.h>

struct test_python {
	const char *path;
	const char *include; /* its headers (NULL: none installed, as Debian's without -dev) */
	int minor;
};

static const struct test_python test_pythons[] = {
	{ "/usr/bin/python3.11", NULL, 11 },
	{ "/root/.pyenv/versions/3.10.13/bin/python3.10", "/root/.pyenv/versions/3.10.13/include/python3.10", 10 },
	{ "/root/.pyenv/versions/3.11.7/bin/python3.11", "/root/.pyenv/versions/3.11.7/include/python3.11", 11 },
	{ "/root/.pyenv/versions/3.12.1/bin/python3.12", "/root/.pyenv/versions/3.12.1/include/python3.12", 12 },
	{ "/root/.pyenv/versions/3.13.0/bin/python3.13", "/root/.pyenv/versions/3.13.0/include/python3.13", 13 },
};

#define TEST_PYTHONS (sizeof(test_pythons) / sizeof(test_pythons[0]))

static inline bool test_python_present(const struct test_python *p)
{
	return access(p->path, X_OK) == 0;
}

#endif
