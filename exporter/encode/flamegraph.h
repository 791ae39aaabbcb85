/* The flame graph of Pyroscope's query API (exporter/encode/flamegraph.c). */
#ifndef ANORAK_FLAMEGRAPH_H
#define ANORAK_FLAMEGRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "exporter/encode/selection.h"
#include "exporter/store/history.h"
#include "querier/v1/querier.pb-c.h"

struct flamegraph;

/* An empty graph of what sel selects (sel must outlive it); NULL when out of memory. */
struct flamegraph *flamegraph_new(struct selection *sel);

/* Merges the window's selected records: a history_query visitor, ctx the flamegraph. */
int flamegraph_add_window(void *fg, const struct history_window *w);

/* Pyroscope's tree bytes (its model.Tree marshalled) of the graph cut to max_nodes, malloc'd into
 * *data (NULL and 0 for an empty graph). 0 or -ENOMEM. */
int flamegraph_tree_bytes(struct flamegraph *fg, int64_t max_nodes, uint8_t **data, size_t *len);

/* The graph cut to max_nodes as Pyroscope's FlameGraph message, its arrays owned by fg. Once only. */
int flamegraph_message(struct flamegraph *fg, int64_t max_nodes, Querier__V1__FlameGraph *out);

void flamegraph_free(struct flamegraph *fg);

#endif
