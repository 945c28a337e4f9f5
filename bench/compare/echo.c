/*
 * echo.c: the ceiling of the comparison (bench/compare/run.sh). A Telegram
 * bot reduced to the minimum work of a webhook bot: read the webhook, check
 * X-Telegram-Bot-Api-Secret-Token, acknowledge it with 200, then send one
 * constant reply to the chat through the Bot API (POST /bot<token>/sendMessage
 * over a pool of keep-alive connections). No Redis, no session, no matching,
 * no durability: whatever a real bot does costs more, so replies/s here is
 * the most this machine and this harness (bench/gateway/loadgen.c) allow.
 *
 *   echo --port P --api-port A [--secret S] [--token T] [--pool N]
 *
 * One libuv loop, one thread. Listens on 127.0.0.1 only. Limits: a request
 * (headers + body) is at most BUF_CAP bytes (larger: 413 and close); at most
 * MAX_POOL connections to the Bot API; at most QUEUE_CAP replies waiting for
 * a free connection (beyond that a reply is dropped and counted, and the load
 * generator reports it as lost). A reply whose connection fails is sent again
 * on another one (at least once, like a real bot's retry). SIGTERM/SIGINT:
 * print counters on stderr and exit.
 *
 * Extending: this must stay the cheapest possible bot. Anything added here
 * (parsing more of the update, logging) lowers the ceiling for everyone.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define BUF_CAP   (64 * 1024)
#define MAX_POOL  256
#define QUEUE_CAP (1 << 20)

static struct {
    int port, api_port, pool;
    const char *secret, *token;
} O = {0, 0, 32, "bench-secret", "123:bench"};

static uv_loop_t *loop;
static long n_webhooks, n_refused, n_sent, n_dropped, n_retried;

/* ---- HTTP/1.1 framing ------------------------------------------------------ */
/* One complete message at the start of buf: returns its length (headers +
 * body), 0 if incomplete, -1 if malformed or over BUF_CAP. Fills the start
 * line, the secret header (or NULL) and the body. */
typedef struct {
    const char *line; size_t line_len;
    const char *secret; size_t secret_len;
    const char *body; long body_len;
} frame_t;

static long http_frame(const char *buf, size_t len, frame_t *f)
{
    const char *end = NULL;
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = buf + i + 1;
            break;
        }
    if (!end) return len >= BUF_CAP ? -1 : 0;
    memset(f, 0, sizeof *f);
    long cl = 0;
    const char *p = buf;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        size_t n = (size_t)(nl - p);
        if (n && p[n - 1] == '\r') n--;
        if (p == buf) { f->line = p; f->line_len = n; }
        else if (n > 15 && !strncasecmp(p, "content-length:", 15)) {
            cl = strtol(p + 15, NULL, 10);
            if (cl < 0 || cl > BUF_CAP) return -1;
        } else if (n > 32 && !strncasecmp(p, "x-telegram-bot-api-secret-token:", 32)) {
            const char *v = p + 32;
            while (v < p + n && *v == ' ') v++;
            f->secret = v;
            f->secret_len = (size_t)(p + n - v);
        }
        p = nl + 1;
    }
    long total = (long)(end - buf) + cl;
    if (total > BUF_CAP) return -1;
    if ((size_t)total > len) return 0;
    f->body = end;
    f->body_len = cl;
    return total;
}

static int secret_ok(const char *v, size_t n)
{
    size_t sn = strlen(O.secret);
    unsigned char d = (unsigned char)(n != sn);
    for (size_t i = 0; i < sn; i++) d |= (unsigned char)(O.secret[i] ^ (i < n ? v[i] : 0));
    return v && d == 0;
}

/* The chat id of message.chat.id, or -1 if absent. */
static long long chat_id(const char *b, long n)
{
    static const char key[] = "\"chat\":{\"id\":";
    for (long i = 0; i + (long)sizeof key - 1 < n; i++)
        if (!memcmp(b + i, key, sizeof key - 1)) {
            char num[24];
            long j = i + (long)sizeof key - 1, k = 0;
            while (j < n && k < 22 && (b[j] == '-' || (b[j] >= '0' && b[j] <= '9'))) num[k++] = b[j++];
            num[k] = '\0';
            return k ? strtoll(num, NULL, 10) : -1;
        }
    return -1;
}

/* ---- outgoing: the Bot API connection pool ------------------------------- */
typedef struct {
    uv_tcp_t tcp; uv_connect_t conn; uv_write_t w;
    int state;                 /* 0 closed, 1 connecting, 2 idle, 3 busy */
    long long chat;            /* the reply in flight when busy */
    char req[512]; char buf[BUF_CAP]; size_t len;
} out_t;

static out_t pool[MAX_POOL];
static long long queue[QUEUE_CAP];
static size_t q_head, q_len;

static void out_next(out_t *o);
static void out_open(out_t *o);

static void enqueue(long long chat)
{
    if (q_len == QUEUE_CAP) { n_dropped++; return; }
    queue[(q_head + q_len++) % QUEUE_CAP] = chat;
    for (int i = 0; i < O.pool; i++) {
        if (pool[i].state == 2) { out_next(&pool[i]); return; }
        if (pool[i].state == 0) { out_open(&pool[i]); return; }
    }
}

static void out_closed(uv_handle_t *h)
{
    out_t *o = h->data;
    o->state = 0;
    o->len = 0;
    if (q_len) out_open(o);
}

static void out_fail(out_t *o)
{
    if (o->state == 3) { n_retried++; enqueue(o->chat); }
    o->state = 1;              /* not idle, not closed, until out_closed */
    uv_close((uv_handle_t *)&o->tcp, out_closed);
}

static void out_written(uv_write_t *w, int st)
{
    if (st < 0) out_fail(w->data);
}

static void out_next(out_t *o)
{
    if (!q_len) { o->state = 2; return; }
    o->chat = queue[q_head];
    q_head = (q_head + 1) % QUEUE_CAP;
    q_len--;
    o->state = 3;
    char body[160];
    int bl = snprintf(body, sizeof body, "{\"chat_id\":%lld,\"text\":\"Thank you, we received your message.\"}", o->chat);
    int n = snprintf(o->req, sizeof o->req,
        "POST /bot%s/sendMessage HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\n\r\n%s", O.token, O.api_port, bl, body);
    uv_buf_t b = uv_buf_init(o->req, (unsigned)n);
    o->w.data = o;
    if (uv_write(&o->w, (uv_stream_t *)&o->tcp, &b, 1, out_written)) out_fail(o);
}

static void out_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    out_t *o = h->data;
    *b = uv_buf_init(o->buf + o->len, (unsigned)(sizeof o->buf - o->len));
}

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    out_t *o = s->data;
    if (n < 0) { out_fail(o); return; }
    o->len += (size_t)n;
    frame_t f;
    long m = http_frame(o->buf, o->len, &f);
    if (m < 0) { out_fail(o); return; }
    if (m == 0) return;
    memmove(o->buf, o->buf + m, o->len - (size_t)m);
    o->len -= (size_t)m;
    if (o->state == 3) {
        n_sent++;
        out_next(o);
    }
}

static void out_connected(uv_connect_t *r, int st)
{
    out_t *o = r->data;
    if (st < 0) { fprintf(stderr, "echo: connect to the Bot API: %s\n", uv_strerror(st)); out_fail(o); return; }
    uv_tcp_nodelay(&o->tcp, 1);
    uv_read_start((uv_stream_t *)&o->tcp, out_alloc, out_read);
    out_next(o);
}

static void out_open(out_t *o)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", O.api_port, &a);
    uv_tcp_init(loop, &o->tcp);
    o->tcp.data = o;
    o->conn.data = o;
    o->state = 1;
    o->len = 0;
    if (uv_tcp_connect(&o->conn, &o->tcp, (const struct sockaddr *)&a, out_connected))
        uv_close((uv_handle_t *)&o->tcp, NULL);
}

/* ---- incoming: webhooks ------------------------------------------------------ */
typedef struct { uv_tcp_t tcp; char buf[BUF_CAP]; size_t len; } in_t;

static void in_closed(uv_handle_t *h) { free(h->data); }
static void in_written(uv_write_t *w, int st) { (void)st; free(w); }

static void in_respond(in_t *c, const char *resp)
{
    uv_write_t *w = malloc(sizeof *w);
    if (!w) abort();
    uv_buf_t b = uv_buf_init((char *)resp, (unsigned)strlen(resp));
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, in_written);
}

static void in_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    in_t *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    in_t *c = s->data;
    if (n < 0) { uv_close((uv_handle_t *)s, in_closed); return; }
    c->len += (size_t)n;
    for (;;) {
        frame_t f;
        long m = http_frame(c->buf, c->len, &f);
        if (m < 0) {
            in_respond(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            uv_read_stop(s);
            uv_close((uv_handle_t *)s, in_closed);
            return;
        }
        if (m == 0) break;
        static const char line[] = "POST /webhooks/telegram ";
        if (f.line_len < sizeof line - 1 || memcmp(f.line, line, sizeof line - 1)) {
            in_respond(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        } else if (!f.secret || !secret_ok(f.secret, f.secret_len)) {
            n_refused++;
            in_respond(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        } else {
            n_webhooks++;
            long long chat = chat_id(f.body, f.body_len);
            in_respond(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            if (chat != -1) enqueue(chat);
        }
        memmove(c->buf, c->buf + m, c->len - (size_t)m);
        c->len -= (size_t)m;
    }
}

static void in_accept(uv_stream_t *srv, int st)
{
    if (st < 0) return;
    in_t *c = calloc(1, sizeof *c);
    if (!c) abort();
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start((uv_stream_t *)&c->tcp, in_alloc, in_read);
    } else uv_close((uv_handle_t *)&c->tcp, in_closed);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)h; (void)sig;
    fprintf(stderr, "echo: webhooks %ld, refused %ld, replies sent %ld, retried %ld, dropped %ld\n",
            n_webhooks, n_refused, n_sent, n_retried, n_dropped);
    exit(0);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--port")) O.port = atoi(v);
        else if (!strcmp(a, "--api-port")) O.api_port = atoi(v);
        else if (!strcmp(a, "--secret")) O.secret = v;
        else if (!strcmp(a, "--token")) O.token = v;
        else if (!strcmp(a, "--pool")) O.pool = atoi(v);
        else { O.port = 0; break; }
    }
    if (argc % 2 == 0 || O.port <= 0 || O.port > 65535 || O.api_port <= 0 || O.api_port > 65535
        || O.pool < 1 || O.pool > MAX_POOL || strlen(O.token) > 100) {
        fprintf(stderr, "usage: echo --port P --api-port A [--secret S] [--token T] [--pool 1..%d]\n", MAX_POOL);
        return 2;
    }
    loop = uv_default_loop();
    uv_tcp_t srv;
    struct sockaddr_in a;
    uv_tcp_init(loop, &srv);
    uv_ip4_addr("127.0.0.1", O.port, &a);
    if (uv_tcp_bind(&srv, (const struct sockaddr *)&a, 0) || uv_listen((uv_stream_t *)&srv, 1024, in_accept)) {
        fprintf(stderr, "echo: cannot listen on 127.0.0.1:%d\n", O.port);
        return 2;
    }
    uv_signal_t s1, s2;
    uv_signal_init(loop, &s1);
    uv_signal_start(&s1, on_signal, SIGTERM);
    uv_signal_init(loop, &s2);
    uv_signal_start(&s2, on_signal, SIGINT);
    return uv_run(loop, UV_RUN_DEFAULT);
}
