/* cgroup path -> systemd unit and container id, over real-world path shapes and /proc/PID/cgroup files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "labels/cgroup.h"

#define ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define POD_SYSTEMD "pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901"
#define POD_CGROUPFS "pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"

struct path_case {
	const char *path, *unit, *container;
};

static const struct path_case path_cases[] = {
	/* kubelet, systemd cgroup driver (containerd, CRI-O) */
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" POD_SYSTEMD ".slice/cri-containerd-" ID
	  ".scope",
	  "cri-containerd-" ID ".scope", ID },
	{ "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-" POD_SYSTEMD ".slice/cri-containerd-" ID
	  ".scope",
	  "cri-containerd-" ID ".scope", ID },
	{ "/kubepods.slice/kubepods-" POD_SYSTEMD ".slice/cri-containerd-" ID ".scope", /* guaranteed QoS */
	  "cri-containerd-" ID ".scope", ID },
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" POD_SYSTEMD ".slice/crio-" ID ".scope",
	  "crio-" ID ".scope", ID },
	/* CRI-O's monitor is a scope of its own, not the container */
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" POD_SYSTEMD ".slice/crio-conmon-" ID
	  ".scope",
	  "crio-conmon-" ID ".scope", "" },
	/* a pod's slice alone names neither */
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" POD_SYSTEMD ".slice", "", "" },
	/* kubelet, cgroupfs driver */
	{ "/kubepods/besteffort/" POD_CGROUPFS "/" ID, "", ID },
	{ "/kubepods/burstable/" POD_CGROUPFS "/" ID, "", ID },
	{ "/kubepods/" POD_CGROUPFS "/" ID, "", ID },
	{ "/kubepods/burstable/" POD_CGROUPFS "/crio-" ID, "", ID },
	{ "/kubepods/burstable/" POD_CGROUPFS, "", "" },
	/* containerd with systemd-style names below its own service (k3s, cgroup2 delegation) */
	{ "/system.slice/containerd.service/kubepods-burstable-" POD_SYSTEMD ".slice:cri-containerd:" ID,
	  "containerd.service", ID },
	{ "/kubepods-besteffort-" POD_SYSTEMD ".slice:cri-containerd:" ID, "", ID },
	/* docker */
	{ "/system.slice/docker-" ID ".scope", "docker-" ID ".scope", ID },
	{ "/docker/" ID, "", ID },
	{ "/system.slice/docker.service", "docker.service", "" },
	/* podman */
	{ "/machine.slice/libpod-" ID ".scope", "libpod-" ID ".scope", ID },
	{ "/machine.slice/libpod-conmon-" ID ".scope", "libpod-conmon-" ID ".scope", "" },
	{ "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" ID ".scope/container",
	  "libpod-" ID ".scope", ID },
	/* nested: a kind node (outer docker container) running a pod; the process is in the inner one */
	{ "/system.slice/docker-" ID2 ".scope/kubelet.slice/kubelet-kubepods.slice/"
	  "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-" POD_SYSTEMD ".slice/cri-containerd-" ID
	  ".scope",
	  "cri-containerd-" ID ".scope", ID },
	{ "/docker/" ID2 "/docker/" ID, "", ID },
	/* a systemd inside a container */
	{ "/docker/" ID "/system.slice/nginx.service", "nginx.service", ID },
	/* plain systemd units */
	{ "/system.slice/nginx.service", "nginx.service", "" },
	{ "/system.slice/nginx.service/worker", "nginx.service", "" }, /* delegated subgroup */
	{ "/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", "" },
	{ "/system.slice/systemd-journald.socket", "systemd-journald.socket", "" },
	{ "/init.scope", "init.scope", "" },
	/* scopes that are not services: the unit as systemd reports it */
	{ "/user.slice/user-0.slice/session-1.scope", "session-1.scope", "" },
	{ "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/"
	  "vte-spawn-4f7c.scope",
	  "vte-spawn-4f7c.scope", "" },
	{ "/user.slice/user-1000.slice/user@1000.service/init.scope", "init.scope", "" },
	/* seen from another cgroup namespace */
	{ "/../../system.slice/nginx.service", "nginx.service", "" },
	/* nothing to find */
	{ "/", "", "" },
	{ "", "", "" },
	{ "/user.slice", "", "" },
	{ "/process_api/acde98351f9d25244cd292657971ec62", "", "" }, /* 32 hex: not a container id */
	/* garbage */
	{ "////", "", "" },
	{ "/system.slice/.service", "", "" },
	{ "/system.slice/foo bar.service", "", "" },
	{ "/system.slice/nginx.servicex", "", "" },
	{ "/system.slice/docker-" ID ".scopex", "", "" },
	{ "/docker/" ID "0", "", "" },
	{ "/docker/0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", "", "" },
	{ "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", "", "" },
	{ "/docker-" ID, "", ID },
	{ ":::", "", "" },
	{ "/a:b:" ID, "", ID },
	{ "/\xff\xfe.service", "", "" },
	{ "relative/nginx.service", "nginx.service", "" },
};

static void fill_junk(struct cgroup_identity *id)
{
	memset(id->systemd_unit, 'x', sizeof(id->systemd_unit));
	memset(id->container_id, 'x', sizeof(id->container_id));
	memset(id->pod_uid, 'x', sizeof(id->pod_uid));
}

#define UID "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"

/* The pod uid of the kubelet's pod cgroup, whichever driver named it. */
static const struct {
	const char *path, *uid;
} pod_cases[] = {
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" POD_SYSTEMD ".slice/cri-containerd-" ID
	  ".scope", UID },
	{ "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-" POD_SYSTEMD ".slice", UID },
	{ "/kubepods.slice/kubepods-" POD_SYSTEMD ".slice/cri-containerd-" ID ".scope", UID },
	{ "/kubepods/burstable/" POD_CGROUPFS "/" ID, UID },
	{ "/kubepods/" POD_CGROUPFS, UID },
	{ "/system.slice/containerd.service/kubepods-burstable-" POD_SYSTEMD ".slice:cri-containerd:" ID, UID },
	{ "/system.slice/docker-" ID2 ".scope/kubelet.slice/kubelet-kubepods.slice/"
	  "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-" POD_SYSTEMD ".slice/cri-containerd-" ID
	  ".scope", "" }, /* kind's "kubelet-" prefix is not the kubelet's own layout */
	{ "/system.slice/nginx.service", "" },
	{ "/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f90", "" },   /* short */
	{ "/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f90g", "" },  /* not hex */
	{ "/kubepods/burstable/pod1b2c3d4e5f60-7182-93a4-b5c6d7e8f901-", "" },  /* dashes misplaced */
	{ "/user.slice/my-pod" UID ".slice", "" },                             /* not a kubepods slice */
};

static void test_pod_uids(void **state)
{
	struct cgroup_identity id;

	(void)state;
	for (size_t i = 0; i < sizeof(pod_cases) / sizeof(pod_cases[0]); i++) {
		fill_junk(&id);
		cgroup_identity_from_path(pod_cases[i].path, &id);
		if (strcmp(id.pod_uid, pod_cases[i].uid))
			fail_msg("%s: got pod uid \"%s\", want \"%s\"", pod_cases[i].path, id.pod_uid,
				 pod_cases[i].uid);
	}
}

static void test_paths(void **state)
{
	struct cgroup_identity id;

	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];

		fill_junk(&id);
		cgroup_identity_from_path(c->path, &id);
		if (strcmp(id.systemd_unit, c->unit) || strcmp(id.container_id, c->container))
			fail_msg("%s: got unit \"%s\" container \"%s\", want \"%s\" \"%s\"", c->path,
				 id.systemd_unit, id.container_id, c->unit, c->container);
	}
}

static void test_null_and_long_paths(void **state)
{
	struct cgroup_identity id;
	char path[1024] = "/system.slice/";

	(void)state;
	fill_junk(&id);
	cgroup_identity_from_path(NULL, &id);
	assert_string_equal(id.systemd_unit, "");
	assert_string_equal(id.container_id, "");

	/* a unit name that does not fit is no unit: never truncated into another name */
	memset(path + strlen(path), 'a', 300);
	strcpy(path + strlen("/system.slice/") + 300, ".service");
	cgroup_identity_from_path(path, &id);
	assert_string_equal(id.systemd_unit, "");

	/* the longest that fits */
	memset(path, 'b', 255 - strlen(".service"));
	strcpy(path + 255 - strlen(".service"), ".service");
	cgroup_identity_from_path(path, &id);
	assert_int_equal(strlen(id.systemd_unit), 255);
}

/* A fake proc root: <root>/<pid>/cgroup with the given content. */
struct fake_proc {
	char root[64];
	char file[128];
	char dir[96];
};

static void fake_proc_write(struct fake_proc *fp, int pid, const char *content)
{
	FILE *f;

	snprintf(fp->dir, sizeof(fp->dir), "%s/%d", fp->root, pid);
	assert_true(mkdir(fp->dir, 0755) == 0 || errno == EEXIST);
	snprintf(fp->file, sizeof(fp->file), "%s/cgroup", fp->dir);
	f = fopen(fp->file, "w");
	assert_non_null(f);
	fputs(content, f);
	assert_int_equal(fclose(f), 0);
}

static int setup_proc(void **state)
{
	struct fake_proc *fp = calloc(1, sizeof(*fp));

	if (!fp)
		return -1;
	strcpy(fp->root, "/tmp/anorak-test-cgroup-XXXXXX");
	if (!mkdtemp(fp->root))
		return -1;
	*state = fp;
	return 0;
}

static int teardown_proc(void **state)
{
	struct fake_proc *fp = *state;

	unlink(fp->file);
	rmdir(fp->dir);
	rmdir(fp->root);
	free(fp);
	return 0;
}

struct file_case {
	const char *name, *content, *unit, *container, *path;
};

static const struct file_case file_cases[] = {
	{ "cgroup2 only", "0::/system.slice/nginx.service\n", "nginx.service", "", "/system.slice/nginx.service" },
	{ "cgroup2 kubelet",
	  "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" POD_SYSTEMD ".slice/cri-containerd-" ID
	  ".scope\n",
	  "cri-containerd-" ID ".scope", ID,
	  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" POD_SYSTEMD ".slice/cri-containerd-" ID
	  ".scope" },
	{ "cgroup2 path with colons",
	  "0::/system.slice/containerd.service/kubepods-burstable-" POD_SYSTEMD ".slice:cri-containerd:" ID "\n",
	  "containerd.service", ID, NULL },
	{ "hybrid host (this shape: v1 lines, name=systemd and 0::)",
	  "9:name=systemd:/system.slice/nginx.service\n8:pids:/system.slice/nginx.service\n"
	  "4:memory:/process_api/acde98351f9d25244cd292657971ec62\n3:cpuset:/\n0::/system.slice/nginx.service\n",
	  "nginx.service", "", NULL },
	{ "hybrid, unified hierarchy empty: name=systemd",
	  "12:pids:/system.slice/ssh.service\n1:name=systemd:/system.slice/ssh.service\n0::/\n", "ssh.service",
	  "", NULL },
	{ "hybrid, container only in a v1 controller",
	  "5:memory:/docker/" ID "\n4:cpu,cpuacct:/docker/" ID "\n1:name=systemd:/system.slice/containerd.service\n"
	  "0::/system.slice/containerd.service\n",
	  "containerd.service", ID, "/docker/" ID },
	{ "cgroup v1 only, docker cgroupfs driver",
	  "11:cpu,cpuacct:/docker/" ID "\n1:name=systemd:/docker/" ID "\n", "", ID, NULL },
	{ "cgroup v1 only, name=systemd among other named hierarchies",
	  "2:name=foo,name=systemd:/system.slice/cron.service\n", "cron.service", "", NULL },
	{ "units only come from systemd's hierarchies", "3:cpu:/system.slice/nginx.service\n", "", "", NULL },
	{ "cgroup2 line wins over name=systemd",
	  "1:name=systemd:/system.slice/old.service\n0::/system.slice/new.service\n", "new.service", "",
	  "/system.slice/new.service" },
	{ "removed cgroup", "0::/system.slice/gone.service (deleted)\n", "gone.service", "", NULL },
	{ "no trailing newline", "0::/system.slice/a.service", "a.service", "", NULL },
	{ "garbage lines", "garbage\n\n:\n0:/x\n0::/system.slice/a.service\n", "a.service", "", NULL },
	{ "kernel thread", "0::/\n", "", "", NULL },
	{ "empty file", "", "", "", NULL },
};

static void test_proc_files(void **state)
{
	struct fake_proc *fp = *state;
	struct cgroup_identity id;
	char path[4096];

	for (size_t i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
		const struct file_case *c = &file_cases[i];

		fake_proc_write(fp, 4242, c->content);
		fill_junk(&id);
		memset(path, 'x', sizeof(path));
		assert_int_equal(cgroup_identity_of_pid(fp->root, 4242, &id, path, sizeof(path)), 0);
		if (strcmp(id.systemd_unit, c->unit) || strcmp(id.container_id, c->container))
			fail_msg("%s: got unit \"%s\" container \"%s\", want \"%s\" \"%s\"", c->name,
				 id.systemd_unit, id.container_id, c->unit, c->container);
		if (c->path && strcmp(path, c->path))
			fail_msg("%s: got path \"%s\", want \"%s\"", c->name, path, c->path);
		if (strcmp(c->name, "cgroup2 kubelet") == 0)
			assert_string_equal(id.pod_uid, UID);
	}
}

static void test_proc_errors(void **state)
{
	struct fake_proc *fp = *state;
	struct cgroup_identity id;
	char root[5000];

	fill_junk(&id);
	assert_int_equal(cgroup_identity_of_pid(fp->root, 999999, &id, NULL, 0), -ENOENT);
	assert_string_equal(id.systemd_unit, "");
	assert_string_equal(id.container_id, "");
	memset(root, 'r', sizeof(root) - 1);
	root[sizeof(root) - 1] = '\0';
	assert_int_equal(cgroup_identity_of_pid(root, 1, &id, NULL, 0), -ENAMETOOLONG);
}

/* The cgroup2 line's path and the id of its directory under the mount (a temporary tree here). */
static void test_cgroup2_of_pid(void **state)
{
	struct fake_proc *fp = *state;
	char mount[] = "/tmp/anorak-test-cg2-XXXXXX", dir[128], unit[160], path[256];
	struct stat st;
	uint64_t id = 0;

	assert_non_null(mkdtemp(mount));
	snprintf(dir, sizeof(dir), "%s/system.slice", mount);
	snprintf(unit, sizeof(unit), "%s/nginx.service", dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(unit, 0755), 0);
	assert_int_equal(stat(unit, &st), 0);

	fake_proc_write(fp, 4242, "9:name=systemd:/system.slice/other.service\n3:cpuset:/\n"
				  "0::/system.slice/nginx.service\n");
	assert_int_equal(cgroup2_of_pid(fp->root, mount, 4242, &id, path, sizeof(path)), 0);
	assert_int_equal(id, st.st_ino);
	assert_string_equal(path, "/system.slice/nginx.service");
	assert_int_equal(cgroup2_of_pid(fp->root, mount, 4242, &id, NULL, 0), 0);

	/* cgroup v1 only: no cgroup2 line. */
	fake_proc_write(fp, 4242, "1:name=systemd:/system.slice/nginx.service\n");
	assert_int_equal(cgroup2_of_pid(fp->root, mount, 4242, &id, path, sizeof(path)), -ENOENT);
	/* The directory is gone (the cgroup was removed since). */
	fake_proc_write(fp, 4242, "0::/system.slice/gone.service\n");
	assert_int_equal(cgroup2_of_pid(fp->root, mount, 4242, &id, path, sizeof(path)), -ENOENT);
	assert_int_equal(cgroup2_of_pid(fp->root, mount, 999999, &id, path, sizeof(path)), -ENOENT);

	rmdir(unit);
	rmdir(dir);
	rmdir(mount);
}

/* The real file of this process parses, whatever this host's cgroup layout is. */
static void test_real_proc(void **state)
{
	struct cgroup_identity id;

	(void)state;
	fill_junk(&id);
	char path[4096];

	assert_int_equal(cgroup_identity_of_pid("/proc", getpid(), &id, path, sizeof(path)), 0);
	assert_true(path[0] == '/');
	assert_true(strlen(id.systemd_unit) < sizeof(id.systemd_unit));
	assert_true(strlen(id.container_id) == 0 || strlen(id.container_id) == 64);
}

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(content, f);
	assert_int_equal(fclose(f), 0);
}

/* Lines from a hybrid host (this machine's shape), a unified one and one without cgroup2. */
static void test_cgroup2_mount(void **state)
{
	char file[] = "/tmp/anorak-test-mountinfo-XXXXXX", out[256];
	int fd = mkstemp(file);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	write_file(file, "25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
			 "26 25 0:24 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
			 "27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
			 "28 26 0:26 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=systemd\n");
	assert_int_equal(cgroup2_mount_point(file, out, sizeof(out)), 0);
	assert_string_equal(out, "/sys/fs/cgroup/unified");
	write_file(file, "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw\n");
	assert_int_equal(cgroup2_mount_point(file, out, sizeof(out)), 0);
	assert_string_equal(out, "/sys/fs/cgroup");
	assert_int_equal(cgroup2_mount_point(file, out, 4), -ENAMETOOLONG);
	write_file(file, "28 26 0:26 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=systemd\ngarbage\n");
	assert_int_equal(cgroup2_mount_point(file, out, sizeof(out)), -ENOENT);
	unlink(file);
	assert_int_equal(cgroup2_mount_point("/nonexistent/mountinfo", out, sizeof(out)), -ENOENT);
	/* this machine has one */
	assert_int_equal(cgroup2_mount_point("/proc/self/mountinfo", out, sizeof(out)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_null_and_long_paths),
		cmocka_unit_test(test_pod_uids),
		cmocka_unit_test(test_cgroup2_mount),
		cmocka_unit_test_setup_teardown(test_proc_files, setup_proc, teardown_proc),
		cmocka_unit_test_setup_teardown(test_proc_errors, setup_proc, teardown_proc),
		cmocka_unit_test_setup_teardown(test_cgroup2_of_pid, setup_proc, teardown_proc),
		cmocka_unit_test(test_real_proc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
