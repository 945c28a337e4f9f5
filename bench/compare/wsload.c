/*
 * wsload.c: many open web-chat WebSockets at one gateway, to measure what
 * holding them costs (the target: 10,000 sockets in ≤ 64 MB of gateway RSS).
 *
 *   wsload --port P [--connections N] [--ramp PER_S] [--pending K] [--hold S]
 *          [--origin O] [--path /chat/ws] [--watch-pid PID] [--verbose 1]
 *
 * Opens N WebSocket connections to 127.0.0.1:P with the subprotocol
 * civicgate-webchat and the given Origin (it must be in the gateway's
 * channels.webchat.allowed_origins), at most PER_S new connections a second
 * and at most K not yet greeted at any time (so that a busy gateway is not
 * flooded with handshakes it cannot serve before lws times them out), sends
 * each the first frame of the protocol ({"type":"hello","token":"","lang":"en"},
 * see docs/webchat.md) and counts the welcomes. Once every connection is
 * welcomed or failed (or nothing changed for 30 s), it holds them S seconds (sending a
 * ping frame on each every 20 s, as the widget does every 25 s), reads
 * VmRSS and VmHWM of --watch-pid (the gateway), and prints one JSON object
 * (--verbose 1: a progress line a second on stderr). Defaults: 10,000
 * connections, 1,000 a second, 200 pending, hold 10 s. (Without the pending
 * cap, on the shared 2-core VM under load, thousands of handshakes failed
 * with "read failed" or never finished.)
 *
 * One process, one thread, libwebsockets' own poll loop. Bounded: N ≤
 * MAX_CONNS (and the process's fd limit: raise `ulimit -n` first; one client
 * address can use about 28,000 ephemeral ports towards one server port),
 * opening ≤ 300 s, hold ≤ 300 s. Loopback targets only.
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_CONNS 25000

static struct {
    int port, conns, ramp, hold, pending;
    const char *origin, *path;
    int watch_pid, verbose;
} O = {0, 10000, 1000, 10, 200, "http://127.0.0.1:8080", "/chat/ws", 0, 0};

static long n_started, n_established, n_welcomed, n_errors, n_closed, n_other;
static char first_error[200];

/* One per connection, owned here (passed as the wsi's user space through
 * ci.userdata); wsi is NULL until established and again once closed. */
typedef struct { struct lws *wsi; int hello_sent, ping_due, welcomed; } pss_t;

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    pss_t *s = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        n_established++;
        s->wsi = wsi;
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        unsigned char buf[LWS_PRE + 64];
        const char *frame = NULL;
        if (!s->hello_sent) { frame = "{\"type\":\"hello\",\"token\":\"\",\"lang\":\"en\"}"; s->hello_sent = 1; }
        else if (s->ping_due) { frame = "{\"type\":\"ping\"}"; s->ping_due = 0; }
        if (!frame) break;
        size_t n = strlen(frame);
        memcpy(buf + LWS_PRE, frame, n);
        if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n) return -1;
        break;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!s->welcomed && len > 16 && memmem(in, len, "\"welcome\"", 9)) { s->welcomed = 1; n_welcomed++; }
        else if (len < 32 && memmem(in, len, "\"pong\"", 6)) break;
        else n_other++;
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (s) s->wsi = NULL;
        n_errors++;
        if (!first_error[0])
            snprintf(first_error, sizeof first_error, "%.*s", (int)(len < 150 ? len : 150), in ? (const char *)in : "?");
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (s) s->wsi = NULL;
        n_closed++;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"civicgate-webchat", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static pss_t *conns;

static void proc_mem(int pid, long *rss_kb, long *hwm_kb)
{
    char path[64], line[256];
    *rss_kb = *hwm_kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6)) *rss_kb = atol(line + 6);
        else if (!strncmp(line, "VmHWM:", 6)) *hwm_kb = atol(line + 6);
    }
    fclose(f);
}

/* The 10 ms tick (lws_service() sleeps until the next scheduled event, so
 * the ramp, the pings, the progress lines and the end are all driven from
 * here): start the connections that are due, then hold, then stop. */
static struct lws_context *ctx;
static lws_sorted_usec_list_t tick_sul;
static lws_usec_t t0, t_ready, t_hold_end, t_next_ping, t_report, t_progress;
static long last_done = -1;
static int finished;

static void tick(lws_sorted_usec_list_t *sul)
{
    lws_usec_t now = lws_now_usecs();
    long due = (long)((double)(now - t0) / 1e6 * O.ramp) + 1;
    while (n_started < O.conns && n_started < due && n_started - n_welcomed - n_errors - n_closed < O.pending) {
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof ci);
        ci.context = ctx;
        ci.address = "127.0.0.1";
        ci.port = O.port;
        ci.path = O.path;
        ci.host = "127.0.0.1";
        ci.origin = O.origin;
        ci.protocol = "civicgate-webchat";
        ci.local_protocol_name = "civicgate-webchat";
        ci.userdata = &conns[n_started];
        n_started++;
        if (!lws_client_connect_via_info(&ci)) {
            n_errors++;
            if (!first_error[0]) snprintf(first_error, sizeof first_error, "connect_via_info failed");
        }
    }
    long done = n_welcomed + n_errors + n_closed;
    if (done != last_done) { last_done = done; t_progress = now; }
    if (!t_ready && ((n_started == O.conns && done >= O.conns) || now - t_progress > 30 * LWS_US_PER_SEC
                     || now - t0 > 300 * LWS_US_PER_SEC)) {
        t_ready = now;
        t_hold_end = now + (lws_usec_t)O.hold * LWS_US_PER_SEC;
        t_next_ping = now + 20 * LWS_US_PER_SEC;
    }
    if (t_ready && now >= t_next_ping) {
        for (long i = 0; i < O.conns; i++)
            if (conns[i].wsi) { conns[i].ping_due = 1; lws_callback_on_writable(conns[i].wsi); }
        t_next_ping = now + 20 * LWS_US_PER_SEC;
    }
    if (O.verbose && now >= t_report) {
        fprintf(stderr, "wsload: %.1f s started %ld established %ld welcomed %ld errors %ld closed %ld\n",
                (double)(now - t0) / 1e6, n_started, n_established, n_welcomed, n_errors, n_closed);
        t_report = now + LWS_US_PER_SEC;
    }
    if (t_ready && now >= t_hold_end) { finished = 1; lws_cancel_service(ctx); return; }
    lws_sul_schedule(ctx, 0, sul, tick, 10 * LWS_US_PER_MS);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--port")) O.port = atoi(v);
        else if (!strcmp(a, "--connections")) O.conns = atoi(v);
        else if (!strcmp(a, "--ramp")) O.ramp = atoi(v);
        else if (!strcmp(a, "--hold")) O.hold = atoi(v);
        else if (!strcmp(a, "--pending")) O.pending = atoi(v);
        else if (!strcmp(a, "--origin")) O.origin = v;
        else if (!strcmp(a, "--path")) O.path = v;
        else if (!strcmp(a, "--watch-pid")) O.watch_pid = atoi(v);
        else if (!strcmp(a, "--verbose")) O.verbose = atoi(v);
        else { O.port = 0; break; }
    }
    if (argc % 2 == 0 || O.port <= 0 || O.port > 65535 || O.conns < 1 || O.conns > MAX_CONNS
        || O.ramp < 1 || O.pending < 1 || O.hold < 0 || O.hold > 300) {
        fprintf(stderr, "usage: wsload --port P [--connections 1..%d] [--ramp PER_S] [--pending K] [--hold 0..300 S]\n"
                        "              [--origin O] [--path /chat/ws] [--watch-pid PID] [--verbose 1]\n", MAX_CONNS);
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)O.conns + 64) {
        fprintf(stderr, "wsload: %d connections need `ulimit -n` ≥ %d (it is %lu)\n",
                O.conns, O.conns + 64, (unsigned long)rl.rlim_cur);
        return 2;
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.options = LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;   /* send Origin exactly as given */
    info.protocols = protocols;
    info.fd_limit_per_thread = (unsigned)O.conns + 64;
    ctx = lws_create_context(&info);
    if (!ctx) { fprintf(stderr, "wsload: lws_create_context failed\n"); return 2; }
    conns = calloc((size_t)O.conns, sizeof *conns);
    if (!conns) return 2;

    t0 = lws_now_usecs();
    t_progress = t0;
    lws_sul_schedule(ctx, 0, &tick_sul, tick, 1);
    while (!finished) lws_service(ctx, 0);
    long rss = -1, hwm = -1;
    if (O.watch_pid) proc_mem(O.watch_pid, &rss, &hwm);
    long open = n_established - n_closed;
    printf("{\"connections\":%d,\"established\":%ld,\"welcomed\":%ld,\"open_at_end\":%ld,\"errors\":%ld,"
           "\"closed_early\":%ld,\"unexpected_frames\":%ld,\"ramp_seconds\":%.2f,\"hold_seconds\":%d,"
           "\"gateway_rss_kb\":%ld,\"gateway_hwm_kb\":%ld,\"first_error\":\"%s\"}\n",
           O.conns, n_established, n_welcomed, open, n_errors, n_closed, n_other,
           (double)(t_ready - t0) / 1e6, O.hold, rss, hwm, first_error);
    fflush(stdout);
    lws_context_destroy(ctx);
    return n_welcomed == O.conns ? 0 : 1;
}
