/*
 * Systemd unit and container id from cgroup paths.
 *
 * A path is read component by component and the deepest match wins for each field, so a container
 * nested in another (kind nodes, docker-in-docker) reports the inner one, which is where the process is.
 *
 * The unit is the one systemd reports for the process (what `systemctl status PID` names): the deepest
 * component that is a unit able to hold processes (.service, .scope, .socket, .mount, .swap). Scopes
 * count: "/user.slice/user-0.slice/session-1.scope" gives "session-1.scope", and a container started
 * through systemd ("docker-<id>.scope", "cri-containerd-<id>.scope") gives that scope as well as the
 * container id. Slices only group units and never name one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "labels/cgroup.h"

#define CONTAINER_ID_LEN 64

enum line_rank { RANK_UNIFIED, RANK_NAMED_SYSTEMD, RANK_OTHER_V1, RANK_NONE };

static bool has_suffix(const char *s, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);

	return n > m && !memcmp(s + n - m, suffix, m);
}

static bool is_hex64(const char *s, size_t n)
{
	if (n != CONTAINER_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/*
 * Container runtimes name a container's cgroup "<id>" (cgroupfs driver: "/docker/<id>",
 * "/kubepods/besteffort/pod<uid>/<id>"), "<runtime>-<id>[.scope]" (systemd driver; CRI-O's cgroupfs
 * driver without ".scope") or "<slice>:<runtime>:<id>" (systemd-style names created by cgroupfs).
 * Monitor processes ("crio-conmon-<id>.scope", "libpod-conmon-<id>.scope") are not the container and
 * do not match, since what follows the prefix is not the id.
 */
static const char *container_id_in(const char *c, size_t n)
{
	static const char *const prefixes[] = { "docker-", "cri-containerd-", "crio-", "libpod-" };
	const char *colon = memrchr(c, ':', n);

	if (colon) {
		n -= colon + 1 - c;
		c = colon + 1;
		return is_hex64(c, n) ? c : NULL;
	}
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t m = strlen(prefixes[i]);

		if (n > m && !memcmp(c, prefixes[i], m)) {
			c += m;
			n -= m;
			if (has_suffix(c, n, ".scope"))
				n -= strlen(".scope");
			break;
		}
	}
	return is_hex64(c, n) ? c : NULL;
}

/* Unit names as systemd allows them, of the unit types that can contain processes. */
static bool is_unit_name(const char *s, size_t n)
{
	static const char *const types[] = { ".service", ".scope", ".socket", ".mount", ".swap" };
	bool typed = false;

	if (n >= sizeof(((struct cgroup_identity *)0)->systemd_unit))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(":_.@\\-", s[i])))
			return false;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]) && !typed; i++)
		typed = has_suffix(s, n, types[i]);
	return typed;
}

/* The pod uid of a kubelet pod cgroup: "pod<uid>" (cgroupfs driver) or "kubepods[-<qos>]-pod<uid>.slice"
 * (systemd driver, which writes the uid's dashes as underscores). */
static bool pod_uid_in(const char *c, size_t n, char *uid)
{
	const char *pod = NULL;

	if (n == 3 + CGROUP_POD_UID_LEN && !memcmp(c, "pod", 3)) {
		pod = c + 3;
	} else if (has_suffix(c, n, ".slice") && n > strlen("-pod.slice") + CGROUP_POD_UID_LEN) {
		const char *start = c + n - strlen(".slice") - CGROUP_POD_UID_LEN;

		if (!memcmp(start - 4, "-pod", 4) && strstr(c, "kubepods") == c)
			pod = start;
	}
	if (!pod)
		return false;
	char found[CGROUP_POD_UID_LEN + 1];
	for (int i = 0; i < CGROUP_POD_UID_LEN; i++) {
		char ch = pod[i] == '_' ? '-' : pod[i];
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
		found[i] = ch;
	}
	found[CGROUP_POD_UID_LEN] = '\0';
	memcpy(uid, found, sizeof(found));
	return true;
}

static void identity_from_component(const char *c, size_t n, struct cgroup_identity *id)
{
	const char *cid = container_id_in(c, n);
	const char *colon = memchr(c, ':', n);

	/* "<pod slice>:<runtime>:<id>" names the pod's slice first. */
	pod_uid_in(c, colon ? (size_t)(colon - c) : n, id->pod_uid);
	if (cid) {
		memcpy(id->container_id, cid, CONTAINER_ID_LEN);
		id->container_id[CONTAINER_ID_LEN] = '\0';
	}
	if (is_unit_name(c, n)) {
		memcpy(id->systemd_unit, c, n);
		id->systemd_unit[n] = '\0';
	}
}

void cgroup_identity_from_path(const char *path, struct cgroup_identity *id)
{
	id->systemd_unit[0] = '\0';
	id->container_id[0] = '\0';
	id->pod_uid[0] = '\0';
	if (!path)
		return;
	while (*path) {
		size_t n = strcspn(path, "/");

		if (n)
			identity_from_component(path, n, id);
		path += n;
		if (*path)
			path++;
	}
}

/* "0::" is the cgroup2 hierarchy; "N:name=systemd:" is systemd's v1 tracking hierarchy (legacy and
 * hybrid hosts); other v1 controllers may still name a container (runc on hybrid hosts). */
static enum line_rank rank_of(const char *hierarchy, const char *controllers)
{
	if (!strcmp(hierarchy, "0") && !*controllers)
		return RANK_UNIFIED;
	for (const char *c = controllers; *c;) {
		size_t n = strcspn(c, ",");

		if (n == strlen("name=systemd") && !memcmp(c, "name=systemd", n))
			return RANK_NAMED_SYSTEMD;
		c += n;
		if (*c)
			c++;
	}
	return RANK_OTHER_V1;
}

/* Splits "hierarchy:controllers:path" in place; the path may itself contain ':'. The kernel appends
 * " (deleted)" to a removed cgroup2 path. */
static bool split_line(char *line, char **hierarchy, char **controllers, char **path)
{
	char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	size_t n;

	if (!c2)
		return false;
	*c1 = *c2 = '\0';
	*hierarchy = line;
	*controllers = c1 + 1;
	*path = c2 + 1;
	n = strcspn(*path, "\n");
	(*path)[n] = '\0';
	if (has_suffix(*path, n, " (deleted)"))
		(*path)[n - strlen(" (deleted)")] = '\0';
	return true;
}

static void set_path(char *out, size_t outlen, const char *path)
{
	if (out)
		snprintf(out, outlen, "%s", path);
}

int cgroup_identity_of_pid(const char *proc_root, int pid, struct cgroup_identity *id, char *outpath,
			   size_t outlen)
{
	enum line_rank unit_rank = RANK_NONE, ctr_rank = RANK_NONE, rank;
	int path_score = -1;
	char fname[PATH_MAX], *line = NULL, *hier, *ctrls, *path;
	struct cgroup_identity cur;
	size_t cap = 0;
	int err = 0;
	FILE *f;

	id->systemd_unit[0] = '\0';
	id->container_id[0] = '\0';
	id->pod_uid[0] = '\0';
	set_path(outpath, outlen, "");
	if (snprintf(fname, sizeof(fname), "%s/%d/cgroup", proc_root, pid) >= (int)sizeof(fname))
		return -ENAMETOOLONG;
	f = fopen(fname, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		if (!split_line(line, &hier, &ctrls, &path))
			continue;
		rank = rank_of(hier, ctrls);
		cgroup_identity_from_path(path, &cur);
		/* only systemd's own hierarchies say which unit a process is in */
		if (cur.systemd_unit[0] && rank < unit_rank && rank != RANK_OTHER_V1) {
			memcpy(id->systemd_unit, cur.systemd_unit, sizeof(cur.systemd_unit));
			unit_rank = rank;
		}
		if (cur.container_id[0] && rank < ctr_rank) {
			memcpy(id->container_id, cur.container_id, sizeof(cur.container_id));
			memcpy(id->pod_uid, cur.pod_uid, sizeof(cur.pod_uid));
			ctr_rank = rank;
		}
		/* The path shown is the one that says the most: a container's, else cgroup2's. */
		int score = cur.container_id[0] ? 2 : rank == RANK_UNIFIED ? 1 : 0;
		if (score > path_score) {
			set_path(outpath, outlen, path);
			path_score = score;
		}
		if (!id->container_id[0] && cur.pod_uid[0])
			memcpy(id->pod_uid, cur.pod_uid, sizeof(cur.pod_uid));
	}
	if (ferror(f)) {
		err = -EIO;
		id->systemd_unit[0] = '\0';
		id->container_id[0] = '\0';
		id->pod_uid[0] = '\0';
		set_path(outpath, outlen, "");
	}
	free(line);
	fclose(f);
	return err;
}

int cgroup2_of_pid(const char *proc_root, const char *mount, int pid, uint64_t *id, char *path, size_t pathlen)
{
	char fname[PATH_MAX], dir[PATH_MAX], *line = NULL, *hier, *ctrls, *p;
	size_t cap = 0;
	int err = -ENOENT;
	struct stat st;
	FILE *f;

	if (snprintf(fname, sizeof(fname), "%s/%d/cgroup", proc_root, pid) >= (int)sizeof(fname))
		return -ENAMETOOLONG;
	f = fopen(fname, "re");
	if (!f)
		return -errno;
	while (err == -ENOENT && getline(&line, &cap, f) > 0) {
		if (!split_line(line, &hier, &ctrls, &p) || rank_of(hier, ctrls) != RANK_UNIFIED)
			continue;
		if (snprintf(dir, sizeof(dir), "%s%s", mount, p) >= (int)sizeof(dir))
			err = -ENAMETOOLONG;
		else if (stat(dir, &st))
			err = -errno;
		else
			err = 0;
		if (!err) {
			*id = st.st_ino;
			set_path(path, pathlen, p);
		}
	}
	if (err == -ENOENT && ferror(f))
		err = -EIO;
	free(line);
	fclose(f);
	return err;
}

/* mountinfo fields: ID parent major:minor root mount-point options [optional...] - fstype source opts */
int cgroup2_mount_point(const char *mountinfo, char *out, size_t outlen)
{
	FILE *f = fopen(mountinfo, "re");
	char *line = NULL;
	size_t cap = 0;
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (err == -ENOENT && getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - ");
		char mount[PATH_MAX], fstype[32];

		if (!sep || sscanf(sep + 3, "%31s", fstype) != 1 || strcmp(fstype, "cgroup2") ||
		    sscanf(line, "%*s %*s %*s %*s %4095s", mount) != 1)
			continue;
		/* mountinfo escapes spaces and such as octal; cgroup mounts never have them. */
		err = snprintf(out, outlen, "%s", mount) >= (int)outlen ? -ENAMETOOLONG : 0;
	}
	free(line);
	fclose(f);
	return err;
}

struct scan {
	cgroup_container_fn fn;
	void *ctx;
	size_t visited, max_dirs;
	char path[PATH_MAX];
};

/* dirfd is the directory at scan->path (len bytes); closed here. */
static int scan_dir(struct scan *scan, int dirfd, size_t len, int depth)
{
	DIR *dir = fdopendir(dirfd);
	struct dirent *e;
	int err = 0;

	if (!dir) {
		close(dirfd);
		return 0; /* removed meanwhile, or unreadable: nothing to find there */
	}
	while (!err && (e = readdir(dir))) {
		struct cgroup_identity id;
		struct stat st;
		size_t n = strlen(e->d_name);

		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (scan->visited++ >= scan->max_dirs) {
			err = -E2BIG;
			break;
		}
		if (len + 1 + n >= sizeof(scan->path))
			continue;
		scan->path[len] = '/';
		memcpy(scan->path + len + 1, e->d_name, n + 1);
		int child = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (child < 0)
			continue;
		if (fstat(child, &st)) {
			close(child);
			continue;
		}
		/* The container's own directory, not the groups inside it. */
		if (container_id_in(e->d_name, n)) {
			cgroup_identity_from_path(scan->path, &id);
			scan->fn(scan->ctx, scan->path, st.st_ino, &id);
		}
		/* Containers may hold containers (kind nodes run pods inside one). */
		if (depth + 1 < CGROUP_SCAN_MAX_DEPTH) {
			err = scan_dir(scan, child, len + 1 + n, depth + 1);
		} else {
			close(child);
		}
	}
	closedir(dir);
	scan->path[len] = '\0';
	return err;
}

int cgroup_scan_containers(const char *mount, size_t max_dirs, cgroup_container_fn fn, void *ctx)
{
	struct scan *scan = calloc(1, sizeof(*scan));
	int fd, err;

	if (!scan)
		return -ENOMEM;
	fd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		free(scan);
		return err;
	}
	*scan = (struct scan){ .fn = fn, .ctx = ctx, .max_dirs = max_dirs };
	err = scan_dir(scan, fd, 0, 0);
	if (!err)
		err = scan->visited > INT_MAX ? INT_MAX : (int)scan->visited;
	free(scan);
	return err;
}
