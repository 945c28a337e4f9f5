/*
 * gateway.h: the running process, shared by its modules.
 *
 * One uv_loop_t drives everything (ARCHITECTURE.md, "One event loop"):
 *   http.c      libwebsockets on the loop: webhooks, web chat WebSocket,
 *               static files, health, metrics
 *   store.c     hiredis async on the loop: every Redis command
 *   pipeline.c  inbox stream → dialog → transcript + outbox stream
 *   outbox.c    outbox stream → connector.render → libcurl multi → classify
 *   agents.c    hand-off queue, agents' console (WebSocket + API)
 *   api.c       the JSON API's routes (api.h); admin.c the admins' part
 *   analytics.c daily figures and unmatched questions (analytics.h)
 *   serve.c     start-up, signals, intent reloads, graceful stop
 *   intents_live.c  intent reloads (SIGHUP, admin API, directory watcher)
 *   citizens.c  one citizen's data: export and erasure
 * Everything here is touched only on the loop thread, except the intent
 * snapshot, which a pool thread builds and the loop thread swaps in.
 */
#ifndef CG_GATEWAY_H
#define CG_GATEWAY_H

#include <uv.h>
#include "civicgate/intents.h"
#include "civicgate/connector.h"
#include "config.h"

typedef struct cg_store cg_store;
typedef struct cg_http cg_http;
typedef struct cg_pipeline cg_pipeline;
typedef struct cg_outbox cg_outbox;
typedef struct cg_agents cg_agents;
typedef struct cg_intents_live cg_intents_live;

typedef struct cg_gateway {
    uv_loop_t *loop;
    cg_config *cfg;
    cg_intents *intents;        /* current snapshot (ref held); swap on the loop thread only */
    char instance[40];          /* unique consumer name of this process in Redis groups */
    cg_store *store;
    cg_http *http;
    cg_pipeline *pipeline;
    cg_outbox *outbox;
    cg_agents *agents;          /* agents.h: the hand-off queue and the console */
    cg_intents_live *live;      /* intents_live.h: reloads, watcher, what is loaded */
    int stopping;
} cg_gateway;

/* ---- store.c: Redis --------------------------------------------------- */

/* Connect (async, reconnecting with backoff). NULL on allocation failure. */
cg_store *cg_store_new(cg_gateway *gw);
/* 1 when the connection is up and answered its last command. */
int cg_store_ready(const cg_store *s);
/* How many times a command connection has come up (its handshake done).
 * A command on a connection that drops gets no answer, though Redis may
 * have run it: a stream read (XREADGROUP) whose answer was lost that way
 * (Redis stopped right after running it) left its entries pending with
 * this consumer, where only XAUTOCLAIM would find them, after
 * claim_idle_ms (30 s). So the pipeline and the outbox read their own
 * pending entries again ("0") when this changes. */
unsigned cg_store_epoch(const cg_store *s);
typedef void (*cg_store_done_cb)(cg_err result, void *ud);
/*
 * Dedupe and append msgs (all from one webhook) to the inbox stream in ONE
 * round trip (a Lua script). cb gets CG_OK once Redis has stored them (the
 * duplicates are skipped and counted), CG_E_UNAVAILABLE when Redis is
 * unreachable. msgs are copied before return.
 */
void cg_store_ingest(cg_store *s, const cg_msg *msgs, size_t n, cg_store_done_cb cb, void *ud);
/* Web chat: frames for users whose socket may be on this instance. */
typedef void (*cg_webchat_push_cb)(const char *user, const char *frame_json, size_t len, void *ud);
void cg_store_on_webchat(cg_store *s, cg_webchat_push_cb cb, void *ud);
/* Last max transcript entries of a conversation as a JSON array
 * ([{"dir":"in"|"out","text":...,"buttons":[...],"ts":...}]); NULL on error. */
typedef void (*cg_store_json_cb)(const char *json, size_t len, void *ud);
void cg_store_history(cg_store *s, const char *channel, const char *user, size_t max,
                      cg_store_json_cb cb, void *ud);
/* Disconnect when pending replies have arrived; done is called once. */
void cg_store_close(cg_store *s, void (*done)(void *ud), void *ud);

/* ---- pipeline.c and outbox.c ------------------------------------------ */
cg_pipeline *cg_pipeline_start(cg_gateway *gw);
void cg_pipeline_stop(cg_pipeline *p, void (*done)(void *ud), void *ud);
/* Entries started from the ingest's load (no load round trip of their own). */
unsigned long cg_pipeline_preloaded(const cg_pipeline *p);
/* Messages committed in the step that stored them (the direct commit, pipeline.c). */
unsigned long cg_pipeline_direct(const cg_pipeline *p);
/* Committed messages whose daily counters are summed, not yet written (analytics.h). */
size_t cg_pipeline_analytics_pending(const cg_pipeline *p);
cg_outbox *cg_outbox_start(cg_gateway *gw);
void cg_outbox_stop(cg_outbox *o, void (*done)(void *ud), void *ud);

/* ---- http.c ----------------------------------------------------------- */
cg_http *cg_http_start(cg_gateway *gw, char *err, size_t errcap);
/* Stop accepting; existing requests finish. */
void cg_http_stop_accepting(cg_http *h);
/* HTTP requests accepted but not yet answered in full, plus, once stopping,
 * web-chat sockets not yet closed (serve.c waits for 0, bounded by
 * shutdown_grace_ms, before cg_http_free during a graceful stop). */
size_t cg_http_inflight(const cg_http *h);
void cg_http_free(cg_http *h);
/* After uv_run() returned following cg_http_free(): completes the lws
 * context's destruction (on a foreign loop lws needs a second call once the
 * loop has closed its handles). Then run the loop once more. */
void cg_http_final(void);

/* ---- serve.c ---------------------------------------------------------- */
int cg_serve_main(int argc, char **argv);
/* Ready: Redis up and intents loaded. */
int cg_gateway_ready(const cg_gateway *gw);

/* ---- intents_dir.c: the I/O side of the intent engine ------------------ */
/* Read every *.json under dir (recursively, sorted, each ≤ CG_MAX_FILE_BYTES)
 * and build a snapshot. Returns 0 or -1; diagnostics in d. */
int cg_intents_load_dir(const char *dir, const cg_build_opts *opts, cg_intents **out, cg_diags *d);

#endif
