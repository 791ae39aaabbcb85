/* logfmt logging on stderr: ts=... level=... msg="..." key=value ... */
#ifndef ANORAK_LOG_H
#define ANORAK_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn" or "error"; returns -EINVAL otherwise. */
int log_parse_level(const char *s, enum log_level *out);
/* kvfmt continues the line after msg, e.g. "pid=%d err=%d"; NULL for nothing. */
void log_msg(enum log_level level, const char *msg, const char *kvfmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_msg(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_msg(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_msg(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(LOG_ERROR, msg, __VA_ARGS__)

#endif
