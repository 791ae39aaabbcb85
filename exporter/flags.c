#include "exporter/flags.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef ANORAK_VERSION
#define ANORAK_VERSION "unknown"
#endif

/* F_STRING_OR_EMPTY: a string where "" is meaningful (it turns a feature off). */
enum flag_type {
	F_STRING, F_STRING_OR_EMPTY, F_UINT, F_BOOL, F_DURATION, F_BYTES, F_LOG_LEVEL,
	F_PROBABILITY, /* a number from 0 to 1 */
};

/* One command-line flag; defaults go through the same parser as the command line, so --help shows
 * exactly the text that produced them. */
struct flag {
	const char *name;
	char short_name;
	enum flag_type type;
	size_t offset, size;
	const char *def;     /* NULL: no default (metavar is shown instead) */
	const char *metavar;
	uint64_t min, max;   /* F_UINT, F_DURATION (seconds), F_BYTES */
	bool record_only;    /* only valid with the record command */
	const char *help;
};

#define FIELD(f) offsetof(struct anorak_config, f), sizeof(((struct anorak_config *)0)->f)
#define MiB (1ULL << 20)
#define DAY (24 * 3600ULL)

static const struct flag flags[] = {
	{ "web.listen-address", 0, F_STRING, FIELD(listen_address), ":9760", NULL, 0, 0, false,
	  "Address to serve /metrics and /debug/pprof/profile on: \":9760\" (all interfaces), "
	  "\"127.0.0.1:9760\", \"[::1]:9760\"." },
	{ "web.config.file", 0, F_STRING, FIELD(web_config_file), NULL, "FILE", 0, 0, false,
	  "TLS and basic authentication, in the exporter-toolkit web configuration format "
	  "(tls_server_config, basic_auth_users with bcrypt hashes); looked at on every request." },
	{ "web.max-connections", 0, F_UINT, FIELD(web_max_connections), "128", NULL, 2, 4096, false,
	  "Connections served at once, each by its own worker thread; more wait to be accepted." },
	{ "web.max-requests", 0, F_UINT, FIELD(web_max_requests), "64", NULL, 1, 4095, false,
	  "Profile requests (?seconds=) waiting for their window at once; more are answered 503 with "
	  "Retry-After. Below "
	  "--web.max-connections, so /metrics and the health checks always find a worker." },
	{ "web.max-connections-per-client", 0, F_UINT, FIELD(web_max_conns_per_client), "64", NULL, 1, 4096,
	  false, "Connections open at once from one client address (served or waiting for a worker; one the "
	  "client has closed no longer counts); more "
	  "are reset on accept, so idle or slow clients at one address cannot take every worker." },
	{ "web.max-waiting-connections", 0, F_UINT, FIELD(web_max_waiting_conns), "4096", NULL, 1, 65536,
	  false, "Connections held while their request header arrives, without a worker thread (idle or "
	  "slow clients cost a socket, not a worker); more are reset on accept." },
	{ "web.read-timeout", 0, F_DURATION, FIELD(web_read_timeout_seconds), "30s", NULL, 1, 3600, false,
	  "Longest wait for one network read or write: a client that stops sending its request or "
	  "reading the answer is dropped. Profile windows may be longer." },
	{ "web.max-header-bytes", 0, F_BYTES, FIELD(web_max_header_bytes), "16KiB", NULL, 1024, 1 * MiB,
	  false, "Largest request line and headers; a larger request is refused." },
	{ "config.file", 0, F_STRING, FIELD(config_file), NULL, "FILE", 0, 0, false,
	  "YAML file with job_name and relabel_configs (Prometheus semantics), re-read on SIGHUP; "
	  "without it the built-in default config is used." },
	{ "kubernetes.api-server", 0, F_STRING, FIELD(kubernetes_api_server), NULL, "URL", 0, 0, false,
	  "Kubernetes API server URL (no credentials). Without it and --kubernetes.kubeconfig, the "
	  "in-cluster config when KUBERNETES_SERVICE_HOST is set, else no Kubernetes discovery." },
	{ "kubernetes.kubeconfig", 0, F_STRING, FIELD(kubernetes_kubeconfig), NULL, "FILE", 0, 0, false,
	  "kubeconfig file: its current context's server, CA, token or client certificate." },
	{ "kubernetes.node-name", 0, F_STRING, FIELD(kubernetes_node_name), NULL, "NAME", 0, 0, false,
	  "Node whose pods are discovered (spec.nodeName); default $NODE_NAME, else the hostname. Also "
	  "the host part of host targets' __address__." },
	{ "bpf.cgroup-map-entries", 0, F_UINT, FIELD(bpf_cgroup_map_entries), "4096", NULL, 16, 1U << 20,
	  false, "Containers with a BPF policy at once (dropped by relabeling, or sampled at their own rate)." },
	{ "sampling.frequency", 0, F_UINT, FIELD(sampling_frequency), "19", NULL, 1, 100000, false,
	  "Samples per second per CPU for every target (at most --sampling.max-frequency)." },
	{ "sampling.max-frequency", 0, F_UINT, FIELD(sampling_max_frequency), "1000", NULL, 1, 100000,
	  false, "Ceiling for sampling frequencies raised by pod annotations or __sampling_frequency__." },
	{ "sampling.max-high-frequency-containers", 0, F_UINT, FIELD(sampling_max_hf_cgroups), "64", NULL, 0,
	  4096, false, "Containers and host cgroups sampled at a raised frequency at once; more keep the base rate "
	  "(counted)." },
	{ "sampling.include-idle", 0, F_BOOL, FIELD(sampling_include_idle), "false", NULL, 0, 0, false,
	  "Keep samples of the idle task (pid 0)." },
	{ "offcpu.probability", 0, F_PROBABILITY, FIELD(offcpu_probability), "0", NULL, 0, 0, false,
	  "Off-CPU profile (/debug/pprof/offcpu): probability, 0 to 1, that a thread blocking is followed "
	  "until it runs again, its wait counted under its stacks and scaled by 1/probability. 0: off." },
	{ "offcpu.min-wait-ns", 0, F_UINT, FIELD(offcpu_min_wait_ns), "0", NULL, 0, UINT64_MAX, false,
	  "Off-CPU waits shorter than this many nanoseconds are not counted." },
	{ "offcpu.include-self", 0, F_BOOL, FIELD(offcpu_include_self), "false", NULL, 0, 0, false,
	  "Also profile the waits of anorak's own threads." },
	{ "offcpu.max-waits", 0, F_UINT, FIELD(offcpu_max_waits), "4096", NULL, 16, 1U << 20, false,
	  "Followed waits in flight at once (BPF map size); more are not followed (counted)." },
	{ "storage.retention", 0, F_DURATION, FIELD(retention_seconds), "1h", NULL, 1, 7 * DAY, false,
	  "Longest profile window a request can ask for (?seconds=), and how long past windows are kept "
	  "for ?start=&end= and the query API, as a duration (30s, 5m, 1h30m)." },
	{ "storage.max-bytes", 0, F_BYTES, FIELD(storage_max_bytes), "64MiB", NULL, 1 * MiB, UINT64_MAX,
	  false, "Memory for past windows (compressed samples and their dictionaries); the oldest go "
	  "first when it is full." },
	{ "bpf.stack-map-entries", 0, F_UINT, FIELD(bpf_stack_map_entries), "16384", NULL, 64,
	  1U << 22, false, "Distinct stacks kept per collection generation (BPF stack map size)." },
	{ "bpf.count-map-entries", 0, F_UINT, FIELD(bpf_count_map_entries), "10240", NULL, 64, 1U << 22,
	  false, "Distinct (target, stack) counters kept per collection generation (BPF map size)." },
	{ "symbols.cache-size", 0, F_BYTES, FIELD(symbol_cache_bytes), "16MiB", NULL, 1 * MiB,
	  UINT64_MAX, false, "Memory for symbol tables, as a byte size (64MiB, 1GiB)." },
	{ "symbols.cache-idle-time", 0, F_DURATION, FIELD(symbol_idle_seconds), "30s", NULL, 1, DAY, false,
	  "How long a symbol table no stack used stays in memory, as a duration (30s, 5m): what exited "
	  "and sleeping processes leave behind (a table still mapped is read again when needed)." },
	{ "symbols.max-elf-size", 0, F_BYTES, FIELD(elf_max_bytes), "1GiB", NULL, 1 * MiB, UINT64_MAX,
	  false, "ELF files larger than this are not read for symbols." },
	{ "symbols.debuginfod-urls", 0, F_STRING_OR_EMPTY, FIELD(debuginfod_urls), NULL, "URLS", 0, 0, false,
	  "debuginfod servers to fetch debug files from, space-separated, for binaries with no symbol table "
	  "and no debug file on the node; only build ids are sent. Default $DEBUGINFOD_URLS; \"\": never." },
	{ "symbols.debuginfod-cache-dir", 0, F_STRING, FIELD(debuginfod_cache_dir), "/var/cache/anorak/debuginfod",
	  NULL, 0, 0, false, "Directory keeping the debug files fetched from debuginfod across restarts." },
	{ "symbols.debuginfod-cache-size", 0, F_BYTES, FIELD(debuginfod_cache_bytes), "1GiB", NULL, 1 * MiB,
	  UINT64_MAX, false, "Bound on --symbols.debuginfod-cache-dir; least recently used files go first." },
	{ "symbols.debuginfod-timeout", 0, F_DURATION, FIELD(debuginfod_timeout_seconds), "30s", NULL, 1, 3600,
	  false, "Longest time for one debug file fetch, from request to last byte." },
	{ "symbols.debuginfod-max-fetches", 0, F_UINT, FIELD(debuginfod_max_fetches), "2", NULL, 1, 16, false,
	  "Debug file fetches in flight at once; more wait in a queue." },
	{ "processes.max", 0, F_UINT, FIELD(max_processes), "16384", NULL, 1, 1U << 22, false,
	  "Processes tracked at once." },
	{ "unwind.table-memory", 0, F_BYTES, FIELD(unwind_table_bytes), "32MiB", NULL, 0, 4096 * MiB, false,
	  "BPF map memory for unwind tables (.eh_frame), which give complete stacks of code built without "
	  "frame pointers; least recently used binaries are evicted when full. 0: frame pointers only." },
	{ "log.level", 0, F_LOG_LEVEL, FIELD(log_level), "info", NULL, 0, 0, false,
	  "Only log messages with the given severity or above: debug, info, warn, error." },
	{ "seconds", 0, F_UINT, FIELD(record_seconds), "10", NULL, 1, DAY, true,
	  "record: length of the profile in seconds." },
	{ "output", 'o', F_STRING, FIELD(record_output), NULL, "FILE", 0, 0, true,
	  "record: file to write the gzip'd pprof profile to (required)." },
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static void store_uint(void *field, size_t size, uint64_t v)
{
	if (size == sizeof(uint32_t)) {
		uint32_t v32 = (uint32_t)v;
		memcpy(field, &v32, sizeof(v32));
	} else {
		memcpy(field, &v, sizeof(v));
	}
}

/* At least one decimal digit, no sign; *end is left at the first non-digit. */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = *s - '0';
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	*end = s;
	return 0;
}

/* Prometheus' model.ParseDuration without "ms": units in this order, each at most once. */
static const struct {
	char unit;
	uint64_t seconds;
} duration_units[] = {
	{ 'y', 365 * DAY }, { 'w', 7 * DAY }, { 'd', DAY }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
};

int flags_parse_duration(const char *s, uint64_t *seconds)
{
	size_t nunits = sizeof(duration_units) / sizeof(duration_units[0]), next = 0;
	uint64_t total = 0;

	if (strcmp(s, "0") == 0) {
		*seconds = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		const char *end;
		uint64_t n;
		size_t u;

		if (parse_digits(s, &n, &end))
			return -EINVAL;
		for (u = next; u < nunits && duration_units[u].unit != *end; u++)
			;
		if (u == nunits || n > (UINT64_MAX - total) / duration_units[u].seconds)
			return -EINVAL;
		total += n * duration_units[u].seconds;
		next = u + 1;
		s = end + 1;
	}
	*seconds = total;
	return 0;
}

/* kingpin's Bytes(): decimal and binary suffixes both mean powers of 1024. */
static const struct {
	const char *suffix;
	unsigned shift;
} byte_units[] = {
	{ "", 0 },    { "B", 0 },
	{ "KB", 10 }, { "KiB", 10 }, { "MB", 20 }, { "MiB", 20 }, { "GB", 30 }, { "GiB", 30 },
	{ "TB", 40 }, { "TiB", 40 }, { "PB", 50 }, { "PiB", 50 }, { "EB", 60 }, { "EiB", 60 },
};

int flags_parse_bytes(const char *s, uint64_t *bytes)
{
	const char *end;
	uint64_t n;

	if (parse_digits(s, &n, &end))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(byte_units) / sizeof(byte_units[0]); i++) {
		if (strcmp(end, byte_units[i].suffix) != 0)
			continue;
		if (n > UINT64_MAX >> byte_units[i].shift)
			return -EINVAL;
		*bytes = n << byte_units[i].shift;
		return 0;
	}
	return -EINVAL;
}

/* strconv.ParseBool, which kingpin uses for --flag=value. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "t", "T", "true", "TRUE", "True" };
	static const char *const no[] = { "0", "f", "F", "false", "FALSE", "False" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int check_range(const struct flag *f, const char *value, uint64_t v, FILE *err)
{
	if (v >= f->min && v <= f->max)
		return 0;
	if (f->type == F_UINT)
		fprintf(err, "anorak: error: --%s: %s is out of range (%llu to %llu)\n", f->name, value,
			(unsigned long long)f->min, (unsigned long long)f->max);
	else if (f->max == UINT64_MAX)
		fprintf(err, "anorak: error: --%s: %s is below the minimum of %llu%s\n", f->name, value,
			(unsigned long long)f->min, f->type == F_BYTES ? " bytes" : "s");
	else if (f->type == F_BYTES)
		fprintf(err, "anorak: error: --%s: %s is out of range (%llu to %llu bytes)\n", f->name, value,
			(unsigned long long)f->min, (unsigned long long)f->max);
	else
		fprintf(err, "anorak: error: --%s: %s is out of range (%llus to %llus)\n", f->name, value,
			(unsigned long long)f->min, (unsigned long long)f->max);
	return -EINVAL;
}

static int set_probability(const struct flag *f, const char *value, double *field, FILE *err)
{
	char *end;
	double p = strtod(value, &end);

	if (!*value || *end || !(p >= 0 && p <= 1)) {
		fprintf(err, "anorak: error: --%s: \"%s\" is not a number from 0 to 1\n", f->name, value);
		return -EINVAL;
	}
	*field = p;
	return 0;
}

/* Parses value into f's field; on error one line to err. */
static int set_value(const struct flag *f, const char *value, struct anorak_config *cfg, FILE *err)
{
	char *field = (char *)cfg + f->offset;
	const char *end;
	uint64_t v;
	bool b;
	int ret;

	switch (f->type) {
	case F_STRING:
	case F_STRING_OR_EMPTY:
		if (!*value && f->type == F_STRING) {
			fprintf(err, "anorak: error: --%s: empty value\n", f->name);
			return -EINVAL;
		}
		memcpy(field, &value, sizeof(value));
		return 0;
	case F_BOOL:
		if (parse_bool(value, &b)) {
			fprintf(err, "anorak: error: --%s: \"%s\" is not true or false\n", f->name, value);
			return -EINVAL;
		}
		memcpy(field, &b, sizeof(b));
		return 0;
	case F_LOG_LEVEL:
		if (log_parse_level(value, (enum log_level *)field)) {
			fprintf(err, "anorak: error: --%s: \"%s\" is not one of debug, info, warn, error\n",
				f->name, value);
			return -EINVAL;
		}
		return 0;
	case F_UINT:
		ret = parse_digits(value, &v, &end);
		if (ret == -EINVAL || (!ret && *end)) {
			fprintf(err, "anorak: error: --%s: \"%s\" is not a decimal number\n", f->name, value);
			return -EINVAL;
		}
		/* Too many digits for 64 bits is reported like any other value too large. */
		if (check_range(f, value, ret ? UINT64_MAX : v, err))
			return -EINVAL;
		store_uint(field, f->size, v);
		return 0;
	case F_PROBABILITY:
		return set_probability(f, value, (double *)field, err);
	case F_DURATION:
	case F_BYTES: {
		bool duration = f->type == F_DURATION;

		if (duration ? flags_parse_duration(value, &v) : flags_parse_bytes(value, &v)) {
			fprintf(err, "anorak: error: --%s: \"%s\" is not %s\n", f->name, value,
				duration ? "a duration (like 30s, 5m, 1h30m, 2d)"
					 : "a byte size (like 1024, 64KiB, 16MiB, 1GiB)");
			return -EINVAL;
		}
		if (check_range(f, value, v, err))
			return -EINVAL;
		store_uint(field, f->size, v);
		return 0;
	}
	}
	return -EINVAL;
}

static const struct flag *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
			return &flags[i];
	return NULL;
}

static const struct flag *find_short(char c)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (flags[i].short_name && flags[i].short_name == c)
			return &flags[i];
	return NULL;
}

static void print_help(FILE *out)
{
	fprintf(out,
		"usage: anorak [<flags>]\n"
		"       anorak record --seconds=N -o FILE [<flags>]\n"
		"\n"
		"eBPF continuous profiler: samples every CPU and serves CPU profiles (pprof) on\n"
		"/debug/pprof/profile and its own metrics on /metrics.\n"
		"\n"
		"Commands:\n"
		"  record    Write one profile of the next --seconds to the file -o, then exit.\n"
		"\n"
		"Flags:\n"
		"  -h, --help\n"
		"      Show this help and exit.\n"
		"  --version\n"
		"      Show the version and exit.\n");
	for (size_t i = 0; i < NFLAGS; i++) {
		const struct flag *f = &flags[i];

		fprintf(out, "  ");
		if (f->short_name)
			fprintf(out, "-%c, ", f->short_name);
		if (f->type == F_BOOL)
			fprintf(out, "--[no-]%s (default: %s)\n", f->name, f->def);
		else if (!f->def)
			fprintf(out, "--%s=%s\n", f->name, f->metavar);
		else if (f->type == F_STRING)
			fprintf(out, "--%s=\"%s\"\n", f->name, f->def);
		else
			fprintf(out, "--%s=%s\n", f->name, f->def);
		fprintf(out, "      %s\n", f->help);
	}
}

static void set_defaults(struct anorak_config *cfg)
{
	*cfg = (struct anorak_config){ 0 };
	for (size_t i = 0; i < NFLAGS; i++)
		if (flags[i].def)
			set_value(&flags[i], flags[i].def, cfg, stderr); /* the table's own text: cannot fail */
}

/* argv[*i] is "--name[=value]" or "--no-name"; may consume argv[*i + 1]. */
static int parse_long(int argc, char **argv, int *i, struct anorak_config *cfg, bool *seen,
		      FILE *err)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct flag *f = find_long(name, len);

	if (!f && len > 3 && strncmp(name, "no-", 3) == 0) {
		f = find_long(name + 3, len - 3);
		if (f && f->type == F_BOOL) {
			if (eq) {
				fprintf(err, "anorak: error: --%.*s: takes no value\n", (int)len, name);
				return -EINVAL;
			}
			seen[f - flags] = true;
			return set_value(f, "false", cfg, err);
		}
		f = NULL;
	}
	if (!f) {
		fprintf(err, "anorak: error: unknown flag --%.*s, try --help\n", (int)len, name);
		return -EINVAL;
	}
	seen[f - flags] = true;
	if (eq)
		return set_value(f, eq + 1, cfg, err);
	if (f->type == F_BOOL)
		return set_value(f, "true", cfg, err);
	if (*i + 1 >= argc) {
		fprintf(err, "anorak: error: --%s: missing value\n", f->name);
		return -EINVAL;
	}
	return set_value(f, argv[++*i], cfg, err);
}

/* argv[*i] is "-x", "-xVALUE" or "-x VALUE". */
static int parse_short(int argc, char **argv, int *i, struct anorak_config *cfg, bool *seen,
		       FILE *err)
{
	const char *arg = argv[*i];
	const struct flag *f = find_short(arg[1]);

	if (!f) {
		fprintf(err, "anorak: error: unknown flag -%c, try --help\n", arg[1]);
		return -EINVAL;
	}
	seen[f - flags] = true;
	if (arg[2])
		return set_value(f, arg + 2, cfg, err);
	if (*i + 1 >= argc) {
		fprintf(err, "anorak: error: -%c: missing value\n", f->short_name);
		return -EINVAL;
	}
	return set_value(f, argv[++*i], cfg, err);
}

static int parse_command(const char *arg, struct anorak_config *cfg, FILE *err)
{
	if (cfg->record) {
		fprintf(err, "anorak: error: unexpected argument \"%s\"\n", arg);
		return -EINVAL;
	}
	if (strcmp(arg, "record") != 0) {
		fprintf(err, "anorak: error: unknown command \"%s\", try --help\n", arg);
		return -EINVAL;
	}
	cfg->record = true;
	return 0;
}

/* Checks that need every flag: record-only flags, required ones, and frequency limits. */
static int validate(const struct anorak_config *cfg, const bool *seen, FILE *err)
{
	for (size_t i = 0; i < NFLAGS; i++) {
		if (seen[i] && flags[i].record_only && !cfg->record) {
			fprintf(err, "anorak: error: --%s is only valid with the record command\n",
				flags[i].name);
			return -EINVAL;
		}
	}
	if (cfg->record && !cfg->record_output) {
		fprintf(err, "anorak: error: record: -o/--output FILE is required\n");
		return -EINVAL;
	}
	if (cfg->web_max_requests >= cfg->web_max_connections) {
		fprintf(err, "anorak: error: --web.max-requests: %u is not below --web.max-connections (%u): "
			"/metrics and the health checks need a worker\n", cfg->web_max_requests,
			cfg->web_max_connections);
		return -EINVAL;
	}
	if (cfg->sampling_frequency > cfg->sampling_max_frequency) {
		fprintf(err, "anorak: error: --sampling.frequency: %u is above --sampling.max-frequency (%u)\n",
			cfg->sampling_frequency, cfg->sampling_max_frequency);
		return -EINVAL;
	}
	return 0;
}

int flags_parse(int argc, char **argv, struct anorak_config *cfg, FILE *out, FILE *err)
{
	bool seen[NFLAGS] = { false }, positional_only = false;
	int ret;

	set_defaults(cfg);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (positional_only || arg[0] != '-' || arg[1] == '\0') {
			ret = parse_command(arg, cfg, err);
		} else if (strcmp(arg, "--") == 0) {
			positional_only = true;
			ret = 0;
		} else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			print_help(out);
			return FLAGS_EXIT_OK;
		} else if (strcmp(arg, "--version") == 0) {
			fprintf(out, "anorak, version %s\n", ANORAK_VERSION);
			return FLAGS_EXIT_OK;
		} else if (arg[1] == '-') {
			ret = parse_long(argc, argv, &i, cfg, seen, err);
		} else {
			ret = parse_short(argc, argv, &i, cfg, seen, err);
		}
		if (ret)
			return ret;
	}
	return validate(cfg, seen, err);
}
