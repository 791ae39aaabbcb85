/* What a process's cgroup path says about it: the systemd unit and the container id. */
#ifndef ANORAK_CGROUP_H
#define ANORAK_CGROUP_H

#include <stddef.h>
#include <stdint.h>

#define CGROUP_POD_UID_LEN 36

struct cgroup_identity {
	char systemd_unit[256];  /* "nginx.service", "" when none */
	char container_id[65];   /* 64 lowercase hex (docker, containerd, CRI-O), "" when none */
	char pod_uid[CGROUP_POD_UID_LEN + 1]; /* the kubelet's pod cgroup, dashes restored; "" when none */
};

/* Parses a cgroup path such as "/system.slice/docker-<id>.scope",
 * "/kubepods.slice/kubepods-burstable.slice/.../cri-containerd-<id>.scope", "/docker/<id>",
 * "/kubepods/burstable/pod<uid>/<id>", "/system.slice/ssh.service". Always succeeds; fields it cannot
 * find stay empty. */
void cgroup_identity_from_path(const char *path, struct cgroup_identity *id);

/* Reads /proc/PID/cgroup (proc_root usually "/proc"): the cgroup2 ("0::") line, else the v1
 * name=systemd line. The path of the line that gave the container (else the unit, else the cgroup2
 * line) goes to path when it is not NULL ("" when none). Negative errno when the file cannot be read. */
int cgroup_identity_of_pid(const char *proc_root, int pid, struct cgroup_identity *id, char *path,
			   size_t pathlen);

/* The cgroup2 cgroup of a process: its "0::" line's path (to path, when not NULL) and the id of that
 * directory under mount (what bpf_get_current_cgroup_id gives). -ENOENT when it has no cgroup2 line,
 * other negative errno when the file or directory cannot be read. */
int cgroup2_of_pid(const char *proc_root, const char *mount, int pid, uint64_t *id, char *path, size_t pathlen);

/* Where the cgroup2 hierarchy is mounted, from a mountinfo file (usually /proc/self/mountinfo):
 * "/sys/fs/cgroup" on unified hosts, "/sys/fs/cgroup/unified" on hybrid ones. -ENOENT without one. */
int cgroup2_mount_point(const char *mountinfo, char *out, size_t outlen);

/* Called for each cgroup directory whose path names a container; path is relative to the mount
 * ("/kubepods.slice/..."), cgroup_id is the directory's inode (what bpf_get_current_cgroup_id gives). */
typedef void (*cgroup_container_fn)(void *ctx, const char *path, uint64_t cgroup_id,
				    const struct cgroup_identity *id);

/* Walks the cgroup2 tree mounted at mount, at most max_dirs directories and CGROUP_SCAN_MAX_DEPTH
 * levels deep. Returns the directories visited, or
 * negative errno when mount cannot be opened (-E2BIG: stopped at max_dirs). */
#define CGROUP_SCAN_MAX_DEPTH 12
int cgroup_scan_containers(const char *mount, size_t max_dirs, cgroup_container_fn fn, void *ctx);

#endif
