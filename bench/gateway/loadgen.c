/*
 * loadgen.c: the gateway benchmark's load generator and fake Bot API in one
 * single-threaded libuv process, so that neither is the bottleneck.
 *
 * It sends signed Telegram webhooks (X-Telegram-Bot-Api-Secret-Token) for
 * many distinct chats to a running gateway over keep-alive connections, and
 * serves the Bot API's sendMessage / answerCallbackQuery on --api-port,
 * recording each reply. Replies are matched to messages per chat in order
 * (the gateway keeps per-conversation order), which gives end-to-end latency,
 * lost replies (acknowledged, never answered) and duplicates.
 *
 *   closed loop: --concurrency C   C connections, each sends its next message
 *                                  when the previous webhook is acknowledged
 *   open loop:   --rate R          R messages/s on a schedule (message k due at
 *                                  k / R, a timerfd armed at each due time); latency
 *                                  counts from the due time (no coordinated omission)
 *
 * Bounded: --messages N and --duration S (whichever first), then --drain S to
 * wait for the last replies. Targets 127.0.0.1 only. Output: one JSON object.
 *
 * The message text is --text T, or the lines of --texts FILE in turn (at most
 * MAX_TEXTS lines of at most MAX_TEXT bytes, no '"', '\\' or control
 * characters: they are pasted into the JSON as they are). bench/compare uses
 * --texts so that every system answers the same mix of questions.
 *
 * --warmup S: first S seconds of the same load, unmeasured (JIT compilers,
 * caches, connection pools warm up), then wait until every warm-up webhook
 * is answered (at most --drain S), reset the counters and measure. The fake
 * API stays up throughout, so the system under test keeps its connections.
 * --trace FILE: one line per acknowledged webhook, "<due ms> ack <latency
 * ms> <ms since written>" (the two differ by how late it left), and per
 * reply, "<due ms> e2e <latency ms>" (times from the start), to see when the
 * slow ones happen (timers, fsync, GC...); the warm-up is left out.
 * --watch PID,PID,...: processes whose CPU time (utime + stime from
 * /proc/PID/stat) over the measured part and peak RSS (VmHWM) are reported,
 * in the order given, with the load generator's own CPU time.
 * A connection the server closes (Node closes idle keep-alive connections
 * after 5 s) is opened again; a webhook that was in flight on it is counted
 * in "failed" (never acknowledged).
 */
#include <errno.h>
#include <sys/timerfd.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_CONNS 1024
#define MAX_CHATS 100000
#define BUF_CAP   (64 * 1024)
#define MAX_TEXTS 64
#define MAX_TEXT  200
#define MAX_WATCH 8

typedef struct {
    const char *gw_host; int gw_port; int api_port;
    const char *secret, *token, *text;
    int chats, messages, concurrency; double rate, duration, drain, warmup;
} opts_t;

static opts_t O = {"127.0.0.1", 8080, 18081, "bench-secret", "123:bench", "medicaid",
                   500, 20000, 32, 0, 30, 10, 0};
static uv_loop_t *loop;
static char texts[MAX_TEXTS][MAX_TEXT + 1];
static int ntexts;
static int watch[MAX_WATCH], nwatch;
static double watch_cpu0[MAX_WATCH], self_cpu0;

/* CPU seconds (user + system, all threads) of pid so far; -1 if gone. */
static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');     /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ")": state, then fields 4..13, then utime (14) and stime (15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmHWM of pid in kB; -1 if gone. */
static long proc_hwm(int pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
    fclose(f);
    return kb;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec
         + ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static void cpu_baseline(void)
{
    for (int i = 0; i < nwatch; i++) watch_cpu0[i] = proc_cpu(watch[i]);
    self_cpu0 = self_cpu();
}

/* Reads --texts FILE into texts[]; exits with a message on anything unsafe. */
static void load_texts(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "loadgen: cannot open %s\n", path); exit(2); }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (!n) continue;
        if (ntexts == MAX_TEXTS || n > MAX_TEXT) {
            fprintf(stderr, "loadgen: %s: at most %d lines of %d bytes\n", path, MAX_TEXTS, MAX_TEXT);
            exit(2);
        }
        for (size_t i = 0; i < n; i++)
            if (line[i] == '"' || line[i] == '\\' || (unsigned char)line[i] < 0x20) {
                fprintf(stderr, "loadgen: %s: '\"', '\\' and control characters are not allowed\n", path);
                exit(2);
            }
        memcpy(texts[ntexts++], line, n + 1);
    }
    fclose(f);
    if (!ntexts) { fprintf(stderr, "loadgen: %s has no text\n", path); exit(2); }
}

/* ---- statistics --------------------------------------------------------- */
typedef struct { double *v; size_t n, cap; } samples_t;
static samples_t ack_lat, e2e_lat;
static FILE *trace;
static void sample(samples_t *s, double x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    s->v[s->n++] = x;
}
static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double pct(samples_t *s, double p)
{
    if (!s->n) return 0;
    size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
    return s->v[i];
}

/* Per chat: send times of messages in send order, FIFO matched by replies
 * (a reply may arrive before its webhook's 200 does: the gateway answers
 * the platform only after Redis has the message, and the pipeline may be
 * quicker than that response). acked counts 200s; lost and duplicates are
 * counted against it at the end. */
typedef struct { double *sent; int nsent, cap, replies, acked; } chat_t;
static chat_t *chats;
static long sent_total, acked_total, rejected_total, replies_total, dup_total, sched_total;
static double t_start, t_last_reply, t_load_end;
static int load_done, warming;
static long warmup_sent, warmup_undrained, failed_total, reconnects_total;
static int stopping;

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

/* ---- minimal HTTP/1.1 framing --------------------------------------------- */
/* Returns the total length of one complete message in buf (headers + body),
 * 0 when incomplete, -1 when malformed. status/path out as found. */
static long http_frame(const char *buf, size_t len, int *status, char *path, size_t pcap,
                       const char **body, long *blen)
{
    const char *end = NULL;
    for (size_t i = 3; i < len; i++)
        if (buf[i - 3] == '\r' && buf[i - 2] == '\n' && buf[i - 1] == '\r' && buf[i] == '\n') {
            end = buf + i + 1;
            break;
        }
    if (!end) return len > BUF_CAP - 1 ? -1 : 0;
    long cl = 0;
    const char *p = buf;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        if (!strncasecmp(p, "content-length:", 15)) cl = strtol(p + 15, NULL, 10);
        p = nl + 1;
    }
    if (status && !strncmp(buf, "HTTP/1.", 7)) *status = atoi(buf + 9);
    if (path) {
        const char *sp = memchr(buf, ' ', (size_t)(end - buf));
        const char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(end - sp - 1)) : NULL;
        size_t n = sp && sp2 ? (size_t)(sp2 - sp - 1) : 0;
        if (n >= pcap) n = pcap - 1;
        if (n) memcpy(path, sp + 1, n);
        path[n] = '\0';
    }
    long total = (long)(end - buf) + cl;
    if ((size_t)total > len) return 0;
    *body = end;
    *blen = cl;
    return total;
}

/* ---- fake Bot API ---------------------------------------------------------- */
typedef struct { uv_tcp_t tcp; char buf[BUF_CAP]; size_t len; long msgid; } api_conn_t;
typedef struct { uv_write_t w; char data[256]; } wreq_t;

static void on_close_free(uv_handle_t *h) { free(h->data); }
static void alloc_api(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    api_conn_t *c = h->data;
    b->base = c->buf + c->len;
    b->len = sizeof c->buf - c->len;
}
static void after_write(uv_write_t *w, int st) { (void)st; free(w); }

static void api_reply(api_conn_t *c, const char *json)
{
    wreq_t *w = malloc(sizeof *w);
    int bl = (int)strlen(json);
    int n = snprintf(w->data, sizeof w->data,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", bl, json);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, after_write);
}

static void record_reply(const char *body, long blen)
{
    const char *k = NULL;
    for (long i = 0; i + 9 < blen; i++)
        if (!memcmp(body + i, "\"chat_id\"", 9)) { k = body + i + 9; break; }
    if (!k) return;
    while (*k == ':' || *k == ' ' || *k == '"') k++;
    long chat = strtol(k, NULL, 10) - 1000000;
    if (chat < 0 || chat >= O.chats) return;
    chat_t *c = &chats[chat];
    double t = now_ms();
    replies_total++;
    t_last_reply = t;
    if (c->replies < c->nsent) {
        sample(&e2e_lat, t - c->sent[c->replies]);
        if (trace && !warming) fprintf(trace, "%.3f e2e %.3f\n", c->sent[c->replies] - t_start, t - c->sent[c->replies]);
    }
    c->replies++;
}

static void api_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    api_conn_t *c = s->data;
    if (n < 0) { uv_close((uv_handle_t *)s, on_close_free); return; }
    c->len += (size_t)n;
    for (;;) {
        char path[256];
        const char *body;
        long blen;
        long m = http_frame(c->buf, c->len, NULL, path, sizeof path, &body, &blen);
        if (m < 0) { uv_close((uv_handle_t *)s, on_close_free); return; }
        if (m == 0) break;
        if (strstr(path, "/sendMessage")) {
            record_reply(body, blen);
            char js[128];
            snprintf(js, sizeof js, "{\"ok\":true,\"result\":{\"message_id\":%ld}}", ++c->msgid);
            api_reply(c, js);
        } else {
            api_reply(c, "{\"ok\":true,\"result\":true}");
        }
        memmove(c->buf, c->buf + m, c->len - (size_t)m);
        c->len -= (size_t)m;
    }
}

static void api_accept(uv_stream_t *srv, int st)
{
    if (st < 0) return;
    api_conn_t *c = calloc(1, sizeof *c);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start((uv_stream_t *)&c->tcp, alloc_api, api_read);
    } else uv_close((uv_handle_t *)&c->tcp, on_close_free);
}

/* ---- webhook client ---------------------------------------------------------- */
typedef struct client {
    uv_tcp_t tcp; uv_connect_t conn;
    char buf[BUF_CAP]; size_t len;
    int busy, connected;
    double t_sched;      /* when this request was due (open loop) or sent */
    double t_sent;       /* when it was written (later than t_sched when the schedule slipped) */
    long chat;
    char req[2048];
} client_t;

static client_t *clients;
static int nclients;
static long next_msg;
static uv_timer_t tick;

static void client_send(client_t *c, double due);

static int pick_free(void)
{
    for (int i = 0; i < nclients; i++)
        if (clients[i].connected && !clients[i].busy) return i;
    return -1;
}

static void maybe_finish(void)
{
    if (warming) {
        if (!load_done && now_ms() - t_start > O.warmup * 1000) {
            load_done = 1;
            t_load_end = now_ms();
        }
        return;
    }
    if (!load_done && (sent_total >= O.messages || now_ms() - t_start > O.duration * 1000)) {
        load_done = 1;
        t_load_end = now_ms();
    }
}

static void on_connect(uv_connect_t *r, int st);
static struct sockaddr_in gw_addr;

static void client_reopen(uv_handle_t *h)
{
    client_t *c = h->data;
    if (stopping) return;
    reconnects_total++;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->conn.data = c;
    uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&gw_addr, on_connect);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    client_t *c = s->data;
    if (n < 0) {
        /* An idle keep-alive connection closed by the server (Node closes
         * them after 5 s): open another. A webhook in flight on it is
         * counted as failed (never acknowledged, as Telegram would see it). */
        if (c->busy) failed_total++;
        c->busy = 0;
        c->connected = 0;
        c->len = 0;
        uv_close((uv_handle_t *)&c->tcp, client_reopen);
        return;
    }
    c->len += (size_t)n;
    for (;;) {
        int status = 0;
        const char *body;
        long blen;
        long m = http_frame(c->buf, c->len, &status, NULL, 0, &body, &blen);
        if (m <= 0) break;
        double t = now_ms();
        if (status == 200) {
            acked_total++;
            sample(&ack_lat, t - c->t_sched);
            if (trace && !warming) fprintf(trace, "%.3f ack %.3f %.3f\n", c->t_sched - t_start, t - c->t_sched, t - c->t_sent);
            chats[c->chat].acked++;
        } else rejected_total++;
        memmove(c->buf, c->buf + m, c->len - (size_t)m);
        c->len -= (size_t)m;
        c->busy = 0;
        maybe_finish();
        if (!load_done && O.rate <= 0) client_send(c, now_ms());
    }
}

static void alloc_client(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    client_t *c = h->data;
    b->base = c->buf + c->len;
    b->len = sizeof c->buf - c->len;
}

static void client_send(client_t *c, double due)
{
    long i = next_msg++;
    long chat = i % O.chats;
    /* With many connections and few chats, keep one message in flight per chat. */
    c->chat = chat;
    c->busy = 1;
    c->t_sched = due;
    c->t_sent = now_ms();
    chat_t *ch = &chats[chat];
    if (ch->nsent == ch->cap) {
        ch->cap = ch->cap ? 2 * ch->cap : 8;
        ch->sent = realloc(ch->sent, (size_t)ch->cap * sizeof *ch->sent);
        if (!ch->sent) abort();
    }
    ch->sent[ch->nsent++] = due;
    char body[1024];
    int bl = snprintf(body, sizeof body,
        "{\"update_id\":%ld,\"message\":{\"message_id\":%ld,\"from\":{\"id\":%ld,\"is_bot\":false,"
        "\"first_name\":\"Load\",\"language_code\":\"en\"},\"chat\":{\"id\":%ld,\"first_name\":\"Load\","
        "\"type\":\"private\"},\"date\":1764194400,\"text\":\"%s\"}}",
        900000000L + i, i + 1, 1000000 + chat, 1000000 + chat, ntexts ? texts[i % ntexts] : O.text);
    int n = snprintf(c->req, sizeof c->req,
        "POST /webhooks/telegram HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "X-Telegram-Bot-Api-Secret-Token: %s\r\nContent-Length: %d\r\n\r\n%s", O.secret, bl, body);
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t b = uv_buf_init(c->req, (unsigned)n);
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, after_write);
    sent_total++;
}

static void on_connect(uv_connect_t *r, int st)
{
    client_t *c = r->data;
    if (st < 0) { fprintf(stderr, "loadgen: connect: %s\n", uv_strerror(st)); exit(2); }
    c->connected = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_client, on_client_read);
    if (O.rate <= 0 && !load_done) client_send(c, now_ms());
}

/* End of the warm-up: forget it and start the measured load. */
static void begin_measured(double now)
{
    warming = 0;
    warmup_sent = sent_total;
    warmup_undrained = acked_total - replies_total;
    for (int i = 0; i < O.chats; i++) chats[i].nsent = chats[i].replies = chats[i].acked = 0;
    sent_total = acked_total = rejected_total = replies_total = dup_total = sched_total = 0;
    failed_total = reconnects_total = 0;
    ack_lat.n = e2e_lat.n = 0;
    t_start = now;
    t_last_reply = 0;
    load_done = 0;
    cpu_baseline();
    if (O.rate <= 0)
        for (int i = 0; i < nclients; i++)
            if (clients[i].connected && !clients[i].busy) client_send(&clients[i], now);
}

/* Open loop: the webhooks due by now, each on a free connection (none free:
 * the schedule slips, and latency still counts from the due time). */
static void send_due(double now)
{
    long due = (long)((now - t_start) * O.rate / 1000.0) + 1;   /* message k is due at k / rate */
    while (sched_total < due && sent_total < O.messages) {
        int i = pick_free();
        if (i < 0) break;
        double due_t = t_start + (double)sched_total * 1000.0 / O.rate;
        sched_total++;
        client_send(&clients[i], due_t);
    }
}

/* The open loop's clock: a timerfd armed at the next message's due time
 * (CLOCK_MONOTONIC, uv_hrtime's clock), so that webhooks leave on time. A
 * libuv timer alone has millisecond steps and fires late by up to one more
 * loop iteration: at 1 000/s its sends were 1.7 ms late at the median, and
 * that lateness counted as the system's latency. */
static int sched_fd = -1;
static uv_poll_t sched_poll;

static void sched_arm(void)
{
    if (sched_fd < 0 || load_done || O.rate <= 0) return;
    double next = t_start + (double)sched_total * 1000.0 / O.rate;   /* ms, uv_hrtime's base */
    if (next <= now_ms()) next = now_ms() + 0.1;   /* slipped (no free connection): try again soon */
    uint64_t ns = next > 0 ? (uint64_t)(next * 1e6) : 1;
    struct itimerspec its = { { 0, 0 }, { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) } };
    timerfd_settime(sched_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_sched(uv_poll_t *h, int status, int events)
{
    (void)h; (void)status; (void)events;
    uint64_t expirations;
    if (read(sched_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) return;
    maybe_finish();
    if (!load_done && O.rate > 0) send_due(now_ms());
    sched_arm();
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    double now = now_ms();
    maybe_finish();
    if (!load_done && O.rate > 0) {
        send_due(now);
        sched_arm();
    }
    if (load_done) {
        int inflight = 0;
        for (int i = 0; i < nclients; i++) inflight += clients[i].busy;
        long outstanding = acked_total - replies_total;
        if ((!inflight && outstanding <= 0) || now - t_load_end > O.drain * 1000) {
            if (warming) { begin_measured(now); sched_arm(); }
            else { stopping = 1; uv_stop(loop); }
        }
    }
}

static void usage(void)
{
    fprintf(stderr,
        "usage: loadgen [--gateway HOST:PORT] [--api-port P] [--secret S] [--token T] [--chats N]\n"
        "               [--messages N] [--concurrency C | --rate R] [--duration S] [--drain S]\n"
        "               [--text T | --texts FILE] [--warmup S] [--watch PID,PID,...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--gateway")) {
            static char host[64];
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof host) usage();
            memcpy(host, v, (size_t)(colon - v));
            O.gw_host = host;
            O.gw_port = atoi(colon + 1);
        } else if (!strcmp(a, "--api-port")) O.api_port = atoi(v);
        else if (!strcmp(a, "--secret")) O.secret = v;
        else if (!strcmp(a, "--token")) O.token = v;
        else if (!strcmp(a, "--chats")) O.chats = atoi(v);
        else if (!strcmp(a, "--messages")) O.messages = atoi(v);
        else if (!strcmp(a, "--concurrency")) O.concurrency = atoi(v);
        else if (!strcmp(a, "--rate")) O.rate = atof(v);
        else if (!strcmp(a, "--duration")) O.duration = atof(v);
        else if (!strcmp(a, "--drain")) O.drain = atof(v);
        else if (!strcmp(a, "--text")) O.text = v;
        else if (!strcmp(a, "--texts")) load_texts(v);
        else if (!strcmp(a, "--warmup")) O.warmup = atof(v);
        else if (!strcmp(a, "--trace")) {
            trace = fopen(v, "w");
            if (!trace) { perror(v); exit(2); }
        }
        else if (!strcmp(a, "--watch")) {
            for (const char *p = v; *p && nwatch < MAX_WATCH; ) {
                watch[nwatch++] = atoi(p);
                p = strchr(p, ',');
                if (!p) break;
                p++;
            }
        }
        else usage();
        i++;
    }
    if (O.chats < 1 || O.chats > MAX_CHATS || O.concurrency < 1 || O.concurrency > MAX_CONNS) usage();
    if (strcmp(O.gw_host, "127.0.0.1") && strcmp(O.gw_host, "localhost")) {
        fprintf(stderr, "loadgen: loopback targets only\n");
        return 2;
    }
    loop = uv_default_loop();
    chats = calloc((size_t)O.chats, sizeof *chats);

    uv_tcp_t api;
    struct sockaddr_in a;
    uv_tcp_init(loop, &api);
    uv_ip4_addr("127.0.0.1", O.api_port, &a);
    if (uv_tcp_bind(&api, (const struct sockaddr *)&a, 0) || uv_listen((uv_stream_t *)&api, 1024, api_accept)) {
        fprintf(stderr, "loadgen: cannot listen on 127.0.0.1:%d\n", O.api_port);
        return 2;
    }
    /* Open loop needs enough connections for the rate at a few ms of ack latency. */
    nclients = O.concurrency;
    clients = calloc((size_t)nclients, sizeof *clients);
    uv_ip4_addr("127.0.0.1", O.gw_port, &gw_addr);
    t_start = now_ms();
    warming = O.warmup > 0;
    if (!warming) cpu_baseline();
    for (int i = 0; i < nclients; i++) {
        client_t *c = &clients[i];
        uv_tcp_init(loop, &c->tcp);
        c->tcp.data = c;
        c->conn.data = c;
        uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&gw_addr, on_connect);
    }
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 1, 1);
    if (O.rate > 0) {
        sched_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (sched_fd >= 0 && uv_poll_init(loop, &sched_poll, sched_fd) == 0)
            uv_poll_start(&sched_poll, UV_READABLE, on_sched);
        else
            sched_fd = -1;   /* the 1 ms timer alone */
    }
    uv_run(loop, UV_RUN_DEFAULT);

    double cpu[MAX_WATCH];
    long hwm[MAX_WATCH];
    for (int i = 0; i < nwatch; i++) {
        double c = proc_cpu(watch[i]);
        cpu[i] = c >= 0 && watch_cpu0[i] >= 0 ? c - watch_cpu0[i] : -1;
        hwm[i] = proc_hwm(watch[i]);
    }
    double own_cpu = self_cpu() - self_cpu0;
    double load_s = (t_load_end - t_start) / 1000.0;
    double span_s = ((t_last_reply > t_start ? t_last_reply : t_load_end) - t_start) / 1000.0;
    long lost = 0;
    for (int i = 0; i < O.chats; i++) {
        if (chats[i].replies < chats[i].acked) lost += chats[i].acked - chats[i].replies;
        else dup_total += chats[i].replies - chats[i].acked;
    }
    qsort(ack_lat.v, ack_lat.n, sizeof(double), dcmp);
    qsort(e2e_lat.v, e2e_lat.n, sizeof(double), dcmp);
    printf("{\"mode\":\"%s\",\"rate\":%g,\"concurrency\":%d,\"chats\":%d,\"sent\":%ld,\"acked\":%ld,"
           "\"rejected\":%ld,\"replies\":%ld,\"lost\":%ld,\"duplicates\":%ld,\"load_seconds\":%.3f,"
           "\"replies_per_second\":%.1f,"
           "\"ack_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f},"
           "\"e2e_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f},"
           "\"warmup_sent\":%ld,\"warmup_undrained\":%ld,\"failed\":%ld,\"reconnects\":%ld,"
           "\"loadgen_cpu_s\":%.3f,\"cpu_s\":[",
           O.rate > 0 ? "open" : "closed", O.rate, O.concurrency, O.chats, sent_total, acked_total,
           rejected_total, replies_total, lost, dup_total, load_s,
           span_s > 0 ? (double)(replies_total - dup_total) / span_s : 0,
           pct(&ack_lat, .5), pct(&ack_lat, .99), pct(&ack_lat, .999),
           pct(&e2e_lat, .5), pct(&e2e_lat, .99), pct(&e2e_lat, .999),
           warmup_sent, warmup_undrained, failed_total, reconnects_total, own_cpu);
    for (int i = 0; i < nwatch; i++) printf("%s%.3f", i ? "," : "", cpu[i]);
    printf("],\"hwm_kb\":[");
    for (int i = 0; i < nwatch; i++) printf("%s%ld", i ? "," : "", hwm[i]);
    printf("]}\n");
    return lost ? 1 : 0;
}
