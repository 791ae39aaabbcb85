/* SelectSeries of Pyroscope's query API (exporter/encode/series.c). */
#ifndef ANORAK_SERIES_H
#define ANORAK_SERIES_H

#include "exporter/encode/http_reply.h"
#include "exporter/store/history.h"
#include "querier/v1/querier.pb-c.h"

#define SERIES_MAX_GROUP_BY 16

/* Answers the request into r (a Connect error for a bad one); negative errno only when memory ran
 * out for the error reply itself. */
int series_select(struct history *h, const Querier__V1__SelectSeriesRequest *req, struct http_reply *r);

#endif
