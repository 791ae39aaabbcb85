#include "exporter/symbols/debug_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define BUCKETS 1024
#define BUILD_ID_MAX_HEX 128
#define SUFFIX ".debug"

struct entry {
	struct entry *hnext;
	struct entry *prev, *next; /* LRU: cache.lru.next is the most recently used */
	uint64_t bytes;
	int64_t used_ns;           /* only while scanning the directory at open */
	char build_id[BUILD_ID_MAX_HEX + 1];
};

struct debug_cache {
	pthread_mutex_t lock;
	int dirfd;
	uint64_t max_bytes, bytes;
	size_t files;
	uint64_t hits, misses, evictions, refused_too_large;
	struct entry lru;
	struct entry *buckets[BUCKETS];
};

bool debug_cache_valid_build_id(const char *build_id)
{
	size_t n = strspn(build_id, "0123456789abcdef");

	return n >= 2 && n <= BUILD_ID_MAX_HEX && build_id[n] == '\0';
}

static size_t bucket(const char *build_id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = build_id; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	return (size_t)(h % BUCKETS);
}

static struct entry *find(struct debug_cache *c, const char *build_id)
{
	for (struct entry *e = c->buckets[bucket(build_id)]; e; e = e->hnext) {
		if (strcmp(e->build_id, build_id) == 0)
			return e;
	}
	return NULL;
}

static void file_name(const char *build_id, char *out, size_t len)
{
	snprintf(out, len, "%s" SUFFIX, build_id);
}

static void link_front(struct debug_cache *c, struct entry *e)
{
	e->next = c->lru.next;
	e->prev = &c->lru;
	c->lru.next->prev = e;
	c->lru.next = e;
}

static void unlink_lru(struct entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void insert(struct debug_cache *c, struct entry *e)
{
	size_t b = bucket(e->build_id);

	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	link_front(c, e);
	c->bytes += e->bytes;
	c->files++;
}

/* Forgets e and, when remove_file, deletes its file (a symbolizer holding it open keeps reading it). */
static void drop(struct debug_cache *c, struct entry *e, bool remove_file)
{
	struct entry **p = &c->buckets[bucket(e->build_id)];
	char name[BUILD_ID_MAX_HEX + sizeof(SUFFIX)];

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	unlink_lru(e);
	c->bytes -= e->bytes;
	c->files--;
	if (remove_file) {
		file_name(e->build_id, name, sizeof(name));
		if (unlinkat(c->dirfd, name, 0) && errno != ENOENT)
			log_warn("cannot remove a cached debug file", "file=%s err=\"%s\"", name, strerror(errno));
	}
	free(e);
}

/* Least recently used first, until room bytes more fit under the bound. */
static void evict_for(struct debug_cache *c, uint64_t room)
{
	while (c->lru.prev != &c->lru && c->bytes + room > c->max_bytes) {
		drop(c, c->lru.prev, true);
		c->evictions++;
	}
}

static struct entry *new_entry(const char *build_id, uint64_t bytes)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	snprintf(e->build_id, sizeof(e->build_id), "%s", build_id);
	e->bytes = bytes;
	return e;
}

/* An entry for a directory entry that is a cached debug file, else NULL. */
static struct entry *scan_one(int dirfd, const char *name)
{
	char build_id[BUILD_ID_MAX_HEX + 1];
	size_t n = strlen(name);
	struct stat st;
	struct entry *e;

	if (n <= strlen(SUFFIX) || n - strlen(SUFFIX) > BUILD_ID_MAX_HEX ||
	    strcmp(name + n - strlen(SUFFIX), SUFFIX) != 0)
		return NULL;
	snprintf(build_id, sizeof(build_id), "%.*s", (int)(n - strlen(SUFFIX)), name);
	if (!debug_cache_valid_build_id(build_id) ||
	    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
		return NULL;
	e = new_entry(build_id, (uint64_t)st.st_size);
	if (e)
		e->used_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return e;
}

static int cmp_used(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;

	return x->used_ns < y->used_ns ? -1 : x->used_ns > y->used_ns;
}

static int collect(int dirfd, struct entry ***out, size_t *count)
{
	struct entry **all = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct entry *e = scan_one(dirfd, de->d_name);

		if (!e)
			continue;
		if (n == cap) {
			struct entry **grown = realloc(all, (cap = cap ? cap * 2 : 64) * sizeof(*all));

			if (!grown) {
				free(e);
				break;
			}
			all = grown;
		}
		all[n++] = e;
	}
	closedir(d);
	*out = all;
	*count = n;
	return 0;
}

/* Takes in what an earlier run left, oldest use first so the newest end up at the front. */
static int scan(struct debug_cache *c)
{
	struct entry **all = NULL;
	size_t n = 0;
	int err = collect(c->dirfd, &all, &n);

	if (err)
		return err;
	if (n > 1)
		qsort(all, n, sizeof(*all), cmp_used);
	for (size_t i = 0; i < n; i++)
		insert(c, all[i]);
	free(all);
	evict_for(c, 0);
	return 0;
}

/* mkdir -p: the default /var/cache/anorak/debuginfod has a parent of our own too. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int debug_cache_open(const char *dir, uint64_t max_bytes, struct debug_cache **out)
{
	struct debug_cache *c;
	int err;

	err = make_dirs(dir);
	if (err)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->max_bytes = max_bytes;
	c->lru.next = c->lru.prev = &c->lru;
	pthread_mutex_init(&c->lock, NULL);
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = c->dirfd < 0 ? -errno : scan(c);
	if (err) {
		debug_cache_free(c);
		return err;
	}
	*out = c;
	return 0;
}

void debug_cache_free(struct debug_cache *c)
{
	if (!c)
		return;
	while (c->lru.next != &c->lru)
		drop(c, c->lru.next, false);
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int debug_cache_get(struct debug_cache *c, const char *build_id)
{
	char name[BUILD_ID_MAX_HEX + sizeof(SUFFIX)];
	struct entry *e;
	int fd = -ENOENT;

	if (!debug_cache_valid_build_id(build_id))
		return -EINVAL;
	file_name(build_id, name, sizeof(name));
	pthread_mutex_lock(&c->lock);
	e = find(c, build_id);
	if (e) {
		fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			fd = -errno;
			drop(c, e, false); /* removed behind our back */
		}
	}
	if (fd >= 0) {
		futimens(fd, NULL); /* the use time, for the order after a restart; best effort */
		unlink_lru(e);
		link_front(c, e);
		c->hits++;
	} else {
		c->misses++;
	}
	pthread_mutex_unlock(&c->lock);
	return fd;
}

int debug_cache_put(struct debug_cache *c, const char *build_id, const char *src, uint64_t bytes)
{
	char name[BUILD_ID_MAX_HEX + sizeof(SUFFIX)];
	struct entry *e, *old;
	int err = 0;

	if (!debug_cache_valid_build_id(build_id))
		return -EINVAL;
	e = new_entry(build_id, bytes);
	if (!e)
		return -ENOMEM;
	file_name(build_id, name, sizeof(name));
	pthread_mutex_lock(&c->lock);
	if ((old = find(c, build_id)))
		drop(c, old, true);
	if (bytes > c->max_bytes) {
		c->refused_too_large++;
		err = -EFBIG;
	} else {
		evict_for(c, bytes);
		if (renameat(AT_FDCWD, src, c->dirfd, name))
			err = -errno;
	}
	if (err) {
		unlink(src);
		free(e);
	} else {
		insert(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

void debug_cache_stats(struct debug_cache *c, struct debug_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = (struct debug_cache_stats){ .bytes = c->bytes, .max_bytes = c->max_bytes, .hits = c->hits,
					   .misses = c->misses, .evictions = c->evictions,
					   .refused_too_large = c->refused_too_large, .files = c->files };
	pthread_mutex_unlock(&c->lock);
}
