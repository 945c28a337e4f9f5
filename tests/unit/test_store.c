/*
 * test_store.c: the durable message path against a real redis-server.
 *
 * Starts redis-server on a free loopback port (no persistence, temp dir),
 * drives store.c / pipeline.c / outbox.c on a uv loop, and checks the result
 * with a synchronous hiredis client. The outbox talks to a tiny HTTP server
 * in this file (on the same loop) that answers each chat with a scripted
 * list of Telegram Bot API responses.
 *
 *   ingest        stored once, second time deduplicated; seq numbers;
 *                 NOSCRIPT answered by the same command as EVAL
 *   ingest down   CG_E_UNAVAILABLE when Redis is not there
 *   history       transcript → widget JSON, oldest first
 *   webchat       pub/sub frames reach the registered callback
 *   pipeline      inbox entry → session + transcript + outbox entry, in order;
 *                 a re-delivered entry is only acknowledged; an entry whose
 *                 predecessor is not committed waits for it
 *   outbox        200 → acked; 429 retry_after → not retried sooner;
 *                 500 → retried; 403 blocked → session blocked, no dead
 *                 letter; 400 → dead letter; two parts, the second
 *                 retried without resending the first; an agent's reply
 *                 (cg_store_send_reply); webchat → PUBLISH
 *   buttons       each reply's own buttons reach the Bot API through the
 *                 outbox's cache of parsed buttons (more sets than slots,
 *                 a set too long to cache, JSON that is not buttons)
 *   gaps          a missing predecessor is given up on after the (shortened)
 *                 gap timeout; a late one is processed / delivered once
 *   concurrent    two conversations in flight at once (MONITOR shows both
 *                 loads before a commit), each one's entries strictly in order
 *   flows         a finished "report-problem" flow's answers in cg:flows
 *   TTLs          the commit's EXPIREs once per slack, not per message; a
 *                 key it creates (after an erasure, a deleted key) gets one
 *   analytics     the committed messages' daily counters and conversations
 *                 (a duplicate not counted), the redacted unmatched
 *                 question; cg_analytics_record_case(); the counters'
 *                 batch: sums, one script call, bounds, Redis down
 *   recovery      an entry left pending by a dead consumer is claimed;
 *                 Redis restarted under the store: 503, then reconnected
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "analytics.h"
#include "gateway.h"
#include "store.h"
#include "agents.h"
#include "citizens.h"
#include "log.h"
#include "metrics.h"

static pid_t redis_pid;
static int redis_port;
static char redis_dir[64];
static redisContext *rc;      /* synchronous checker */
static uv_loop_t loop;
static cg_config cfg;
static cg_gateway gw;
static char url[64];

/* ---- helpers ----------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    getsockname(fd, (struct sockaddr *)&a, &l);
    int p = ntohs(a.sin_port);
    close(fd);
    return p;
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static long long cmd_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                : r->type == REDIS_REPLY_STRING  ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* HGET key field as a string into buf ("" when absent). */
static const char *hget(char *buf, size_t cap, const char *key, const char *field)
{
    redisReply *r = cmd("HGET %s %s", key, field);
    snprintf(buf, cap, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return buf;
}

typedef int (*cond_fn)(void *ud);
typedef struct waiter { cond_fn fn; void *ud; int met; uint64_t deadline; } waiter;

static void wait_tick(uv_timer_t *t)
{
    waiter *w = t->data;
    if (w->fn(w->ud)) {
        w->met = 1;
        uv_stop(&loop);
    } else if (uv_now(&loop) >= w->deadline) {
        uv_stop(&loop);
    }
}

/* Run the loop until fn(ud) holds or timeout_ms passes; returns fn's result. */
static int run_until(cond_fn fn, void *ud, unsigned timeout_ms)
{
    waiter w = { fn, ud, 0, 0 };
    uv_timer_t t;
    uv_update_time(&loop);
    w.deadline = uv_now(&loop) + timeout_ms;
    uv_timer_init(&loop, &t);
    t.data = &w;
    uv_timer_start(&t, wait_tick, 5, 5);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return w.met;
}

static int never(void *ud) { (void)ud; return 0; }
static void run_for(unsigned ms) { run_until(never, NULL, ms); }

static int store_ready(void *ud) { return cg_store_ready(ud); }

/* condition: "cmd_int(fmt) == want" */
typedef struct int_cond { const char *q; long long want; } int_cond;
static int int_is(void *ud)
{
    int_cond *c = ud;
    return cmd_int(c->q) == c->want;
}

static int wait_int(const char *q, long long want, unsigned ms)
{
    int_cond c = { q, want };
    return run_until(int_is, &c, ms);
}

/* port 0: a free one */
static void start_redis(int port_want)
{
    snprintf(redis_dir, sizeof redis_dir, "/tmp/cg-test-redis-XXXXXX");
    assert_non_null(mkdtemp(redis_dir));
    redis_port = port_want ? port_want : free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int nul = open("/dev/null", 1);
        if (nul >= 0) dup2(nul, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", redis_dir,
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        rc = redisConnect("127.0.0.1", redis_port);
        if (rc && !rc->err) {
            redisReply *r = redisCommand(rc, "PING");
            if (r) {
                freeReplyObject(r);
                return;
            }
        }
        if (rc) redisFree(rc);
        rc = NULL;
        usleep(25000);
    }
    fail_msg("redis-server did not start");
}

static void stop_redis(void)
{
    if (rc) redisFree(rc);
    rc = NULL;
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/dump.rdb", redis_dir);
    unlink(path);
    rmdir(redis_dir);
}

static void store_closed(void *ud) { *(int *)ud = 1; }
static int flag_set(void *ud) { return *(int *)ud; }

static void close_store(cg_store *s)
{
    int done = 0;
    cg_store_close(s, store_closed, &done);
    assert_true(run_until(flag_set, &done, 3000));
}

/* ---- fake Telegram ------------------------------------------------------ */

typedef struct script {
    const char *chat;              /* chat id the requests carry */
    int status[4];
    const char *body[4];
    int n, next;
    uint64_t at[8];                /* uv_now of each request */
    int count;
    char last_path[128];
    char last_body[4096];          /* the last request's body, cut to fit */
} script;

static script *scripts;
static size_t nscripts;
static int sent_once(void *ud) { return ((script *)ud)->count > 0; }
static uv_tcp_t http_server;
static int http_port;
/* keep-alive mode: answers without "Connection: close" and reads the next
 * request on the connection; http_accepts counts connections */
static int http_keepalive, http_accepts;

typedef struct hconn {
    uv_tcp_t tcp;
    char buf[65536];
    size_t len;
    int answered, closing;
    struct hconn *next;          /* hconns: open connections */
} hconn;

static hconn *hconns;

static void hconn_closed(uv_handle_t *h)
{
    hconn *c = h->data;
    for (hconn **pp = &hconns; *pp; pp = &(*pp)->next)
        if (*pp == c) { *pp = c->next; break; }
    free(c);
}

static void hconn_close(hconn *c)
{
    if (c->closing) return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, hconn_closed);
}

/* The fake API closes its idle keep-alive connections (as a server's idle
 * timeout does). */
static void http_close_idle(void)
{
    for (hconn *c = hconns; c; c = c->next)
        if (c->len == 0) hconn_close(c);
}

static void h_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b);
static void h_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

static void write_done(uv_write_t *w, int status)
{
    (void)status;
    hconn *c = w->data;
    free(w);
    if (!http_keepalive) {
        hconn_close(c);
        return;
    }
    c->len = 0;
    c->answered = 0;
    uv_read_start((uv_stream_t *)&c->tcp, h_alloc, h_read);
}

static void respond(hconn *c)
{
    const char *hdr_end = strstr(c->buf, "\r\n\r\n");
    const char *body = hdr_end + 4;
    script *s = NULL;
    for (size_t i = 0; i < nscripts; i++)
        if (strstr(body, scripts[i].chat)) s = &scripts[i];
    int status = 500;
    const char *rbody = "{\"ok\":false,\"error_code\":500,\"description\":\"no script\"}";
    if (s) {
        if (s->count < 8) s->at[s->count] = uv_now(&loop);
        s->count++;
        sscanf(c->buf, "POST %127s", s->last_path);
        snprintf(s->last_body, sizeof s->last_body, "%s", body);
        int k = s->next < s->n ? s->next++ : s->n - 1;
        status = s->status[k];
        rbody = s->body[k];
    }
    static char out[4096];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "%s\r\n%s", status, strlen(rbody), http_keepalive ? "" : "Connection: close\r\n", rbody);
    uv_write_t *w = malloc(sizeof *w);
    w->data = c;
    uv_buf_t b = uv_buf_init(out, (unsigned)n);
    c->answered = 1;
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, write_done);
}

static void h_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    hconn *c = h->data;
    (void)sz;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void h_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    hconn *c = st->data;
    (void)b;
    if (n < 0) {
        if (!c->answered || http_keepalive) hconn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    const char *e = strstr(c->buf, "\r\n\r\n");
    if (!e || c->answered) return;
    const char *cl = strstr(c->buf, "Content-Length:");
    size_t want = cl ? (size_t)atol(cl + 15) : 0;
    if (c->len >= (size_t)(e + 4 - c->buf) + want) {
        uv_read_stop(st);
        respond(c);
    }
}

static void h_conn(uv_stream_t *srv, int status)
{
    if (status < 0) return;
    hconn *c = calloc(1, sizeof *c);
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    c->next = hconns;
    hconns = c;
    http_accepts++;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) == 0) uv_read_start((uv_stream_t *)&c->tcp, h_alloc, h_read);
    else hconn_close(c);
}

static void start_http(void)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &http_server);
    assert_int_equal(uv_tcp_bind(&http_server, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&http_server, 64, h_conn), 0);
    int l = sizeof a;
    uv_tcp_getsockname(&http_server, (struct sockaddr *)&a, &l);
    http_port = ntohs(a.sin_port);
}

/* ---- fixture ------------------------------------------------------------ */

static char api_base[64];

static int setup(void **state)
{
    (void)state;
    start_redis(0);
    uv_loop_init(&loop);
    cg_log_init(getenv("CG_TEST_LOG") ? CG_LOG_DEBUG : CG_LOG_ERROR, 0);
    cg_config_defaults(&cfg);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", redis_port);
    free(cfg.redis_url);
    cfg.redis_url = strdup(url);
    cfg.shutdown_grace_ms = 1000;
    cfg.outbox_timeout_ms = 3000;
    start_http();
    snprintf(api_base, sizeof api_base, "http://127.0.0.1:%d", http_port);
    cfg.telegram.enabled = 1;
    cfg.telegram.token = "123:TEST";
    cfg.telegram.api_base = api_base;
    memset(&gw, 0, sizeof gw);
    gw.loop = &loop;
    gw.cfg = &cfg;
    snprintf(gw.instance, sizeof gw.instance, "test-%d", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&http_server, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cg_config_free(&cfg);
    uv_loop_close(&loop);
    stop_redis();
    return 0;
}

static cg_msg text_msg(const char *user, const char *id, const char *text)
{
    cg_msg m;
    memset(&m, 0, sizeof m);
    m.kind = CG_MSG_TEXT;
    snprintf(m.channel, sizeof m.channel, "telegram");
    snprintf(m.user, sizeof m.user, "%s", user);
    snprintf(m.msg_id, sizeof m.msg_id, "%s", id);
    m.text = (char *)text;      /* borrowed: ingest copies */
    m.ts = 1764190000;
    return m;
}

typedef struct ingest_res { int called; cg_err err; } ingest_res;
static void ingest_cb(cg_err e, void *ud)
{
    ingest_res *r = ud;
    r->called = 1;
    r->err = e;
}
static int ingest_called(void *ud) { return ((ingest_res *)ud)->called; }

static cg_err ingest(cg_store *s, const cg_msg *m, size_t n)
{
    ingest_res r = { 0, CG_OK };
    cg_store_ingest(s, m, n, ingest_cb, &r);
    assert_true(run_until(ingest_called, &r, 5000));
    return r.err;
}

typedef struct erase_res { int called; cg_err err; size_t n; } erase_res;
static void erase_cb(cg_err e, size_t n, void *ud)
{
    erase_res *r = ud;
    r->called = 1;
    r->err = e;
    r->n = n;
}
static int erase_called(void *ud) { return ((erase_res *)ud)->called; }

/* ---- store -------------------------------------------------------------- */

/* A store on the fixture's Redis, connected (the caller flushes first if
 * it wants an empty one); close_store() when done. */
static cg_store *store_up(void)
{
    cg_store *s = cg_store_new(&gw);
    assert_non_null(s);
    assert_true(run_until(store_ready, s, 3000));
    return s;
}

static void test_ingest_dedupe(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    cg_store *s = store_up();

    cg_msg m[2] = { text_msg("501", "m1", "hello"), text_msg("501", "m2", "second") };
    freeReplyObject(cmd("SCRIPT FLUSH"));
    freeReplyObject(cmd("CONFIG RESETSTAT"));
    /* a new connection loads the script first: the ingest is ONE round trip
     * (EVALSHA), not a NOSCRIPT and an EVAL */
    close_store(s);
    s = cg_store_new(&gw);
    assert_true(run_until(store_ready, s, 3000));
    assert_int_equal(ingest(s, m, 2), CG_OK);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 2);
    redisReply *st = cmd("INFO commandstats");
    assert_non_null(strstr(st->str, "cmdstat_evalsha:calls=1,"));
    assert_null(strstr(st->str, "cmdstat_eval:"));
    freeReplyObject(st);
    char b[64];
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:501}", "in"), "2");
    assert_true(cmd_int("TTL cg:dedupe:{telegram:501}:m1") > 0);

    /* the platform retries the same webhook: nothing new */
    assert_int_equal(ingest(s, m, 2), CG_OK);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 2);
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:501}", "in"), "2");

    /* one new, one known */
    cg_msg m3[2] = { text_msg("501", "m2", "second"), text_msg("501", "m3", "third") };
    assert_int_equal(ingest(s, m3, 2), CG_OK);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 3);

    /* the stored fields */
    redisReply *r = cmd("XRANGE cg:inbox - + COUNT 1");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    const redisReply *f = r->element[0]->element[1];
    assert_string_equal(cg_store_field_str(f, "text", b, sizeof b), "hello");
    assert_string_equal(cg_store_field_str(f, "kind", b, sizeof b), "text");
    assert_string_equal(cg_store_field_str(f, "seq", b, sizeof b), "1");
    assert_true(cg_store_field_i64(f, "received_at") > 1700000000000LL);
    freeReplyObject(r);

    /* scripts flushed under a live connection (failover to a replica that
     * never loaded them): the EVALSHA gets NOSCRIPT and the same command is
     * sent once as EVAL, with the same arguments */
    freeReplyObject(cmd("SCRIPT FLUSH"));
    freeReplyObject(cmd("CONFIG RESETSTAT"));
    cg_msg m4 = text_msg("501", "m4", "fourth, after a flush");
    assert_int_equal(ingest(s, &m4, 1), CG_OK);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 4);
    st = cmd("INFO commandstats");
    assert_non_null(strstr(st->str, "cmdstat_eval:calls=1,"));
    freeReplyObject(st);
    r = cmd("XREVRANGE cg:inbox + - COUNT 1");
    f = r->element[0]->element[1];
    assert_string_equal(cg_store_field_str(f, "text", b, sizeof b), "fourth, after a flush");
    assert_string_equal(cg_store_field_str(f, "seq", b, sizeof b), "4");
    assert_string_equal(cg_store_field_str(f, "msg_id", b, sizeof b), "m4");
    freeReplyObject(r);
    close_store(s);
}

/* A script that fails after its dedupe SET (here a cg:seq key of the wrong
 * type: WRONGTYPE on its HINCRBY; Redis keeps a script's writes made
 * before an error) takes the dedupe key back: the webhook's 503 makes the
 * platform send it again, and the retry must be stored, not skipped as a
 * duplicate of a message that never was. */
static void test_ingest_error_after_dedupe(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    cg_store *s = store_up();
    freeReplyObject(cmd("SET cg:seq:{telegram:504} broken"));
    cg_msg m = text_msg("504", "e1", "hello");
    assert_int_not_equal(ingest(s, &m, 1), CG_OK);
    assert_int_equal(cmd_int("EXISTS cg:dedupe:{telegram:504}:e1"), 0);
    assert_int_equal(cmd_int("EXISTS cg:inbox"), 0);
    freeReplyObject(cmd("DEL cg:seq:{telegram:504}"));
    assert_int_equal(ingest(s, &m, 1), CG_OK);               /* the platform's retry */
    assert_int_equal(cmd_int("XLEN cg:inbox"), 1);
    assert_int_equal(cmd_int("EXISTS cg:dedupe:{telegram:504}:e1"), 1);
    assert_int_equal(ingest(s, &m, 1), CG_OK);               /* and now a duplicate */
    assert_int_equal(cmd_int("XLEN cg:inbox"), 1);
    close_store(s);
}

static void test_ingest_unavailable(void **state)
{
    (void)state;
    char bad[64];
    snprintf(bad, sizeof bad, "redis://127.0.0.1:%d/0", free_port());
    char *good = cfg.redis_url;
    cfg.redis_url = bad;
    cg_store *s = cg_store_new(&gw);
    cfg.redis_url = good;
    assert_non_null(s);
    run_for(100);
    assert_false(cg_store_ready(s));
    cg_msg m = text_msg("502", "x1", "hello");
    assert_int_equal(ingest(s, &m, 1), CG_E_UNAVAILABLE);
    close_store(s);
}

static void test_ingest_after_redis_restart(void **state)
{
    (void)state;
    cg_store *s = store_up();
    /* kill Redis under the store: ingest fails, then recovers on restart */
    stop_redis();
    run_for(200);
    cg_msg m = text_msg("503", "y1", "hello");
    assert_int_equal(ingest(s, &m, 1), CG_E_UNAVAILABLE);
    /* same port again: the store reconnects by itself */
    start_redis(redis_port);
    assert_true(run_until(store_ready, s, 8000));
    assert_int_equal(ingest(s, &m, 1), CG_OK);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 1);
    close_store(s);
}

/* The webhooks' ingest has a connection of its own: it is answered while
 * the main connection waits for a slow command (a BLPOP of 1 s here; in
 * production a burst of the pipeline's scripts), not after it. */
static int order_n;
static void blpop_done(cg_store *s, redisReply *r, void *ud)
{
    (void)s; (void)r;
    *(int *)ud = ++order_n;
}
typedef struct ordered_ingest { int at; cg_err err; } ordered_ingest;
static void ordered_ingest_cb(cg_err e, void *ud)
{
    ordered_ingest *o = ud;
    o->err = e;
    o->at = ++order_n;
}
static int both_done(void *ud)
{
    int **v = ud;
    return *v[0] && *v[1];
}
static int ingest_conn_named(void *ud)
{
    (void)ud;
    redisReply *r = cmd("CLIENT LIST");
    int found = r && r->type == REDIS_REPLY_STRING && strstr(r->str, ":ingest ") != NULL;
    freeReplyObject(r);
    return found;
}

static void test_ingest_not_behind_other_commands(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    cg_store *s = store_up();
    assert_true(run_until(ingest_conn_named, NULL, 3000));
    run_for(50);   /* its PING, sent right after the name, is answered */
    /* both connections are there, named after the instance */
    redisReply *cl = cmd("CLIENT LIST");
    char want[128];
    snprintf(want, sizeof want, "name=civicgate:%s:main ", gw.instance);
    assert_non_null(strstr(cl->str, want));
    snprintf(want, sizeof want, "name=civicgate:%s:ingest ", gw.instance);
    assert_non_null(strstr(cl->str, want));
    freeReplyObject(cl);

    order_n = 0;
    int blpop_at = 0;
    const char *av[] = { "BLPOP", "cg:test:nothing", "1" };
    assert_int_equal(cg_store_cmd(s, blpop_done, &blpop_at, 3, av, NULL), 0);
    ordered_ingest oi = { 0, CG_E_INTERNAL };
    cg_msg m = text_msg("504", "z1", "hello");
    cg_store_ingest(s, &m, 1, ordered_ingest_cb, &oi);
    int *v[] = { &blpop_at, &oi.at };
    assert_true(run_until(both_done, v, 5000));
    assert_int_equal(oi.err, CG_OK);
    assert_int_equal(oi.at, 1);        /* the ingest first ... */
    assert_int_equal(blpop_at, 2);     /* ... the main connection's BLPOP after its second */
    assert_int_equal(cmd_int("XLEN cg:inbox"), 1);
    close_store(s);
}

/* The ingest reads new entries for the pipeline in its own round trip when
 * a taker reserves room (cg_store_taker): they come back with the reply and
 * are pending with this instance's consumer; with no room reserved nothing
 * is read, and a reservation is given back either way. */
typedef struct taker_t {
    unsigned room, reserved_out, given_back, calls;
    size_t entries, loads;
    char id[64];
    char done[16], lang[8];     /* the last preload's (CG_STORE_LOAD_LUA) */
} taker_t;
static unsigned t_reserve(void *ud)
{
    taker_t *t = ud;
    t->reserved_out += t->room;
    return t->room;
}
static void t_take(void *ud, const redisReply *streams, const redisReply *loads, unsigned reserved)
{
    taker_t *t = ud;
    t->calls++;
    t->given_back += reserved;
    for (size_t i = 0; loads && i < loads->elements; i++) {
        const redisReply *l = loads->element[i];
        assert_int_equal(l->type, REDIS_REPLY_ARRAY);
        assert_int_equal(l->elements, CG_LOAD_FIELDS);
        t->loads++;
        snprintf(t->done, sizeof t->done, "%s", l->element[0]->str);
        snprintf(t->lang, sizeof t->lang, "%s", l->element[8]->str);
    }
    for (size_t i = 0; streams && i < streams->elements; i++) {
        const redisReply *st = streams->element[i];
        assert_int_equal(st->type, REDIS_REPLY_ARRAY);
        assert_int_equal(st->elements, 2);
        assert_string_equal(st->element[0]->str, "cg:inbox");
        for (size_t k = 0; k < st->element[1]->elements; k++) {
            t->entries++;
            snprintf(t->id, sizeof t->id, "%s", st->element[1]->element[k]->element[0]->str);
        }
    }
}

static void test_ingest_takes_for_the_pipeline(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    cg_store *s = store_up();
    redisReply *g = cmd("XGROUP CREATE %s %s 0 MKSTREAM", CG_K_INBOX, CG_G_PIPELINE);
    freeReplyObject(g);
    taker_t t = { .room = 4 };
    cg_store_taker tk = { .reserve = t_reserve, .take = t_take, .ud = &t };
    cg_store_set_taker(s, &tk);
    cmd_int("HSET cg:seq:{telegram:505} done 7");        /* its conversation, as loaded */
    cmd_int("HSET cg:sess:{telegram:505} lang es");
    cg_msg m = text_msg("505", "t1", "hello");
    assert_int_equal(ingest(s, &m, 1), CG_OK);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.given_back, t.reserved_out);
    assert_int_equal(t.entries, 1);
    /* with its conversation's load, read in the same step (the preload) */
    assert_int_equal(t.loads, 1);
    assert_string_equal(t.done, "7");
    assert_string_equal(t.lang, "es");
    /* pending with this instance, as if its pipeline had read it */
    redisReply *r = cmd("XPENDING %s %s - + 10 %s", CG_K_INBOX, CG_G_PIPELINE, gw.instance);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str, t.id);
    freeReplyObject(r);
    /* a duplicate appends nothing and reads nothing */
    assert_int_equal(ingest(s, &m, 1), CG_OK);
    assert_int_equal(t.calls, 2);
    assert_int_equal(t.entries, 1);
    /* no room: nothing is read, the entry waits for the pipeline's own read */
    t.room = 0;
    cg_msg m2 = text_msg("505", "t2", "again");
    assert_int_equal(ingest(s, &m2, 1), CG_OK);
    assert_int_equal(t.calls, 3);
    assert_int_equal(t.entries, 1);
    assert_int_equal(cmd_int("XLEN %s", CG_K_INBOX), 2);
    r = cmd("XPENDING %s %s - + 10", CG_K_INBOX, CG_G_PIPELINE);
    assert_int_equal(r->elements, 1);
    freeReplyObject(r);
    /* no group (a flushed Redis): the ingest still succeeds, reading nothing */
    cmd_int("FLUSHALL");
    t.room = 4;
    cg_msg m3 = text_msg("505", "t3", "once more");
    assert_int_equal(ingest(s, &m3, 1), CG_OK);
    assert_int_equal(t.entries, 1);
    assert_int_equal(t.given_back, t.reserved_out);
    cg_store_set_taker(s, NULL);
    close_store(s);
}

typedef struct hist { int called; char json[4096]; } hist;
static void hist_cb(const char *json, size_t len, void *ud)
{
    hist *h = ud;
    h->called = 1;
    snprintf(h->json, sizeof h->json, "%.*s", (int)len, json ? json : "NULL");
}
static int hist_called(void *ud) { return ((hist *)ud)->called; }

static void test_history(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    cmd_int("XADD cg:conv:{webchat:wc1} * dir in text first ts 1000");
    cmd_int("XADD cg:conv:{webchat:wc1} * dir note text escalated ts 1500");
    cmd_int("XADD cg:conv:{webchat:wc1} * dir out text second buttons %s ts 2000",
            "[{\"title\":\"Menu\",\"payload\":\"menu\"}]");
    cg_store *s = store_up();
    hist h = { 0 };
    cg_store_history(s, "webchat", "wc1", 10, hist_cb, &h);
    assert_true(run_until(hist_called, &h, 3000));
    assert_string_equal(h.json,
        "[{\"dir\":\"in\",\"text\":\"first\",\"buttons\":[],\"ts\":1000},"
        "{\"dir\":\"out\",\"text\":\"second\",\"buttons\":[{\"title\":\"Menu\",\"payload\":\"menu\"}],\"ts\":2000}]");
    /* max counts the newest entries */
    hist h2 = { 0 };
    cg_store_history(s, "webchat", "wc1", 1, hist_cb, &h2);
    assert_true(run_until(hist_called, &h2, 3000));
    assert_non_null(strstr(h2.json, "second"));
    assert_null(strstr(h2.json, "first"));
    close_store(s);
}

typedef struct push { int n; char user[64]; char frame[1024]; } push;
static void push_cb(const char *user, const char *frame, size_t len, void *ud)
{
    push *p = ud;
    p->n++;
    snprintf(p->user, sizeof p->user, "%s", user);
    snprintf(p->frame, sizeof p->frame, "%.*s", (int)len, frame);
}
static int pushed(void *ud) { return ((push *)ud)->n > 0; }

typedef struct pub_try { const char *msg; } pub_try;
static int publish_until_heard(void *ud)
{
    pub_try *t = ud;
    return cmd_int("PUBLISH cg:webchat %s", t->msg) > 0;
}

static void test_webchat_pubsub(void **state)
{
    (void)state;
    cg_store *s = cg_store_new(&gw);
    push p = { 0 };
    cg_store_on_webchat(s, push_cb, &p);
    pub_try t = { "{\"user\":\"wc9\",\"frame\":{\"type\":\"reply\",\"text\":\"hi\"}}" };
    assert_true(run_until(publish_until_heard, &t, 3000));
    assert_true(run_until(pushed, &p, 3000));
    assert_string_equal(p.user, "wc9");
    assert_string_equal(p.frame, "{\"type\":\"reply\",\"text\":\"hi\"}");
    /* hostile payloads are ignored, not crashed on */
    cmd_int("PUBLISH cg:webchat %s", "not json");
    cmd_int("PUBLISH cg:webchat %s", "{\"user\":5,\"frame\":{}}");
    run_for(100);
    assert_int_equal(p.n, 1);
    close_store(s);
}

/* ---- pipeline ----------------------------------------------------------- */

static cg_intents *load_fixture(void)
{
    cg_intents *t = NULL;
    cg_diags d = { 0 };
    cg_build_opts o = { 0 };
    int rc2 = cg_intents_load_dir("tests/fixtures/dialog", &o, &t, &d);
    if (rc2 != 0) cg_diags_print(&d, stderr);
    cg_diags_free(&d);
    assert_int_equal(rc2, 0);
    return t;
}

static void stopped(void *ud) { (*(int *)ud)++; }
static int two(void *ud) { return *(int *)ud >= 2; }
static int wait_n(int *n, int want) { (void)want; return run_until(two, n, 3000); }

/* Stops the pipeline, closes the store, drops the intents (the pipeline
 * tests' last step). */
/* A connection that has issued MONITOR: every command Redis runs from now
 * on comes to it as a status reply ("<time> [<db> <client>] "CMD" "arg"..."). */
static redisContext *monitor_open(void)
{
    redisContext *mon = redisConnect("127.0.0.1", redis_port);
    assert_non_null(mon);
    assert_int_equal(mon->err, 0);
    redisReply *r = redisCommand(mon, "MONITOR");
    assert_non_null(r);
    freeReplyObject(r);
    return mon;
}

/* The pipeline on the fixture's table and a fresh store (pipeline_down
 * stops both). */
static void pipeline_up(void)
{
    gw.intents = load_fixture();
    gw.store = cg_store_new(&gw);
    assert_true(run_until(store_ready, gw.store, 3000));
    gw.pipeline = cg_pipeline_start(&gw);
    assert_non_null(gw.pipeline);
}

static void pipeline_down(void)
{
    int n = 0;
    cg_pipeline_stop(gw.pipeline, stopped, &n);
    assert_true(run_until(flag_set, &n, 3000));
    gw.pipeline = NULL;
    close_store(gw.store);
    gw.store = NULL;
    cg_intents_unref(gw.intents);
    gw.intents = NULL;
}

/* The pipeline and the outbox on a fresh store, the fake Bot API answering
 * with the scripts sc; waits until the groups exist and the first reads are
 * done. pipeline_outbox_down() stops them and forgets the scripts. */
static void pipeline_outbox_up(script *sc, size_t n)
{
    scripts = sc;
    nscripts = n;
    pipeline_up();
    gw.outbox = cg_outbox_start(&gw);
    assert_non_null(gw.outbox);
    run_for(300);
}

static void pipeline_outbox_down(void)
{
    int n = 0;
    cg_outbox_stop(gw.outbox, stopped, &n);
    assert_true(run_until(flag_set, &n, 3000));
    gw.outbox = NULL;
    pipeline_down();
    scripts = NULL;
    nscripts = 0;
}

/* The transcript's last two citizen messages are newest, then before. */
static void assert_last_ins(const char *conv, const char *newest, const char *before)
{
    redisReply *r = cmd("XREVRANGE %s + - COUNT 10", conv);
    const char *ins[2] = { 0 };
    size_t ni = 0;
    for (size_t i = 0; i < r->elements && ni < 2; i++) {     /* newest first */
        const redisReply *f = r->element[i]->element[1];
        const redisReply *dir = cg_store_field(f, "dir");
        if (dir && strcmp(dir->str, "in") == 0) ins[ni++] = cg_store_field(f, "text")->str;
    }
    assert_int_equal(ni, 2);
    assert_string_equal(ins[0], newest);
    assert_string_equal(ins[1], before);
    freeReplyObject(r);
}

static void test_pipeline(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    pipeline_up();
    run_for(100);       /* its first read (what it held before) is done: the ingest may read for it */

    cg_msg m[3] = { text_msg("601", "a1", "hello"), text_msg("601", "a2", "how much is a passport"),
                    text_msg("601", "a3", "thanks") };
    assert_int_equal(ingest(gw.store, m, 3), CG_OK);
    assert_true(wait_int("XLEN cg:outbox", 3, 5000));
    /* the ingest read the three with their conversation's load: the first
     * started from it; the other two, read with it, loaded again in turn
     * (their preload was made before their predecessor's commit) */
    assert_int_equal(cg_pipeline_preloaded(gw.pipeline), 1);
    char b[256];
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:601}", "done"), "3");
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:601}", "out"), "3");
    assert_true(cmd_int("XLEN cg:conv:{telegram:601}") >= 6);
    assert_true(cmd_int("TTL cg:sess:{telegram:601}") > 0);
    assert_true(cmd_int("TTL cg:conv:{telegram:601}") > 0);
    assert_true(strlen(hget(b, sizeof b, "cg:sess:{telegram:601}", "dialog")) > 2);
    /* nothing left pending */
    redisReply *r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);

    /* outbox entries in order, seq 1..3, with the citizen's texts answered in order */
    r = cmd("XRANGE cg:outbox - +");
    assert_int_equal(r->elements, 3);
    for (size_t i = 0; i < 3; i++) {
        const redisReply *f = r->element[i]->element[1];
        assert_int_equal(cg_store_field_i64(f, "seq"), (long long)i + 1);
        /* only the first reply is next to deliver (sent = 0, no outbox
         * running): the commit marks it head, the outbox may skip begin */
        assert_string_equal(cg_store_field_str(f, "head", b, sizeof b), i == 0 ? "1" : "");
        assert_string_equal(cg_store_field_str(f, "user", b, sizeof b), "601");
        assert_true(strlen(cg_store_field_str(f, "text", b, sizeof b)) > 0);
        assert_true(cg_store_field_i64(f, "received_at") > 0);
    }
    freeReplyObject(r);
    /* transcript: in, out, in, out ... with the citizen's texts in order */
    r = cmd("XRANGE cg:conv:{telegram:601} - +");
    const char *want[] = { "hello", "how much is a passport", "thanks" };
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        if (strcmp(cg_store_field_str(f, "dir", b, sizeof b), "in") == 0) {
            assert_true(k < 3);
            assert_string_equal(cg_store_field_str(f, "text", b, sizeof b), want[k++]);
        }
    }
    assert_int_equal(k, 3);
    freeReplyObject(r);
    /* a reply's outbox entry and its transcript entry, written from one set
     * of arguments (op "reply"): the same text, buttons and language, each
     * entry with exactly its documented fields (docs/redis.md) */
    {
        redisReply *ob = cmd("XRANGE cg:outbox - +");
        redisReply *cv = cmd("XRANGE cg:conv:{telegram:601} - +");
        const redisReply *o2 = ob->element[1]->element[1], *c2 = NULL;
        for (size_t i = 0, outs = 0; i < cv->elements && !c2; i++) {
            const redisReply *f = cv->element[i]->element[1];
            if (strcmp(cg_store_field_str(f, "dir", b, sizeof b), "out") == 0 && ++outs == 2) c2 = f;
        }
        assert_non_null(c2);
        static const char *const ofields[] = { "seq", "channel", "user", "text", "buttons", "lang",
                                               "created_at", "received_at" };
        static const char *const cfields[] = { "dir", "text", "buttons", "lang", "intent", "ts" };
        assert_int_equal(o2->elements, 2 * (sizeof ofields / sizeof *ofields));
        for (size_t i = 0; i < sizeof ofields / sizeof *ofields; i++)
            assert_string_equal(o2->element[2 * i]->str, ofields[i]);
        assert_int_equal(c2->elements, 2 * (sizeof cfields / sizeof *cfields));
        for (size_t i = 0; i < sizeof cfields / sizeof *cfields; i++)
            assert_string_equal(c2->element[2 * i]->str, cfields[i]);
        static const char *const same[] = { "text", "buttons", "lang" };
        for (size_t i = 0; i < 3; i++) {
            char x[1024], y[1024];
            assert_string_equal(cg_store_field_str(o2, same[i], x, sizeof x),
                                cg_store_field_str(c2, same[i], y, sizeof y));
        }
        assert_string_equal(cg_store_field_str(o2, "channel", b, sizeof b), "telegram");
        assert_string_equal(cg_store_field_str(o2, "lang", b, sizeof b), "en");
        assert_true(strlen(cg_store_field_str(c2, "intent", b, sizeof b)) > 0);
        assert_int_equal(cg_store_field_i64(o2, "created_at"), cg_store_field_i64(c2, "ts"));
        assert_true(cg_store_field_i64(o2, "received_at") <= cg_store_field_i64(o2, "created_at"));
        freeReplyObject(ob);
        freeReplyObject(cv);
    }

    /* a re-delivered entry (seq already committed) is only acknowledged */
    cmd_int("XADD cg:inbox * seq 2 channel telegram user 601 kind text text again");
    run_for(300);
    assert_int_equal(cmd_int("XLEN cg:outbox"), 3);
    r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);

    /* seq 5 arrives before seq 4 (4 still with another consumer): 5 waits */
    cmd_int("HSET cg:seq:{telegram:601} in 5");
    cmd_int("XADD cg:inbox * seq 5 channel telegram user 601 kind text text fifth received_at 1");
    run_for(400);
    assert_int_equal(cmd_int("XLEN cg:outbox"), 3);
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:601}", "done"), "3");
    cmd_int("XADD cg:inbox * seq 4 channel telegram user 601 kind text text fourth received_at 1");
    assert_true(wait_int("XLEN cg:outbox", 5, 5000));
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:601}", "done"), "5");
    assert_last_ins("cg:conv:{telegram:601}", "fifth", "fourth");

    /* crash recovery: an entry a dead consumer read and never committed is
     * claimed by this instance (XAUTOCLAIM) and processed */
    cmd_int("HSET cg:seq:{telegram:602} in 1");
    cmd_int("XADD cg:inbox * seq 1 channel telegram user 602 kind text text orphan received_at 1");
    r = cmd("XREADGROUP GROUP pipeline dead-1 COUNT 1 STREAMS cg:inbox >");
    freeReplyObject(r);
    /* whatever dead-1 got, make every entry it holds look long idle */
    r = cmd("XPENDING cg:inbox pipeline - + 10 dead-1");
    for (size_t i = 0; i < r->elements; i++)
        freeReplyObject(cmd("XCLAIM cg:inbox pipeline dead-1 0 %s IDLE 600000",
                            r->element[i]->element[0]->str));
    freeReplyObject(r);
    assert_true(wait_int("HGET cg:seq:{telegram:602} done", 1, 12000));
    assert_true(wait_int("XLEN cg:outbox", 6, 3000));

    /* a button press is recorded with the title the citizen saw */
    {
        cg_msg mm = text_msg("603", "b1", "menu");
        assert_int_equal(ingest(gw.store, &mm, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:603} done", 1, 5000));
        char btn[2048];
        hget(btn, sizeof btn, "cg:sess:{telegram:603}", "buttons");
        const char *pl = strstr(btn, "\"payload\":\"");
        const char *ti = strstr(btn, "\"title\":\"");
        assert_non_null(pl);
        assert_non_null(ti);
        char payload[128], title[128];
        sscanf(pl + 11, "%127[^\"]", payload);
        sscanf(ti + 9, "%127[^\"]", title);
        cg_msg bm = text_msg("603", "b2", NULL);
        bm.kind = CG_MSG_BUTTON;
        bm.payload = payload;
        assert_int_equal(ingest(gw.store, &bm, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:603} done", 2, 5000));
        r = cmd("XRANGE cg:conv:{telegram:603} - +");
        int found = 0;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            const redisReply *pv = cg_store_field(f, "payload");
            if (pv && strcmp(pv->str, payload) == 0) {
                assert_string_equal(cg_store_field_str(f, "text", b, sizeof b), title);
                found = 1;
            }
        }
        assert_true(found);
        freeReplyObject(r);
    }
    /* blocked / unblocked set the flag and send nothing */
    long long nout = cmd_int("XLEN cg:outbox");
    cg_msg bl = text_msg("601", "a9", NULL);
    bl.kind = CG_MSG_BLOCKED;
    assert_int_equal(ingest(gw.store, &bl, 1), CG_OK);
    assert_true(wait_int("HGET cg:sess:{telegram:601} blocked", 1, 3000));
    assert_int_equal(cmd_int("XLEN cg:outbox"), nout);

    /* escalation: a case queued for a person (its id in the session),
     * noted in the transcript; the bot is then silent for that citizen */
    {
        cg_msg hm = text_msg("604", "h1", "talk to a person");
        assert_int_equal(ingest(gw.store, &hm, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:604} done", 1, 5000));
        r = cmd("HGET cg:sess:{telegram:604} case");
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        char cid[64], q[128];
        snprintf(cid, sizeof cid, "%s", r->str);
        freeReplyObject(r);
        snprintf(q, sizeof q, "ZSCORE cg:queue:agents %s", cid);
        r = cmd(q);
        assert_int_equal(r->type, REDIS_REPLY_STRING);   /* queued (score: priority, then time) */
        freeReplyObject(r);
        snprintf(q, sizeof q, "HGET cg:case:%s status", cid);
        r = cmd(q);
        assert_string_equal(r->str, "queued");
        freeReplyObject(r);
        snprintf(q, sizeof q, "HGET cg:case:%s question", cid);
        r = cmd(q);
        assert_string_equal(r->str, "talk to a person");
        freeReplyObject(r);
        long long before = cmd_int("XLEN cg:outbox");
        cg_msg more = text_msg("604", "h2", "how do i renew my passport");
        assert_int_equal(ingest(gw.store, &more, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:604} done", 2, 5000));
        assert_int_equal(cmd_int("XLEN cg:outbox"), before);   /* for the agent, not the bot */
        snprintf(q, sizeof q, "HGET cg:case:%s unread", cid);
        assert_int_equal(cmd_int(q), 1);
        /* the case is indexed per conversation, and erased with the citizen */
        snprintf(q, sizeof q, "SISMEMBER cg:cases:{telegram:604} %s", cid);
        assert_int_equal(cmd_int(q), 1);
        erase_res er = { 0, CG_E_UNAVAILABLE, 99 };
        cg_agents_erase(gw.store, "telegram", "604", erase_cb, &er);
        assert_true(run_until(erase_called, &er, 3000));
        assert_int_equal(er.err, CG_OK);
        assert_int_equal(er.n, 1);
        snprintf(q, sizeof q, "EXISTS cg:case:%s", cid);
        assert_int_equal(cmd_int(q), 0);
        snprintf(q, sizeof q, "ZSCORE cg:queue:agents %s", cid);
        r = cmd(q);
        assert_int_equal(r->type, REDIS_REPLY_NIL);
        freeReplyObject(r);
        assert_int_equal(cmd_int("EXISTS cg:cases:{telegram:604}"), 0);
        r = cmd("XRANGE cg:conv:{telegram:604} - +");
        int note = 0;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            if (strcmp(cg_store_field_str(f, "dir", b, sizeof b), "note") == 0 &&
                strcmp(cg_store_field_str(f, "text", b, sizeof b), "escalated") == 0)
                note = 1;
        }
        assert_true(note);
        freeReplyObject(r);
    }

    /* delete my data, confirmed: session and transcript gone, the
     * confirmation still sent, the counters kept so order survives */
    {
        cg_msg dm = text_msg("605", "d1", "delete my data");
        assert_int_equal(ingest(gw.store, &dm, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:605} done", 1, 5000));
        assert_true(cmd_int("EXISTS cg:conv:{telegram:605}") == 1);
        long long before = cmd_int("XLEN cg:outbox");
        cg_msg yes = text_msg("605", "d2", NULL);
        yes.kind = CG_MSG_BUTTON;
        yes.payload = (char *)"y";
        assert_int_equal(ingest(gw.store, &yes, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:605} done", 2, 5000));
        assert_int_equal(cmd_int("EXISTS cg:conv:{telegram:605}"), 0);
        assert_int_equal(cmd_int("EXISTS cg:sess:{telegram:605}"), 0);
        assert_int_equal(cmd_int("XLEN cg:outbox"), before + 1);
        r = cmd("XREVRANGE cg:outbox + - COUNT 1");
        assert_string_equal(cg_store_field_str(r->element[0]->element[1], "user", b, sizeof b), "605");
        freeReplyObject(r);
        /* the next message starts afresh, in order */
        cg_msg again = text_msg("605", "d3", "hello");
        assert_int_equal(ingest(gw.store, &again, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:605} done", 3, 5000));
        assert_int_equal(cmd_int("EXISTS cg:sess:{telegram:605}"), 1);
    }

    /* a predecessor that never comes (lost by Redis): after the gap timeout
     * the waiting entry goes anyway; the skipped seqs are remembered and one
     * that turns up late is still processed, not dropped as a duplicate */
    {
        unsigned saved = cg_store_timings.pipeline_gap_ms;
        cg_store_timings.pipeline_gap_ms = 300;
        cmd_int("HSET cg:seq:{telegram:607} in 3");
        long long before = cmd_int("XLEN cg:outbox");
        cmd_int("XADD cg:inbox * seq 3 channel telegram user 607 kind text text third received_at 1");
        run_for(150);
        assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:607}", "done"), "");
        assert_true(wait_int("HGET cg:seq:{telegram:607} done", 3, 5000));
        assert_int_equal(cmd_int("SISMEMBER cg:gap:{telegram:607} 1"), 1);
        assert_int_equal(cmd_int("SISMEMBER cg:gap:{telegram:607} 2"), 1);
        cmd_int("XADD cg:inbox * seq 1 channel telegram user 607 kind text text first received_at 1");
        assert_true(wait_int("SCARD cg:gap:{telegram:607}", 1, 5000));
        assert_int_equal(cmd_int("SISMEMBER cg:gap:{telegram:607} 2"), 1);
        assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:607}", "done"), "3");
        assert_int_equal(cmd_int("XLEN cg:outbox"), before + 2);
        /* ... and only once */
        cmd_int("XADD cg:inbox * seq 1 channel telegram user 607 kind text text first received_at 1");
        run_for(300);
        assert_int_equal(cmd_int("XLEN cg:outbox"), before + 2);
        cg_store_timings.pipeline_gap_ms = saved;
    }

    /* while a person handles the conversation (an open case named by the
     * session), the bot stays out of it: the message is the agent's */
    {
        cmd_int("HSET cg:case:c_1_0000aaaa id c_1_0000aaaa channel telegram user 606 status assigned agent agent-1");
        cmd_int("HSET cg:sess:{telegram:606} agent agent-1 case c_1_0000aaaa");
        long long before = cmd_int("XLEN cg:outbox");
        cg_msg am = text_msg("606", "g1", "my case number is 12");
        assert_int_equal(ingest(gw.store, &am, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:606} done", 1, 5000));
        assert_int_equal(cmd_int("XLEN cg:outbox"), before);
        r = cmd("XRANGE cg:conv:{telegram:606} - +");
        assert_int_equal(r->elements, 1);
        assert_string_equal(cg_store_field_str(r->element[0]->element[1], "text", b, sizeof b),
                            "my case number is 12");
        freeReplyObject(r);
        assert_int_equal(cmd_int("HGET cg:case:c_1_0000aaaa unread"), 1);
        /* once the case is resolved the bot answers again */
        cmd_int("HSET cg:case:c_1_0000aaaa status resolved");
        cg_msg bm = text_msg("606", "g2", "hello");
        assert_int_equal(ingest(gw.store, &bm, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:606} done", 2, 5000));
        assert_int_equal(cmd_int("XLEN cg:outbox"), before + 1);
    }

    /* queue depth gauges (housekeeping script): nothing pending now */
    cg_store_stream_gauges(gw.store, CG_K_INBOX, CG_G_PIPELINE, "civicgate_test_inbox", 1);
    run_for(100);
    size_t ml = 0;
    char *mt = cg_metrics_render(&ml);
    assert_non_null(mt);
    assert_non_null(strstr(mt, "civicgate_test_inbox_length"));
    assert_non_null(strstr(mt, "civicgate_test_inbox_pending 0"));
    free(mt);

    /* graceful stop: an entry still waiting is released (made long idle) so
     * that another instance's next XAUTOCLAIM takes it at once */
    cmd_int("HSET cg:seq:{telegram:608} in 2");
    cmd_int("XADD cg:inbox * seq 2 channel telegram user 608 kind text text waits received_at 1");
    run_for(300);
    int n = 0;
    cg_pipeline_stop(gw.pipeline, stopped, &n);
    assert_true(run_until(flag_set, &n, 3000));
    gw.pipeline = NULL;
    run_for(100);
    r = cmd("XPENDING cg:inbox pipeline - + 10");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[1]->str, gw.instance);
    assert_true(r->element[0]->element[2]->integer >= (long long)cg_store_timings.claim_idle_ms);
    freeReplyObject(r);
    close_store(gw.store);
    gw.store = NULL;
    cg_intents_unref(gw.intents);
    gw.intents = NULL;
}

/* ---- outbox ------------------------------------------------------------- */

static void add_reply_with(const char *channel, const char *user, const char *text, const char *buttons)
{
    char key[128];
    snprintf(key, sizeof key, "cg:seq:{%s:%s}", channel, user);
    long long seq = cmd_int("HINCRBY %s out 1", key);
    char s[24];
    snprintf(s, sizeof s, "%lld", seq);
    cmd_int("XADD cg:outbox * channel %s user %s text %s buttons %s lang en seq %s received_at 1",
            channel, user, text, buttons, s);
}

static void add_reply(const char *channel, const char *user, const char *text)
{
    add_reply_with(channel, user, text, "[]");
}


/* The outbox on a fresh store, answered by the fake Bot API's scripts sc;
 * outbox_down() stops both and forgets the scripts. */
static void outbox_up(script *sc, size_t n)
{
    scripts = sc;
    nscripts = n;
    gw.store = cg_store_new(&gw);
    assert_true(run_until(store_ready, gw.store, 3000));
    gw.outbox = cg_outbox_start(&gw);
    assert_non_null(gw.outbox);
}

static void outbox_down(void)
{
    int n = 0;
    cg_outbox_stop(gw.outbox, stopped, &n);
    assert_true(run_until(flag_set, &n, 3000));
    gw.outbox = NULL;
    close_store(gw.store);
    gw.store = NULL;
    scripts = NULL;
    nscripts = 0;
}

/* Buttons reach the Bot API as each entry has them, through the outbox's
 * cache of parsed buttons (btn_lookup): 80 distinct sets, more than its 64
 * slots, so some share a slot and replace each other; each sent twice, the
 * second round in reverse order; a set too long to cache; JSON that is not
 * an array of buttons (sent without any). */
static void test_outbox_buttons(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    enum { SETS = 80 };
    static script sc[SETS + 2];
    static char chats[SETS + 2][16];
    for (int i = 0; i < SETS + 2; i++) {
        snprintf(chats[i], sizeof chats[i], "8%04d", i);
        sc[i] = (script){ .chat = chats[i], .status = { 200 },
                          .body = { "{\"ok\":true,\"result\":{\"message_id\":1}}" }, .n = 1 };
    }
    int per_s = cfg.telegram.max_per_second, chat_per_s = cfg.telegram.max_per_chat_per_second;
    cfg.telegram.max_per_second = cfg.telegram.max_per_chat_per_second = 0;
    outbox_up(sc, SETS + 2);
    char q[128], json[4096], want[128];
    for (int round = 1; round <= 2; round++) {
        for (int k = 0; k < SETS; k++) {
            int i = round == 1 ? k : SETS - 1 - k;
            snprintf(json, sizeof json,
                     "[{\"title\":\"T%d\",\"payload\":\"p%d\"},{\"title\":\"Site\",\"url\":\"https://example.org/%d\"}]",
                     i, i, i);
            add_reply_with("telegram", chats[i], "hi", json);
        }
        for (int i = 0; i < SETS; i++) {
            snprintf(q, sizeof q, "HGET cg:seq:{telegram:%s} sent", chats[i]);
            assert_true(wait_int(q, round, 5000));
            assert_int_equal(sc[i].count, round);
            snprintf(want, sizeof want, "\"text\":\"T%d\",\"callback_data\":\"p%d\"", i, i);
            assert_non_null(strstr(sc[i].last_body, want));
            snprintf(want, sizeof want, "\"url\":\"https://example.org/%d\"", i);
            assert_non_null(strstr(sc[i].last_body, want));
        }
    }
    /* ten buttons of 300-byte titles: over the cache's key limit */
    size_t len = 0;
    char title[301];
    memset(title, 'L', 300);
    title[300] = '\0';
    len += (size_t)snprintf(json + len, sizeof json - len, "[");
    for (int b = 0; b < 10; b++)
        len += (size_t)snprintf(json + len, sizeof json - len, "%s{\"title\":\"%s%d\",\"payload\":\"q%d\"}",
                                b ? "," : "", title, b, b);
    snprintf(json + len, sizeof json - len, "]");
    assert_true(strlen(json) > 2048);
    add_reply_with("telegram", chats[SETS], "long", json);
    /* not an array of buttons: the text goes, without a keyboard */
    add_reply_with("telegram", chats[SETS + 1], "plain", "{not json");
    snprintf(q, sizeof q, "HGET cg:seq:{telegram:%s} sent", chats[SETS]);
    assert_true(wait_int(q, 1, 5000));
    snprintf(want, sizeof want, "%s9\",\"callback_data\":\"q9\"", title + 200);
    assert_non_null(strstr(sc[SETS].last_body, want));
    snprintf(q, sizeof q, "HGET cg:seq:{telegram:%s} sent", chats[SETS + 1]);
    assert_true(wait_int(q, 1, 5000));
    assert_non_null(strstr(sc[SETS + 1].last_body, "\"text\":\"plain\""));
    assert_null(strstr(sc[SETS + 1].last_body, "reply_markup"));
    assert_int_equal(cmd_int("XLEN cg:deadletter"), 0);
    outbox_down();
    cfg.telegram.max_per_second = per_s;
    cfg.telegram.max_per_chat_per_second = chat_per_s;
}

static void test_outbox(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    static script sc[] = {
        { .chat = "7001", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":1}}" }, .n = 1 },
        { .chat = "7002", .status = { 429, 200 },
          .body = { "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry after 1\",\"parameters\":{\"retry_after\":1}}",
                    "{\"ok\":true,\"result\":{\"message_id\":2}}" }, .n = 2 },
        { .chat = "7003", .status = { 500, 200 },
          .body = { "{\"ok\":false,\"error_code\":500,\"description\":\"Internal Server Error\"}",
                    "{\"ok\":true,\"result\":{\"message_id\":3}}" }, .n = 2 },
        { .chat = "7004", .status = { 403 },
          .body = { "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was blocked by the user\"}" }, .n = 1 },
        { .chat = "7005", .status = { 400 },
          .body = { "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: message text is empty\"}" }, .n = 1 },
    };
    scripts = sc;
    nscripts = sizeof sc / sizeof *sc;

    gw.store = cg_store_new(&gw);
    assert_true(run_until(store_ready, gw.store, 3000));
    unsigned claim_every = cg_store_timings.claim_every_ms;
    cg_store_timings.claim_every_ms = 200;     /* the claimed-head case below */
    gw.outbox = cg_outbox_start(&gw);
    assert_non_null(gw.outbox);
    push p = { 0 };
    cg_store_on_webchat(gw.store, push_cb, &p);

    add_reply("telegram", "7001", "ok reply");
    add_reply("telegram", "7002", "throttled reply");
    add_reply("telegram", "7003", "retried reply");
    add_reply("telegram", "7004", "blocked reply");
    add_reply("telegram", "7005", "bad reply");

    /* everything finishes: acked (nothing pending), one dead letter */
    char b[256];
    assert_true(wait_int("HGET cg:seq:{telegram:7002} sent", 1, 8000));
    assert_true(wait_int("HGET cg:seq:{telegram:7003} sent", 1, 8000));
    assert_true(wait_int("HGET cg:seq:{telegram:7001} sent", 1, 3000));
    assert_true(wait_int("HGET cg:seq:{telegram:7004} sent", 1, 3000));
    assert_true(wait_int("HGET cg:seq:{telegram:7005} sent", 1, 3000));
    redisReply *r = cmd("XPENDING cg:outbox outbox");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);

    assert_int_equal(sc[0].count, 1);
    assert_string_equal(sc[0].last_path, "/bot123:TEST/sendMessage");
    /* 429 retry_after 1: the second try is at least a second later */
    assert_int_equal(sc[1].count, 2);
    assert_true(sc[1].at[1] - sc[1].at[0] >= 1000);
    /* 500: retried once, then delivered */
    assert_int_equal(sc[2].count, 2);
    /* 403 blocked: one try, session marked, no dead letter for it */
    assert_int_equal(sc[3].count, 1);
    assert_string_equal(hget(b, sizeof b, "cg:sess:{telegram:7004}", "blocked"), "1");
    /* 400: one try, dead-lettered with the reason */
    assert_int_equal(sc[4].count, 1);
    assert_int_equal(cmd_int("XLEN cg:deadletter"), 1);
    r = cmd("XRANGE cg:deadletter - +");
    const redisReply *f = r->element[0]->element[1];
    assert_string_equal(cg_store_field_str(f, "user", b, sizeof b), "7005");
    assert_string_equal(cg_store_field_str(f, "text", b, sizeof b), "bad reply");
    assert_non_null(strstr(cg_store_field_str(f, "reason", b, sizeof b), "text is empty"));
    freeReplyObject(r);

    /* a reply to a blocked contact is not sent at all */
    add_reply("telegram", "7004", "second to blocked");
    assert_true(wait_int("HGET cg:seq:{telegram:7004} sent", 2, 3000));
    assert_int_equal(sc[3].count, 1);

    /* a duplicate (seq already sent) is acknowledged and not sent */
    cmd_int("XADD cg:outbox * channel telegram user 7001 text dup buttons [] lang en seq 1");
    run_for(300);
    assert_int_equal(sc[0].count, 1);

    /* a human agent's reply takes the next out seq and is delivered */
    cg_reply ar;
    memset(&ar, 0, sizeof ar);
    snprintf(ar.channel, sizeof ar.channel, "telegram");
    snprintf(ar.user, sizeof ar.user, "7001");
    ar.text = (char *)"from a person";
    ar.from_agent = 1;
    ingest_res ir = { 0, CG_E_INTERNAL };
    cg_store_send_reply(gw.store, &ar, "en", ingest_cb, &ir);
    assert_true(run_until(ingest_called, &ir, 3000));
    assert_int_equal(ir.err, CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:7001} sent", 2, 3000));
    assert_int_equal(sc[0].count, 2);
    r = cmd("XRANGE cg:conv:{telegram:7001} - +");
    assert_int_equal(r->elements, 1);
    assert_string_equal(cg_store_field_str(r->element[0]->element[1], "from_agent", b, sizeof b), "1");
    assert_string_equal(cg_store_field_str(r->element[0]->element[1], "text", b, sizeof b), "from a person");
    freeReplyObject(r);

    /* in order per chat: three replies to one chat arrive in order */
    static script order = { .chat = "7006", .status = { 200 },
                            .body = { "{\"ok\":true,\"result\":{\"message_id\":9}}" }, .n = 1 };
    sc[4] = order;      /* reuse the slot */
    add_reply("telegram", "7006", "one");
    add_reply("telegram", "7006", "two");
    add_reply("telegram", "7006", "three");
    assert_true(wait_int("HGET cg:seq:{telegram:7006} sent", 3, 8000));
    assert_int_equal(sc[4].count, 3);
    assert_true(sc[4].at[0] <= sc[4].at[1] && sc[4].at[1] <= sc[4].at[2]);

    /* two parts (answerCallbackQuery, sendMessage): the second fails once;
     * the retry does not repeat the first */
    static script cbq = { .chat = "cbq77", .status = { 200 }, .body = { "{\"ok\":true,\"result\":true}" }, .n = 1 };
    static script msg = { .chat = "7008", .status = { 502, 200 },
                          .body = { "{\"ok\":false,\"error_code\":502,\"description\":\"Bad Gateway\"}",
                                    "{\"ok\":true,\"result\":{\"message_id\":5}}" }, .n = 2 };
    sc[3] = msg;
    sc[4] = cbq;        /* later slots win when both strings appear */
    cmd_int("HSET cg:seq:{telegram:7008} out 1");
    cmd_int("XADD cg:outbox * channel telegram user 7008 text %s buttons [] lang en seq 1 callback_id cbq77",
            "answer with an ack");
    assert_true(wait_int("HGET cg:seq:{telegram:7008} sent", 1, 8000));
    assert_int_equal(sc[4].count, 1);
    assert_string_equal(sc[4].last_path, "/bot123:TEST/answerCallbackQuery");
    assert_int_equal(sc[3].count, 2);
    assert_string_equal(sc[3].last_path, "/bot123:TEST/sendMessage");

    /* a reply whose predecessor never comes goes after the gap timeout; the
     * predecessor turning up late is still delivered */
    {
        static script gap = { .chat = "7009", .status = { 200 },
                              .body = { "{\"ok\":true,\"result\":{\"message_id\":7}}" }, .n = 1 };
        sc[3] = gap;
        unsigned saved = cg_store_timings.outbox_gap_ms;
        cg_store_timings.outbox_gap_ms = 300;
        cmd_int("HSET cg:seq:{telegram:7009} out 2");
        cmd_int("XADD cg:outbox * channel telegram user 7009 text second buttons [] lang en seq 2");
        run_for(150);
        assert_int_equal(sc[3].count, 0);
        assert_true(wait_int("HGET cg:seq:{telegram:7009} sent", 2, 5000));
        assert_int_equal(sc[3].count, 1);
        assert_int_equal(cmd_int("SISMEMBER cg:ogap:{telegram:7009} 1"), 1);
        cmd_int("XADD cg:outbox * channel telegram user 7009 text first buttons [] lang en seq 1");
        assert_true(wait_int("SCARD cg:ogap:{telegram:7009}", 0, 5000));
        assert_int_equal(sc[3].count, 2);
        assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:7009}", "sent"), "2");
        cg_store_timings.outbox_gap_ms = saved;
    }

    /* head: a reply the commit marked next to deliver is sent on its first
     * delivery without begin; the same mark on an entry claimed from a dead
     * consumer does not skip begin: the retry state in cg:seq (due) holds */
    {
        static script hd = { .chat = "7010", .status = { 200 },
                             .body = { "{\"ok\":true,\"result\":{\"message_id\":8}}" }, .n = 1 };
        sc[3] = hd;
        cmd_int("HSET cg:seq:{telegram:7010} out 1");
        cmd_int("XADD cg:outbox * seq 1 head 1 channel telegram user 7010 text fresh buttons [] lang en");
        assert_true(wait_int("HGET cg:seq:{telegram:7010} sent", 1, 3000));
        assert_int_equal(sc[3].count, 1);

        static script hc = { .chat = "7011", .status = { 200 },
                             .body = { "{\"ok\":true,\"result\":{\"message_id\":9}}" }, .n = 1 };
        sc[3] = hc;
        uv_update_time(&loop);
        uint64_t t0 = uv_now(&loop);
        cmd_int("HSET cg:seq:{telegram:7011} out 1 cur 1 try 1 due %lld part 0",
                (long long)cg_store_now_ms() + 2000);
        cmd_int("XADD cg:outbox * seq 1 head 1 channel telegram user 7011 text claimed buttons [] lang en");
        /* a dead consumer read it (the loop is not running meanwhile) */
        freeReplyObject(cmd("XREADGROUP GROUP outbox dead-2 COUNT 10 STREAMS cg:outbox >"));
        redisReply *pr = cmd("XPENDING cg:outbox outbox - + 10 dead-2");
        assert_int_equal(pr->elements, 1);
        freeReplyObject(cmd("XCLAIM cg:outbox outbox dead-2 0 %s IDLE 600000",
                            pr->element[0]->element[0]->str));
        freeReplyObject(pr);
        assert_true(wait_int("HGET cg:seq:{telegram:7011} sent", 1, 10000));
        assert_int_equal(sc[3].count, 1);
        assert_true(sc[3].at[0] - t0 >= 1500);
        cg_store_timings.claim_every_ms = claim_every;
    }

    /* webchat: published to cg:webchat for whichever instance holds the socket */
    add_reply("webchat", "wc77", "hello web");
    assert_true(run_until(pushed, &p, 3000));
    assert_string_equal(p.user, "wc77");
    assert_non_null(strstr(p.frame, "hello web"));

    outbox_down();
}

/* loop iterations, counted by a uv_check (a spinning loop shows as many) */
static unsigned long loop_turns;
static void count_turn(uv_check_t *h) { (void)h; loop_turns++; }

/* Keep-alive: the outbox's connection to the API is reused for the next
 * request (its socket watched across curl's connection cache, ob_sock in
 * outbox.c); when the server closes it while idle, the watch stops (the
 * readable, closed socket would otherwise wake the loop without end) and
 * the next reply goes out on a new connection. */
static void test_outbox_keepalive(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    static script sc[] = {
        { .chat = "7101", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":1}}" }, .n = 1 },
    };
    http_keepalive = 1;
    http_accepts = 0;
    outbox_up(sc, 1);
    add_reply("telegram", "7101", "first");
    assert_true(wait_int("HGET cg:seq:{telegram:7101} sent", 1, 3000));
    add_reply("telegram", "7101", "second");
    assert_true(wait_int("HGET cg:seq:{telegram:7101} sent", 2, 3000));
    assert_int_equal(sc[0].count, 2);
    assert_int_equal(http_accepts, 1);                  /* one connection, kept */

    http_close_idle();
    uv_check_t turns;
    uv_check_init(&loop, &turns);
    loop_turns = 0;
    uv_check_start(&turns, count_turn);
    run_for(500);
    uv_check_stop(&turns);
    uv_close((uv_handle_t *)&turns, NULL);
    /* the outbox's timers turn the loop ~100 times in 500 ms; a watch left on
     * the closed socket, tens of thousands */
    if (loop_turns > 2000) fail_msg("the loop turned %lu times in 500 ms", loop_turns);

    add_reply("telegram", "7101", "third");
    assert_true(wait_int("HGET cg:seq:{telegram:7101} sent", 3, 3000));
    assert_int_equal(sc[0].count, 3);
    assert_int_equal(http_accepts, 2);
    outbox_down();
    http_keepalive = 0;
    http_close_idle();
    run_for(50);
}

/* Entries pending with the outbox group (-1: no answer). */
static long long outbox_pending(void)
{
    redisReply *r = cmd("XPENDING cg:outbox outbox");
    long long n = r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? r->element[0]->integer : -1;
    freeReplyObject(r);
    return n;
}

/* Kills the store's command connections (every client but this one). */
static void kill_store_conns(void)
{
    freeReplyObject(cmd("CLIENT KILL SKIPME yes TYPE normal"));
}

/* A read whose answer was lost with its connection (Redis ran it, then
 * stopped: the entries are pending with this consumer, but the gateway
 * never saw them) is made good as soon as a connection comes back: the
 * outbox and the pipeline read their own pending entries again, instead
 * of waiting claim_idle_ms (30 s) for XAUTOCLAIM. Simulated: the read is
 * made here, by the gateway's consumer name, while the loop is not
 * running, then the store's connections are killed. */
static void test_lost_read_after_reconnect(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    static script sc[] = {
        { .chat = "7131", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":1}}" }, .n = 1 },
    };
    pipeline_outbox_up(sc, 1);

    /* the outbox: a reply read by its consumer name, the answer lost */
    add_reply("telegram", "7131", "lost and found");
    freeReplyObject(cmd("XREADGROUP GROUP outbox %s COUNT 10 STREAMS cg:outbox >", gw.instance));
    assert_int_equal(outbox_pending(), 1);
    /* the pipeline: a message stored as the ingest does, read likewise */
    cmd_int("HINCRBY cg:seq:{telegram:7132} in 1");
    freeReplyObject(cmd("XADD cg:inbox * seq 1 channel telegram user 7132 kind text msg_id lr1 text hello "
                        "ts 1764194400 received_at %lld", (long long)cg_store_now_ms()));
    freeReplyObject(cmd("XREADGROUP GROUP pipeline %s COUNT 10 STREAMS cg:inbox >", gw.instance));
    redisReply *r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);

    kill_store_conns();
    assert_true(run_until(sent_once, &sc[0], 5000));      /* not after 30 s */
    assert_true(wait_int("HGET cg:seq:{telegram:7131} sent", 1, 3000));
    assert_true(wait_int("HGET cg:seq:{telegram:7132} done", 1, 5000));
    r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);

    pipeline_outbox_down();
}

/* Delivered replies wait up to finish_wait_ms for more before their
 * finish (outbox.c): two replies delivered apart, within the wait, are
 * acknowledged by one script call, one XACK of both; until then they are
 * pending, not lost. A web-chat reply (the finish's PUBLISH is its
 * delivery) does not wait. The wait is long here (2 s) so that what is
 * seen cannot be the default's 10 ms. */
static void test_outbox_finish_waits(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    static script sc[] = {
        { .chat = "7111", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":1}}" }, .n = 1 },
        { .chat = "7112", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":2}}" }, .n = 1 },
    };
    unsigned wait_ms = cg_store_timings.finish_wait_ms;
    cg_store_timings.finish_wait_ms = 2000;
    outbox_up(sc, 2);
    push p = { 0 };
    cg_store_on_webchat(gw.store, push_cb, &p);
    run_for(200);                /* the group exists, the first read is done */
    redisContext *mon = monitor_open();
    struct timeval tv = { 0, 200000 };
    redisSetTimeout(mon, tv);

    add_reply("telegram", "7111", "first");
    assert_true(run_until(sent_once, &sc[0], 3000));
    run_for(100);
    assert_int_equal(cmd_int("XLEN cg:outbox"), 1);
    assert_int_equal(outbox_pending(), 1);               /* delivered, finish waiting */
    add_reply("telegram", "7112", "second");
    assert_true(run_until(sent_once, &sc[1], 3000));
    assert_true(wait_int("HGET cg:seq:{telegram:7111} sent", 1, 4000));
    assert_int_equal(cmd_int("HGET cg:seq:{telegram:7112} sent"), 1);
    assert_int_equal(outbox_pending(), 0);
    /* MONITOR: one XACK, from the script, of both entries */
    redisReply *r;
    int xacks = 0, both = 0;
    while (redisGetReply(mon, (void **)&r) == REDIS_OK && r) {
        if (r->type == REDIS_REPLY_STATUS && strstr(r->str, "\"XACK\" \"cg:outbox\"")) {
            xacks++;
            const char *a = strstr(r->str, "\"XACK\"");
            int ids = 0;
            for (const char *q = a; (q = strchr(q, '-')); q++) ids++;   /* "<ms>-<n>" */
            if (ids == 2) both++;
        }
        freeReplyObject(r);
    }
    redisFree(mon);
    assert_int_equal(xacks, 1);
    assert_int_equal(both, 1);
    assert_int_equal(sc[0].count, 1);
    assert_int_equal(sc[1].count, 1);

    /* web chat: delivered by the finish, at once */
    add_reply("webchat", "wf1", "hello web");
    assert_true(run_until(pushed, &p, 1000));
    assert_non_null(strstr(p.frame, "hello web"));
    assert_true(wait_int("HGET cg:seq:{webchat:wf1} sent", 1, 1000));

    outbox_down();
    cg_store_timings.finish_wait_ms = wait_ms;
}

/* The read behind a commit for the outbox (pipeline.c): what it hands
 * over is delivered like the outbox's own read (a "head" reply without its
 * begin), and reservations stay within the outbox's room and come back. */
static void test_outbox_takes_from_the_commit(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    static script sc[] = {
        { .chat = "7101", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":5}}" }, .n = 1 },
    };
    outbox_up(sc, 1);
    run_for(100);   /* its group exists */

    /* room is bounded, and given back */
    unsigned got[64], total = 0;
    size_t k = 0;
    while (k < 64 && (got[k] = cg_outbox_reserve(gw.outbox)) > 0) total += got[k++];
    assert_true(k > 0 && k < 64);
    assert_true(total <= 256);
    assert_int_equal(cg_outbox_reserve(gw.outbox), 0);
    for (size_t i = 0; i < k; i++) cg_outbox_take(gw.outbox, NULL, got[i]);
    unsigned one = cg_outbox_reserve(gw.outbox);
    assert_true(one > 0);

    /* an entry read for this instance, as the commit script does, is sent
     * (no begin: head) and finished */
    cmd_int("HSET cg:seq:{telegram:7101} out 1");
    redisReply *id = cmd("XADD cg:outbox * seq 1 head 1 channel telegram user 7101 text taken buttons [] "
                         "lang en created_at 1 received_at 1");
    freeReplyObject(id);
    redisReply *rd = cmd("XREADGROUP GROUP outbox %s COUNT 8 STREAMS cg:outbox >", gw.instance);
    assert_int_equal(rd->type, REDIS_REPLY_ARRAY);
    cg_outbox_take(gw.outbox, rd, one);
    freeReplyObject(rd);
    assert_true(wait_int("HGET cg:seq:{telegram:7101} sent", 1, 3000));
    assert_int_equal(sc[0].count, 1);
    redisReply *r = cmd("XPENDING cg:outbox outbox");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    /* no begin ran for it: its retry state was never written */
    char b[64];
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:7101}", "cur"), "");

    outbox_down();
}

/* A reply delivered after its conversation was erased (cg:seq gone, as
 * after "delete my data"): it is sent and acknowledged, but neither the
 * begin nor the finish makes cg:seq again (the key, the citizen's id in its
 * name, would have no TTL and outlive the erasure forever). One entry
 * marked head (no begin), one not (begin, then finish). */
static void test_outbox_after_erasure(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    static script sc[] = {
        { .chat = "7201", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":6}}" }, .n = 1 },
        { .chat = "7202", .status = { 200 }, .body = { "{\"ok\":true,\"result\":{\"message_id\":7}}" }, .n = 1 },
    };
    outbox_up(sc, 2);
    run_for(100);
    cmd_int("XADD cg:outbox * seq 1 head 1 channel telegram user 7201 text erased buttons [] "
            "lang en created_at 1 received_at 1");
    cmd_int("XADD cg:outbox * seq 1 channel telegram user 7202 text erased buttons [] "
            "lang en created_at 1 received_at 1");
    cg_outbox_wake(gw.outbox);
    for (int i = 0; i < 300 && (sc[0].count < 1 || sc[1].count < 1 || outbox_pending() != 0); i++) run_for(10);
    assert_int_equal(sc[0].count, 1);
    assert_int_equal(sc[1].count, 1);
    assert_int_equal(outbox_pending(), 0);
    assert_int_equal(cmd_int("EXISTS cg:seq:{telegram:7201}"), 0);
    assert_int_equal(cmd_int("EXISTS cg:seq:{telegram:7202}"), 0);

    outbox_down();
}

/* AUTH and SELECT from the URL: a password-protected Redis, database 3. */
static void test_url_auth_select(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    freeReplyObject(cmd("CONFIG SET requirepass s3cr%%t"));
    char good[96], bad[96];
    snprintf(good, sizeof good, "redis://:s3cr%%25t@127.0.0.1:%d/3", redis_port);
    snprintf(bad, sizeof bad, "redis://:wrong@127.0.0.1:%d/3", redis_port);
    char *keep = cfg.redis_url;

    cfg.redis_url = bad;
    cg_store *s = cg_store_new(&gw);
    run_for(300);
    assert_false(cg_store_ready(s));
    close_store(s);

    cfg.redis_url = good;
    s = cg_store_new(&gw);
    cfg.redis_url = keep;
    assert_true(run_until(store_ready, s, 3000));
    cg_msg m = text_msg("504", "z1", "in db 3");
    assert_int_equal(ingest(s, &m, 1), CG_OK);
    close_store(s);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 0);           /* not in db 0 */
    freeReplyObject(cmd("SELECT 3"));
    assert_int_equal(cmd_int("XLEN cg:inbox"), 1);
    freeReplyObject(cmd("FLUSHDB"));
    freeReplyObject(cmd("SELECT 0"));
    freeReplyObject(cmd("CONFIG SET requirepass %s", ""));
}

/* Entries the gateway did not write (an operator's mistake, an old version)
 * are acknowledged and logged, never crash or block the stream. */
static void test_hostile_entries(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    gw.intents = load_fixture();
    gw.store = cg_store_new(&gw);
    assert_true(run_until(store_ready, gw.store, 3000));
    gw.pipeline = cg_pipeline_start(&gw);
    gw.outbox = cg_outbox_start(&gw);
    run_for(100);
    cmd_int("XADD cg:inbox * foo bar");
    cmd_int("XADD cg:inbox * seq abc channel telegram user 1 kind text text x");
    cmd_int("XADD cg:inbox * seq -5 channel telegram user 1 kind text");
    cmd_int("XADD cg:inbox * seq 1 channel telegram user 700 kind nonsense");
    cmd_int("XADD cg:outbox * junk 1");
    cmd_int("XADD cg:outbox * seq 1 channel nosuchchannel user 1 text hi");
    /* a real one after them still goes through */
    cg_msg m = text_msg("701", "q1", "hello");
    assert_int_equal(ingest(gw.store, &m, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:701} done", 1, 5000));
    assert_true(wait_int("XLEN cg:deadletter", 1, 5000));    /* the unknown channel */
    run_for(300);
    redisReply *r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    /* the unknown kind was answered as unsupported, not dropped */
    char b[32];
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:700}", "done"), "1");

    int n = 0;
    cg_pipeline_stop(gw.pipeline, stopped, &n);
    cg_outbox_stop(gw.outbox, stopped, &n);
    assert_true(wait_n(&n, 2));
    gw.pipeline = NULL;
    gw.outbox = NULL;
    close_store(gw.store);
    gw.store = NULL;
    cg_intents_unref(gw.intents);
    gw.intents = NULL;
}

static cg_pipeline *other_pipeline;
static int split_seen_a, split_seen_b, split_convs, split_per;

/* All conversations done; meanwhile note which consumers held entries. */
static int split_done(void *ud)
{
    (void)ud;
    redisReply *r = cmd("XPENDING cg:inbox pipeline");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 && r->element[3]->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->element[3]->elements; i++) {
            const char *c = r->element[3]->element[i]->element[0]->str;
            if (strcmp(c, "inst-a") == 0) split_seen_a = 1;
            if (strcmp(c, "inst-b") == 0) split_seen_b = 1;
        }
    freeReplyObject(r);
    for (int c = 0; c < split_convs; c++) {
        char q[64];
        snprintf(q, sizeof q, "HGET cg:seq:{telegram:80%d} done", c);
        if (cmd_int(q) != split_per) return 0;
    }
    return 1;
}
static void ingest_wake_cb(cg_err e, void *ud)
{
    ingest_cb(e, ud);
    cg_pipeline_wake(other_pipeline);
}

/* Two instances (two stores, two pipelines, one loop) share the inbox: every
 * message is processed exactly once and each conversation stays in order,
 * whichever instance reads which entry. */
static void test_two_instances(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    cg_intents *t = load_fixture();
    /* static: a failed assertion leaves their pipelines on the loop, which
     * must not then point into a dead stack frame (as test_analytics_dup_commit) */
    static cg_gateway a, b2;
    a = gw;
    b2 = gw;
    snprintf(a.instance, sizeof a.instance, "inst-a");
    snprintf(b2.instance, sizeof b2.instance, "inst-b");
    a.intents = t;
    b2.intents = t;
    a.store = cg_store_new(&a);
    b2.store = cg_store_new(&b2);
    assert_true(run_until(store_ready, a.store, 3000));
    assert_true(run_until(store_ready, b2.store, 3000));
    a.pipeline = cg_pipeline_start(&a);
    b2.pipeline = cg_pipeline_start(&b2);

    enum { CONVS = 6, PER = 12 };
    /* (no "talk to a person": a hand-off silences the bot for that
     * conversation, and every message here must be answered) */
    static const char *const words[] = { "hello", "menu", "passport fees", "thanks", "parking permit",
                                         "what can you do" };
    char texts[CONVS * PER][32];
    cg_msg m[CONVS * PER];
    size_t n = 0;
    for (int k = 0; k < PER; k++)          /* interleaved, as webhooks arrive */
        for (int c = 0; c < CONVS; c++) {
            char user[16], id[16];
            snprintf(user, sizeof user, "80%d", c);
            snprintf(id, sizeof id, "w%d-%d", c, k);
            snprintf(texts[n], sizeof texts[n], "%s #%02d", words[(c + k) % 6], k);
            m[n] = text_msg(user, id, texts[n]);
            n++;
        }
    /* several webhooks at once through one connection (so their order, the
     * order the citizens wrote in, is defined), read by both instances in
     * batches that split conversations between them. (Webhooks sent at the
     * same moment to two instances have no order to keep.) */
    ingest_res res[CONVS * PER / 8 + 1];
    size_t nres = 0;
    other_pipeline = b2.pipeline;     /* woken too, as a webhook to it would */
    for (size_t i = 0; i < n; i += 8, nres++) {
        res[nres].called = 0;
        cg_store_ingest(a.store, m + i, n - i < 8 ? n - i : 8, ingest_wake_cb, &res[nres]);
    }
    for (size_t i = 0; i < nres; i++) {
        assert_true(run_until(ingest_called, &res[i], 5000));
        assert_int_equal(res[i].err, CG_OK);
    }
    split_seen_a = split_seen_b = 0;
    split_convs = CONVS;
    split_per = PER;
    assert_true(run_until(split_done, NULL, 15000));
    assert_int_equal(cmd_int("XLEN cg:outbox"), CONVS * PER);
    /* both instances read some of the work */
    redisReply *r = cmd("XINFO CONSUMERS cg:inbox pipeline");
    assert_int_equal(r->elements, 2);
    freeReplyObject(r);
    /* inst-a was woken by every ingest and read first; inst-b held entries
     * too, whose predecessors were with inst-a (it waited for them) */
    /* Whether inst-b got work depends on the scheduler: on a fast machine
     * inst-a may read everything first. The order checks below hold either
     * way; say which case this run exercised rather than fail on timing. */
    if (!split_seen_b)
        fprintf(stderr, "test_two_instances: inst-b held no entries this run (timing); "
                        "order checked on one instance only\n");
    for (int c = 0; c < CONVS; c++) {
        char key[64], bb[64];
        snprintf(key, sizeof key, "cg:conv:{telegram:80%d}", c);
        r = cmd("XRANGE %s - +", key);
        int k = 0;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            if (strcmp(cg_store_field_str(f, "dir", bb, sizeof bb), "in") != 0) continue;
            char want[32];
            snprintf(want, sizeof want, "%s #%02d", words[(c + k) % 6], k);
            assert_string_equal(cg_store_field_str(f, "text", bb, sizeof bb), want);
            k++;
        }
        assert_int_equal(k, PER);
        freeReplyObject(r);
        /* replies in the outbox in seq order for the conversation */
        r = cmd("XRANGE cg:outbox - +");
        long long last = 0;
        char user[16];
        snprintf(user, sizeof user, "80%d", c);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            if (strcmp(cg_store_field_str(f, "user", bb, sizeof bb), user) != 0) continue;
            long long sq = cg_store_field_i64(f, "seq");
            assert_int_equal(sq, last + 1);
            last = sq;
        }
        assert_int_equal(last, PER);
        freeReplyObject(r);
    }
    int done = 0;
    cg_pipeline_stop(a.pipeline, stopped, &done);
    cg_pipeline_stop(b2.pipeline, stopped, &done);
    assert_true(wait_n(&done, 2));
    close_store(a.store);
    close_store(b2.store);
    cg_intents_unref(t);
}

/* ---- concurrency: conversations in parallel, each in order -------------- */

/* One MONITOR line reduced to what the checks need: which script (by key
 * count: load has 3 keys, commit 8) and for which conversation, with the
 * entry's seq. */
typedef struct mon_ev { char kind; char user[16]; long long seq; } mon_ev;

/* Parses `... "evalsha" "<sha>" "<nkeys>" "cg:seq:{telegram:<user>}" ...`:
 * load: args after keys are seq; commit: group, id, seq. */
/* The loads and commits in a MONITOR line, into ev (at most max): a load
 * call holds one or more entries (3 keys each, then their seqs), a commit
 * one. Returns how many. */
static size_t mon_parse(const char *line, mon_ev *ev, size_t max)
{
    const char *p = strstr(line, "\"EVALSHA\" \"");     /* as hiredis sends it */
    if (!p) p = strstr(line, "\"EVAL\" \"");
    if (!p) return 0;
    char args[40][96];
    int n = 0;
    for (const char *q = strchr(p, ' '); q && n < 40; n++) {
        q = strchr(q, '"');
        if (!q) break;
        const char *end = strchr(q + 1, '"');
        if (!end) break;
        size_t l = (size_t)(end - q - 1) < sizeof args[0] - 1 ? (size_t)(end - q - 1) : sizeof args[0] - 1;
        memcpy(args[n], q + 1, l);
        args[n][l] = '\0';
        q = strchr(end + 1, ' ');
    }
    /* args: sha, nkeys, keys..., argv... */
    if (n < 4) return 0;
    int nkeys = atoi(args[1]);
    if (nkeys == 9 && n >= 14) {                    /* the commit: 9 keys, then group, id, seq */
        if (sscanf(args[2], "cg:seq:{telegram:%15[^}]}", ev->user) != 1) return 0;
        ev->kind = 'C';
        ev->seq = atoll(args[13]);
        return 1;
    }
    size_t k = 0;                                   /* the load: 3 keys an entry, then the seqs */
    if (nkeys % 3 == 0 && n >= 2 + nkeys + nkeys / 3 && strstr(args[3], "cg:sess:") == args[3]) {
        for (int j = 0; j < nkeys / 3 && k < max; j++) {
            if (sscanf(args[2 + 3 * j], "cg:seq:{telegram:%15[^}]}", ev[k].user) != 1) continue;
            ev[k].kind = 'L';
            ev[k].seq = atoll(args[2 + nkeys + j]);
            k++;
        }
    }
    return k;
}

/* Entries of two conversations read in one batch: both conversations are in
 * flight at once (the second conversation's load goes out before the first
 * one's commit), while within each conversation load and commit alternate in
 * seq order: never two entries of one conversation at once. */
static void test_pipeline_concurrent(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    gw.intents = load_fixture();
    gw.store = cg_store_new(&gw);
    assert_true(run_until(store_ready, gw.store, 3000));
    redisContext *mon = monitor_open();
    redisReply *r;
    gw.pipeline = cg_pipeline_start(&gw);
    assert_non_null(gw.pipeline);

    enum { PER = 4 };
    static const char *const texts[] = { "hello", "passport fees", "menu", "thanks" };
    cg_msg m[2 * PER];
    for (int k = 0; k < PER; k++) {       /* interleaved, as webhooks arrive */
        char id[16];
        snprintf(id, sizeof id, "ca%d", k);
        m[2 * k] = text_msg("701", id, texts[k]);
        snprintf(m[2 * k].msg_id, sizeof m[2 * k].msg_id, "ca%d", k);
        m[2 * k + 1] = text_msg("702", id, texts[PER - 1 - k]);
        snprintf(m[2 * k + 1].msg_id, sizeof m[2 * k + 1].msg_id, "cb%d", k);
    }
    assert_int_equal(ingest(gw.store, m, 2 * PER), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:701} done", PER, 5000));
    assert_true(wait_int("HGET cg:seq:{telegram:702} done", PER, 5000));

    /* read what MONITOR saw so far */
    struct timeval tv = { 0, 300000 };
    redisSetTimeout(mon, tv);
    mon_ev ev[64];
    size_t nev = 0;
    void *rep;
    while (nev < 64 && redisGetReply(mon, &rep) == REDIS_OK) {
        redisReply *x = rep;
        if (x->type == REDIS_REPLY_STATUS) nev += mon_parse(x->str, &ev[nev], 64 - nev);
        freeReplyObject(x);
    }
    redisFree(mon);
    /* a load and a commit per entry, but for a conversation's first entry
     * when the ingest read it with its load (the preload: at most one per
     * conversation here, the others being read with their predecessors) */
    unsigned long pre = cg_pipeline_preloaded(gw.pipeline);
    assert_true(pre <= 2);
    assert_int_equal(nev, 4 * PER - pre);

    /* concurrency: both conversations started (first load, or the commit
     * of a preloaded first entry) before either went on */
    assert_string_not_equal(ev[0].user, ev[1].user);
    /* order: per conversation L1 C1 L2 C2 ... strictly (C1 without L1 when
     * preloaded) */
    static const char *const users[] = { "701", "702" };
    for (int u = 0; u < 2; u++) {
        long long want = 1;
        char next = 'L';
        for (size_t i = 0; i < nev; i++) {
            if (strcmp(ev[i].user, users[u]) != 0) continue;
            if (want == 1 && next == 'L' && ev[i].kind == 'C' && pre > 0) next = 'C';   /* preloaded */
            assert_int_equal(ev[i].kind, next);
            assert_int_equal(ev[i].seq, want);
            if (next == 'C') want++;
            next = next == 'L' ? 'C' : 'L';
        }
        assert_int_equal(want, PER + 1);
    }
    /* and the transcripts show each citizen's messages in the order written */
    for (int u = 0; u < 2; u++) {
        char b[64];
        r = cmd("XRANGE cg:conv:{telegram:%s} - +", users[u]);
        int k = 0;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            if (strcmp(cg_store_field_str(f, "dir", b, sizeof b), "in") != 0) continue;
            assert_true(k < PER);
            assert_string_equal(cg_store_field_str(f, "text", b, sizeof b),
                                texts[u == 0 ? k : PER - 1 - k]);
            k++;
        }
        assert_int_equal(k, PER);
        freeReplyObject(r);
    }

    pipeline_down();
}

/* ---- the session's unchanged fields are not written again ----------------- */

/* The session fields (after the key) of the HSETs on key that MONITOR saw
 * since mon's last read, space-separated, in out. MONITOR quotes each
 * argument, escaping quotes and backslashes in it with a backslash. */
static void session_hsets(redisContext *mon, const char *key, char *out, size_t cap)
{
    char want[96];
    snprintf(want, sizeof want, "\"HSET\" \"%s\"", key);
    out[0] = '\0';
    mon->err = 0;                /* the last read ended on the timeout: read on */
    void *rep;
    while (redisGetReply(mon, &rep) == REDIS_OK) {
        redisReply *x = rep;
        const char *h = x->type == REDIS_REPLY_STATUS ? strstr(x->str, want) : NULL;
        int k = 0;                                   /* arguments after the key: name, value, ... */
        for (const char *q = h ? h + strlen(want) : NULL; q && *q; q++) {
            if (*q != '"') continue;
            const char *e = q + 1;
            while (*e && *e != '"') e += e[0] == '\\' && e[1] ? 2 : 1;
            if (!*e) break;
            if (k++ % 2 == 0) {
                size_t n = strlen(out);
                snprintf(out + n, cap - n, "%.*s ", (int)(e - q - 1), q + 1);
            }
            q = e;
        }
        freeReplyObject(x);
    }
}

/* A turn writes the session fields it changed (last_in always); dialog,
 * lang, buttons and name only when they differ from what the load read.
 * The session still holds them all, with the latest values. */
/* The direct commit (pipeline.c): a message to a conversation with nothing
 * pending whose load this instance knows (or a new one) is committed in the
 * ingest's own step: no inbox entry, in == done, its reply queued before the
 * webhook's answer. A load changed behind the instance's back, or an entry
 * pending, makes the guess fail: the message goes to the inbox as before and
 * is answered in order; a duplicate is answered once. */
/* One message of user's (a fresh conversation's n-th, all direct so far)
 * committed directly: no inbox entry, its reply queued, in == done == n. */
static void direct_step(const char *user, const char *id, const char *text, long long n)
{
    char key[64], b[32];
    cg_msg m = text_msg(user, id, text);
    assert_int_equal(ingest(gw.store, &m, 1), CG_OK);
    assert_int_equal(cg_pipeline_direct(gw.pipeline), n);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 0);
    assert_int_equal(cmd_int("XLEN cg:outbox"), n);
    snprintf(key, sizeof key, "cg:seq:{telegram:%s}", user);
    assert_int_equal(strtoll(hget(b, sizeof b, key, "in"), NULL, 10), n);
    assert_int_equal(strtoll(hget(b, sizeof b, key, "done"), NULL, 10), n);
}

static void test_pipeline_direct(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    pipeline_up();
    run_for(100);
    char b[256];
    const char *seqk = "cg:seq:{telegram:931}";

    /* a new conversation (guessed empty): committed directly */
    direct_step("931", "d1", "how do i renew my passport", 1);
    assert_string_equal(hget(b, sizeof b, seqk, "out"), "1");
    assert_true(cmd_int("TTL %s", seqk) > 0);
    assert_true(cmd_int("TTL cg:sess:{telegram:931}") > 0);
    assert_true(cmd_int("TTL cg:conv:{telegram:931}") > 0);
    redisReply *r = cmd("XRANGE cg:conv:{telegram:931} - +");
    assert_int_equal(r->elements, 2);
    const redisReply *in = r->element[0]->element[1];
    assert_string_equal(cg_store_field_str(in, "dir", b, sizeof b), "in");
    assert_string_equal(cg_store_field_str(in, "text", b, sizeof b), "how do i renew my passport");
    assert_null(cg_store_field(in, "entry"));     /* there is no inbox entry */
    assert_string_equal(cg_store_field_str(r->element[1]->element[1], "dir", b, sizeof b), "out");
    freeReplyObject(r);
    r = cmd("XRANGE cg:outbox - +");
    assert_string_equal(cg_store_field_str(r->element[0]->element[1], "head", b, sizeof b), "1");
    assert_string_equal(cg_store_field_str(r->element[0]->element[1], "user", b, sizeof b), "931");
    freeReplyObject(r);

    /* the next one, from the load the first commit left */
    direct_step("931", "d2", "thanks", 2);
    cg_msg m2 = text_msg("931", "d2", "thanks");
    /* the same update again: nothing more */
    assert_int_equal(ingest(gw.store, &m2, 1), CG_OK);
    run_for(200);
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 2);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 0);
    assert_int_equal(cmd_int("XLEN cg:outbox"), 2);

    /* the session changed behind the instance (as an agent's or another
     * instance's write would): the guess fails, nothing of it is written,
     * the message is stored and the pipeline answers it */
    cmd_int("HSET cg:sess:{telegram:931} name Ana");
    cg_msg m3 = text_msg("931", "d3", "hello");
    assert_int_equal(ingest(gw.store, &m3, 1), CG_OK);
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 2);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 1);
    /* its fields came joined in one argument (the direct script's form):
     * the inbox entry has each of them, as an ingest without the direct
     * commit writes them */
    r = cmd("XRANGE cg:inbox - +");
    const redisReply *ie = r->element[0]->element[1];
    static const char *const want[][2] = {
        { "seq", "3" }, { "channel", "telegram" }, { "user", "931" }, { "kind", "text" },
        { "msg_id", "d3" }, { "text", "hello" }, { "ts", "1764190000" },
    };
    assert_int_equal(ie->elements, 2 * (sizeof want / sizeof *want) + 2);   /* and received_at */
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        assert_string_equal(ie->element[2 * i]->str, want[i][0]);
        assert_string_equal(ie->element[2 * i + 1]->str, want[i][1]);
    }
    assert_string_equal(ie->element[2 * 7]->str, "received_at");
    assert_true(cg_store_field_i64(ie, "received_at") > 1764190000000LL);
    freeReplyObject(r);
    assert_true(wait_int("XLEN cg:outbox", 3, 5000));
    assert_true(wait_int("HGET cg:seq:{telegram:931} done", 3, 5000));
    /* the pipeline's commit taught it the load again */
    cg_msg m4 = text_msg("931", "d4", "how much is a passport");
    assert_int_equal(ingest(gw.store, &m4, 1), CG_OK);
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 3);
    assert_int_equal(cmd_int("XLEN cg:inbox"), 1);
    assert_int_equal(cmd_int("XLEN cg:outbox"), 4);

    /* an entry pending (seq 5 with another consumer): not direct, and the
     * message waits for it */
    cmd_int("HSET %s in 5", seqk);
    cg_msg m5 = text_msg("931", "d5", "thanks again");
    assert_int_equal(ingest(gw.store, &m5, 1), CG_OK);
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 3);
    assert_string_equal(hget(b, sizeof b, seqk, "in"), "6");
    run_for(300);
    assert_int_equal(cmd_int("XLEN cg:outbox"), 4);
    cmd_int("XADD cg:inbox * seq 5 channel telegram user 931 kind text text fifth received_at 1");
    assert_true(wait_int("XLEN cg:outbox", 6, 5000));
    assert_string_equal(hget(b, sizeof b, seqk, "done"), "6");
    assert_last_ins("cg:conv:{telegram:931}", "thanks again", "fifth");
    /* the replies' out seqs in order, one each */
    r = cmd("XRANGE cg:outbox - +");
    assert_int_equal(r->elements, 6);
    for (size_t i = 0; i < r->elements; i++)
        assert_int_equal(cg_store_field_i64(r->element[i]->element[1], "seq"), (long long)i + 1);
    freeReplyObject(r);
    r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    /* a load over DIRECT_LOAD_MAX (here the unanswered question, 1.5 kB) is
     * not kept: that message goes direct, the next one through the inbox */
    char longq[1536];
    for (size_t i = 0; i + 5 < sizeof longq; i += 5) memcpy(longq + i, "zqxv ", 5);
    longq[sizeof longq - 1] = '\0';
    long long inbox = cmd_int("XLEN cg:inbox");
    cg_msg l1 = text_msg("932", "l1", longq);
    assert_int_equal(ingest(gw.store, &l1, 1), CG_OK);
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 4);
    assert_true(strlen(hget(b, sizeof b, "cg:sess:{telegram:932}", "unanswered")) > 0);
    cg_msg l2 = text_msg("932", "l2", "thanks");
    assert_int_equal(ingest(gw.store, &l2, 1), CG_OK);
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 4);
    assert_int_equal(cmd_int("XLEN cg:inbox"), inbox + 1);
    assert_true(wait_int("HGET cg:seq:{telegram:932} done", 2, 5000));
    /* the direct script failing after its dedupe SET (a session key of the
     * wrong type: WRONGTYPE in the load it compares) takes the key back: the
     * platform's retry is stored and answered, not skipped as a duplicate */
    cg_msg d1 = text_msg("933", "d1", "hello");
    assert_int_equal(ingest(gw.store, &d1, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:933} done", 1, 5000));
    long long direct = cg_pipeline_direct(gw.pipeline);
    freeReplyObject(cmd("SET cg:sess:{telegram:933} broken"));
    cg_msg d2 = text_msg("933", "d2", "how do i renew my passport");
    assert_int_not_equal(ingest(gw.store, &d2, 1), CG_OK);
    assert_int_equal(cmd_int("EXISTS cg:dedupe:{telegram:933}:d2"), 0);
    freeReplyObject(cmd("DEL cg:sess:{telegram:933}"));
    assert_int_equal(ingest(gw.store, &d2, 1), CG_OK);
    assert_int_equal(cmd_int("EXISTS cg:dedupe:{telegram:933}:d2"), 1);
    assert_true(wait_int("HGET cg:seq:{telegram:933} done", 2, 5000));
    assert_last_ins("cg:conv:{telegram:933}", "how do i renew my passport", "hello");
    assert_int_equal(cg_pipeline_direct(gw.pipeline), direct);   /* through the inbox */

    /* a load holding a NUL (written behind the gateway's back: its own
     * strings cannot) is never committed onto directly: the cache keeps C
     * strings, so the joined compare (one NUL between fields) fails and the
     * message goes through the inbox, even after a commit taught the load */
    cg_msg n1 = text_msg("935", "n1", "hello"), n2 = text_msg("935", "n2", "thanks"),
           n3 = text_msg("935", "n3", "how do i renew my passport");
    assert_int_equal(ingest(gw.store, &n1, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:935} done", 1, 5000));
    freeReplyObject(cmd("HSET cg:sess:{telegram:935} name %b", "A\0B", (size_t)3));
    direct = cg_pipeline_direct(gw.pipeline);
    assert_int_equal(ingest(gw.store, &n2, 1), CG_OK);          /* the guess fails: stored, answered */
    assert_true(wait_int("HGET cg:seq:{telegram:935} done", 2, 5000));
    inbox = cmd_int("XLEN cg:inbox");
    assert_int_equal(ingest(gw.store, &n3, 1), CG_OK);          /* learnt a load with a NUL: not direct */
    assert_int_equal(cmd_int("XLEN cg:inbox"), inbox + 1);
    assert_true(wait_int("HGET cg:seq:{telegram:935} done", 3, 5000));
    assert_int_equal(cg_pipeline_direct(gw.pipeline), direct);
    assert_last_ins("cg:conv:{telegram:935}", "how do i renew my passport", "thanks");

    /* over the flood limit in the direct script (its fields joined): kept in
     * the transcript with its kind and text, the notice queued to its chat */
    int saved_rate = cfg.citizen_per_minute;
    cfg.citizen_per_minute = 1;
    cg_msg f1 = text_msg("934", "f1", "hello"), f2 = text_msg("934", "f2", "too fast");
    assert_int_equal(ingest(gw.store, &f1, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:934} done", 1, 5000));
    long long outbox = cmd_int("XLEN cg:outbox");
    assert_int_equal(ingest(gw.store, &f2, 1), CG_OK);
    cfg.citizen_per_minute = saved_rate;
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:934}", "in"), "1");
    r = cmd("XREVRANGE cg:conv:{telegram:934} + - COUNT 2");
    const redisReply *lim = r->element[1]->element[1];      /* before the notice's entry */
    assert_string_equal(cg_store_field_str(lim, "limited", b, sizeof b), "1");
    assert_string_equal(cg_store_field_str(lim, "kind", b, sizeof b), "text");
    assert_string_equal(cg_store_field_str(lim, "text", b, sizeof b), "too fast");
    freeReplyObject(r);
    assert_int_equal(cmd_int("XLEN cg:outbox"), outbox + 1);
    r = cmd("XREVRANGE cg:outbox + - COUNT 1");
    assert_string_equal(cg_store_field_str(r->element[0]->element[1], "channel", b, sizeof b), "telegram");
    assert_string_equal(cg_store_field_str(r->element[0]->element[1], "user", b, sizeof b), "934");
    freeReplyObject(r);
    pipeline_down();
}

/* From MONITOR: the clients of the first n top-level EVALSHAs whose line
 * holds text, each asserted to be followed, from its own client, by the
 * outbox's read (XREADGROUP GROUP outbox). */
static void evals_followed_by_outbox_read(redisContext *mon, const char *text, int n, char clients[][64])
{
    int found = 0, open = -1;    /* open: the EVALSHA whose client's next command is awaited */
    void *rep;
    while ((found < n || open >= 0) && redisGetReply(mon, &rep) == REDIS_OK) {
        redisReply *x = rep;
        const char *l = x->type == REDIS_REPLY_STATUS ? x->str : "";
        const char *c0 = strchr(l, '['), *c1 = c0 ? strchr(c0, ']') : NULL;
        if (c0 && c1 && !strstr(l, " lua]")) {
            char who[64];
            snprintf(who, sizeof who, "%.*s", (int)(c1 - c0), c0);
            if (open >= 0 && !strcmp(who, clients[open])) {
                assert_non_null(strstr(l, "\"XREADGROUP\" \"GROUP\" \"outbox\""));
                open = -1;
            } else if (open < 0 && found < n && strstr(l, "\"EVALSHA\"") && strstr(l, text)) {
                snprintf(clients[found], 64, "%s", who);
                open = found++;
            }
        }
        freeReplyObject(x);
    }
    assert_int_equal(found, n);
    assert_int_equal(open, -1);
}

/* A commit's reply is read for this instance's outbox by a plain
 * XREADGROUP sent right behind the script on the same connection (not
 * inside the script, where the entry would pass through Lua both ways):
 * MONITOR shows the two one after the other from one client, for the
 * direct commit (the ingest's connection) and for a commit through the
 * inbox (the main one), and the replies go out without a begin (head,
 * read with ">"). */
static void test_pipeline_direct_outbox_read(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    static script sc[] = {
        { .chat = "7201", .status = { 200, 200 },
          .body = { "{\"ok\":true,\"result\":{\"message_id\":9}}", "{\"ok\":true,\"result\":{\"message_id\":10}}" },
          .n = 2 },
    };
    pipeline_outbox_up(sc, 1);
    redisContext *mon = monitor_open();
    struct timeval tv = { 0, 200000 };
    redisSetTimeout(mon, tv);
    char b[64], clients[2][64];

    /* direct */
    cg_msg m = text_msg("7201", "or1", "how do i renew my passport");
    assert_int_equal(ingest(gw.store, &m, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:7201} sent", 1, 5000));
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 1);
    assert_int_equal(sc[0].count, 1);
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:7201}", "cur"), "");   /* no begin */
    evals_followed_by_outbox_read(mon, "how do i renew my passport", 1, clients);

    /* through the inbox (the session changed behind the gateway): the
     * failed direct script on the ingest's connection, then the commit on
     * the main one, each with the read behind it */
    cmd_int("HSET cg:sess:{telegram:7201} name Bea");
    cg_msg m2 = text_msg("7201", "or2", "how much is a passport");
    assert_int_equal(ingest(gw.store, &m2, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:7201} sent", 2, 5000));
    assert_int_equal(cg_pipeline_direct(gw.pipeline), 1);
    assert_int_equal(sc[0].count, 2);
    assert_string_equal(hget(b, sizeof b, "cg:seq:{telegram:7201}", "cur"), "");
    evals_followed_by_outbox_read(mon, "how much is a passport", 2, clients);
    assert_string_not_equal(clients[0], clients[1]);
    redisFree(mon);

    pipeline_outbox_down();
}

static void test_pipeline_session_changes(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    pipeline_up();
    const char *sess = "cg:sess:{telegram:821}";
    redisContext *mon = monitor_open();
    redisReply *r;
    struct timeval tv = { 0, 200000 };
    redisSetTimeout(mon, tv);
    char fields[512], b[2048], first_buttons[2048];

    /* the first turn writes them all */
    cg_msg m1 = text_msg("821", "sc1", "how do i renew my passport");
    m1.name = (char *)"Ana";
    assert_int_equal(ingest(gw.store, &m1, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:821} done", 1, 5000));
    session_hsets(mon, sess, fields, sizeof fields);
    for (const char *f = "last_in"; f; f = !strcmp(f, "last_in") ? "dialog" : !strcmp(f, "dialog") ? "lang"
                                       : !strcmp(f, "lang") ? "buttons" : !strcmp(f, "buttons") ? "name" : NULL)
        if (!strstr(fields, f)) fail_msg("first turn: %s not written (%s)", f, fields);
    snprintf(first_buttons, sizeof first_buttons, "%s", hget(b, sizeof b, sess, "buttons"));
    assert_true(strlen(first_buttons) > 2);

    /* the same question again: only last_in changes */
    cg_msg m2 = text_msg("821", "sc2", "renew passport");
    m2.name = (char *)"Ana";
    assert_int_equal(ingest(gw.store, &m2, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:821} done", 2, 5000));
    session_hsets(mon, sess, fields, sizeof fields);
    assert_string_equal(fields, "last_in ");
    assert_string_equal(hget(b, sizeof b, sess, "buttons"), first_buttons);
    assert_string_equal(hget(b, sizeof b, sess, "name"), "Ana");
    assert_true(strlen(hget(b, sizeof b, sess, "dialog")) > 0);
    assert_true(strlen(hget(b, sizeof b, sess, "lang")) > 0);

    /* another answer and a new display name: those are written */
    cg_msg m3 = text_msg("821", "sc3", "hello");
    m3.name = (char *)"Ana B";
    assert_int_equal(ingest(gw.store, &m3, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:821} done", 3, 5000));
    session_hsets(mon, sess, fields, sizeof fields);
    assert_non_null(strstr(fields, "last_in"));
    assert_non_null(strstr(fields, "name"));
    assert_string_equal(hget(b, sizeof b, sess, "name"), "Ana B");
    /* the session's buttons are the last reply's, written or not */
    r = cmd("XREVRANGE cg:conv:{telegram:821} + - COUNT 1");
    assert_int_equal(r->elements, 1);
    char want[2048];
    cg_store_field_str(r->element[0]->element[1], "buttons", want, sizeof want);
    freeReplyObject(r);
    assert_string_equal(hget(b, sizeof b, sess, "buttons"), want);
    if (strcmp(want, first_buttons) != 0) assert_non_null(strstr(fields, "buttons"));
    else assert_null(strstr(fields, "buttons"));

    redisFree(mon);
    pipeline_down();
}

/* ---- TTLs refreshed once per slack ---------------------------------------- */

/* INFO commandstats: how many EXPIRE calls Redis has run (scripts' included). */
static long long expire_calls(void)
{
    redisReply *r = cmd("INFO commandstats");
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_expire:calls=") : NULL;
    long long n = p ? atoll(p + strlen("cmdstat_expire:calls=")) : 0;
    freeReplyObject(r);
    return n;
}

static long long ttl_of(const char *key) { return cmd_int("TTL %s", key); }

static long long stamp_of(const char *key)
{
    char b[32];
    return atoll(hget(b, sizeof b, key, "ttl_at"));
}

static void send_text(const char *user, const char *id, const char *text, long long done)
{
    char q[96];
    cg_msg mm = text_msg(user, id, text);
    assert_int_equal(ingest(gw.store, &mm, 1), CG_OK);
    snprintf(q, sizeof q, "HGET cg:seq:{telegram:%s} done", user);
    assert_true(wait_int(q, done, 5000));
}

/* The three keys of a conversation, their TTLs cut to 30 s (under both
 * retention settings below) so that a refresh shows. */
static void cut_ttls(const char *user)
{
    static const char *const kinds[] = { "sess", "seq", "conv" };
    for (int i = 0; i < 3; i++) cmd_int("EXPIRE cg:%s:{telegram:%s} 30", kinds[i], user);
}

typedef struct erased { int called; cg_err err; } erased;
static void erased_cb(void *ud, cg_err e, const cg_citizens_counts *c)
{
    (void)c;
    ((erased *)ud)->called = 1;
    ((erased *)ud)->err = e;
}
static int erase_done(void *ud) { return ((erased *)ud)->called; }

/* The commit refreshes the TTLs of cg:sess, cg:seq (retention.sessions_s)
 * and cg:conv (retention.transcripts_s) only when the session's ttl_at is
 * missing or the slack old (pipeline.c, commit_script "TTLs"), and whenever
 * it creates one of the three keys. */
static void test_pipeline_ttl(void **state)
{
    (void)state;
    /* the slack: a sixteenth of the shorter TTL, at most an hour */
    assert_int_equal(cg_store_ttl_slack_ms(60, 120), 3750);
    assert_int_equal(cg_store_ttl_slack_ms(7776000, 2592000), 3600000);
    assert_true(cg_store_ttl_due(0, 1000000, 3750));                  /* no stamp */
    assert_false(cg_store_ttl_due(1000000 - 3749, 1000000, 3750));
    assert_true(cg_store_ttl_due(1000000 - 3750, 1000000, 3750));
    assert_true(cg_store_ttl_due(1000001, 1000000, 3750));            /* from the future */

    cmd_int("FLUSHALL");
    int saved_sess = cfg.session_ttl_s, saved_conv = cfg.transcript_ttl_s, saved_rate = cfg.citizen_per_minute;
    cfg.session_ttl_s = 60;            /* slack 3.75 s */
    cfg.transcript_ttl_s = 120;
    cfg.citizen_per_minute = 0;        /* no cg:rate EXPIRE in the counts */
    pipeline_up();
    const char *sess = "cg:sess:{telegram:811}", *seq = "cg:seq:{telegram:811}", *conv = "cg:conv:{telegram:811}";

    /* a first message: no stamp, so all three get their TTL and the stamp */
    long long t0 = cg_store_now_ms();
    send_text("811", "t1", "hello", 1);
    long long at1 = stamp_of(sess);
    assert_true(at1 >= t0 && at1 <= cg_store_now_ms());
    assert_true(ttl_of(sess) > 30 && ttl_of(sess) <= 60);
    assert_true(ttl_of(seq) > 30 && ttl_of(seq) <= 60);
    assert_true(ttl_of(conv) > 60 && ttl_of(conv) <= 120);

    /* within the slack: not one EXPIRE, the TTLs go on running down */
    cut_ttls("811");
    long long e0 = expire_calls();
    send_text("811", "t2", "how much is a passport", 2);
    assert_int_equal(expire_calls(), e0);
    assert_true(ttl_of(sess) > 0 && ttl_of(sess) <= 30);
    assert_true(ttl_of(seq) > 0 && ttl_of(seq) <= 30);
    assert_true(ttl_of(conv) > 0 && ttl_of(conv) <= 30);
    assert_int_equal(stamp_of(sess), at1);

    /* the slack passed (the stamp set back by it): refreshed, stamp renewed */
    cmd_int("HSET %s ttl_at %lld", sess, (long long)cg_store_now_ms() - 3750);
    t0 = cg_store_now_ms();
    send_text("811", "t3", "thanks", 3);
    assert_true(expire_calls() >= e0 + 3);
    assert_true(ttl_of(sess) > 30);
    assert_true(ttl_of(seq) > 30);
    assert_true(ttl_of(conv) > 60);
    assert_true(stamp_of(sess) >= t0);

    /* the transcript gone while the stamp is fresh (an erasure's UNLINKs come
     * 32 keys at a time): the commit creates it, so it refreshes */
    cut_ttls("811");
    cmd_int("HSET %s ttl_at %lld", sess, (long long)cg_store_now_ms());
    cmd_int("DEL %s", conv);
    send_text("811", "t4", "hello", 4);
    assert_true(ttl_of(conv) > 60);
    assert_true(ttl_of(sess) > 30 && ttl_of(seq) > 30);

    /* the session gone (and its stamp with it) */
    cut_ttls("811");
    cmd_int("DEL %s", sess);
    send_text("811", "t5", "hello", 5);
    assert_true(ttl_of(sess) > 30 && ttl_of(seq) > 30 && ttl_of(conv) > 60);
    assert_true(stamp_of(sess) > 0);

    /* a session the commit creates although the load found a fresh stamp (an
     * erasure in between), played by one that holds nothing but the stamp
     * and no TTL: its HSET adds every field it writes, so it refreshes */
    cut_ttls("811");
    cmd_int("DEL %s", sess);
    cmd_int("HSET %s ttl_at %lld", sess, (long long)cg_store_now_ms());
    assert_int_equal(ttl_of(sess), -1);
    send_text("811", "t5b", "hello", 6);
    assert_true(ttl_of(sess) > 30 && ttl_of(seq) > 30 && ttl_of(conv) > 60);

    /* cg:seq gone while the stamp is fresh, made again by a forced commit
     * (its predecessor never comes): it gets a TTL, the others are left */
    {
        unsigned saved = cg_store_timings.pipeline_gap_ms;
        cg_store_timings.pipeline_gap_ms = 300;
        cut_ttls("811");
        cmd_int("HSET %s ttl_at %lld", sess, (long long)cg_store_now_ms());
        cmd_int("DEL %s", seq);
        cmd_int("XADD cg:inbox * seq 2 channel telegram user 811 kind text text again received_at 1");
        assert_true(wait_int("HGET cg:seq:{telegram:811} done", 2, 5000));
        assert_true(ttl_of(seq) > 30);
        assert_true(ttl_of(sess) <= 30 && ttl_of(conv) <= 30);
        cg_store_timings.pipeline_gap_ms = saved;
    }

    /* the citizen's own erasure ("delete my data", keeps cg:seq): the next
     * message's session and transcript have TTLs */
    send_text("812", "d1", "delete my data", 1);
    cg_msg yes = text_msg("812", "d2", NULL);
    yes.kind = CG_MSG_BUTTON;
    yes.payload = (char *)"y";
    assert_int_equal(ingest(gw.store, &yes, 1), CG_OK);
    assert_true(wait_int("HGET cg:seq:{telegram:812} done", 2, 5000));
    assert_int_equal(cmd_int("EXISTS cg:sess:{telegram:812} cg:conv:{telegram:812}"), 0);
    run_for(300);                    /* the erasure's SCAN and UNLINKs */
    send_text("812", "d3", "hello", 3);
    assert_true(ttl_of("cg:sess:{telegram:812}") > 30);
    assert_true(ttl_of("cg:conv:{telegram:812}") > 60);
    assert_true(ttl_of("cg:seq:{telegram:812}") > 0);
    assert_true(stamp_of("cg:sess:{telegram:812}") > 0);

    /* an admin's erasure (everything, cg:seq too) of a citizen whose stamp
     * is fresh: the next message starts over, with TTLs */
    cmd_int("HSET %s ttl_at %lld", sess, (long long)cg_store_now_ms());
    erased er = { 0, CG_E_UNAVAILABLE };
    cg_citizens_erase(&gw, "telegram", "811", CG_CITIZENS_ALL, "admin", "admin", erased_cb, &er);
    assert_true(run_until(erase_done, &er, 5000));
    assert_int_equal(er.err, CG_OK);
    assert_int_equal(cmd_int("EXISTS %s %s %s", sess, seq, conv), 0);
    send_text("811", "t6", "hello", 1);
    assert_true(ttl_of(sess) > 30 && ttl_of(seq) > 30 && ttl_of(conv) > 60);
    assert_true(stamp_of(sess) > 0);

    pipeline_down();
    cfg.session_ttl_s = saved_sess;
    cfg.transcript_ttl_s = saved_conv;
    cfg.citizen_per_minute = saved_rate;
}

/* ---- finished flows ------------------------------------------------------ */

/* The "report-problem" flow driven by messages through the pipeline: its
 * answers land in cg:flows with the intent, the reference the citizen was
 * given, and who asked. */
static void test_pipeline_flow(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    pipeline_up();

    static const char *const steps[] = { "report a pothole", "Pothole", "2",
                                         "Main Street 12", "Deep hole next to the bus stop" };
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "f%d", i);
        cg_msg mm = text_msg("901", id, steps[i]);
        assert_int_equal(ingest(gw.store, &mm, 1), CG_OK);
        assert_true(wait_int("HGET cg:seq:{telegram:901} done", i + 1, 5000));
        if (i < 4) assert_int_equal(cmd_int("XLEN cg:flows"), 0);   /* not before the end */
    }
    assert_int_equal(cmd_int("XLEN cg:flows"), 1);
    redisReply *r = cmd("XRANGE cg:flows - +");
    assert_int_equal(r->elements, 1);
    const redisReply *f = r->element[0]->element[1];
    char b[1024], reference[64];
    assert_string_equal(cg_store_field_str(f, "intent", b, sizeof b), "report-problem");
    assert_string_equal(cg_store_field_str(f, "channel", b, sizeof b), "telegram");
    assert_string_equal(cg_store_field_str(f, "user", b, sizeof b), "901");
    assert_string_equal(cg_store_field_str(f, "lang", b, sizeof b), "en");
    assert_true(cg_store_field_i64(f, "ts") > 1700000000000LL);
    cg_store_field_str(f, "reference", reference, sizeof reference);
    assert_true(strncmp(reference, "R-", 2) == 0);
    cg_store_field_str(f, "vars", b, sizeof b);
    assert_non_null(strstr(b, "\"pothole\""));
    assert_non_null(strstr(b, "Main Street 12"));
    assert_non_null(strstr(b, "Deep hole next to the bus stop"));
    freeReplyObject(r);
    /* the reference stored is the one the citizen was told */
    r = cmd("XREVRANGE cg:outbox + - COUNT 1");
    assert_int_equal(r->elements, 1);
    assert_non_null(strstr(cg_store_field_str(r->element[0]->element[1], "text", b, sizeof b),
                           reference));
    freeReplyObject(r);

    pipeline_down();
}

/* INFO commandstats: calls of one command since the last CONFIG RESETSTAT
 * (commands run inside scripts included). */
static long long calls(const char *name)
{
    redisReply *r = cmd("INFO commandstats");
    char pat[64];
    snprintf(pat, sizeof pat, "cmdstat_%s:calls=", name);
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, pat) : NULL;
    long long v = p ? atoll(p + strlen(pat)) : 0;
    freeReplyObject(r);
    return v;
}

/* A graceful stop writes the counts still summed in the batch (written
 * CG_AN_BATCH_MS after its first message otherwise): a message committed
 * right before SIGTERM is counted. The stop has to come while the batch is
 * pending; on a machine slow enough to let the timer fire first, the next
 * attempt tries again. */
static void test_analytics_flushed_on_stop(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    char day[11], key[64], id[16], q[96];
    cg_analytics_day(cg_store_now_ms(), day);
    snprintf(key, sizeof key, "cg:an:day:%s:telegram", day);
    int pending_at_stop = 0;
    long long counted = 0;
    for (int attempt = 0; attempt < 5 && !pending_at_stop; attempt++) {
        pipeline_up();
        snprintf(id, sizeof id, "fs%d", attempt);
        cg_msg mm = text_msg("841", id, "hello");
        assert_int_equal(ingest(gw.store, &mm, 1), CG_OK);
        snprintf(q, sizeof q, "HGET cg:seq:{telegram:841} done");
        assert_true(wait_int(q, attempt + 1, 5000));
        /* the commit's answer adds to the batch: wait for that, not for the write */
        for (int i = 0; i < 200 && !cg_pipeline_analytics_pending(gw.pipeline) &&
                        cmd_int("HGET %s messages", key) <= counted; i++)
            run_for(1);
        pending_at_stop = cg_pipeline_analytics_pending(gw.pipeline) > 0;
        pipeline_down();                              /* flushes, then closes the store */
        counted++;
        assert_int_equal(cmd_int("HGET %s messages", key), counted);
    }
    assert_true(pending_at_stop);
}

/* The daily figures written by the commit (analytics.h) and by the agents
 * module's cg_analytics_record_case(): counters, conversations, wait
 * histogram, ratings, TTL; nothing for a call that gives no figure. */
static void test_analytics_counters(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    pipeline_up();
    char day[11], q[128], key[64];
    cg_analytics_day(cg_store_now_ms(), day);
    snprintf(key, sizeof key, "cg:an:day:%s:telegram", day);

    /* two citizens, three messages: one answered, two not understood */
    static const struct { const char *user, *id, *text; } msgs[] = {
        {"701", "a1", "how do I renew my passport"}, {"701", "a2", "xq zzv wibble 555 010 9999"},
        {"702", "a3", "wibble xq zzv"},
    };
    for (size_t i = 0; i < 3; i++) {
        cg_msg mm = text_msg(msgs[i].user, msgs[i].id, msgs[i].text);
        assert_int_equal(ingest(gw.store, &mm, 1), CG_OK);
    }
    snprintf(q, sizeof q, "HGET %s messages", key);
    assert_true(wait_int(q, 3, 5000));
    snprintf(q, sizeof q, "HGET %s turns", key);
    assert_int_equal(cmd_int(q), 3);
    snprintf(q, sizeof q, "HGET %s fallback", key);
    long long fallbacks = cmd_int(q);
    assert_true(fallbacks >= 1 && fallbacks <= 3);
    snprintf(q, sizeof q, "PFCOUNT cg:an:conv:%s:telegram", day);
    assert_int_equal(cmd_int(q), 2);
    /* a re-delivered entry (seq already committed: the commit answers
     * "dup") is acknowledged and not counted again */
    redisReply *r;
    cmd_int("XADD cg:inbox * seq 1 channel telegram user 701 kind text text again");
    run_for(300);
    r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    snprintf(q, sizeof q, "HGET %s messages", key);
    assert_int_equal(cmd_int(q), 3);
    snprintf(q, sizeof q, "HGET %s turns", key);
    assert_int_equal(cmd_int(q), 3);
    /* the day's keys expire at the end of their day plus the retention */
    long long at = cg_analytics_expire_at(&cfg, cg_store_now_ms());
    snprintf(q, sizeof q, "EXPIRETIME %s", key);
    assert_int_equal(cmd_int(q), at);
    snprintf(q, sizeof q, "EXPIRETIME cg:an:conv:%s:telegram", day);
    assert_int_equal(cmd_int(q), at);
    snprintf(q, sizeof q, "EXPIRETIME cg:an:unm:%s:en", day);
    assert_int_equal(cmd_int(q), at);
    /* the unmatched question is stored redacted, without the citizen */
    snprintf(q, sizeof q, "HGETALL cg:an:unm:%s:en", day);
    r = cmd(q);
    int redacted = 0;
    for (size_t i = 0; i < r->elements; i++) {
        assert_null(strstr(r->element[i]->str, "555"));
        assert_null(strstr(r->element[i]->str, "701"));
        if (strstr(r->element[i]->str, "|telegram|xq zzv wibble <phone>")) redacted = 1;
    }
    freeReplyObject(r);
    assert_true(redacted);

    /* agents: a wait of 45 s, a rating of 4; calls without a figure write nothing */
    cg_analytics_record_case(&gw, "telegram", 45000, 0);
    cg_analytics_record_case(&gw, "telegram", -1, 4);
    cg_analytics_record_case(&gw, "telegram", -1, 0);
    cg_analytics_record_case(&gw, "telegram", -1, 9);
    snprintf(q, sizeof q, "HGET %s csat_n", key);
    assert_true(wait_int(q, 1, 3000));
    snprintf(q, sizeof q, "HGET %s wait_n", key);
    assert_int_equal(cmd_int(q), 1);
    snprintf(q, sizeof q, "HGET %s wait_ms_sum", key);
    assert_int_equal(cmd_int(q), 45000);
    snprintf(q, sizeof q, "HGET %s w:60", key);
    assert_int_equal(cmd_int(q), 1);
    snprintf(q, sizeof q, "HGET %s csat_sum", key);
    assert_int_equal(cmd_int(q), 4);

    /* a day's unmatched hash is full: a new question only counts as dropped */
    char unm[64];
    snprintf(unm, sizeof unm, "cg:an:unm:%s:en", day);
    freeReplyObject(cmd("EVAL %s 1 %s %d",
                        "for i = redis.call('HLEN', KEYS[1]) + 1, tonumber(ARGV[1]) do "
                        "redis.call('HSET', KEYS[1], 'fallback|telegram|filler ' .. i, '1 00000') end return 1",
                        unm, CG_AN_UNM_FIELDS));
    cg_msg full = text_msg("703", "a4", "wibble zzv xq");
    assert_int_equal(ingest(gw.store, &full, 1), CG_OK);
    snprintf(q, sizeof q, "HGET %s messages", key);
    assert_true(wait_int(q, 4, 5000));
    snprintf(q, sizeof q, "HLEN %s", unm);
    assert_int_equal(cmd_int(q), CG_AN_UNM_FIELDS);
    snprintf(q, sizeof q, "HGET %s unmatched_dropped", key);
    assert_int_equal(cmd_int(q), 1);

    pipeline_down();
}

/* Two instances commit the same message (seq 1 of a conversation, pending
 * with each: as after a claim from a consumer taken for dead): both loads
 * see it uncommitted, one commit answers "ok", the other "dup" (its
 * compare-and-set saw it done: the one SREM of the commit's dup check).
 * The message is counted once. Both loads come before either commit only
 * by timing (the pause below makes it likely, not certain: the second
 * instance's load may come after the first commit, and then it only
 * acknowledges), so a round is tried up to five times until the dup
 * commit happened; every round must count the message once. */
static long long dup_commit_round(cg_intents *t)
{
    cmd_int("FLUSHALL");
    freeReplyObject(cmd("XGROUP CREATE cg:inbox pipeline 0 MKSTREAM"));
    for (int i = 0; i < 2; i++) freeReplyObject(cmd("XADD cg:inbox * seq 1 channel telegram user 705 kind text text hello"));
    freeReplyObject(cmd("XREADGROUP GROUP pipeline inst-a COUNT 1 STREAMS cg:inbox >"));
    freeReplyObject(cmd("XREADGROUP GROUP pipeline inst-b COUNT 1 STREAMS cg:inbox >"));
    static cg_gateway a, b2;     /* static: a failed assertion leaves them running */
    a = gw;
    b2 = gw;
    snprintf(a.instance, sizeof a.instance, "inst-a");
    snprintf(b2.instance, sizeof b2.instance, "inst-b");
    a.intents = b2.intents = t;
    a.store = cg_store_new(&a);
    b2.store = cg_store_new(&b2);
    assert_true(run_until(store_ready, a.store, 3000));
    assert_true(run_until(store_ready, b2.store, 3000));
    cmd_int("CONFIG RESETSTAT");
    /* both reads (of the entries pending with each) reach Redis during the
     * pause and are answered together, so both loads usually precede
     * either commit */
    freeReplyObject(cmd("CLIENT PAUSE 300 ALL"));
    a.pipeline = cg_pipeline_start(&a);
    b2.pipeline = cg_pipeline_start(&b2);
    char day[11], q[128];
    cg_analytics_day(cg_store_now_ms(), day);
    snprintf(q, sizeof q, "HGET cg:an:day:%s:telegram messages", day);
    assert_true(wait_int(q, 1, 5000));
    assert_true(wait_int("XLEN cg:outbox", 1, 3000));
    run_for(300);
    redisReply *r = cmd("XPENDING cg:inbox pipeline");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    long long srem = calls("srem");          /* 1: one commit found it done, "dup" */
    assert_int_equal(cmd_int(q), 1);
    snprintf(q, sizeof q, "HGET cg:an:day:%s:telegram turns", day);
    assert_int_equal(cmd_int(q), 1);
    assert_int_equal(cmd_int("XLEN cg:outbox"), 1);
    int done = 0;
    cg_pipeline_stop(a.pipeline, stopped, &done);
    cg_pipeline_stop(b2.pipeline, stopped, &done);
    assert_true(wait_n(&done, 2));
    close_store(a.store);
    close_store(b2.store);
    return srem;
}

static void test_analytics_dup_commit(void **state)
{
    (void)state;
    cg_intents *t = load_fixture();
    long long srem = 0;
    for (int round = 0; round < 5 && srem != 1; round++) {
        srem = dup_commit_round(t);
        if (srem != 1) fprintf(stderr, "test_analytics_dup_commit: round %d had no dup commit (timing); again\n",
                               round + 1);
    }
    assert_int_equal(srem, 1);
    cg_intents_unref(t);
}

static long long hget_int(const char *key, const char *field)
{
    char b[32];
    return atoll(hget(b, sizeof b, key, field));
}

static int batch_sent(void *ud) { return cg_analytics_batch_pending(ud) == 0; }

/* Add turns to b until one sends the batch early; returns its index (the
 * batch then holds that turn alone), or -1. make fills turn i. */
typedef void (*turn_maker)(int i, cg_analytics_turn *t, char *buf);
static int add_until_flush(cg_analytics_batch *b, turn_maker make, int max)
{
    for (int i = 0; i < max; i++) {
        char buf[32];
        cg_analytics_turn t;
        make(i, &t, buf);
        size_t before = cg_analytics_batch_pending(b);
        assert_int_equal(cg_analytics_batch_add(b, &t), 0);
        if (cg_analytics_batch_pending(b) != before + 1) {
            assert_int_equal(cg_analytics_batch_pending(b), 1);
            return i;
        }
    }
    return -1;
}

static int64_t batch_now;
static void distinct_users(int i, cg_analytics_turn *t, char *buf)
{
    snprintf(buf, 32, "9%05d", i);
    *t = (cg_analytics_turn){ .channel = "whatsapp", .user = buf, .turn = 1, .now_ms = batch_now };
}
static void distinct_intents(int i, cg_analytics_turn *t, char *buf)
{
    snprintf(buf, 32, "intent-%d", i);
    *t = (cg_analytics_turn){ .channel = "messenger", .user = "77", .turn = 1, .intent = buf, .now_ms = batch_now };
}
static void distinct_channels(int i, cg_analytics_turn *t, char *buf)
{
    snprintf(buf, 32, "ch%d", i);
    *t = (cg_analytics_turn){ .channel = buf, .user = "77", .now_ms = batch_now };
}

/* The daily counters' batch (analytics.h): the turns of one loop iteration
 * summed into one script call (one HINCRBY per counter, one PFADD), the
 * day's EXPIREAT with its first write only; a second batch adds on top;
 * each bound sends the batch early; Redis down: dropped, not retried. */
static void test_analytics_batch(void **state)
{
    (void)state;
    cmd_int("FLUSHALL");
    gw.store = cg_store_new(&gw);
    assert_true(run_until(store_ready, gw.store, 3000));
    cg_analytics_batch *b = cg_analytics_batch_new(&loop, gw.store, &cfg);
    assert_non_null(b);
    batch_now = cg_store_now_ms();
    char day[11], key[64], hll[64], wkey[64], q[160];
    cg_analytics_day(batch_now, day);
    snprintf(key, sizeof key, "cg:an:day:%s:telegram", day);
    snprintf(hll, sizeof hll, "cg:an:conv:%s:telegram", day);
    snprintf(wkey, sizeof wkey, "cg:an:day:%s:webchat", day);
    long long at = cg_analytics_expire_at(&cfg, batch_now);

    /* one iteration's commits: five messages of three conversations */
    const cg_analytics_turn turns[] = {
        { .channel = "telegram", .user = "801", .turn = 1, .intent = "passport", .now_ms = batch_now },
        { .channel = "telegram", .user = "801", .turn = 1, .fallback = 1, .now_ms = batch_now },
        { .channel = "telegram", .user = "802", .agent = 1, .now_ms = batch_now },
        { .channel = "telegram", .user = "803", .turn = 1, .intent = "passport", .csat = 4, .now_ms = batch_now },
        { .channel = "telegram", .user = "802", .turn = 1, .handoff = 1, .intent = "human", .now_ms = batch_now },
    };
    cmd_int("CONFIG RESETSTAT");
    for (size_t i = 0; i < 5; i++) assert_int_equal(cg_analytics_batch_add(b, &turns[i]), 0);
    assert_int_equal(cg_analytics_batch_pending(b), 5);
    assert_int_equal(cmd_int("EXISTS %s", key), 0);        /* summed, not written yet */
    assert_true(run_until(batch_sent, b, 3000));          /* the uv_check sent it */
    snprintf(q, sizeof q, "HGET %s messages", key);
    assert_true(wait_int(q, 5, 3000));
    static const struct { const char *field; long long want; } sums[] = {
        {"turns", 4}, {"fallback", 1}, {"to_agent", 1}, {"handoff", 1}, {"i:passport", 2}, {"i:human", 1},
        {"csat_n", 1}, {"csat_sum", 4}, {"csat:4", 1}, {"ambiguous", 0},
    };
    for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++)
        if (hget_int(key, sums[i].field) != sums[i].want)
            fail_msg("%s: %lld, want %lld", sums[i].field, hget_int(key, sums[i].field), sums[i].want);
    assert_int_equal(cmd_int("PFCOUNT %s", hll), 3);
    assert_int_equal(cmd_int("EXPIRETIME %s", key), at);
    assert_int_equal(cmd_int("EXPIRETIME %s", hll), at);
    /* one write per counter and one PFADD for the five messages */
    assert_int_equal(calls("hincrby"), 10);
    assert_int_equal(calls("pfadd"), 1);
    assert_int_equal(calls("expireat"), 2);

    /* the next iteration: on top of it, another channel in the same call */
    cmd_int("CONFIG RESETSTAT");
    const cg_analytics_turn more[] = {
        { .channel = "telegram", .user = "801", .turn = 1, .intent = "passport", .now_ms = batch_now },
        { .channel = "telegram", .user = "804", .turn = 1, .fallback = 1, .now_ms = batch_now },
        { .channel = "webchat", .user = "wc9", .turn = 1, .intent = "passport", .now_ms = batch_now },
    };
    for (size_t i = 0; i < 3; i++) assert_int_equal(cg_analytics_batch_add(b, &more[i]), 0);
    assert_true(run_until(batch_sent, b, 3000));
    snprintf(q, sizeof q, "HGET %s messages", wkey);
    assert_true(wait_int(q, 1, 3000));
    assert_int_equal(hget_int(key, "messages"), 7);
    assert_int_equal(hget_int(key, "turns"), 6);
    assert_int_equal(hget_int(key, "i:passport"), 3);
    assert_int_equal(hget_int(key, "fallback"), 2);
    assert_int_equal(cmd_int("PFCOUNT %s", hll), 4);
    assert_int_equal(cmd_int("EXPIRETIME %s", key), at);
    assert_int_equal(cmd_int("EXPIRETIME %s", wkey), at);
    /* one call (the store's own periodic scripts, e.g. the stream gauges,
     * may add one on a slow machine: an upper bound would be flaky) */
    assert_true(calls("evalsha") + calls("eval") >= 1 && calls("evalsha") + calls("eval") <= 4);
    assert_int_equal(calls("expireat"), 2);      /* the web chat's first write only */
    assert_int_equal(calls("pfadd"), 2);

    /* bounds: a turn that does not fit sends the batch at once */
    cmd_int("CONFIG RESETSTAT");
    char cids[CG_AN_BATCH_CIDS + 1][8];
    int ncids = 0, i;
    for (i = 0; ncids <= CG_AN_BATCH_CIDS; i++) {      /* distinct cids, as the batch will see them */
        char u[32], c[8];
        snprintf(u, sizeof u, "9%05d", i);
        cg_analytics_cid("whatsapp", u, c);
        int known = 0;
        for (int k = 0; k < ncids; k++) known |= !strcmp(cids[k], c);
        if (!known) memcpy(cids[ncids++], c, sizeof c);
    }
    int first_over = i - 1;                             /* the turn that brings cid number CIDS + 1 */
    assert_int_equal(add_until_flush(b, distinct_users, 4 * CG_AN_BATCH_CIDS), first_over);
    assert_int_equal(add_until_flush(b, distinct_intents, 4 * CG_AN_BATCH_FIELDS), CG_AN_BATCH_FIELDS - 2);
    assert_int_equal(add_until_flush(b, distinct_channels, 4 * CG_AN_BATCH_KEYS), CG_AN_BATCH_KEYS - 1);
    assert_true(run_until(batch_sent, b, 3000));
    snprintf(q, sizeof q, "HGET cg:an:day:%s:ch%d messages", day, CG_AN_BATCH_KEYS - 1);
    assert_true(wait_int(q, 1, 3000));
    /* nothing lost: every message of the three early-sent batches and the last */
    snprintf(q, sizeof q, "cg:an:day:%s:whatsapp", day);
    assert_int_equal(hget_int(q, "messages"), first_over + 1);
    snprintf(q, sizeof q, "cg:an:day:%s:messenger", day);
    assert_int_equal(hget_int(q, "messages"), CG_AN_BATCH_FIELDS - 1);
    assert_int_equal(hget_int(q, "i:intent-0"), 1);
    /* the three early batches and the last (+ the store's periodic scripts
     * on a slow machine) */
    assert_true(calls("evalsha") + calls("eval") >= 4 && calls("evalsha") + calls("eval") <= 7);
    cg_analytics_batch_free(b);

    /* Redis down: the batch is dropped (logged), nothing is retried */
    static cg_config c2;       /* static: the store outlives a failed assertion (above) */
    static char u2[64];
    static cg_gateway g2;
    c2 = cfg;
    snprintf(u2, sizeof u2, "redis://127.0.0.1:%d/0", free_port());
    c2.redis_url = u2;
    g2 = gw;
    g2.cfg = &c2;
    cg_store *dead = cg_store_new(&g2);
    assert_non_null(dead);
    cg_analytics_batch *d = cg_analytics_batch_new(&loop, dead, &c2);
    assert_int_equal(cg_analytics_batch_add(d, &turns[0]), 0);
    assert_true(run_until(batch_sent, d, 3000));
    assert_int_equal(cg_analytics_batch_flush(d), 0);
    cg_analytics_batch_free(d);
    close_store(dead);

    /* refused: no channel, or too long a one */
    cg_analytics_batch *e = cg_analytics_batch_new(&loop, gw.store, &cfg);
    cg_analytics_turn bad = { .channel = "", .user = "1", .now_ms = batch_now };
    assert_int_equal(cg_analytics_batch_add(e, &bad), -1);
    bad.channel = "a-channel-name-too-long";
    assert_int_equal(cg_analytics_batch_add(e, &bad), -1);
    assert_int_equal(cg_analytics_batch_pending(e), 0);
    cg_analytics_batch_free(e);
    close_store(gw.store);
    gw.store = NULL;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_dedupe),
        cmocka_unit_test(test_ingest_error_after_dedupe),
        cmocka_unit_test(test_ingest_unavailable),
        cmocka_unit_test(test_ingest_not_behind_other_commands),
        cmocka_unit_test(test_ingest_takes_for_the_pipeline),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_webchat_pubsub),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_outbox),
        cmocka_unit_test(test_outbox_buttons),
        cmocka_unit_test(test_outbox_keepalive),
        cmocka_unit_test(test_outbox_finish_waits),
        cmocka_unit_test(test_lost_read_after_reconnect),
        cmocka_unit_test(test_outbox_takes_from_the_commit),
        cmocka_unit_test(test_outbox_after_erasure),
        cmocka_unit_test(test_two_instances),
        cmocka_unit_test(test_pipeline_concurrent),
        cmocka_unit_test(test_pipeline_flow),
        cmocka_unit_test(test_pipeline_ttl),
        cmocka_unit_test(test_pipeline_session_changes),
        cmocka_unit_test(test_pipeline_direct),
        cmocka_unit_test(test_pipeline_direct_outbox_read),
        cmocka_unit_test(test_analytics_counters),
        cmocka_unit_test(test_analytics_flushed_on_stop),
        cmocka_unit_test(test_analytics_dup_commit),
        cmocka_unit_test(test_analytics_batch),
        cmocka_unit_test(test_url_auth_select),
        cmocka_unit_test(test_hostile_entries),
        cmocka_unit_test(test_ingest_after_redis_restart),
    };
    if (getenv("CG_TEST_FILTER")) cmocka_set_test_filter(getenv("CG_TEST_FILTER"));   /* e.g. "test_outbox*" */
    return cmocka_run_group_tests(tests, setup, teardown);
}
