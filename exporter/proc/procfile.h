/* Opening the files a process sees, safely, as root: a container must not be able to point the
 * daemon at the host's files, at devices or at FIFOs. */
#ifndef ANORAK_PROCFILE_H
#define ANORAK_PROCFILE_H

struct procmaps_entry;
struct stat;

/* An O_PATH fd of proc_root/PID/root, for procfile_open_in_root; negative errno. */
int procfile_open_root(const char *proc_root, int pid);
/* Opens path as the process whose root is rootfd sees it (symlinks and ".." resolve inside that root),
 * read-only, and only if it is a regular file. Negative errno. */
int procfile_open_in_root(int rootfd, const char *path);
/* The file behind a mapping of pid: map_files names the mapped inode itself (deleted files, any mount
 * namespace); the path under rootfd (< 0: none) is the fallback, checked to still be the mapped inode
 * (-ESTALE otherwise). Negative errno. */
int procfile_open_mapped(const char *proc_root, int pid, int rootfd, const struct procmaps_entry *e);
/* The same file as an O_PATH fd with its stat in *st, a regular file: enough to recognize a file seen
 * before without opening it for reading (procfile_reopen). Negative errno. */
int procfile_path_mapped(const char *proc_root, int pid, int rootfd, const struct procmaps_entry *e,
			 struct stat *st);
/* A read-only fd of the regular file behind pathfd, which stays open. Negative errno. */
int procfile_reopen(int pathfd);

#endif
