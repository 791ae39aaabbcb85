#include "exporter/web/conn_guard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"

#define MAX_LISTENERS 2 /* civetweb's "+port": IPv4 and IPv6 */
#define EXPIRE_INTERVAL_MS 100 /* header timeouts are looked for at most this often */

/* epoll ids past the waiting room's slot indexes */
#define ID_STOP UINT32_MAX
#define ID_LISTENER(i) (UINT32_MAX - 1 - (i))

/* A connection: its peer as an IPv6 address (IPv4 mapped) and port, and its socket. */
struct conn {
	struct in6_addr addr;
	int port;
	int fd;          /* -1: free slot */
	bool ready;      /* waiting room: header complete, queued for civetweb */
	int64_t deadline; /* waiting room: CLOCK_MONOTONIC ms */
};

struct conn_guard {
	struct conn_guard_limits lim;
	pthread_mutex_t lock;
	struct conn *served;   /* handed to civetweb, lim.served slots */
	struct conn *waiting;  /* the waiting room, lim.max_waiting slots */
	unsigned *ready;       /* ring of waiting-room indexes, lim.max_waiting */
	unsigned ready_head, nready, nserved, nwaiting;
	char *peek;            /* the guard thread's view of a request header */
	int port;
	int listeners[MAX_LISTENERS]; /* ours: duplicates of civetweb's listening sockets */
	int swapped[MAX_LISTENERS];   /* civetweb's numbers, now the wake eventfd */
	int nlisteners;
	int wake, stop, epoll;
	pthread_t thread;
	bool running, registered;
	uint64_t refused_client, refused_full, timed_out, untracked; /* atomic */
	struct conn_guard *next;
};

/* Every guard of the process, for accept(); held for the whole admission or hand-over, so a guard
 * being freed is never looked at. */
static pthread_mutex_t guards_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn_guard *guards;

/* --- peers ------------------------------------------------------------------------------------ */

static void mapped_v4(struct in6_addr *addr, const void *v4)
{
	memset(addr, 0, sizeof(*addr));
	addr->s6_addr[10] = addr->s6_addr[11] = 0xff;
	memcpy(&addr->s6_addr[12], v4, 4);
}

static void peer_key(const struct sockaddr_storage *sa, struct in6_addr *addr, int *port)
{
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		*addr = in6->sin6_addr;
		*port = ntohs(in6->sin6_port);
		return;
	}
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

	mapped_v4(addr, &in->sin_addr);
	*port = ntohs(in->sin_port);
}

/* civetweb's remote_addr text ("127.0.0.1", "::1") in the same form as peer_key. */
static bool parse_peer(const char *text, struct in6_addr *addr)
{
	struct in_addr v4;

	if (inet_pton(AF_INET, text, &v4) == 1) {
		mapped_v4(addr, &v4);
		return true;
	}
	return inet_pton(AF_INET6, text, addr) == 1;
}

static struct conn *find(struct conn *conns, unsigned n, const struct in6_addr *addr, int port)
{
	for (unsigned i = 0; i < n; i++)
		if (conns[i].fd >= 0 && conns[i].port == port && memcmp(&conns[i].addr, addr, sizeof(*addr)) == 0)
			return &conns[i];
	return NULL;
}

static struct conn *free_slot(struct conn *conns, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (conns[i].fd < 0)
			return &conns[i];
	return NULL;
}

/* A FIN (POLLRDHUP) counts as gone, as in Go's net/http, whose request context ends on the client's
 * EOF. */
static bool fd_hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Whether civetweb closed this served connection without a word: connection_closed has no address
 * for a failed TLS handshake. Its descriptor is then closed, or another connection's. A connection the
 * peer reset is still civetweb's (ENOTCONN), and stays. */
static bool stale(const struct conn *c)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	struct in6_addr addr;
	int port;

	if (getpeername(c->fd, (struct sockaddr *)&peer, &len))
		return errno == EBADF || errno == ENOTSOCK;
	if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6)
		return true;
	peer_key(&peer, &addr, &port);
	return port != c->port || memcmp(&addr, &c->addr, sizeof(addr)) != 0;
}

/* Whether the client of a served connection has hung up (FIN or reset), or civetweb closed it unseen:
 * it then only waits for its worker to read the EOF and close it. */
static bool hung_up(const struct conn *c)
{
	return stale(c) || fd_hung_up(c->fd);
}

/* Connections from addr, waiting or served; under g->lock. At the cap, served connections whose client
 * hung up are not counted: a client that closes one connection and opens the next at once (a scraper
 * asking again) reaches the guard before civetweb's worker has read the first one's EOF. */
static unsigned client_conns(const struct conn_guard *g, const struct in6_addr *addr)
{
	unsigned n = 0;

	for (unsigned i = 0; i < g->lim.served; i++)
		n += g->served[i].fd >= 0 && memcmp(&g->served[i].addr, addr, sizeof(*addr)) == 0;
	for (unsigned i = 0; i < g->lim.max_waiting; i++)
		n += g->waiting[i].fd >= 0 && memcmp(&g->waiting[i].addr, addr, sizeof(*addr)) == 0;
	if (n < g->lim.max_per_client)
		return n;
	for (unsigned i = 0; i < g->lim.served; i++)
		n -= g->served[i].fd >= 0 && memcmp(&g->served[i].addr, addr, sizeof(*addr)) == 0 &&
		     hung_up(&g->served[i]);
	return n;
}

static void reset_close(int fd)
{
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	/* An RST: a flood of refused connections leaves no TIME_WAIT behind. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	close(fd);
}

/* Records a connection civetweb now serves; under g->lock. */
static void add_served(struct conn_guard *g, const struct in6_addr *addr, int port, int fd)
{
	struct conn *slot = free_slot(g->served, g->lim.served);

	if (!slot) {
		/* More than civetweb holds (the table is sized to its workers and queue): served, unseen. */
		__atomic_add_fetch(&g->untracked, 1, __ATOMIC_RELAXED);
		return;
	}
	*slot = (struct conn){ .addr = *addr, .port = port, .fd = fd };
	g->nserved++;
}

void conn_guard_closed(struct conn_guard *g, const char *remote_addr, int remote_port)
{
	struct in6_addr addr;
	struct conn *c;

	if (!parse_peer(remote_addr, &addr))
		return;
	pthread_mutex_lock(&g->lock);
	c = find(g->served, g->lim.served, &addr, remote_port);
	if (c) {
		c->fd = -1;
		g->nserved--;
	}
	pthread_mutex_unlock(&g->lock);
}

/* The handler holds its connection open, so its socket cannot be closed or reused meanwhile. */
bool conn_guard_peer_gone(struct conn_guard *g, const char *remote_addr, int remote_port)
{
	struct in6_addr addr;
	struct conn *c;
	int fd = -1;

	if (!parse_peer(remote_addr, &addr))
		return false;
	pthread_mutex_lock(&g->lock);
	c = find(g->served, g->lim.served, &addr, remote_port);
	if (c)
		fd = c->fd;
	pthread_mutex_unlock(&g->lock);
	return fd >= 0 && fd_hung_up(fd);
}

/* --- the waiting room (the guard thread) ------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under g->lock. */
static void drop_waiting(struct conn_guard *g, struct conn *c, bool reset)
{
	epoll_ctl(g->epoll, EPOLL_CTL_DEL, c->fd, NULL);
	if (reset)
		reset_close(c->fd);
	else
		close(c->fd);
	c->fd = -1;
	g->nwaiting--;
}

/* A new connection from our listener: into the waiting room, or reset. */
static void admit(struct conn_guard *g, int fd, const struct sockaddr_storage *peer)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
	struct in6_addr addr;
	struct conn *slot;
	int port;

	peer_key(peer, &addr, &port);
	pthread_mutex_lock(&g->lock);
	if (client_conns(g, &addr) >= g->lim.max_per_client) {
		__atomic_add_fetch(&g->refused_client, 1, __ATOMIC_RELAXED);
		slot = NULL;
	} else if (!(slot = free_slot(g->waiting, g->lim.max_waiting))) {
		__atomic_add_fetch(&g->refused_full, 1, __ATOMIC_RELAXED);
	} else {
		*slot = (struct conn){ .addr = addr, .port = port, .fd = fd,
				       .deadline = now_ms() + g->lim.header_timeout_ms };
		ev.data.u32 = (uint32_t)(slot - g->waiting);
		if (epoll_ctl(g->epoll, EPOLL_CTL_ADD, fd, &ev) == 0)
			g->nwaiting++;
		else
			slot->fd = -1, slot = NULL;
	}
	pthread_mutex_unlock(&g->lock);
	if (!slot)
		reset_close(fd);
}

static void accept_all(struct conn_guard *g, int listener)
{
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(listener, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			/* EMFILE and the like: the backlog keeps them until a descriptor frees up. */
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("cannot accept an HTTP connection", "err=\"%s\"", strerror(errno));
			if (errno != EINTR && errno != ECONNABORTED)
				return;
			continue;
		}
		admit(g, fd, &peer);
	}
}

static bool header_complete(const char *buf, size_t n)
{
	return memmem(buf, n, "\r\n\r\n", 4) || memmem(buf, n, "\n\n", 2);
}

/* Data or a hang-up on a waiting connection: hand it to civetweb once its header is in. */
static void check_waiting(struct conn_guard *g, uint32_t i, uint32_t events)
{
	struct conn *c = &g->waiting[i];
	ssize_t n;

	/* Locked throughout: civetweb's accept() takes ready slots, and an event of this batch may be
	 * for a connection already handed over. */
	pthread_mutex_lock(&g->lock);
	if (c->fd < 0 || c->ready) {
		pthread_mutex_unlock(&g->lock);
		return;
	}
	n = recv(c->fd, g->peek, g->lim.max_header_bytes, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 && (g->lim.tls || (size_t)n >= g->lim.max_header_bytes || header_complete(g->peek, n))) {
		epoll_ctl(g->epoll, EPOLL_CTL_DEL, c->fd, NULL);
		c->ready = true;
		g->ready[(g->ready_head + g->nready) % g->lim.max_waiting] = i;
		if (g->nready++ == 0) {
			uint64_t one = 1;

			if (write(g->wake, &one, sizeof(one)) < 0)
				log_warn("cannot wake the HTTP server", "err=\"%s\"", strerror(errno));
		}
	} else if (n == 0 || (n < 0 && errno != EAGAIN) || (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		drop_waiting(g, c, false); /* gone before its request was whole */
	}
	pthread_mutex_unlock(&g->lock);
}

/* Closes the connections whose header did not arrive in time, and forgets served ones civetweb
 * closed unseen. */
static void expire(struct conn_guard *g)
{
	int64_t now = now_ms();

	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < g->lim.served; i++) {
		if (g->served[i].fd >= 0 && stale(&g->served[i])) {
			g->served[i].fd = -1;
			g->nserved--;
		}
	}
	for (unsigned i = 0; i < g->lim.max_waiting; i++) {
		struct conn *c = &g->waiting[i];

		if (c->fd >= 0 && !c->ready && c->deadline <= now) {
			drop_waiting(g, c, true);
			__atomic_add_fetch(&g->timed_out, 1, __ATOMIC_RELAXED);
		}
	}
	pthread_mutex_unlock(&g->lock);
}

/* Without connections there is nothing to expire: sleep until one arrives (an idle daemon wakes for
 * nothing). A connection is waiting or served from its accept on, so this never misses one. */
static int expire_timeout(struct conn_guard *g)
{
	pthread_mutex_lock(&g->lock);
	bool none = !g->nserved && !g->nwaiting;
	pthread_mutex_unlock(&g->lock);
	return none ? -1 : EXPIRE_INTERVAL_MS;
}

static void *guard_run(void *arg)
{
	struct conn_guard *g = arg;
	struct epoll_event ev[64];
	int64_t expired_ms = 0;

	for (;;) {
		int n = epoll_wait(g->epoll, ev, 64, expire_timeout(g));

		for (int i = 0; i < n; i++) {
			uint32_t id = ev[i].data.u32;

			if (id == ID_STOP)
				return NULL;
			if (id >= ID_LISTENER(MAX_LISTENERS - 1))
				accept_all(g, g->listeners[ID_LISTENER(0) - id]);
			else
				check_waiting(g, id, ev[i].events);
		}
		if (now_ms() - expired_ms >= EXPIRE_INTERVAL_MS) {
			expire(g);
			expired_ms = now_ms();
		}
	}
}

/* --- civetweb's side -------------------------------------------------------------------------- */

/* The next ready connection, for civetweb's accept() on a listener we took over; under g->lock. */
static int hand_over(struct conn_guard *g, struct sockaddr *addr, socklen_t *addrlen)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	uint64_t count;
	struct conn *c;
	int fd;

	if (!g->nready) {
		errno = EAGAIN;
		return -1;
	}
	c = &g->waiting[g->ready[g->ready_head]];
	g->ready_head = (g->ready_head + 1) % g->lim.max_waiting;
	if (--g->nready == 0 && read(g->wake, &count, sizeof(count)) < 0)
		log_warn("cannot reset the HTTP server's wake-up", "err=\"%s\"", strerror(errno));
	fd = c->fd;
	add_served(g, &c->addr, c->port, fd);
	c->fd = -1;
	c->ready = false;
	g->nwaiting--;
	if (addr && addrlen) {
		getpeername(fd, (struct sockaddr *)&peer, &len);
		memcpy(addr, &peer, *addrlen < len ? *addrlen : len);
		*addrlen = len;
	}
	return fd;
}

static struct conn_guard *guard_of_swapped(int fd)
{
	for (struct conn_guard *g = guards; g; g = g->next)
		for (int i = 0; i < g->nlisteners; i++)
			if (g->swapped[i] == fd)
				return g;
	return NULL;
}

/* Before the take-over (or if it failed), civetweb accepts by itself: count and cap those too. */
static bool admit_direct(int listener, const struct sockaddr_storage *peer, int fd)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	struct in6_addr addr;
	struct conn_guard *g;
	bool ok = true;
	int port;

	if (!guards || getsockname(listener, (struct sockaddr *)&local, &len) ||
	    (peer->ss_family != AF_INET && peer->ss_family != AF_INET6))
		return true;
	peer_key(&local, &addr, &port);
	for (g = guards; g && g->port != port; g = g->next)
		;
	if (!g)
		return true;
	peer_key(peer, &addr, &port);
	pthread_mutex_lock(&g->lock);
	if (client_conns(g, &addr) >= g->lim.max_per_client) {
		__atomic_add_fetch(&g->refused_client, 1, __ATOMIC_RELAXED);
		ok = false;
	} else {
		add_served(g, &addr, port, fd);
	}
	pthread_mutex_unlock(&g->lock);
	return ok;
}

/* civetweb's accept() (the executable's definition comes before libc's). Refused connections are
 * reported as ECONNABORTED, which civetweb's accept loop passes over silently. */
int accept(int listener, struct sockaddr *addr, socklen_t *addrlen)
{
	struct sockaddr_storage peer;
	socklen_t peerlen = sizeof(peer);
	struct conn_guard *g;
	bool admitted;
	int fd;

	pthread_mutex_lock(&guards_lock);
	g = guard_of_swapped(listener);
	if (g) {
		pthread_mutex_lock(&g->lock);
		fd = hand_over(g, addr, addrlen);
		pthread_mutex_unlock(&g->lock);
		pthread_mutex_unlock(&guards_lock);
		return fd;
	}
	pthread_mutex_unlock(&guards_lock);

	fd = accept4(listener, (struct sockaddr *)&peer, &peerlen, 0);
	if (fd < 0)
		return fd;
	if (addr && addrlen) {
		memcpy(addr, &peer, *addrlen < peerlen ? *addrlen : peerlen);
		*addrlen = peerlen;
	}
	pthread_mutex_lock(&guards_lock);
	admitted = admit_direct(listener, &peer, fd);
	pthread_mutex_unlock(&guards_lock);
	if (admitted)
		return fd;
	reset_close(fd);
	errno = ECONNABORTED;
	return -1;
}

/* civetweb's listening TCP sockets on port: it does not say which descriptors they are. */
static int find_listeners(int port, int *fds)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) && n < MAX_LISTENERS) {
		struct sockaddr_storage local;
		socklen_t len = sizeof(local), optlen = sizeof(int);
		int fd = atoi(e->d_name), listening = 0, lport;
		struct in6_addr unused;

		if (e->d_name[0] == '.' || fd == dirfd(d) ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) || !listening ||
		    getsockname(fd, (struct sockaddr *)&local, &len) ||
		    (local.ss_family != AF_INET && local.ss_family != AF_INET6))
			continue;
		peer_key(&local, &unused, &lport);
		if (lport == port)
			fds[n++] = fd;
	}
	closedir(d);
	return n ? n : -ENOENT;
}

/* Keeps each listening socket under a descriptor of ours, and puts the wake eventfd in its place
 * under civetweb's number: civetweb polls that and calls accept() when connections are ready. */
static int take_over(struct conn_guard *g, const int *fds, int n)
{
	struct epoll_event ev = { .events = EPOLLIN };

	for (int i = 0; i < n; i++) {
		int own = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

		if (own < 0)
			return -errno;
		fcntl(own, F_SETFL, fcntl(own, F_GETFL) | O_NONBLOCK);
		ev.data.u32 = ID_LISTENER(i);
		if (epoll_ctl(g->epoll, EPOLL_CTL_ADD, own, &ev) || dup2(g->wake, fds[i]) < 0) {
			int err = -errno;

			epoll_ctl(g->epoll, EPOLL_CTL_DEL, own, NULL);
			close(own);
			return err;
		}
		g->listeners[i] = own;
		g->swapped[i] = fds[i];
		g->nlisteners++;
	}
	return 0;
}

int conn_guard_listen(struct conn_guard *g, int port)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = ID_STOP };
	int fds[MAX_LISTENERS], n, err;

	pthread_mutex_lock(&guards_lock);
	g->port = port;
	g->next = guards;
	guards = g;
	n = find_listeners(port, fds);
	err = n < 0 ? n : epoll_ctl(g->epoll, EPOLL_CTL_ADD, g->stop, &ev) ? -errno : take_over(g, fds, n);
	/* A listener taken over must be served, even if another could not be. */
	if (g->nlisteners) {
		int ret = -pthread_create(&g->thread, NULL, guard_run, g);

		g->running = !ret;
		err = err ? err : ret;
	}
	pthread_mutex_unlock(&guards_lock);
	if (err)
		log_warn("cannot guard the HTTP listener: idle connections take workers", "port=%d err=\"%s\"",
			 port, strerror(-err));
	return err;
}

/* --- metrics, lifetime ------------------------------------------------------------------------ */

static double load(const uint64_t *v)
{
	return (double)__atomic_load_n(v, __ATOMIC_RELAXED);
}

static void write_metrics(struct metrics_buf *b, void *ctx)
{
	struct conn_guard *g = ctx;
	struct metrics_series s;
	unsigned served, waiting;

	pthread_mutex_lock(&g->lock);
	served = g->nserved;
	waiting = g->nwaiting;
	pthread_mutex_unlock(&g->lock);
	s = metrics_series_begin(b, "anorak_http_connections", "gauge",
				 "HTTP connections open: waiting for their request header (no worker yet, at most "
				 "--web.max-waiting-connections), or served by civetweb.");
	metrics_series_value(s, "state=\"waiting\"", waiting);
	metrics_series_value(s, "state=\"served\"", served);
	s = metrics_series_begin(b, "anorak_http_connections_refused_total", "counter",
				 "HTTP connections reset on accept: their client address had "
				 "--web.max-connections-per-client open, or --web.max-waiting-connections were "
				 "waiting.");
	metrics_series_value(s, "reason=\"per_client\"", load(&g->refused_client));
	metrics_series_value(s, "reason=\"waiting_full\"", load(&g->refused_full));
	metrics_counter(b, "anorak_http_header_timeouts_total",
			"HTTP connections closed because their request header was not whole within "
			"--web.read-timeout.",
			load(&g->timed_out));
	metrics_counter(b, "anorak_http_connections_untracked_total",
			"HTTP connections served past the guard's table (sized to civetweb's workers and queue): "
			"not counted against their client.",
			load(&g->untracked));
}

static struct conn *new_conns(unsigned n)
{
	struct conn *c = malloc(n * sizeof(*c));

	for (unsigned i = 0; c && i < n; i++)
		c[i].fd = -1;
	return c;
}

int conn_guard_new(const struct conn_guard_limits *lim, struct conn_guard **out)
{
	struct conn_guard *g = calloc(1, sizeof(*g));
	int err = -ENOMEM;

	if (!g)
		return -ENOMEM;
	g->lim = *lim;
	g->wake = g->stop = g->epoll = -1;
	pthread_mutex_init(&g->lock, NULL);
	g->served = new_conns(lim->served);
	g->waiting = new_conns(lim->max_waiting);
	g->ready = malloc(lim->max_waiting * sizeof(*g->ready));
	g->peek = malloc(lim->max_header_bytes);
	if (!g->served || !g->waiting || !g->ready || !g->peek)
		goto fail;
	g->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	g->stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	g->epoll = epoll_create1(EPOLL_CLOEXEC);
	if (g->wake < 0 || g->stop < 0 || g->epoll < 0) {
		err = -errno;
		goto fail;
	}
	err = metrics_register(write_metrics, g);
	if (err)
		goto fail;
	g->registered = true;
	*out = g;
	return 0;
fail:
	conn_guard_free(g);
	return err;
}

void conn_guard_free(struct conn_guard *g)
{
	uint64_t one = 1;

	if (!g)
		return;
	pthread_mutex_lock(&guards_lock);
	for (struct conn_guard **p = &guards; *p; p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
	pthread_mutex_unlock(&guards_lock);
	if (g->running && write(g->stop, &one, sizeof(one)) == sizeof(one))
		pthread_join(g->thread, NULL);
	if (g->registered)
		metrics_unregister(write_metrics, g);
	for (unsigned i = 0; g->waiting && i < g->lim.max_waiting; i++)
		if (g->waiting[i].fd >= 0)
			close(g->waiting[i].fd);
	for (int i = 0; i < g->nlisteners; i++)
		close(g->listeners[i]);
	if (g->wake >= 0)
		close(g->wake);
	if (g->stop >= 0)
		close(g->stop);
	if (g->epoll >= 0)
		close(g->epoll);
	pthread_mutex_destroy(&g->lock);
	free(g->served);
	free(g->waiting);
	free(g->ready);
	free(g->peek);
	free(g);
}
