/* CPython code objects, str and bytes objects (exporter/symbols/python_code.c), read from any Python
 * process's memory: names, file names and line tables of frames the BPF walker reported. The fuzzed
 * bytes are the process's memory, served as the file <root>/1/mem that the reader preads like
 * /proc/PID/mem; the code object is at address 8, every pointer in it is an offset into the input. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "exporter/symbols/python_code.h"
#include "exporter/symbols/python_functions.h"
#include "exporter/symbols/python_offsets.h"

/* In memory: the file is rewritten for every input. */
static char root[] = "/dev/shm/fuzz_python_code.XXXXXX";
static int mem_fd = -1;

static void remove_root(void)
{
	char path[sizeof(root) + 16];

	snprintf(path, sizeof(path), "%s/1/mem", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/1", root);
	rmdir(path);
	rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[sizeof(root) + 16];

	(void)argc;
	(void)argv;
	if (!mkdtemp(root))
		abort();
	atexit(remove_root);
	snprintf(path, sizeof(path), "%s/1", root);
	if (mkdir(path, 0700))
		abort();
	snprintf(path, sizeof(path), "%s/1/mem", root);
	mem_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (mem_fd < 0 || python_functions_init(4096))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct python_layout layout;
	struct python_code *c;
	uint32_t lasti;

	if (size < 8)
		return 0;
	/* 3.10 (its own line table format), 3.11 and 3.12. */
	FUZZ_CHECK(python_layout_table(10 + data[0] % 3, &layout) == 0);
	memcpy(&lasti, data + 4, 4);
	if (ftruncate(mem_fd, 0) || pwrite(mem_fd, data, size, 0) != (ssize_t)size)
		abort();
	c = python_code_new(root, 8, 1 << 20, 2);
	if (!c)
		abort();
	FUZZ_CHECK(python_code_add_process(c, 1, &layout) == 0);
	/* The same code object twice (read, then from the cache) at two instructions. */
	for (uint32_t at = lasti; at != lasti + 2; at++) {
		uint32_t function = 0, line = 0;
		int err = python_code_lookup(c, 1, 8, at & PYTHON_LASTI_MAX, &function, &line);

		FUZZ_CHECK(err == 0 || err == -ENOENT);
		FUZZ_CHECK(err == 0 ? function != 0 : function == 0);
	}
	python_code_free(c);
	return 0;
}
