/* Command-line flags, Prometheus style: --name=value (or --name value), --help. */
#ifndef ANORAK_FLAGS_H
#define ANORAK_FLAGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/log.h"

struct anorak_config {
	const char *listen_address;        /* --web.listen-address, ":9760" */
	const char *config_file;           /* --config.file, NULL: the built-in default config */
	const char *kubernetes_api_server; /* --kubernetes.api-server, NULL */
	const char *kubernetes_kubeconfig; /* --kubernetes.kubeconfig, NULL */
	const char *kubernetes_node_name;  /* --kubernetes.node-name, NULL: $NODE_NAME, else the hostname */
	uint32_t bpf_cgroup_map_entries;   /* --bpf.cgroup-map-entries, 4096 */
	const char *web_config_file;       /* --web.config.file, NULL: plain HTTP, no authentication */
	uint32_t web_max_connections;      /* --web.max-connections, 128: worker threads */
	uint32_t web_max_requests;         /* --web.max-requests, 64: profile requests waiting at once */
	uint64_t web_read_timeout_seconds; /* --web.read-timeout, "30s" */
	uint64_t web_max_header_bytes;     /* --web.max-header-bytes, "16KiB" */
	uint32_t web_max_conns_per_client; /* --web.max-connections-per-client, 64 */
	uint32_t web_max_waiting_conns;    /* --web.max-waiting-connections, 4096 */
	unsigned sampling_frequency;       /* --sampling.frequency, 19 (1..sampling_max_frequency) */
	unsigned sampling_max_frequency;   /* --sampling.max-frequency, 1000 */
	uint32_t sampling_max_hf_cgroups;  /* --sampling.max-high-frequency-containers, 64 */
	bool sampling_include_idle;        /* --sampling.include-idle, false: pid 0 samples dropped */
	double offcpu_probability;         /* --offcpu.probability, 0: no off-CPU profile */
	uint64_t offcpu_min_wait_ns;       /* --offcpu.min-wait-ns, 0 */
	bool offcpu_include_self;          /* --offcpu.include-self, false */
	uint32_t offcpu_max_waits;         /* --offcpu.max-waits, 4096 waits in flight */
	uint64_t retention_seconds;        /* --storage.retention, "1h": longest ?seconds=, history kept */
	uint64_t storage_max_bytes;        /* --storage.max-bytes, "64MiB": the history ring's bound */
	uint32_t bpf_stack_map_entries;    /* --bpf.stack-map-entries, 16384 per generation */
	uint32_t bpf_count_map_entries;    /* --bpf.count-map-entries, 10240 per generation */
	uint64_t symbol_cache_bytes;       /* --symbols.cache-size, "16MiB": symbol tables in memory */
	uint64_t symbol_idle_seconds;      /* --symbols.cache-idle-time, "30s": tables of unmapped files */
	uint64_t elf_max_bytes;            /* --symbols.max-elf-size, "1GiB": larger files are not read */
	const char *debuginfod_urls;       /* --symbols.debuginfod-urls, NULL: $DEBUGINFOD_URLS; "": none */
	const char *debuginfod_cache_dir;  /* --symbols.debuginfod-cache-dir, "/var/cache/anorak/debuginfod" */
	uint64_t debuginfod_cache_bytes;   /* --symbols.debuginfod-cache-size, "1GiB" */
	uint64_t debuginfod_timeout_seconds; /* --symbols.debuginfod-timeout, "30s" per fetch */
	uint32_t debuginfod_max_fetches;   /* --symbols.debuginfod-max-fetches, 2 in flight */
	uint32_t max_processes;            /* --processes.max, 16384: processes tracked at once */
	uint64_t unwind_table_bytes;       /* --unwind.table-memory, "32MiB"; 0: frame pointers only */
	enum log_level log_level;          /* --log.level, info */

	/* "anorak record --seconds N -o FILE": one profile to a file, then exit. */
	bool record;
	unsigned record_seconds;           /* --seconds, 10 */
	const char *record_output;         /* -o / --output, required with record */
};

enum flags_result { FLAGS_OK = 0, FLAGS_EXIT_OK = 1 /* --help or --version printed */ };

/* Fills cfg with defaults, then applies argv. On a bad flag writes one line to err naming the flag and
 * what is wrong and returns -EINVAL. */
int flags_parse(int argc, char **argv, struct anorak_config *cfg, FILE *out, FILE *err);

/* "30s", "5m", "1h", "1h30m", "2d" (Prometheus durations) -> seconds; -EINVAL on anything else. */
int flags_parse_duration(const char *s, uint64_t *seconds);
/* "1024", "64KiB", "16MiB", "1GiB" (also KB/MB/GB, 1024-based as Prometheus) -> bytes. */
int flags_parse_bytes(const char *s, uint64_t *bytes);

#endif
