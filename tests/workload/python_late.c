/*
 * An interpreter whose libpython is mapped late: run under a python3.N name, it burns native CPU first
 * (sampled as a python3.N executable without the interpreter's symbols), then dlopens libpython and runs
 * a script in it. A shared-libpython interpreter is in that state while the loader maps its library,
 * which a busy node can stretch past the daemon's first look.
 *
 *   python3.N LIBPYTHON SCRIPT NATIVE_SECONDS [SCRIPT_ARG]   (PYTHONHOME must name the interpreter's prefix)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void __attribute__((noinline)) burn_native(double seconds)
{
	double end = now() + seconds;

	while (now() < end)
		for (int i = 0; i < 100000; i++)
			sink += i;
}

int main(int argc, char **argv)
{
	char code[4096];
	void *lib;
	void (*initialize)(void);
	int (*run)(const char *);

	if (argc < 4) {
		fprintf(stderr, "usage: %s LIBPYTHON SCRIPT NATIVE_SECONDS [SCRIPT_ARG]\n", argv[0]);
		return 2;
	}
	burn_native(atof(argv[3]));
	lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	if (!lib) {
		fprintf(stderr, "python_late: %s\n", dlerror());
		return 1;
	}
	initialize = (void (*)(void))dlsym(lib, "Py_Initialize");
	run = (int (*)(const char *))dlsym(lib, "PyRun_SimpleString");
	if (!initialize || !run) {
		fprintf(stderr, "python_late: %s has no Py_Initialize or PyRun_SimpleString\n", argv[1]);
		return 1;
	}
	initialize();
	snprintf(code, sizeof(code),
		 "import sys\nsys.argv = [%s%s%s, %s%s%s]\nexec(compile(open(sys.argv[0]).read(), sys.argv[0], 'exec'))\n",
		 "'", argv[2], "'", "'", argc > 4 ? argv[4] : "", "'");
	return run(code) == 0 ? 0 : 1;
}
