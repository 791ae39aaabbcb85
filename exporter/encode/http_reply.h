/* An HTTP answer as the query API's encoders build it (status, type, body) and the server sends it:
 * here, with the encoders, so that web/ includes encode/ and not the other way round. */
#ifndef ANORAK_HTTP_REPLY_H
#define ANORAK_HTTP_REPLY_H

#include <stddef.h>

/* A whole answer built by a handler; body is malloc'd and freed by the server. */
struct http_reply {
	int status;
	const char *content_type;
	void *body;
	size_t len;
};

#endif
