#include "exporter/proc/procfile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exporter/proc/procmaps.h"

int procfile_reopen(int pathfd)
{
	char self[64];
	int fd;

	snprintf(self, sizeof(self), "/proc/self/fd/%d", pathfd);
	fd = open(self, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Turns an O_PATH fd into a readable one, only for regular files: opening a device node or a FIFO a
 * container placed on a path could have side effects or block. Consumes pathfd. */
static int reopen_regular(int pathfd)
{
	struct stat st;
	int fd;

	if (fstat(pathfd, &st))
		fd = -errno;
	else if (!S_ISREG(st.st_mode))
		fd = -EINVAL;
	else
		fd = procfile_reopen(pathfd);
	close(pathfd);
	return fd;
}

static int open_path_in_root(int rootfd, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

int procfile_open_root(const char *proc_root, int pid)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%d/root", proc_root, pid);
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int procfile_open_in_root(int rootfd, const char *path)
{
	int fd = open_path_in_root(rootfd, path);

	return fd < 0 ? fd : reopen_regular(fd);
}

int procfile_path_mapped(const char *proc_root, int pid, int rootfd, const struct procmaps_entry *e,
			 struct stat *st)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%d/map_files/%llx-%llx", proc_root, pid,
		 (unsigned long long)e->start, (unsigned long long)e->end);
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (e->deleted || rootfd < 0)
			return -ENOENT;
		fd = open_path_in_root(rootfd, e->path);
		if (fd < 0)
			return fd;
		if (fstat(fd, st) || st->st_ino != e->inode) {
			close(fd);
			return -ESTALE;
		}
	} else if (fstat(fd, st)) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int procfile_open_mapped(const char *proc_root, int pid, int rootfd, const struct procmaps_entry *e)
{
	struct stat st;
	int pathfd = procfile_path_mapped(proc_root, pid, rootfd, e, &st);
	int fd;

	if (pathfd < 0)
		return pathfd;
	fd = procfile_reopen(pathfd);
	close(pathfd);
	return fd;
}
