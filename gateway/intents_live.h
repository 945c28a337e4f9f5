/*
 * intents_live.h: the intent table while the gateway runs (intents_live.c):
 * reloads (SIGHUP, the admin API, a watched file), what is loaded, and why
 * the last reload was refused.
 *
 * A reload reads and builds the table on the libuv thread pool; back on the
 * loop thread a valid table replaces gw->intents (a message being answered
 * keeps the snapshot it started with: cg_intents_ref), a table with errors
 * is refused and the old one keeps serving. Reloads never overlap: a
 * request during one schedules exactly one more, whose result answers every
 * request made meanwhile.
 *
 * API in call order (loop thread only):
 *   cg_intents_live_start()   after the first table is in gw->intents
 *   cg_intents_live_reload()  any number of times
 *   cg_intents_live_info()    JSON for GET /api/v1/admin/intents
 *   cg_intents_live_stop()    on stop (closes the watcher, frees when idle)
 * and, at any time, cg_intents_live_log_diags().
 */
#ifndef CG_INTENTS_LIVE_H
#define CG_INTENTS_LIVE_H

#include <cjson/cJSON.h>
#include "gateway.h"

typedef struct cg_intents_live cg_intents_live;

/* d: the diagnostics of the table now in gw->intents (its warnings are
 * copied). Starts the directory watcher when cfg->intents_watch. NULL on
 * allocation failure. */
cg_intents_live *cg_intents_live_start(cg_gateway *gw, const cg_diags *d);

/* The outcome of one reload: CG_LIVE_OK (swapped in), CG_LIVE_REFUSED (errors:
 * the old table serves), CG_LIVE_STOPPED (the gateway stops; nothing done). */
typedef enum { CG_LIVE_OK = 0, CG_LIVE_REFUSED, CG_LIVE_STOPPED } cg_live_result;
/* done runs on the loop thread once the reload finished (before return
 * only with CG_LIVE_STOPPED, when the gateway stops); during the call
 * cg_intents_live_last() describes that reload. done may be NULL. trigger
 * names the cause in logs and the info: "sighup", "api", "watch". */
typedef void (*cg_intents_live_done)(void *ud, cg_live_result r);
void cg_intents_live_reload(cg_intents_live *l, const char *trigger, cg_intents_live_done done, void *ud);

/* {"version", "loaded_at", "intents", "intents_per_language": {lang: n},
 *  "languages", "warnings": [{path, line, column, message}], "warnings_total",
 *  "last_reload": {"at", "trigger", "result", "version"?} | null,
 *  "last_error": {"at", "trigger", "errors": [...], "errors_total"} | null,
 *  "reloading", "watch"}. Caller deletes; NULL on allocation failure. */
cJSON *cg_intents_live_info(const cg_intents_live *l);
/* The last reload's result: {"result": "ok"|"refused", "version", "loaded_at",
 * "intents", "warnings_total"} or, refused, {"error", "errors": [...],
 * "errors_total", "version" (the one still serving)}. Caller deletes. */
cJSON *cg_intents_live_last(const cg_intents_live *l);

/* Closes the watcher; l is freed once a reload in flight has finished.
 * Waiting requests get CG_LIVE_STOPPED. */
void cg_intents_live_stop(cg_intents_live *l);

/* Logs every diagnostic of d (event "intent_diagnostic"; errors at ERROR,
 * warnings at WARN): each reload's, and serve.c's for the first table. */
void cg_intents_live_log_diags(const cg_diags *d);

#endif
