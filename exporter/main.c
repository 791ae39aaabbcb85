/* anorak: eBPF CPU profiler for every process on a node, served as pprof. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "exporter/collector.h"
#include "exporter/flags.h"
#include "exporter/malloc_bounds.h"
#include "exporter/store/history.h"
#include "exporter/encode/pprof_history.h"
#include "exporter/web/http.h"
#include "common/log.h"
#include "common/metrics.h"
#include "exporter/encode/pyroscope.h"
#include "exporter/selfstats.h"
#include "exporter/web/webconfig.h"

/* Every file a profiled process maps stays open while its samples may be encoded. */
#define WANTED_NOFILE 65536

/* The set the DaemonSet grants (integrations/kubernetes/daemonset.yaml says what each is for), but for
 * CAP_SYS_RESOURCE: see raise_nofile. */
static const struct {
	int cap;
	const char *name;
} needed_caps[] = {
	{ 39 /* CAP_BPF */, "CAP_BPF" },
	{ 38 /* CAP_PERFMON */, "CAP_PERFMON" },
	{ CAP_SYS_PTRACE, "CAP_SYS_PTRACE" },
	{ CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH" },
	{ CAP_SYSLOG, "CAP_SYSLOG" },
	{ 40 /* CAP_CHECKPOINT_RESTORE */, "CAP_CHECKPOINT_RESTORE" },
};

/* Names the capabilities missing from the effective set; 0 when all are there. */
static int check_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };
	char missing[256] = "";

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	for (size_t i = 0; i < sizeof(needed_caps) / sizeof(needed_caps[0]); i++) {
		int cap = needed_caps[i].cap;

		if (!(data[cap / 32].effective & (1u << (cap % 32)))) {
			strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
			strncat(missing, needed_caps[i].name, sizeof(missing) - strlen(missing) - 1);
		}
	}
	if (missing[0]) {
		log_error("anorak needs root or these capabilities: run it as root (or grant them)",
			  "missing=\"%s\"", missing + 1);
		return -EPERM;
	}
	return 0;
}

static int check_btf(void)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		return 0;
	log_error("the kernel has no BTF: anorak needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
		  "file=/sys/kernel/btf/vmlinux err=\"%s\"", strerror(errno));
	return -ENOENT;
}

/* Raising the hard limit takes CAP_SYS_RESOURCE, which is not needed where the hard limit is high
 * enough already: without it anorak says so once and runs with the hard limit. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= WANTED_NOFILE)
		return;
	rl.rlim_cur = rl.rlim_max >= WANTED_NOFILE ? WANTED_NOFILE : rl.rlim_max;
	if (rl.rlim_max < WANTED_NOFILE) {
		struct rlimit raised = { WANTED_NOFILE, WANTED_NOFILE };
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			return;
		log_warn("cannot raise the open-file limit without CAP_SYS_RESOURCE: using the hard limit",
			 "missing=\"CAP_SYS_RESOURCE\" limit=%llu wanted=%d err=\"%s\"",
			 (unsigned long long)rl.rlim_max, WANTED_NOFILE, strerror(errno));
	}
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void node_name(const struct anorak_config *cfg, char *out, size_t len)
{
	const char *env = cfg->kubernetes_node_name ? cfg->kubernetes_node_name : getenv("NODE_NAME");

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return;
	}
	if (gethostname(out, len))
		snprintf(out, len, "localhost");
	out[len - 1] = '\0';
}

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static void build_info(struct metrics_buf *b, void *unused)
{
	(void)unused;
	struct metrics_series series = metrics_series_begin(b, "anorak_build_info", "gauge",
							    "A metric with a constant '1' labeled by the version.");

	metrics_series_value(series, "version=\"" ANORAK_VERSION "\"", 1);
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const char *p = data;

	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;
			close(fd);
			return err;
		}
		p += n;
		len -= (size_t)n;
	}
	return close(fd) ? -errno : 0;
}

/* Signals go to this thread only, through sigwait, so no handler runs inside a library call. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

struct record_job {
	struct collector *collector;
	const struct anorak_config *cfg;
	int err;
};

static void *record_main(void *arg)
{
	struct record_job *job = arg;
	void *profile = NULL;
	size_t len = 0;

	job->err = collector_profile(job->collector, job->cfg->record_seconds, false, NULL, NULL, &profile, &len);
	if (!job->err) {
		job->err = write_file(job->cfg->record_output, profile, len);
		if (job->err)
			log_error("cannot write the profile", "file=\"%s\" err=\"%s\"", job->cfg->record_output,
				  strerror(-job->err));
		else
			log_info("profile written", "file=\"%s\" bytes=%zu", job->cfg->record_output, len);
	} else if (job->err != -ESHUTDOWN) {
		log_error("profiling failed", "err=\"%s\"", strerror(-job->err));
	}
	free(profile);
	kill(getpid(), SIGTERM); /* wakes main's sigwait */
	return NULL;
}

static int wait_for_stop(struct collector *c, sigset_t *set)
{
	for (;;) {
		int sig;

		if (sigwait(set, &sig))
			return -EINTR;
		if (sig == SIGHUP) {
			collector_reload(c);
			continue;
		}
		return sig;
	}
}

static int record(struct collector *c, const struct anorak_config *cfg, sigset_t *set)
{
	struct record_job job = { .collector = c, .cfg = cfg };
	pthread_t thread;
	int err = pthread_create(&thread, NULL, record_main, &job);

	if (err)
		return -err;
	wait_for_stop(c, set);
	collector_stop(c); /* an interrupted recording ends now */
	pthread_join(thread, NULL);
	return job.err;
}

struct query_ctx {
	struct collector *collector;
	unsigned base_frequency;
};

static int history_profile(void *ctx, const struct history_range_query *q, void **body, size_t *len,
			   int64_t *first_ns, int64_t *last_ns)
{
	struct query_ctx *qc = ctx;

	return history_profile_encode(collector_history(qc->collector), q, qc->base_frequency, body, len,
				      first_ns, last_ns);
}

static int query_api(void *ctx, const char *method, const void *body, size_t len, struct http_reply *reply)
{
	struct query_ctx *qc = ctx;

	return pyroscope_serve(collector_history(qc->collector), method, body, len, reply);
}

static int live_profile(void *ctx, unsigned seconds, bool (*client_gone)(void *arg), void *arg,
			void **out, size_t *outlen)
{
	return collector_profile(((struct query_ctx *)ctx)->collector, seconds, false, client_gone, arg, out,
				 outlen);
}

static int live_offcpu(void *ctx, unsigned seconds, bool (*client_gone)(void *arg), void *arg,
		       void **out, size_t *outlen)
{
	return collector_profile(((struct query_ctx *)ctx)->collector, seconds, true, client_gone, arg, out,
				 outlen);
}

static int targets(void *ctx, char **json, size_t *len)
{
	return collector_targets(((struct query_ctx *)ctx)->collector, json, len);
}

static bool ready(void *ctx)
{
	return collector_ready(((struct query_ctx *)ctx)->collector);
}

static int serve(struct collector *c, const struct anorak_config *cfg, sigset_t *set,
		 struct webconfig *web)
{
	struct query_ctx qc = { .collector = c, .base_frequency = cfg->sampling_frequency };
	struct http_handlers handlers = {
		.profile = live_profile,
		.offcpu_profile = cfg->offcpu_probability > 0 ? live_offcpu : NULL,
		.history_profile = history_profile,
		.query_api = query_api,
		.ready = ready,
		.targets = targets,
		.ctx = &qc,
		.max_seconds = cfg->retention_seconds > 0xffffffffu ? 0xffffffffu : (unsigned)cfg->retention_seconds,
		.web = web,
		.limits = {
			.max_connections = cfg->web_max_connections,
			.max_requests = cfg->web_max_requests,
			.read_timeout_ms = (unsigned)cfg->web_read_timeout_seconds * 1000,
			.max_header_bytes = (unsigned)cfg->web_max_header_bytes,
			.max_per_client = cfg->web_max_conns_per_client,
			.max_waiting = cfg->web_max_waiting_conns,
		},
	};
	struct http_server *server;
	int err = http_server_start(cfg->listen_address, &handlers, &server);

	if (err)
		return err;
	int sig = wait_for_stop(c, set);
	log_info("stopping", "signal=%d", sig);
	collector_stop(c);
	http_server_stop(server);
	return 0;
}

int main(int argc, char **argv)
{
	struct anorak_config cfg;
	struct collector *collector = NULL;
	struct webconfig *web = NULL;
	char node[256], why[640];
	sigset_t signals;
	int err = flags_parse(argc, argv, &cfg, stdout, stderr);

	if (err == FLAGS_EXIT_OK)
		return 0;
	if (err)
		return 2;
	malloc_bounds_init();
	log_set_level(cfg.log_level);
	/* Before anything is attached: a bad web config is a startup error, not an open endpoint. */
	if (cfg.web_config_file && webconfig_load(cfg.web_config_file, &web, why, sizeof(why))) {
		log_error("invalid --web.config.file", "err=\"%s\"", why);
		return 1;
	}
	libbpf_set_print(libbpf_log);
	if (check_capabilities() || check_btf()) {
		webconfig_free(web);
		return 1;
	}
	raise_nofile();
	node_name(&cfg, node, sizeof(node));
	block_signals(&signals);

	err = collector_start(&cfg, node, &collector);
	if (err) {
		webconfig_free(web);
		return 1;
	}
	metrics_register(build_info, NULL);
	metrics_register(selfstats_write_metrics, NULL);
	metrics_register(malloc_bounds_write_metrics, NULL);
	err = cfg.record ? record(collector, &cfg, &signals) : serve(collector, &cfg, &signals, web);
	collector_free(collector);
	webconfig_free(web);
	metrics_unregister_all();
	return err ? 1 : 0;
}
