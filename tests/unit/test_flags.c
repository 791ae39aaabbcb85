#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/flags.h"

/* Output of the last parse() call, for checking messages. */
static char out_text[8192], err_text[1024];

/* Parses a NULL-terminated list of arguments (after "anorak"). */
static int parse_args(struct anorak_config *cfg, const char *const *args)
{
	char *argv[32] = { "anorak" };
	FILE *out = fmemopen(out_text, sizeof(out_text), "w");
	FILE *err = fmemopen(err_text, sizeof(err_text), "w");
	int argc = 1, ret;

	assert_non_null(out);
	assert_non_null(err);
	memset(out_text, 0, sizeof(out_text));
	memset(err_text, 0, sizeof(err_text));
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	ret = flags_parse(argc, argv, cfg, out, err);
	fclose(out);
	fclose(err);
	return ret;
}

#define PARSE(cfg, ...) parse_args(cfg, (const char *const[]){ __VA_ARGS__, NULL })

/* A failed parse writes exactly one line, naming what it should. */
static void assert_error(const char *must_contain, const char *const *args)
{
	struct anorak_config cfg;

	assert_int_equal(parse_args(&cfg, args), -EINVAL);
	if (!strstr(err_text, must_contain))
		fail_msg("error \"%s\" does not mention \"%s\"", err_text, must_contain);
	assert_non_null(strchr(err_text, '\n'));
	assert_ptr_equal(strchr(err_text, '\n'), err_text + strlen(err_text) - 1);
	assert_string_equal(out_text, "");
}

#define ASSERT_ERROR(what, ...) assert_error(what, (const char *const[]){ __VA_ARGS__, NULL })

static void test_defaults(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(parse_args(&cfg, (const char *const[]){ NULL }), FLAGS_OK);
	assert_string_equal(cfg.listen_address, ":9760");
	assert_int_equal(cfg.sampling_frequency, 19);
	assert_int_equal(cfg.sampling_max_frequency, 1000);
	assert_false(cfg.sampling_include_idle);
	assert_int_equal(cfg.retention_seconds, 3600);
	assert_int_equal(cfg.bpf_stack_map_entries, 16384);
	assert_int_equal(cfg.bpf_count_map_entries, 10240);
	assert_int_equal(cfg.symbol_cache_bytes, 16 << 20);
	assert_int_equal(cfg.elf_max_bytes, 1 << 30);
	assert_int_equal(cfg.max_processes, 16384);
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_false(cfg.record);
	assert_int_equal(cfg.record_seconds, 10);
	assert_null(cfg.record_output);
	assert_null(cfg.kubernetes_api_server);
	assert_null(cfg.kubernetes_kubeconfig);
	assert_null(cfg.kubernetes_node_name);
	assert_int_equal(cfg.bpf_cgroup_map_entries, 4096);
	assert_int_equal(cfg.sampling_max_hf_cgroups, 64);
	assert_int_equal(cfg.web_max_connections, 128);
	assert_int_equal(cfg.web_max_requests, 64);
	assert_int_equal(cfg.web_read_timeout_seconds, 30);
	assert_int_equal(cfg.web_max_header_bytes, 16384);
	assert_string_equal(err_text, "");
}

/* debuginfod: the URLs default to $DEBUGINFOD_URLS (NULL here), "" turns it off. */
static void test_debuginfod(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "--log.level=info"), FLAGS_OK);
	assert_null(cfg.debuginfod_urls);
	assert_string_equal(cfg.debuginfod_cache_dir, "/var/cache/anorak/debuginfod");
	assert_int_equal(cfg.debuginfod_cache_bytes, 1 << 30);
	assert_int_equal(cfg.debuginfod_timeout_seconds, 30);
	assert_int_equal(cfg.debuginfod_max_fetches, 2);
	assert_int_equal(PARSE(&cfg, "--symbols.debuginfod-urls="), FLAGS_OK);
	assert_string_equal(cfg.debuginfod_urls, "");
	assert_int_equal(PARSE(&cfg, "--symbols.debuginfod-urls", "http://a:8002 https://b",
			       "--symbols.debuginfod-cache-dir=/c", "--symbols.debuginfod-cache-size=2MiB",
			       "--symbols.debuginfod-timeout=1m", "--symbols.debuginfod-max-fetches=4"),
			 FLAGS_OK);
	assert_string_equal(cfg.debuginfod_urls, "http://a:8002 https://b");
	assert_string_equal(cfg.debuginfod_cache_dir, "/c");
	assert_int_equal(cfg.debuginfod_cache_bytes, 2 << 20);
	assert_int_equal(cfg.debuginfod_timeout_seconds, 60);
	assert_int_equal(cfg.debuginfod_max_fetches, 4);
	ASSERT_ERROR("--symbols.debuginfod-cache-dir: empty value", "--symbols.debuginfod-cache-dir=");
	ASSERT_ERROR("--symbols.debuginfod-max-fetches: 17 is out of range (1 to 16)",
		     "--symbols.debuginfod-max-fetches=17");
}

/* The HTTP limits: worker threads, waiting profiles, the read/write timeout, the header size. */
static void test_web_limits(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "--web.max-connections=16", "--web.max-requests=15",
			       "--web.read-timeout=2m", "--web.max-header-bytes=64KiB"),
			 FLAGS_OK);
	assert_int_equal(cfg.web_max_connections, 16);
	assert_int_equal(cfg.web_max_requests, 15);
	assert_int_equal(cfg.web_read_timeout_seconds, 120);
	assert_int_equal(cfg.web_max_header_bytes, 65536);
	ASSERT_ERROR("--web.max-requests: 128 is not below --web.max-connections (128): /metrics and the "
		     "health checks need a worker", "--web.max-requests=128");
	ASSERT_ERROR("--web.max-requests: 0 is out of range (1 to 4095)", "--web.max-requests=0");
	ASSERT_ERROR("--web.max-connections: 1 is out of range (2 to 4096)", "--web.max-connections=1");
	ASSERT_ERROR("--web.read-timeout: 2h is out of range (1s to 3600s)", "--web.read-timeout=2h");
	ASSERT_ERROR("--web.max-header-bytes: 2MiB is out of range (1024 to 1048576 bytes)",
		     "--web.max-header-bytes=2MiB");
}

static void test_every_flag_equals(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "--web.listen-address=127.0.0.1:9999", "--sampling.frequency=99",
			       "--sampling.max-frequency=500", "--sampling.include-idle",
			       "--storage.retention=1h30m", "--bpf.stack-map-entries=1024",
			       "--bpf.count-map-entries=2048", "--symbols.cache-size=64MiB",
			       "--symbols.max-elf-size=512MB", "--processes.max=100", "--log.level=debug"),
			 FLAGS_OK);
	assert_string_equal(cfg.listen_address, "127.0.0.1:9999");
	assert_int_equal(cfg.sampling_frequency, 99);
	assert_int_equal(cfg.sampling_max_frequency, 500);
	assert_true(cfg.sampling_include_idle);
	assert_int_equal(cfg.retention_seconds, 5400);
	assert_int_equal(cfg.bpf_stack_map_entries, 1024);
	assert_int_equal(cfg.bpf_count_map_entries, 2048);
	assert_int_equal(cfg.symbol_cache_bytes, 64 << 20);
	assert_int_equal(cfg.elf_max_bytes, 512 << 20);
	assert_int_equal(cfg.max_processes, 100);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_false(cfg.record);
}

static void test_every_flag_space(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "--web.listen-address", "[::1]:9760", "--sampling.frequency", "7",
			       "--sampling.max-frequency", "7", "--storage.retention", "2d",
			       "--bpf.stack-map-entries", "64", "--bpf.count-map-entries", "4194304",
			       "--symbols.cache-size", "1048576", "--symbols.max-elf-size", "2GiB",
			       "--processes.max", "1", "--log.level", "error"),
			 FLAGS_OK);
	assert_string_equal(cfg.listen_address, "[::1]:9760");
	assert_int_equal(cfg.sampling_frequency, 7);
	assert_int_equal(cfg.sampling_max_frequency, 7);
	assert_int_equal(cfg.retention_seconds, 2 * 86400);
	assert_int_equal(cfg.bpf_stack_map_entries, 64);
	assert_int_equal(cfg.bpf_count_map_entries, 4194304);
	assert_int_equal(cfg.symbol_cache_bytes, 1048576);
	assert_int_equal(cfg.elf_max_bytes, 2ULL << 30);
	assert_int_equal(cfg.max_processes, 1);
	assert_int_equal(cfg.log_level, LOG_ERROR);
}

static void test_last_value_wins(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "--sampling.frequency=5", "--sampling.frequency", "6"), FLAGS_OK);
	assert_int_equal(cfg.sampling_frequency, 6);
}

static void test_booleans(void **state)
{
	static const struct {
		const char *arg;
		bool want;
	} cases[] = {
		{ "--sampling.include-idle", true },	     { "--no-sampling.include-idle", false },
		{ "--sampling.include-idle=true", true },    { "--sampling.include-idle=false", false },
		{ "--sampling.include-idle=1", true },	     { "--sampling.include-idle=0", false },
		{ "--sampling.include-idle=TRUE", true },    { "--sampling.include-idle=F", false },
	};
	struct anorak_config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Start from the opposite so every case changes something. */
		const char *first = cases[i].want ? "--no-sampling.include-idle" : "--sampling.include-idle";

		assert_int_equal(PARSE(&cfg, first, cases[i].arg), FLAGS_OK);
		assert_int_equal(cfg.sampling_include_idle, cases[i].want);
	}
	/* A boolean never takes the next argument as its value. */
	assert_int_equal(PARSE(&cfg, "--sampling.include-idle", "record", "-o", "f"), FLAGS_OK);
	assert_true(cfg.sampling_include_idle);
	assert_true(cfg.record);
}

static void test_errors(void **state)
{
	(void)state;
	ASSERT_ERROR("unknown flag --bogus", "--bogus");
	ASSERT_ERROR("unknown flag --bogus", "--bogus=1");
	ASSERT_ERROR("unknown flag -x", "-x");
	ASSERT_ERROR("unknown flag --no-log.level", "--no-log.level");
	ASSERT_ERROR("--sampling.frequency: missing value", "--sampling.frequency");
	ASSERT_ERROR("--log.level: missing value", "--log.level");
	ASSERT_ERROR("-o: missing value", "record", "-o");
	ASSERT_ERROR("--sampling.frequency: \"abc\" is not a decimal number", "--sampling.frequency=abc");
	ASSERT_ERROR("--sampling.frequency: \"-5\" is not a decimal number", "--sampling.frequency=-5");
	ASSERT_ERROR("--sampling.frequency: \"\" is not a decimal number", "--sampling.frequency=");
	ASSERT_ERROR("--sampling.frequency: \"12x\" is not a decimal number", "--sampling.frequency=12x");
	ASSERT_ERROR("--sampling.frequency: \" 5\" is not a decimal number", "--sampling.frequency= 5");
	ASSERT_ERROR("--sampling.frequency: 0 is out of range (1 to 100000)", "--sampling.frequency=0");
	ASSERT_ERROR("--sampling.max-frequency: 100001 is out of range",
		     "--sampling.max-frequency=100001");
	ASSERT_ERROR("--processes.max: 99999999999999999999999 is out of range",
		     "--processes.max=99999999999999999999999");
	ASSERT_ERROR("--bpf.stack-map-entries: 4294967296 is out of range",
		     "--bpf.stack-map-entries=4294967296");
	ASSERT_ERROR("--bpf.count-map-entries: 63 is out of range", "--bpf.count-map-entries", "63");
	ASSERT_ERROR("--sampling.frequency: 2000 is above --sampling.max-frequency (1000)",
		     "--sampling.frequency=2000");
	ASSERT_ERROR("--sampling.frequency: 50 is above --sampling.max-frequency (10)",
		     "--sampling.frequency=50", "--sampling.max-frequency=10");
	ASSERT_ERROR("--sampling.include-idle: \"yes\" is not true or false",
		     "--sampling.include-idle=yes");
	ASSERT_ERROR("--no-sampling.include-idle: takes no value", "--no-sampling.include-idle=true");
	ASSERT_ERROR("--log.level: \"verbose\" is not one of debug, info, warn, error",
		     "--log.level=verbose");
	ASSERT_ERROR("--storage.retention: \"1x\" is not a duration", "--storage.retention=1x");
	ASSERT_ERROR("--storage.retention: 0 is out of range (1s to 604800s)", "--storage.retention=0");
	ASSERT_ERROR("--storage.retention: 8d is out of range", "--storage.retention=8d");
	ASSERT_ERROR("--symbols.cache-size: \"lots\" is not a byte size", "--symbols.cache-size=lots");
	ASSERT_ERROR("--symbols.cache-size: 1KiB is below the minimum of 1048576 bytes",
		     "--symbols.cache-size=1KiB");
	ASSERT_ERROR("--web.listen-address: empty value", "--web.listen-address=");
	ASSERT_ERROR("unknown command \"serve\"", "serve");
}

static void test_durations(void **state)
{
	static const struct {
		const char *text;
		uint64_t seconds;
	} good[] = {
		{ "0", 0 },	       { "1s", 1 },	    { "30s", 30 },	 { "5m", 300 },
		{ "1h", 3600 },	       { "1h30m", 5400 },   { "2d", 172800 },	 { "1w", 604800 },
		{ "1y", 31536000 },    { "1d2h3m4s", 93784 }, { "90m", 5400 },	 { "0s", 0 },
		{ "1y1w1d1h1m1s", 31536000 + 604800 + 86400 + 3600 + 60 + 1 },
	};
	static const char *const bad[] = {
		"",	"s",  "1",   "-1s", "1.5h", "1m1h", "1h1h", "1ms", "1h ", " 1h", "1H",
		"1s5", "h1", "1sm", "99999999999999999999s", "600000000000y",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 12345;
		if (flags_parse_duration(good[i].text, &v) != 0)
			fail_msg("\"%s\" rejected", good[i].text);
		assert_int_equal(v, good[i].seconds);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (flags_parse_duration(bad[i], &v) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
}

static void test_bytes(void **state)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} good[] = {
		{ "0", 0 },	      { "1024", 1024 },	      { "1B", 1 },		 { "64KiB", 64 << 10 },
		{ "64KB", 64 << 10 }, { "16MiB", 16 << 20 },  { "16MB", 16 << 20 },	 { "1GiB", 1 << 30 },
		{ "1GB", 1 << 30 },   { "2TiB", 2ULL << 40 }, { "1PB", 1ULL << 50 },	 { "15EiB", 15ULL << 60 },
	};
	static const char *const bad[] = {
		"", "MiB", "-1", "1.5GiB", "1 GiB", "1gib", "1Mi", "1MiBs", "16EiB", "99999999999999999999",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 12345;
		if (flags_parse_bytes(good[i].text, &v) != 0)
			fail_msg("\"%s\" rejected", good[i].text);
		assert_int_equal(v, good[i].bytes);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (flags_parse_bytes(bad[i], &v) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
}

static void test_record(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "record", "--seconds", "5", "-o", "out.pb.gz"), FLAGS_OK);
	assert_true(cfg.record);
	assert_int_equal(cfg.record_seconds, 5);
	assert_string_equal(cfg.record_output, "out.pb.gz");

	assert_int_equal(PARSE(&cfg, "--sampling.frequency=99", "record", "-oprof", "--log.level=warn"),
			 FLAGS_OK);
	assert_true(cfg.record);
	assert_int_equal(cfg.record_seconds, 10);
	assert_string_equal(cfg.record_output, "prof");
	assert_int_equal(cfg.sampling_frequency, 99);
	assert_int_equal(cfg.log_level, LOG_WARN);

	/* Record flags may come before the command, as kingpin allows. */
	assert_int_equal(PARSE(&cfg, "--output=f", "--seconds=86400", "record"), FLAGS_OK);
	assert_string_equal(cfg.record_output, "f");
	assert_int_equal(cfg.record_seconds, 86400);

	assert_int_equal(PARSE(&cfg, "--", "record", "-o", "x"), -EINVAL); /* "-o" is positional */
	assert_int_equal(PARSE(&cfg, "-o", "x", "--", "record"), FLAGS_OK);
	assert_true(cfg.record);

	ASSERT_ERROR("record: -o/--output FILE is required", "record");
	ASSERT_ERROR("record: -o/--output FILE is required", "record", "--seconds=3");
	ASSERT_ERROR("--seconds is only valid with the record command", "--seconds=3");
	ASSERT_ERROR("--output is only valid with the record command", "-o", "file");
	ASSERT_ERROR("--seconds: 0 is out of range (1 to 86400)", "record", "-o", "f", "--seconds=0");
	ASSERT_ERROR("--seconds: \"ten\" is not a decimal number", "record", "-o", "f", "--seconds",
		     "ten");
	ASSERT_ERROR("--output: empty value", "record", "--output=");
	ASSERT_ERROR("unexpected argument \"extra\"", "record", "-o", "f", "extra");
}

static void test_help(void **state)
{
	static const char *const every_flag[] = {
		"--web.listen-address=\":9760\"",     "--sampling.frequency=19",
		"--sampling.max-frequency=1000",      "--[no-]sampling.include-idle (default: false)",
		"--storage.retention=1h",	      "--bpf.stack-map-entries=16384",
		"--bpf.count-map-entries=10240",      "--symbols.cache-size=16MiB",
		"--symbols.max-elf-size=1GiB",	      "--processes.max=16384",
		"--log.level=info",		      "--seconds=10",
		"-o, --output=FILE",		      "--help",
		"--version",			      "record",
		"--kubernetes.api-server=URL",	      "--kubernetes.kubeconfig=FILE",
		"--kubernetes.node-name=NAME",	      "--bpf.cgroup-map-entries=4096",
		"--sampling.max-high-frequency-containers=64",
		"--symbols.debuginfod-urls=URLS",     "--symbols.debuginfod-cache-dir=\"/var/cache/anorak/debuginfod\"",
		"--symbols.debuginfod-cache-size=1GiB", "--symbols.debuginfod-timeout=30s",
		"--symbols.debuginfod-max-fetches=2", "--symbols.cache-idle-time=30s",
	};
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "--help"), FLAGS_EXIT_OK);
	for (size_t i = 0; i < sizeof(every_flag) / sizeof(every_flag[0]); i++)
		if (!strstr(out_text, every_flag[i]))
			fail_msg("--help does not list %s:\n%s", every_flag[i], out_text);
	/* Every flag has a meaning on the line after it. */
	assert_non_null(strstr(out_text, "--storage.retention=1h\n      Longest profile window"));
	assert_string_equal(err_text, "");

	assert_int_equal(PARSE(&cfg, "--sampling.frequency=5", "-h", "--bogus"), FLAGS_EXIT_OK);
	assert_non_null(strstr(out_text, "usage: anorak"));
}

static void test_version(void **state)
{
	struct anorak_config cfg;

	(void)state;
	assert_int_equal(PARSE(&cfg, "--version"), FLAGS_EXIT_OK);
	assert_string_equal(out_text, "anorak, version " ANORAK_VERSION "\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),     cmocka_unit_test(test_every_flag_equals),
		cmocka_unit_test(test_every_flag_space), cmocka_unit_test(test_last_value_wins),
		cmocka_unit_test(test_booleans),     cmocka_unit_test(test_errors),
		cmocka_unit_test(test_durations),    cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_record),	     cmocka_unit_test(test_help),
		cmocka_unit_test(test_version),	     cmocka_unit_test(test_web_limits),
		cmocka_unit_test(test_debuginfod),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
