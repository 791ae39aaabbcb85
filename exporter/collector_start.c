#include "exporter/collector.h"
#include "exporter/collector_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "exporter/host_rates.h"
#include "exporter/pod_scan.h"
#include "exporter/sampling/cgroup_rates.h"
#include "exporter/sampling/sampler.h"
#include "exporter/store/history.h"
#include "exporter/store/slices.h"
#include "exporter/symbols/debuginfod.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/symbolize.h"
#include "exporter/trace_discovery.h"
#include "labels/k8s_client.h"
#include "labels/pods.h"
/* The port of a Prometheus-style listen address (":9760", "host:9760", "[::1]:9760"). */
static const char *listen_port(const char *listen_address)
{
	const char *colon = strrchr(listen_address, ':');

	return colon && colon[1] ? colon + 1 : "9760";
}

bool collector_ready(void *collector)
{
	struct collector *c = collector;

	return atomic_load(&c->ready) && (!c->k8s || k8s_client_synced(c->k8s));
}

static bool kubernetes_configured(const struct anorak_config *cfg)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");

	return cfg->kubernetes_api_server || cfg->kubernetes_kubeconfig || (host && *host);
}

/* Before any thread: libdebuginfod takes its settings from the environment. */
static int start_debuginfod(struct collector *c)
{
	struct debuginfod_opts o = {
		.urls = c->cfg->debuginfod_urls,
		.cache_dir = c->cfg->debuginfod_cache_dir,
		.cache_max_bytes = c->cfg->debuginfod_cache_bytes,
		.elf_max_bytes = c->cfg->elf_max_bytes,
		.timeout_seconds = (unsigned)c->cfg->debuginfod_timeout_seconds,
		.max_fetches = c->cfg->debuginfod_max_fetches,
	};

	return debuginfod_new(&o, &c->debuginfod);
}

/* Kubernetes discovery, when configured: the pod store now, the client once BPF is attached. */
static int start_pods(struct collector *c)
{
	struct pod_store_opts opts = {
		.policy = on_pod_policy,
		.ctx = c,
		.base_frequency = c->cfg->sampling_frequency,
		.max_frequency = c->cfg->sampling_max_frequency,
	};

	int err;

	if (!c->cgroup2_mount[0])
		log_warn("no cgroup2 hierarchy: containers are found from their first sample only", NULL);
	err = pod_store_new(&c->labeler, &opts, &c->pods);
	if (!err)
		pod_scan_init(&c->pod_scan, c->pods, c->cgroup2_mount);
	return err;
}

static int start_kubernetes(struct collector *c, const char *node_name)
{
	struct k8s_client_config kcfg = {
		.api_server = c->cfg->kubernetes_api_server,
		.kubeconfig = c->cfg->kubernetes_kubeconfig,
		.node_name = node_name,
	};
	int err = k8s_client_start(&kcfg, pod_store_on_pod, c->pods, &c->k8s);

	if (!err)
		log_info("discovering the pods of this node", "node=\"%s\"", node_name);
	return err;
}

static int start_rates(struct collector *c)
{
	struct cgroup_rates_opts opts = {
		.sampler = c->sampler,
		.cgroup2_mount = c->cgroup2_mount,
		.max_cgroups = c->cfg->sampling_max_hf_cgroups,
	};
	int err = cgroup_rates_new(&opts, &c->rates);

	if (!err)
		host_rates_attach(&c->host_rates, c->rates, c->processes, c->pods);
	return err;
}

static int start_threads(struct collector *c)
{
	int err = process_queue_start(&c->discovery.queue);

	if (err)
		return err;
	err = pthread_create(&c->drain_thread, NULL, drain_main, c);
	if (err)
		return -err;
	c->drain_started = true;
	err = pthread_create(&c->event_thread, NULL, event_main, c);
	if (err)
		return -err;
	c->event_started = true;
	return 0;
}

static void init_sync(struct collector *c)
{
	pthread_condattr_t monotonic;

	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->ledger_lock, NULL);
	discovery_init(&c->discovery, &c->traces, &c->python);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &monotonic);
	pthread_cond_init(&c->served, &monotonic);
	pthread_condattr_destroy(&monotonic);
	slice_store_init(&c->windows);
	c->last_drain_ns = realtime_ns();
}

/* The symbolizer (and its debuginfod client) and the ring of past windows, which symbolizes as it
 * stores. */
static int start_store(struct collector *c)
{
	const struct anorak_config *cfg = c->cfg;
	int err = start_debuginfod(c);

	if (err)
		return err;
	struct symbolizer_opts sym_opts = {
		.cache_max_bytes = cfg->symbol_cache_bytes,
		.idle_ttl_ns = cfg->symbol_idle_seconds * 1000000000ull,
		.elf_max_bytes = cfg->elf_max_bytes,
		.max_symbols_per_file = 4000000,
		.proc_root = "/proc",
		.kallsyms_path = "/proc/kallsyms",
		.debuginfod = c->debuginfod,
	};

	c->symbolizer = symbolizer_new(&sym_opts);
	if (!c->symbolizer)
		return -ENOMEM;
	struct history_opts history_opts = {
		.retention_ns = (int64_t)(cfg->retention_seconds > INT64_MAX / 1000000000 ? INT64_MAX / 1000000000
							    : cfg->retention_seconds) * 1000000000,
		.max_bytes = cfg->storage_max_bytes,
		.window_ns = HISTORY_WINDOW_NS,
		.symbolizer = c->symbolizer,
	};
	return history_new(&history_opts, &c->history);
}

/* Relabeling, host targets' address, the cgroup2 mount, and the pod store when Kubernetes is configured. */
static int start_labels(struct collector *c, const char *node_name)
{
	int err = target_labeler_init(&c->labeler, c->cfg->config_file);

	if (err)
		return err;
	c->labeler_ready = true;
	snprintf(c->address, sizeof(c->address), "%s:%s", node_name, listen_port(c->cfg->listen_address));
	err = cgroup2_mount_point("/proc/self/mountinfo", c->cgroup2_mount, sizeof(c->cgroup2_mount));
	if (err) {
		c->cgroup2_mount[0] = '\0';
		log_warn("no cgroup2 hierarchy: no cgroup can be sampled at its own rate", "err=\"%s\"",
			 strerror(-err));
	}
	return kubernetes_configured(c->cfg) ? start_pods(c) : 0;
}

/* The process table, then the BPF sampler that feeds it process events. */
static int start_sampling(struct collector *c)
{
	const struct anorak_config *cfg = c->cfg;
	struct process_table_opts proc_opts = {
		.on_target = on_host_target,
		.on_target_ctx = c,
		.on_learnt = on_process_learnt,
		.on_learnt_ctx = c,
		.symbolizer = c->symbolizer,
		.proc_root = "/proc",
		.cgroup2_mount = c->cgroup2_mount,
		.labeler = &c->labeler,
		.address = c->address,
		.max_processes = cfg->max_processes,
	};
	struct sampler_opts sampler_opts = {
		.frequency = cfg->sampling_frequency,
		.include_idle = cfg->sampling_include_idle,
		.stack_map_entries = cfg->bpf_stack_map_entries,
		.count_map_entries = cfg->bpf_count_map_entries,
		.max_processes = cfg->max_processes,
		.max_cgroup_policies = cfg->bpf_cgroup_map_entries,
		.unwind_table_bytes = cfg->unwind_table_bytes,
		.elf_max_bytes = cfg->elf_max_bytes,
		.offcpu_probability = cfg->offcpu_probability,
		.offcpu_min_ns = cfg->offcpu_min_wait_ns,
		.offcpu_include_self = cfg->offcpu_include_self,
		.offcpu_waits_entries = cfg->offcpu_max_waits,
	};
	int err = process_table_new(&proc_opts, &c->processes);

	if (err)
		return err;
	err = sampler_open(&sampler_opts, process_table_on_event, c->processes, &c->sampler);
	if (!err)
		trace_discovery_init(&c->traces, c->sampler, cfg->elf_max_bytes);
	if (!err)
		err = python_discovery_init(&c->python, c->sampler, cfg->elf_max_bytes, cfg->max_processes);
	return err;
}

static void register_metrics(struct collector *c)
{
	metrics_register(sampler_write_metrics, c->sampler);
	metrics_register(process_table_write_metrics, c->processes);
	metrics_register(symbolizer_write_metrics, c->symbolizer);
	if (c->debuginfod)
		metrics_register(debuginfod_write_metrics, c->debuginfod);
	metrics_register(write_collector_metrics, c);
	metrics_register(python_discovery_write_metrics, &c->python);
	metrics_register(process_queue_write_metrics, &c->discovery.queue);
	metrics_register(history_write_metrics, c->history);
}

int collector_start(const struct anorak_config *cfg, const char *node_name, struct collector **out)
{
	struct collector *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->cfg = cfg;
	init_sync(c);
	host_rates_init(&c->host_rates, cfg, c->cgroup2_mount);
	if ((err = start_store(c)) || (err = start_labels(c, node_name)) || (err = start_sampling(c)) ||
	    (err = start_rates(c)))
		goto fail;
	if (c->pods && (err = start_kubernetes(c, node_name)))
		goto fail;
	err = start_threads(c);
	if (err) {
		log_error("cannot start the collector threads", "err=\"%s\"", strerror(-err));
		goto fail;
	}
	register_metrics(c);
	atomic_store(&c->ready, true);
	*out = c;
	return 0;
fail:
	collector_free(c);
	return err;
}

void collector_stop(struct collector *c)
{
	atomic_store(&c->ready, false);
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->wake);
	pthread_cond_broadcast(&c->served);
	pthread_mutex_unlock(&c->lock);
	slice_store_stop(&c->windows);
	if (c->sampler)
		sampler_stop_events(c->sampler);
	if (c->drain_started)
		pthread_join(c->drain_thread, NULL);
	if (c->event_started)
		pthread_join(c->event_thread, NULL);
	c->drain_started = c->event_started = false;
	/* After the event thread, which queues to it. */
	process_queue_stop(&c->discovery.queue);
}

void collector_free(struct collector *c)
{
	if (!c)
		return;
	collector_stop(c);
	if (c->k8s)
		k8s_client_stop(c->k8s);
	process_queue_destroy(&c->discovery.queue);
	trace_discovery_destroy(&c->traces);
	python_discovery_destroy(&c->python);
	cgroup_rates_free(c->rates);
	host_rates_destroy(&c->host_rates);
	sampler_close(c->sampler);
	slice_store_destroy(&c->windows);
	history_free(c->history);
	process_table_free(c->processes);
	symbolizer_free(c->symbolizer);
	debuginfod_free(c->debuginfod);
	pod_store_free(c->pods);
	if (c->labeler_ready)
		target_labeler_destroy(&c->labeler);
	pthread_cond_destroy(&c->wake);
	pthread_cond_destroy(&c->served);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->ledger_lock);
	free(c);
}