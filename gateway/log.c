/*
 * log.c: structured logs, one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-26T22:10:00.123Z","level":"info","event":"listening","port":"8080"}
 *
 * Each line is built in a bounded buffer (LOG_LINE_MAX) and written with one
 * write(2), so lines from several threads never interleave. Values are
 * escaped as JSON strings; bytes that are not valid UTF-8 become U+FFFD, so a
 * line is always valid JSON. A value too long for the line is cut and ends
 * with "...".
 *
 * Privacy: cg_log_user() replaces a citizen's id with the first 12 hex chars
 * of HMAC-SHA256(key, id), the key being random per process (libsodium), so
 * lines of one process can be correlated but ids cannot be recovered or
 * matched across restarts. cg_log_text() gives "[redacted N bytes]". Both
 * pass the value through when log.debug_content is set, the text still
 * through cg_redact() (redact.h): no e-mail, phone number, id or digit run
 * reaches a log line.
 *
 * API: cg_log_init() once at start (before threads), then cg_log(),
 * cg_log_user(), cg_log_text() from any thread.
 */
#include "log.h"

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redact.h"

#define LOG_LINE_MAX 8192
#define LOG_USER_HEX 12
#define LOG_TEXT_SHOWN 512     /* debug_content: bytes of a text shown */

static cg_log_level log_min = CG_LOG_INFO;
static int log_debug_content;
static unsigned char log_key[crypto_auth_hmacsha256_KEYBYTES];
static pthread_once_t log_key_once = PTHREAD_ONCE_INIT;

static void log_key_init(void)
{
    if (sodium_init() < 0) {
        /* without randomness ids would be hashed with a zero key: still not
         * the id itself, but say so */
        static const char m[] = "{\"level\":\"error\",\"event\":\"sodium_init_failed\"}\n";
        if (write(2, m, sizeof m - 1) < 0) { /* nothing to do */ }
        return;
    }
    randombytes_buf(log_key, sizeof log_key);
}

void cg_log_init(cg_log_level min, int debug_content)
{
    log_min = min;
    log_debug_content = debug_content;
    pthread_once(&log_key_once, log_key_init);
}

cg_log_level cg_log_level_parse(const char *s)
{
    if (!s) return CG_LOG_INFO;
    if (!strcmp(s, "debug")) return CG_LOG_DEBUG;
    if (!strcmp(s, "warn")) return CG_LOG_WARN;
    if (!strcmp(s, "error")) return CG_LOG_ERROR;
    return CG_LOG_INFO;
}

static const char *level_name(cg_log_level l)
{
    switch (l) {
    case CG_LOG_DEBUG: return "debug";
    case CG_LOG_INFO: return "info";
    case CG_LOG_WARN: return "warn";
    case CG_LOG_ERROR: return "error";
    }
    return "info";
}

typedef struct lbuf { char *p; size_t n, cap; int cut; } lbuf;

static void put(lbuf *b, const char *s, size_t n)
{
    if (b->n + n > b->cap) { n = b->cap - b->n; b->cut = 1; }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* Length of the valid UTF-8 sequence at s (max n bytes), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* Append s as a JSON string (with quotes); leaves room (reserve bytes) for the
 * rest of the line, cutting s with "..." when it does not fit. */
static void put_json_string(lbuf *b, const char *s, size_t reserve)
{
    put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    char esc[8];
    for (size_t i = 0; i < n;) {
        const char *out;
        size_t olen, adv = 1;
        unsigned char ch = p[i];
        switch (ch) {
        case '"': out = "\\\""; olen = 2; break;
        case '\\': out = "\\\\"; olen = 2; break;
        case '\n': out = "\\n"; olen = 2; break;
        case '\r': out = "\\r"; olen = 2; break;
        case '\t': out = "\\t"; olen = 2; break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                out = esc; olen = 6;
            } else if (ch < 0x80) {
                out = (const char *)p + i; olen = 1;
            } else {
                size_t l = utf8_len(p + i, n - i);
                if (l) { out = (const char *)p + i; olen = l; adv = l; }
                else { out = "\\ufffd"; olen = 6; }
            }
        }
        if (b->n + olen + 4 + reserve > b->cap) {
            put(b, "...", 3);
            break;
        }
        put(b, out, olen);
        i += adv;
    }
    put(b, "\"", 1);
}

void cg_log_now_iso(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void cg_log(cg_log_level lvl, const char *event, ...)
{
    if (lvl < log_min) return;
    char line[LOG_LINE_MAX];
    lbuf b = {line, 0, sizeof line - 2, 0};   /* room for "}\n" */

    char now[32], tbuf[96];
    cg_log_now_iso(now);
    int tl = snprintf(tbuf, sizeof tbuf, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":", now, level_name(lvl));
    put(&b, tbuf, (size_t)tl);
    put_json_string(&b, event, 16);

    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (b.n + strlen(k) + 16 > b.cap) break;
        put(&b, ",", 1);
        put_json_string(&b, k, 16);
        put(&b, ":", 1);
        if (v) put_json_string(&b, v, 8);
        else put(&b, "null", 4);
    }
    va_end(ap);
    line[b.n++] = '}';
    line[b.n++] = '\n';
    size_t off = 0;
    while (off < b.n) {
        ssize_t w = write(2, line + off, b.n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
}

const char *cg_log_user(const char *user)
{
    static _Thread_local char buf[128];
    if (!user) return "-";
    if (log_debug_content) {
        snprintf(buf, sizeof buf, "%s", user);
        return buf;
    }
    pthread_once(&log_key_once, log_key_init);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256(mac, (const unsigned char *)user, strlen(user), log_key);
    static const char hex[] = "0123456789abcdef";
    buf[0] = 'u';
    buf[1] = ':';
    for (int i = 0; i < LOG_USER_HEX / 2; i++) {
        buf[2 + 2 * i] = hex[mac[i] >> 4];
        buf[3 + 2 * i] = hex[mac[i] & 15];
    }
    buf[2 + LOG_USER_HEX] = '\0';
    return buf;
}

const char *cg_log_text(const char *text)
{
    static _Thread_local char buf[LOG_TEXT_SHOWN + 8];
    if (!text) return "-";
    size_t n = strlen(text);
    if (log_debug_content) {
        /* even then, no e-mail, phone, id or digit run (redact.h) */
        char *r = cg_redact(text, n);
        if (!r) {
            snprintf(buf, sizeof buf, "[unreadable %zu bytes]", n);
            return buf;
        }
        size_t rn = strlen(r);
        if (rn <= LOG_TEXT_SHOWN) {
            memcpy(buf, r, rn + 1);
        } else {
            memcpy(buf, r, LOG_TEXT_SHOWN);
            memcpy(buf + LOG_TEXT_SHOWN, "...", 4);
        }
        free(r);
        return buf;
    }
    snprintf(buf, sizeof buf, "[redacted %zu bytes]", n);
    return buf;
}
