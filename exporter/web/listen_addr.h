/*
 * The listen address (--web.listen-address) as Prometheus exporters take it: ":9760" (every
 * interface), "127.0.0.1:9760", "[::1]:9760", "localhost:9760"; resolved as Go's net.Listen would bind.
 */
#ifndef ANORAK_LISTEN_ADDR_H
#define ANORAK_LISTEN_ADDR_H

#include <netinet/in.h>
#include <sys/socket.h>

struct listen_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
	char ports[INET6_ADDRSTRLEN + 16]; /* civetweb's listening_ports */
};

/* The address and civetweb's syntax for it. -EINVAL with *why saying what is wrong, -ENOMEM. */
int listen_addr_parse(const char *addr, struct listen_addr *la, const char **why);

#endif
