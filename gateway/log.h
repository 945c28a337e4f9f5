/*
 * log.h: JSON lines on stderr (gateway/log.c).
 *
 *   {"ts":"2026-11-26T22:10:00.123Z","level":"info","event":"webhook","channel":"telegram",...}
 *
 * Citizens' identifiers and texts go through cg_log_user()/cg_log_text(),
 * which redact them (a short keyed hash for ids, "[redacted N bytes]" for
 * text) unless log.debug_content is set. Secrets are never passed to the log.
 */
#ifndef CG_LOG_H
#define CG_LOG_H

typedef enum { CG_LOG_DEBUG = 0, CG_LOG_INFO, CG_LOG_WARN, CG_LOG_ERROR } cg_log_level;

void cg_log_init(cg_log_level min, int debug_content);
cg_log_level cg_log_level_parse(const char *s);   /* unknown → INFO */

/* kv: NULL-terminated list of key, value string pairs, values JSON-escaped by
 * the logger. Example: cg_log(CG_LOG_INFO, "started", "port", "8080", NULL); */
void cg_log(cg_log_level lvl, const char *event, ...) __attribute__((sentinel));

/* Now, UTC, as "YYYY-MM-DDTHH:MM:SS.mmmZ" (the log lines' "ts"; also the
 * API's timestamps: the intent table's "loaded_at", an export's
 * "exported_at"). */
void cg_log_now_iso(char out[32]);

/* Redacted forms for log values; returned pointer is to a thread-local buffer
 * valid until the next call of the same function. */
const char *cg_log_user(const char *user);
const char *cg_log_text(const char *text);

#endif
