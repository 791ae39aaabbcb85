#include "exporter/symbols/debuginfod.h"

#include <dirent.h>
#include <elfutils/debuginfod.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dynlib.h"
#include "common/log.h"
#include "common/metrics.h"
#include "exporter/proc/elf_file.h"
#include "exporter/symbols/debug_cache.h"

#define BUCKETS 512
#define MAX_TRACKED 4096          /* build ids queued, in flight or recently failed */
#define MAX_QUEUED 256
#define MAX_WORKERS 16
#define NOT_FOUND_RETRY_S 600     /* libdebuginfod's own default for its negative cache */
#define ERROR_RETRY_S 60
#define RECHECK_S 60              /* how often a waiting caller looks again without any fetch ending */
#define CLIENT_DIR ".client"      /* libdebuginfod's cache: each answer only passes through it */

/* libdebuginfod is loaded when servers are configured: linked, it brings a second libcurl built on
 * GnuTLS (with nettle, gmp, p11-kit...), 2 MiB of every daemon's RSS that only some use. */
#define LIBDEBUGINFOD "libdebuginfod.so.1"

static struct {
	__typeof__(debuginfod_begin) *begin;
	__typeof__(debuginfod_end) *end;
	__typeof__(debuginfod_set_progressfn) *set_progressfn;
	__typeof__(debuginfod_set_user_data) *set_user_data;
	__typeof__(debuginfod_get_user_data) *get_user_data;
	__typeof__(debuginfod_find_debuginfo) *find_debuginfo;
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_err;

enum result { FETCH_OK, FETCH_NOT_FOUND, FETCH_ERROR, FETCH_TIMEOUT, FETCH_NR };
static const char *const result_names[FETCH_NR] = { "ok", "not_found", "error", "timeout" };

enum state { QUEUED, IN_FLIGHT, FAILED };

/* One build id the servers are asked for, or were asked for recently without success. */
struct request {
	struct request *hnext, *qnext;
	enum state state;
	int64_t retry_at_s;      /* FAILED: asked again after this (monotonic seconds) */
	char build_id[ELF_BUILD_ID_HEX];
};

struct debuginfod {
	struct debuginfod_opts opts;
	char *cache_dir, *client_dir;
	int client_dirfd;
	struct debug_cache *cache;
	pthread_mutex_t lock;
	pthread_cond_t work;
	atomic_bool stopping;
	atomic_uint_fast64_t completions;
	struct request *buckets[BUCKETS];
	struct request *queue_head, *queue_tail;
	size_t nqueued, ntracked, in_flight;
	uint64_t fetches[FETCH_NR], bytes_fetched, dropped;
	bool warned[FETCH_NR];
	pthread_t workers[MAX_WORKERS];
	unsigned nworkers;
};

/* What the progress callback of one fetch needs to cancel it. */
struct fetch {
	struct debuginfod *d;
	int64_t deadline_ns;
	bool timed_out, too_large;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- requests ------------------------------------------------------------------------------------- */

static size_t bucket(const char *build_id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = build_id; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	return (size_t)(h % BUCKETS);
}

static struct request *table_find(struct debuginfod *d, const char *build_id)
{
	for (struct request *r = d->buckets[bucket(build_id)]; r; r = r->hnext) {
		if (strcmp(r->build_id, build_id) == 0)
			return r;
	}
	return NULL;
}

static void table_remove(struct debuginfod *d, struct request *r)
{
	struct request **p = &d->buckets[bucket(r->build_id)];

	while (*p != r)
		p = &(*p)->hnext;
	*p = r->hnext;
	d->ntracked--;
	free(r);
}

/* Failures whose retry time has come are forgotten to make room. */
static void table_purge(struct debuginfod *d, int64_t now_s)
{
	for (size_t i = 0; i < BUCKETS; i++) {
		struct request *r = d->buckets[i], *next;

		for (; r; r = next) {
			next = r->hnext;
			if (r->state == FAILED && now_s >= r->retry_at_s)
				table_remove(d, r);
		}
	}
}

static struct request *table_add(struct debuginfod *d, const char *build_id, int64_t now_s)
{
	struct request *r;

	if (d->ntracked >= MAX_TRACKED)
		table_purge(d, now_s);
	if (d->ntracked >= MAX_TRACKED || !(r = calloc(1, sizeof(*r))))
		return NULL;
	snprintf(r->build_id, sizeof(r->build_id), "%s", build_id);
	r->hnext = d->buckets[bucket(build_id)];
	d->buckets[bucket(build_id)] = r;
	d->ntracked++;
	return r;
}

/* Queues a fetch of build_id unless one is queued or in flight, or the last one failed recently. */
static void request(struct debuginfod *d, const char *build_id)
{
	int64_t now_s = mono_ns() / 1000000000;
	struct request *r;

	pthread_mutex_lock(&d->lock);
	r = table_find(d, build_id);
	if (r && (r->state != FAILED || now_s < r->retry_at_s))
		goto out;
	if (d->nqueued >= MAX_QUEUED || (!r && !(r = table_add(d, build_id, now_s)))) {
		d->dropped++; /* asked again at the caller's next look */
		goto out;
	}
	r->state = QUEUED;
	r->qnext = NULL;
	if (d->queue_tail)
		d->queue_tail->qnext = r;
	else
		d->queue_head = r;
	d->queue_tail = r;
	d->nqueued++;
	pthread_cond_signal(&d->work);
out:
	pthread_mutex_unlock(&d->lock);
}

int debuginfod_poll(struct debuginfod *d, const char *build_id, uint64_t *stamp)
{
	uint64_t now = 1 + atomic_load(&d->completions) + (uint64_t)(mono_ns() / (RECHECK_S * 1000000000ll));
	int fd;

	if (*stamp == now)
		return -EAGAIN;
	*stamp = now;
	if (!debug_cache_valid_build_id(build_id))
		return -EINVAL;
	fd = debug_cache_get(d->cache, build_id);
	if (fd >= 0)
		return fd;
	request(d, build_id);
	return -EAGAIN;
}

/* --- fetching ------------------------------------------------------------------------------------- */

static int on_progress(debuginfod_client *client, long done, long total)
{
	struct fetch *f = lib.get_user_data(client);
	uint64_t max = f->d->opts.elf_max_bytes;

	if (atomic_load(&f->d->stopping))
		return 1;
	if (mono_ns() >= f->deadline_ns) {
		f->timed_out = true;
		return 1;
	}
	if ((done > 0 && (uint64_t)done > max) || (total > 0 && (uint64_t)total > max)) {
		f->too_large = true;
		return 1;
	}
	return 0;
}

/* The answer must be an ELF file with symbols whose build id is the one asked for. */
static int verify(const struct debuginfod *d, int fd, const char *build_id, uint64_t *bytes)
{
	char got[ELF_BUILD_ID_HEX];
	struct elf_file *ef;
	struct stat st;
	int err;

	if (fstat(fd, &st))
		return -errno;
	*bytes = (uint64_t)st.st_size;
	err = elf_file_open(fd, d->opts.elf_max_bytes, &ef);
	if (err)
		return err;
	if (elf_file_build_id(ef, got, sizeof(got)) < 0 || strcmp(got, build_id) != 0)
		err = -ESTALE;
	else if (!elf_file_has_symtab(ef))
		err = -ENOENT;
	elf_file_close(ef);
	return err;
}

/* libdebuginfod's cache entry for build_id (its answer, moved away by now, or its 404 marker). */
static void forget_client_entry(struct debuginfod *d, const char *build_id)
{
	char name[ELF_BUILD_ID_HEX + 16];

	snprintf(name, sizeof(name), "%s/debuginfo", build_id);
	unlinkat(d->client_dirfd, name, 0);
	unlinkat(d->client_dirfd, build_id, AT_REMOVEDIR);
}

static void warn_once(struct debuginfod *d, enum result res, const char *build_id, const char *why)
{
	bool first;

	pthread_mutex_lock(&d->lock);
	first = !d->warned[res];
	d->warned[res] = true;
	pthread_mutex_unlock(&d->lock);
	if (first)
		log_warn("debuginfod fetch failed; further failures are only counted",
			 "result=%s build_id=%s err=\"%s\" urls=\"%s\"", result_names[res], build_id, why,
			 getenv(DEBUGINFOD_URLS_ENV_VAR));
}

static enum result failed(struct debuginfod *d, const struct fetch *f, const char *build_id, int err)
{
	/* Ours (the deadline) or libcurl's (no progress for DEBUGINFOD_TIMEOUT): both are timeouts. */
	bool timed_out = f->timed_out || err == -ETIME || err == -ETIMEDOUT;
	enum result res;

	if (f->too_large)
		err = -EFBIG; /* cancelled by on_progress, whatever libdebuginfod makes of that */
	res = timed_out ? FETCH_TIMEOUT : err == -ENOENT ? FETCH_NOT_FOUND : FETCH_ERROR;
	if (atomic_load(&d->stopping))
		return res; /* cut short by debuginfod_free: nothing to say */
	if (res == FETCH_NOT_FOUND)
		log_debug("debuginfod servers have no debug file", "build_id=%s", build_id);
	else
		warn_once(d, res, build_id, strerror(-err));
	return res;
}

static enum result fetch_one(struct debuginfod *d, debuginfod_client *client, const char *build_id)
{
	struct fetch f = { .d = d, .deadline_ns = mono_ns() + (int64_t)d->opts.timeout_seconds * 1000000000 };
	uint64_t bytes = 0;
	char *path = NULL;
	int fd, err;

	lib.set_user_data(client, &f);
	fd = lib.find_debuginfo(client, (const unsigned char *)build_id, 0, &path);
	if (fd < 0) {
		free(path);
		forget_client_entry(d, build_id);
		return failed(d, &f, build_id, fd);
	}
	err = verify(d, fd, build_id, &bytes);
	close(fd);
	if (!err)
		err = debug_cache_put(d->cache, build_id, path, bytes);
	pthread_mutex_lock(&d->lock);
	d->bytes_fetched += bytes;
	pthread_mutex_unlock(&d->lock);
	free(path);
	forget_client_entry(d, build_id);
	if (err) {
		log_warn("debuginfod answered an unusable debug file", "build_id=%s bytes=%llu err=\"%s\"",
			 build_id, (unsigned long long)bytes,
			 err == -ESTALE ? "another build id" : err == -ENOENT ? "no .symtab" : strerror(-err));
		return FETCH_ERROR;
	}
	log_debug("debug file fetched", "build_id=%s bytes=%llu", build_id, (unsigned long long)bytes);
	return FETCH_OK;
}

static void finish(struct debuginfod *d, struct request *r, enum result res)
{
	d->fetches[res]++;
	d->in_flight--;
	if (res == FETCH_OK) {
		table_remove(d, r); /* the cache answers from now on */
	} else {
		r->state = FAILED;
		r->retry_at_s = mono_ns() / 1000000000 + (res == FETCH_NOT_FOUND ? NOT_FOUND_RETRY_S : ERROR_RETRY_S);
	}
	atomic_fetch_add(&d->completions, 1);
}

static void *worker_main(void *arg)
{
	struct debuginfod *d = arg;
	debuginfod_client *client = lib.begin();
	char build_id[ELF_BUILD_ID_HEX];

	if (!client) {
		log_error("cannot start a debuginfod client: this worker fetches nothing", "err=\"%s\"",
			  strerror(errno));
		return NULL;
	}
	lib.set_progressfn(client, on_progress);
	pthread_mutex_lock(&d->lock);
	while (!atomic_load(&d->stopping)) {
		struct request *r = d->queue_head;

		if (!r) {
			pthread_cond_wait(&d->work, &d->lock);
			continue;
		}
		d->queue_head = r->qnext;
		if (!d->queue_head)
			d->queue_tail = NULL;
		d->nqueued--;
		d->in_flight++;
		r->state = IN_FLIGHT;
		snprintf(build_id, sizeof(build_id), "%s", r->build_id);
		pthread_mutex_unlock(&d->lock);
		enum result res = fetch_one(d, client, build_id);
		pthread_mutex_lock(&d->lock);
		finish(d, r, res);
	}
	pthread_mutex_unlock(&d->lock);
	lib.end(client);
	return NULL;
}

/* --- setup ---------------------------------------------------------------------------------------- */

/* Empties libdebuginfod's cache: anything there is a leftover of a fetch interrupted by an exit. */
static void wipe_client_dir(int dirfd)
{
	int fd = dup(dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char name[512];

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0 || errno != EISDIR)
			continue;
		snprintf(name, sizeof(name), "%s/debuginfo", de->d_name);
		unlinkat(dirfd, name, 0);
		unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(dir);
}

/* libdebuginfod is configured through the environment only. */
static int set_client_env(const struct debuginfod *d, const char *urls)
{
	char timeout[32], maxsize[32];

	snprintf(timeout, sizeof(timeout), "%u", d->opts.timeout_seconds);
	snprintf(maxsize, sizeof(maxsize), "%llu", (unsigned long long)d->opts.elf_max_bytes);
	if (setenv(DEBUGINFOD_URLS_ENV_VAR, urls, 1) || setenv(DEBUGINFOD_CACHE_PATH_ENV_VAR, d->client_dir, 1) ||
	    setenv(DEBUGINFOD_TIMEOUT_ENV_VAR, timeout, 1) || setenv(DEBUGINFOD_MAXSIZE_ENV_VAR, maxsize, 1) ||
	    unsetenv(DEBUGINFOD_PROGRESS_ENV_VAR) || unsetenv(DEBUGINFOD_VERBOSE_ENV_VAR))
		return -errno;
	return 0;
}

static int open_dirs(struct debuginfod *d)
{
	int err;

	err = debug_cache_open(d->cache_dir, d->opts.cache_max_bytes, &d->cache);
	if (err) {
		log_error("cannot open the debuginfod cache directory (--symbols.debuginfod-cache-dir)",
			  "dir=\"%s\" err=\"%s\"", d->cache_dir, strerror(-err));
		return err;
	}
	if (mkdir(d->client_dir, 0700) && errno != EEXIST)
		err = -errno;
	else if ((d->client_dirfd = open(d->client_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		err = -errno;
	if (err) {
		log_error("cannot create the debuginfod client cache", "dir=\"%s\" err=\"%s\"", d->client_dir,
			  strerror(-err));
		return err;
	}
	wipe_client_dir(d->client_dirfd);
	return 0;
}

static int start_workers(struct debuginfod *d)
{
	unsigned n = d->opts.max_fetches;

	if (n < 1)
		n = 1;
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	for (; d->nworkers < n; d->nworkers++) {
		int err = pthread_create(&d->workers[d->nworkers], NULL, worker_main, d);

		if (err) {
			log_error("cannot start the debuginfod workers", "err=\"%s\"", strerror(err));
			return -err;
		}
	}
	return 0;
}

static void lib_load(void)
{
	const struct dynlib_fn fns[] = {
		{ "debuginfod_begin", (void **)&lib.begin },
		{ "debuginfod_end", (void **)&lib.end },
		{ "debuginfod_set_progressfn", (void **)&lib.set_progressfn },
		{ "debuginfod_set_user_data", (void **)&lib.set_user_data },
		{ "debuginfod_get_user_data", (void **)&lib.get_user_data },
		{ "debuginfod_find_debuginfo", (void **)&lib.find_debuginfo },
	};

	lib_err = dynlib_load(LIBDEBUGINFOD, fns, sizeof(fns) / sizeof(fns[0]));
}

int debuginfod_new(const struct debuginfod_opts *opts, struct debuginfod **out)
{
	const char *urls = opts->urls ? opts->urls : getenv(DEBUGINFOD_URLS_ENV_VAR);
	struct debuginfod *d;
	int err;

	*out = NULL;
	if (!urls || urls[strspn(urls, " \t")] == '\0')
		return 0;
	pthread_once(&lib_once, lib_load);
	if (lib_err)
		return lib_err;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->opts = *opts;
	d->client_dirfd = -1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->work, NULL);
	d->cache_dir = strdup(opts->cache_dir);
	if (!d->cache_dir || asprintf(&d->client_dir, "%s/" CLIENT_DIR, opts->cache_dir) < 0) {
		d->client_dir = NULL;
		err = -ENOMEM;
	} else {
		err = open_dirs(d);
	}
	if (!err && (err = set_client_env(d, urls)))
		log_error("cannot set libdebuginfod's environment", "err=\"%s\"", strerror(-err));
	if (!err)
		err = start_workers(d);
	if (err) {
		debuginfod_free(d);
		return err;
	}
	log_info("debug files from debuginfod", "urls=\"%s\" cache_dir=\"%s\" cache_max_bytes=%llu", urls,
		 d->cache_dir, (unsigned long long)d->opts.cache_max_bytes);
	*out = d;
	return 0;
}

void debuginfod_free(struct debuginfod *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	atomic_store(&d->stopping, true);
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; i < d->nworkers; i++)
		pthread_join(d->workers[i], NULL);
	for (size_t i = 0; i < BUCKETS; i++) {
		while (d->buckets[i])
			table_remove(d, d->buckets[i]);
	}
	debug_cache_free(d->cache);
	if (d->client_dirfd >= 0)
		close(d->client_dirfd);
	pthread_cond_destroy(&d->work);
	pthread_mutex_destroy(&d->lock);
	free(d->cache_dir);
	free(d->client_dir);
	free(d);
}

/* --- metrics -------------------------------------------------------------------------------------- */

void debuginfod_write_metrics(struct metrics_buf *b, void *debuginfod)
{
	struct debuginfod *d = debuginfod;
	uint64_t fetches[FETCH_NR], bytes, dropped;
	struct debug_cache_stats cs;
	size_t in_flight;
	struct metrics_series s;

	pthread_mutex_lock(&d->lock);
	memcpy(fetches, d->fetches, sizeof(fetches));
	bytes = d->bytes_fetched;
	dropped = d->dropped;
	in_flight = d->in_flight;
	pthread_mutex_unlock(&d->lock);
	debug_cache_stats(d->cache, &cs);

	s = metrics_series_begin(b, "anorak_debuginfod_fetches_total", "counter",
				 "Debug files asked of the debuginfod servers, by result (error: unreachable, or an "
				 "answer that is not the debug file asked for).");
	for (size_t i = 0; i < FETCH_NR; i++)
		metrics_series_valuef(s, (double)fetches[i], "result=\"%s\"", result_names[i]);
	metrics_counter(b, "anorak_debuginfod_fetched_bytes_total", "Bytes of debug files received.", (double)bytes);
	metrics_gauge(b, "anorak_debuginfod_fetches_in_flight", "Fetches running now.", (double)in_flight);
	metrics_counter(b, "anorak_debuginfod_requests_dropped_total",
			"Fetches not queued because 256 were waiting or 4096 build ids were tracked.", (double)dropped);
	metrics_gauge(b, "anorak_debuginfod_cache_bytes", "Bytes of debug files in the cache directory.",
		      (double)cs.bytes);
	metrics_gauge(b, "anorak_debuginfod_cache_max_bytes", "Bound on the cache directory.", (double)cs.max_bytes);
	metrics_gauge(b, "anorak_debuginfod_cache_files", "Debug files in the cache directory.", (double)cs.files);
	s = metrics_series_begin(b, "anorak_debuginfod_cache_lookups_total", "counter",
				 "Lookups of debug files in the cache directory, by whether the file was there.");
	metrics_series_value(s, "result=\"hit\"", (double)cs.hits);
	metrics_series_value(s, "result=\"miss\"", (double)cs.misses);
	metrics_counter(b, "anorak_debuginfod_cache_evictions_total", "Debug files removed to keep the cache bound.",
			(double)cs.evictions);
	metrics_counter(b, "anorak_debuginfod_cache_refused_total", "Debug files larger than the whole cache bound.",
			(double)cs.refused_too_large);
}
