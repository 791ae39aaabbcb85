/*
 * The running profiler: sampler, process table, symbolizer and drained windows, with the drain thread
 * (every second, or at once when a profile window opens or closes) and the process-event thread.
 */
#ifndef ANORAK_COLLECTOR_H
#define ANORAK_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "exporter/flags.h"

struct collector;

/* Loads BPF, attaches, starts the threads. Errors are logged once; negative errno. */
int collector_start(const struct anorak_config *cfg, const char *node_name, struct collector **out);
/* Ends waiting profile requests (-ESHUTDOWN) and stops the threads; profile requests still running
 * return soon after. */
void collector_stop(struct collector *c);
/* Stops if needed, detaches BPF and frees: call when no profile request can still run. */
void collector_free(struct collector *c);

/* The CPU or off-CPU profile of the next `seconds` seconds, gzip'd pprof (blocks that long). Thread-safe. */
int collector_profile(void *collector, unsigned seconds, bool offcpu, bool (*client_gone)(void *arg),
		      void *arg, void **out, size_t *outlen);
/* BPF attached and, with Kubernetes, the first pod list delivered. */
bool collector_ready(void *collector);
/* GET /api/v1/targets. */
int collector_targets(void *collector, char **json, size_t *len);
/* The ring of past windows (always on). */
struct history *collector_history(struct collector *c);
/* SIGHUP: re-reads the config file; a bad one keeps the running config (logged). Processes learnt
 * from now on are labeled by the new one. */
int collector_reload(struct collector *c);

#endif
