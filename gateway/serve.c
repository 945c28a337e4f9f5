/*
 * serve.c: `civicgate serve`: start-up, signals, intent reloads, graceful stop.
 *
 * Start (any failure exits before the loop runs):
 *   arguments → config (exit 2 on error, message names the key) → logging →
 *   intent table (exit 1 with its diagnostics when invalid) → instance name →
 *   libcurl → uv loop → store (Redis, async, reconnecting) → HTTP server
 *   (exit 1 when it cannot listen) → pipeline → outbox → agents → signal handlers →
 *   "listening" logged → uv_run.
 *
 * SIGHUP: cg_intents_live_reload() (intents_live.c, which also serves the
 * admin API's reloads and the directory watcher): the intent directory is
 * loaded again on the libuv thread pool; back on the loop thread the new
 * snapshot replaces gw->intents (the old one is unreferenced, so a message
 * being answered keeps the table it started with) or, when the new table has
 * errors, every diagnostic is logged and the old table stays. A SIGHUP during
 * a reload schedules one more reload.
 *
 * SIGTERM / SIGINT, in order: stop accepting connections (the listen socket
 * closes; requests in flight continue) → pipeline and outbox finish their
 * in-flight work (bounded by shutdown_grace_ms) → the store closes once its
 * pending replies arrived → the HTTP requests still answering finish → the
 * lws context is destroyed → handles closed → exit 0. If that takes longer
 * than shutdown_grace_ms + STOP_SLACK_MS the process exits 1 without the
 * remaining cleanup. A second signal during the stop exits 1 at once.
 */
#include <curl/curl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "agents.h"
#include "intents_live.h"
#include "log.h"
#include "metrics.h"

#define STOP_SLACK_MS   3000    /* beyond shutdown_grace_ms before giving up */
#define DRAIN_POLL_MS   20

typedef struct serve {
    cg_gateway gw;
    cg_config cfg;
    uv_loop_t loop;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t stop_timer;       /* deadline of the graceful stop */
    uv_timer_t drain_timer;      /* polls cg_http_inflight() */
    int handles_open;
    int stops_pending;           /* pipeline + outbox done callbacks due */
    int finished;                /* cleanup reached */
    int exit_code;
    uint64_t stop_started;
} serve;

static const char serve_usage[] =
    "usage: civicgate serve [--config FILE]\n"
    "  --config FILE   JSON configuration (docs/configuration.md); without it the\n"
    "                  defaults apply (127.0.0.1:8080, redis://127.0.0.1:6379/0,\n"
    "                  intents from ./intents). Secrets may come from CIVICGATE_*\n"
    "                  environment variables.\n";

/* ---- stop --------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    serve *s = h->data;
    s->handles_open--;
}

static void close_handle(serve *s, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = s;
        uv_close(h, handle_closed);
    }
}

static void finish(serve *s)
{
    if (s->finished) return;
    s->finished = 1;
    /* lws first: a deprecated context signals the process when it empties */
    cg_http_free(s->gw.http);
    s->gw.http = NULL;
    cg_intents_live_stop(s->gw.live);
    s->gw.live = NULL;
    uv_timer_stop(&s->drain_timer);
    uv_timer_stop(&s->stop_timer);
    close_handle(s, (uv_handle_t *)&s->drain_timer);
    close_handle(s, (uv_handle_t *)&s->stop_timer);
    close_handle(s, (uv_handle_t *)&s->sig_term);
    close_handle(s, (uv_handle_t *)&s->sig_int);
    close_handle(s, (uv_handle_t *)&s->sig_hup);
    cg_log(CG_LOG_INFO, "stopped", NULL);
}

static void drain_poll(uv_timer_t *t)
{
    serve *s = t->data;
    if (cg_http_inflight(s->gw.http) == 0 ||
        uv_now(&s->loop) - s->stop_started >= (uint64_t)s->cfg.shutdown_grace_ms) {
        if (cg_http_inflight(s->gw.http)) cg_log(CG_LOG_WARN, "stop_drain_incomplete", NULL);
        finish(s);
    }
}

static void store_closed(void *ud)
{
    serve *s = ud;
    s->gw.store = NULL;
    if (cg_http_inflight(s->gw.http) == 0 || !s->gw.stopping) {
        finish(s);
        return;
    }
    uv_timer_start(&s->drain_timer, drain_poll, DRAIN_POLL_MS, DRAIN_POLL_MS);
}

static void part_stopped(void *ud)
{
    serve *s = ud;
    if (--s->stops_pending > 0) return;
    s->gw.pipeline = NULL;
    s->gw.outbox = NULL;
    s->gw.agents = NULL;
    if (s->gw.store) cg_store_close(s->gw.store, store_closed, s);
    else store_closed(s);
}

static void stop_deadline(uv_timer_t *t)
{
    serve *s = t->data;
    cg_log(CG_LOG_ERROR, "stop_timeout", "reason", "in-flight work did not finish in time", NULL);
    s->exit_code = 1;
    uv_stop(&s->loop);
}

static void stop_begin(serve *s, const char *why)
{
    if (s->gw.stopping) {
        cg_log(CG_LOG_WARN, "stop_forced", "signal", why, NULL);
        _exit(1);
    }
    s->gw.stopping = 1;
    s->stop_started = uv_now(&s->loop);
    cg_log(CG_LOG_INFO, "stopping", "signal", why, NULL);
    cg_http_stop_accepting(s->gw.http);
    uv_timer_start(&s->stop_timer, stop_deadline, (uint64_t)s->cfg.shutdown_grace_ms + STOP_SLACK_MS, 0);
    s->stops_pending = 1;   /* held until both stops are requested */
    if (s->gw.pipeline) {
        s->stops_pending++;
        cg_pipeline_stop(s->gw.pipeline, part_stopped, s);
    }
    if (s->gw.outbox) {
        s->stops_pending++;
        cg_outbox_stop(s->gw.outbox, part_stopped, s);
    }
    if (s->gw.agents) {
        s->stops_pending++;
        cg_agents_stop(s->gw.agents, part_stopped, s);
    }
    part_stopped(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    serve *s = h->data;
    if (signum == SIGHUP) {
        if (!s->gw.stopping) cg_intents_live_reload(s->gw.live, "sighup", NULL, NULL);
        return;
    }
    /* lws raises SIGINT itself when a deprecated context (listen socket
     * closed by cg_http_stop_accepting) has no connection left: that one is
     * not a second request to stop */
    if (s->gw.stopping && signum == SIGINT && cg_http_inflight(s->gw.http) == 0) return;
    stop_begin(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start -------------------------------------------------------------- */

static void make_instance(char *out, size_t cap)
{
    char host[64] = "host";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++) {
        if (*p == '.') { *p = '\0'; break; }
    }
    host[20] = '\0';
    unsigned char r[3];
    randombytes_buf(r, sizeof r);
    snprintf(out, cap, "%s-%ld-%02x%02x%02x", host, (long)getpid(), r[0], r[1], r[2]);
}

static void warn_partial_channels(const cg_config *c)
{
    const cg_channel_cfg *chs[] = {&c->telegram, &c->whatsapp, &c->messenger};
    for (size_t i = 0; i < 3; i++) {
        const cg_channel_cfg *ch = chs[i];
        int any = ch->token || ch->secret || ch->verify_token || ch->phone_number_id;
        if (ch->enabled) cg_log(CG_LOG_INFO, "channel_enabled", "channel", ch->name, NULL);
        else if (any)
            cg_log(CG_LOG_WARN, "channel_disabled", "channel", ch->name, "reason",
                   "some of its secrets are missing (docs/configuration.md)", NULL);
    }
    cg_log(CG_LOG_INFO, c->webchat_enabled ? "channel_enabled" : "channel_disabled", "channel", "webchat", NULL);
}

int cg_serve_main(int argc, char **argv)
{
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            config_path = argv[i] + 9;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(serve_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "civicgate serve: unexpected argument '%s'\n%s", argv[i], serve_usage);
            return 2;
        }
    }

    serve *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "civicgate: out of memory\n");
        return 1;
    }
    char err[512];
    cg_config_defaults(&s->cfg);
    int rc = config_path ? cg_config_load(&s->cfg, config_path, err, sizeof err)
                         : cg_config_parse(&s->cfg, "{}", 2, "(defaults)", err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "civicgate: configuration error: %s\n", err);
        cg_config_free(&s->cfg);
        free(s);
        return 2;
    }
    cg_log_init(cg_log_level_parse(s->cfg.log_level), s->cfg.log_debug_content);
    if (sodium_init() < 0) {
        cg_log(CG_LOG_ERROR, "start_failed", "reason", "libsodium initialisation failed", NULL);
        cg_config_free(&s->cfg);
        free(s);
        return 1;
    }
    if (s->cfg.log_debug_content)
        cg_log(CG_LOG_WARN, "debug_content", "msg", "log.debug_content is on: citizens' ids and texts are logged",
               NULL);

    /* the intent table, before anything listens */
    char today[11];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(today, sizeof today, "%Y-%m-%d", &tm);
    cg_build_opts opts = {.today = today};   /* warnings for answers past their review date */
    cg_diags d = {0};
    cg_intents *intents = NULL;
    if (cg_intents_load_dir(s->cfg.intents_dir, &opts, &intents, &d) < 0 || !intents) {
        cg_diags_print(&d, stderr);
        cg_log(CG_LOG_ERROR, "start_failed", "reason", "the intent table has errors", "dir", s->cfg.intents_dir,
               NULL);
        cg_diags_free(&d);
        if (intents) cg_intents_unref(intents);
        cg_config_free(&s->cfg);
        free(s);
        return 1;
    }
    cg_intents_live_log_diags(&d);
    cg_metrics_intent_reload(1);
    char nint[32];
    snprintf(nint, sizeof nint, "%zu", intents->nintents);
    cg_log(CG_LOG_INFO, "intents_loaded", "dir", s->cfg.intents_dir, "intents", nint, NULL);

    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cg_log(CG_LOG_ERROR, "start_failed", "reason", "libcurl initialisation failed", NULL);
        cg_diags_free(&d);
        cg_intents_unref(intents);
        cg_config_free(&s->cfg);
        free(s);
        return 1;
    }
    uv_loop_init(&s->loop);
    cg_gateway *gw = &s->gw;
    gw->loop = &s->loop;
    gw->cfg = &s->cfg;
    gw->intents = intents;
    make_instance(gw->instance, sizeof gw->instance);
    s->exit_code = 0;
    gw->live = cg_intents_live_start(gw, &d);   /* its handles close in finish() */
    cg_diags_free(&d);

    uv_timer_init(&s->loop, &s->stop_timer);
    uv_timer_init(&s->loop, &s->drain_timer);
    s->stop_timer.data = s->drain_timer.data = s;
    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    uv_signal_init(&s->loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    s->handles_open = 5;

    gw->store = cg_store_new(gw);
    if (!gw->store) {
        cg_log(CG_LOG_ERROR, "start_failed", "reason", "cannot create the Redis client", NULL);
        s->exit_code = 1;
        s->gw.stopping = 1;
        finish(s);
    } else {
        gw->http = cg_http_start(gw, err, sizeof err);
        if (!gw->http) {
            cg_log(CG_LOG_ERROR, "start_failed", "reason", err, NULL);
            s->exit_code = 1;
            s->gw.stopping = 1;
            s->stops_pending = 1;
            part_stopped(s);   /* closes the store, then finish() */
        } else {
            gw->pipeline = cg_pipeline_start(gw);
            gw->outbox = cg_outbox_start(gw);
            gw->agents = gw->pipeline && gw->outbox ? cg_agents_start(gw) : NULL;
            if (!gw->pipeline || !gw->outbox || !gw->agents) {
                cg_log(CG_LOG_ERROR, "start_failed", "reason", "cannot start the pipeline, the outbox or the agents' module", NULL);
                s->exit_code = 1;
                stop_begin(s, "start failure");
            } else {
                uv_signal_start(&s->sig_term, on_signal, SIGTERM);
                uv_signal_start(&s->sig_int, on_signal, SIGINT);
                uv_signal_start(&s->sig_hup, on_signal, SIGHUP);
                char port[16];
                snprintf(port, sizeof port, "%d", s->cfg.listen_port);
                warn_partial_channels(&s->cfg);
                cg_log(CG_LOG_INFO, "listening", "address", s->cfg.listen_address, "port", port, "instance",
                       gw->instance, "redis", cg_store_ready(gw->store) ? "up" : "connecting", NULL);
            }
        }
    }

    uv_run(&s->loop, UV_RUN_DEFAULT);

    int code = s->exit_code;
    if (s->finished && s->handles_open == 0) {
        /* the loop closed lws's handles: let lws free the rest */
        cg_http_final();
        uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0) cg_log(CG_LOG_WARN, "loop_not_empty", NULL);
        if (gw->intents) cg_intents_unref(gw->intents);
        gw->intents = NULL;
        curl_global_cleanup();
        cg_config_free(&s->cfg);
        free(s);
    } else if (!code) {
        code = 1;
    }
    return code;
}

int cg_gateway_ready(const cg_gateway *gw)
{
    return gw && !gw->stopping && gw->store && cg_store_ready(gw->store) && gw->intents;
}
