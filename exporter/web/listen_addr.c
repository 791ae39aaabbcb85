#include "exporter/web/listen_addr.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool civetweb_has_ipv6(void)
{
	return mg_check_feature(MG_FEATURES_IPV6) != 0;
}

static int parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;

	if (!*s || strlen(s) > 5)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (*s - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

/* Resolves host (empty: every interface) to one address, as Go's net.Listen would bind. */
static int resolve_host(const char *host, unsigned port, struct listen_addr *la, const char **why)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char service[8];
	int ret;

	/* Every interface: 0.0.0.0 here, for the bind check; civetweb gets "+port" when it has IPv6. */
	hints.ai_family = civetweb_has_ipv6() && *host ? AF_UNSPEC : AF_INET;
	snprintf(service, sizeof(service), "%u", port);
	ret = getaddrinfo(*host ? host : NULL, service, &hints, &res);
	if (ret) {
		*why = ret == EAI_FAMILY || ret == EAI_ADDRFAMILY || ret == EAI_NONAME
			       ? (strchr(host, ':') ? "IPv6 addresses are not supported by this civetweb build"
						    : "cannot resolve host")
			       : gai_strerror(ret);
		return ret == EAI_MEMORY ? -ENOMEM : -EINVAL;
	}
	/* Prefer IPv4, as Go does for "localhost". */
	for (ai = res; ai->ai_next && ai->ai_family != AF_INET; ai = ai->ai_next)
		;
	if (ai->ai_family != AF_INET)
		ai = res;
	memcpy(&la->sa, ai->ai_addr, ai->ai_addrlen);
	la->salen = ai->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int listen_addr_parse(const char *addr, struct listen_addr *la, const char **why)
{
	char host[256], ip[INET6_ADDRSTRLEN];
	const char *colon = strrchr(addr, ':');
	size_t hostlen;
	unsigned port;
	int ret;

	*why = "expected host:port, like :9760 or 127.0.0.1:9760";
	if (!colon || parse_port(colon + 1, &port))
		return -EINVAL;
	hostlen = colon - addr;
	if (hostlen >= 2 && addr[0] == '[' && addr[hostlen - 1] == ']') {
		addr++;
		hostlen -= 2;
	} else if (memchr(addr, ':', hostlen)) {
		*why = "IPv6 addresses need brackets, like [::1]:9760";
		return -EINVAL;
	}
	if (hostlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr, hostlen);
	host[hostlen] = '\0';

	ret = resolve_host(host, port, la, why);
	if (ret)
		return ret;
	if (!*host && civetweb_has_ipv6()) {
		/* civetweb's IPv4 and IPv6 on every interface, what Go does for ":port". */
		snprintf(la->ports, sizeof(la->ports), "+%u", port);
	} else if (la->sa.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&la->sa)->sin6_addr, ip, sizeof(ip));
		snprintf(la->ports, sizeof(la->ports), "[%s]:%u", ip, port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&la->sa)->sin_addr, ip, sizeof(ip));
		snprintf(la->ports, sizeof(la->ports), "%s:%u", ip, port);
	}
	return 0;
}
