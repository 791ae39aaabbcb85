/* The accept-side guard of the HTTP server. civetweb (1.15) gives each accepted connection a worker
 * thread until it closes, so idle and slow-header connections would take every worker. The guard
 * takes civetweb's listening sockets over once it has started: it accepts them itself, holds each new
 * connection in a waiting room (one epoll thread, no worker) until its request header has arrived,
 * and only then hands it to civetweb, whose accept() (interposed here) takes the ready connections.
 * Connections that send no whole header within the read timeout are closed there. A client address
 * gets at most max_per_client connections, waiting or served; the waiting room holds max_waiting.
 * It also keeps every served connection's socket by peer address and port, so a handler that waits
 * can see its client hang up. */
#ifndef ANORAK_CONN_GUARD_H
#define ANORAK_CONN_GUARD_H

#include <stdbool.h>

struct conn_guard;

struct conn_guard_limits {
	unsigned served;         /* connections civetweb holds at most: its workers and its queue */
	unsigned max_waiting;    /* connections waiting for their request header */
	unsigned max_per_client; /* connections, waiting or served, from one client address */
	unsigned header_timeout_ms;
	unsigned max_header_bytes; /* a header this long is handed over for civetweb to refuse */
	bool tls;                  /* TLS listeners: the first bytes (ClientHello) are enough */
};

/* Registers the guard's metrics; it guards nothing until conn_guard_listen. */
int conn_guard_new(const struct conn_guard_limits *limits, struct conn_guard **out);
/* Takes over civetweb's listening sockets on this local TCP port (called once civetweb listens).
 * Negative errno when they cannot be found: civetweb then keeps accepting by itself, still counted
 * and capped per client. */
int conn_guard_listen(struct conn_guard *g, int port);
/* civetweb's connection_closed: the connection from remote_addr:remote_port is gone. */
void conn_guard_closed(struct conn_guard *g, const char *remote_addr, int remote_port);
/* Whether the client of this served connection has closed (or reset) it; false when unknown. */
bool conn_guard_peer_gone(struct conn_guard *g, const char *remote_addr, int remote_port);
/* After mg_stop: stops the waiting room and closes what it holds. NULL is ignored. */
void conn_guard_free(struct conn_guard *g);

#endif
