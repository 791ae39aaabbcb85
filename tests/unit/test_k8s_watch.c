/* The watch stream splitter (labels/k8s_client.c) through k8s_watch_replay: one event per line, what
 * is skipped and why, and the same outcome however the stream is cut. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "labels/k8s_client_internal.h"

#define POD(name, rv)                                                                            \
	"{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"default\",\"resourceVersion\":\"" rv \
	"\",\"uid\":\"u-" name "\"},\"spec\":{\"nodeName\":\"node-1\"}}"
#define EVENT(type, obj) "{\"type\":\"" type "\",\"object\":" obj "}"

struct seen {
	char log[512];
};

static void on_pod(void *ctx, const struct k8s_pod *pod, bool deleted)
{
	struct seen *s = ctx;
	size_t n = strlen(s->log);

	snprintf(s->log + n, sizeof(s->log) - n, "%s%s ", deleted ? "-" : "+", pod->name);
}

/* Replays text cut in pieces of every size from 1 to its length: each must give the same as whole. */
static enum k8s_result replay(const char *text, size_t max_object, struct seen *whole,
			      struct k8s_client_stats *st)
{
	size_t len = strlen(text);
	enum k8s_result res = k8s_watch_replay(text, len, len ? len : 1, max_object, on_pod, whole, st);

	for (size_t chunk = 1; chunk < len; chunk++) {
		struct k8s_client_stats cst;
		struct seen cut = { "" };

		assert_int_equal(k8s_watch_replay(text, len, chunk, max_object, on_pod, &cut, &cst), res);
		if (strcmp(cut.log, whole->log))
			fail_msg("pieces of %zu: %s, whole: %s", chunk, cut.log, whole->log);
		assert_int_equal(cst.pods, st->pods);
		assert_memory_equal(cst.skipped, st->skipped, sizeof(cst.skipped));
	}
	return res;
}

static void test_events(void **state)
{
	(void)state;
	struct k8s_client_stats st;
	struct seen s = { "" };

	assert_int_equal(replay(EVENT("ADDED", POD("a", "1")) "\n"
				EVENT("ADDED", POD("b", "2")) " \r\n"
				EVENT("MODIFIED", POD("a", "3")) "\n"
				EVENT("BOOKMARK", "{\"metadata\":{\"resourceVersion\":\"4\"}}") "\n"
				EVENT("DELETED", POD("b", "5")) "\n"
				/* the stream's end ends the last line */
				EVENT("ADDED", POD("c", "6")),
				1 << 20, &s, &st),
			 K8S_RES_SUCCESS);
	assert_string_equal(s.log, "+a +b +a -b +c ");
	assert_int_equal(st.pods, 2);
	assert_int_equal(st.skipped[K8S_SKIP_INVALID], 0);
}

static void test_skipped_lines(void **state)
{
	(void)state;
	struct k8s_client_stats st;
	struct seen s = { "" };

	assert_int_equal(replay(EVENT("ADDED", POD("a", "1")) "{}\n"    /* two values on a line */
				EVENT("ADDED", POD("b", "1")) " /\n"    /* a comment (json-c's) after it */
				"   \r\n"                                /* blank: nothing */
				"{\"type\":\"ADDED\",\"object\":\n"     /* cut by a newline */
				EVENT("WHATEVER", POD("d", "1")) "\n"   /* unknown type */
				"[1,2]\n"
				EVENT("ADDED", POD("e", "1")) "\n",
				1 << 20, &s, &st),
			 K8S_RES_SUCCESS);
	assert_string_equal(s.log, "+e ");
	assert_int_equal(st.skipped[K8S_SKIP_INVALID], 5);
}

static void test_too_large(void **state)
{
	(void)state;
	static const char big[] = EVENT("ADDED", POD("a-pod-with-a-long-name", "1"));
	char text[512];
	struct k8s_client_stats st;
	struct seen s = { "" };

	snprintf(text, sizeof(text), "%s\n%s\n", big, EVENT("ADDED", POD("b", "1")));
	/* The first event is over the limit, the second fits. */
	assert_int_equal(replay(text, sizeof(big) - 2, &s, &st), K8S_RES_SUCCESS);
	assert_string_equal(s.log, "+b ");
	assert_int_equal(st.skipped[K8S_SKIP_TOO_LARGE], 1);
}

static void test_error_events(void **state)
{
	(void)state;
	struct k8s_client_stats st;
	struct seen s = { "" };

	/* 410 ends the stream: what follows is not read. */
	assert_int_equal(replay(EVENT("ADDED", POD("a", "1")) "\n"
				EVENT("ERROR", "{\"kind\":\"Status\",\"code\":410,\"message\":\"too old\"}") "\n"
				EVENT("ADDED", POD("b", "2")) "\n",
				1 << 20, &s, &st),
			 K8S_RES_GONE);
	assert_string_equal(s.log, "+a ");
	s.log[0] = '\0';
	assert_int_equal(replay(EVENT("ERROR", "{\"code\":500}"), 1 << 20, &s, &st), K8S_RES_HTTP_ERROR);
	assert_string_equal(s.log, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_skipped_lines),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_error_events),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
