/* kubeconfig parsing (labels/k8s_conn.c): the file is written to a private directory and loaded by
 * path, as --kubernetes.kubeconfig is. */
#include <errno.h>
#include <fcntl.h>

#include "fuzz_common.h"
#include "labels/k8s_conn.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/anorak-fuzz-kubeconfig-XXXXXX";

	(void)argc, (void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/config", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k8s_conn conn;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), err;

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	err = k8s_conn_from_kubeconfig(path, &conn);
	FUZZ_CHECK(err == 0 || err == -EINVAL || err == -ENOTSUP || err == -ENOMEM);
	if (err == 0) {
		FUZZ_CHECK(conn.server && *conn.server && conn.server[strlen(conn.server) - 1] != '/');
		FUZZ_CHECK(!(conn.ca.file && conn.ca.data) && !(conn.cert.file && conn.cert.data));
		FUZZ_CHECK(!conn.cert.file == !conn.key.file || conn.cert.data || conn.key.data);
		k8s_conn_free(&conn);
	}
	return 0;
}
