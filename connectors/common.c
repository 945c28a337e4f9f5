/*
 * common.c: helpers shared by every connector and by the gateway.
 *
 * What: the status mapping of the cg_err vocabulary, header and query lookup
 * on a borrowed cg_http_in, the constant-time secret compare, and the
 * destructors of the three owning structs (cg_msg, cg_reply, cg_http_out).
 *
 * API in call order (as http.c and outbox.c use it):
 *   cg_http_in_header / cg_http_in_query    read the inbound request
 *   cg_secure_equal                         connector verify() compares secrets
 *   cg_err_http_status                      http.c answers the platform
 *   cg_msg_free / cg_reply_free / cg_http_out_free
 *
 * Extending: a new cg_err value needs a case in cg_err_http_status; a new
 * owned pointer in cg_msg / cg_reply / cg_http_out needs a free here.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "civicgate/connector.h"
#include "civicgate/text.h"
#include "civicgate/message.h"

/* Contract: the HTTP status http.c answers for e; 500 for a value outside
 * the vocabulary. */
int cg_err_http_status(cg_err e)
{
    switch (e) {
    case CG_OK: return 200;
    case CG_E_AUTH: return 401;
    case CG_E_FORBIDDEN: return 403;
    case CG_E_BAD_REQUEST: return 400;
    case CG_E_TOO_LARGE: return 413;
    case CG_E_UNAVAILABLE: return 503;
    case CG_E_NOMEM: return 500;
    case CG_E_INTERNAL: return 500;
    }
    return 500;
}

/* Contract: value of the first header named lower_name (names in r are lower
 * case already; compared case-insensitively anyway), borrowed from r; NULL
 * when absent. Only the first min(nheaders, CG_HTTP_MAX_HEADERS) are read. */
const char *cg_http_in_header(const cg_http_in *r, const char *lower_name)
{
    if (!r || !lower_name) return NULL;
    size_t n = r->nheaders < CG_HTTP_MAX_HEADERS ? r->nheaders : CG_HTTP_MAX_HEADERS;
    for (size_t i = 0; i < n; i++) {
        if (r->headers[i].name && strcasecmp(r->headers[i].name, lower_name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode the form-encoded bytes s[0..len) ('+' is a space, %XX a byte) into
 * buf (cap bytes, NUL-terminated). -1 when it does not fit, on a malformed
 * escape, or when it decodes to a NUL byte. */
static int url_decode(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len) return -1;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0) return -1;
        if (o + 1 >= cap) return -1;
        buf[o++] = (char)c;
    }
    if (cap == 0) return -1;
    buf[o] = '\0';
    return 0;
}

/* Contract: URL-decoded value of the first parameter called name in
 * r->query into buf (cap bytes including the NUL). 0 on success; -1 when the
 * parameter is absent, malformed or does not fit (buf then holds ""). A
 * parameter without '=' has the value "". */
int cg_http_in_query(const cg_http_in *r, const char *name, char *buf, size_t cap)
{
    if (!buf || cap == 0) return -1;
    buf[0] = '\0';
    if (!r || !r->query || !name) return -1;
    size_t nlen = strlen(name);
    const char *p = r->query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        char key[128];
        if (klen < sizeof key && url_decode(p, klen, key, sizeof key) == 0 &&
            strlen(key) == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : p + plen;
            size_t vlen = eq ? plen - klen - 1 : 0;
            if (url_decode(v, vlen, buf, cap) != 0) { buf[0] = '\0'; return -1; }
            return 0;
        }
        if (!end) break;
        p = end + 1;
    }
    return -1;
}

/* Contract: 1 when a[0..alen) equals b[0..blen), else 0. The time taken
 * depends on alen and blen but not on the contents nor on where they
 * differ: equal lengths are compared with CRYPTO_memcmp (constant time);
 * unequal ones still run the same comparison over alen bytes (a against
 * itself). NULL with a zero length is the empty string; NULL with a length
 * never matches. (Hashing both sides with SHA-256 first gave the same
 * property at ~12,000 instructions per webhook: 2.6% of the gateway.) */
int cg_secure_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    static const char empty[1] = "";
    if ((!a && alen) || (!b && blen)) return 0;
    if (!a) a = empty;
    if (!b) b = empty;
    int same_len = alen == blen;
    int diff = CRYPTO_memcmp(a, same_len ? b : a, alen);
    return (diff == 0) & same_len;
}

/* Contract: frees every owned string of m and sets the pointers to NULL, so
 * a second call (or a call on a zeroed cg_msg) is harmless. m may be NULL. */
void cg_msg_free(cg_msg *m)
{
    if (!m) return;
    free(m->text); m->text = NULL;
    free(m->payload); m->payload = NULL;
    free(m->callback_id); m->callback_id = NULL;
    free(m->name); m->name = NULL;
}

/* Contract: frees the reply's owned strings and buttons; nbuttons becomes 0.
 * Idempotent; r may be NULL. The struct itself belongs to the caller. */
void cg_reply_free(cg_reply *r)
{
    if (!r) return;
    free(r->text); r->text = NULL;
    size_t n = r->nbuttons < CG_REPLY_MAX_BUTTONS ? r->nbuttons : CG_REPLY_MAX_BUTTONS;
    for (size_t i = 0; i < n; i++) {
        free(r->buttons[i].title); r->buttons[i].title = NULL;
        free(r->buttons[i].payload); r->buttons[i].payload = NULL;
        free(r->buttons[i].url); r->buttons[i].url = NULL;
    }
    r->nbuttons = 0;
    free(r->callback_id); r->callback_id = NULL;
}

/* Contract: frees url, headers and body (the url may hold a token: it is
 * wiped first); counts become 0. Idempotent; o may be NULL. */
void cg_http_out_free(cg_http_out *o)
{
    if (!o) return;
    if (o->url) {
        if (o->secret_in_url) OPENSSL_cleanse(o->url, strlen(o->url));
        free(o->url);
        o->url = NULL;
    }
    size_t n = o->nheaders < 6 ? o->nheaders : 6;
    for (size_t i = 0; i < n; i++) { free(o->headers[i]); o->headers[i] = NULL; }
    o->nheaders = 0;
    free(o->body); o->body = NULL;
    o->body_len = 0;
}

int cg_reply_buttons_valid(const cg_reply *r, size_t payload_max, size_t *npay, size_t *nurl)
{
    size_t pay = 0, url = 0;
    if (r->nbuttons > CG_REPLY_MAX_BUTTONS) return 0;
    for (size_t i = 0; i < r->nbuttons; i++) {
        const cg_reply_btn *b = &r->buttons[i];
        if (!b->title || !b->title[0] || !cg_text_valid_utf8(b->title, strlen(b->title))) return 0;
        if (b->payload) {
            size_t pl = strlen(b->payload);
            if (pl == 0 || pl > payload_max || !cg_text_valid_utf8(b->payload, pl)) return 0;
            pay++;
        } else {
            if (!b->url || !cg_text_valid_utf8(b->url, strlen(b->url))) return 0;
            if (strncmp(b->url, "https://", 8) != 0 && strncmp(b->url, "http://", 7) != 0) return 0;
            url++;
        }
    }
    if (npay) *npay = pay;
    if (nurl) *nurl = url;
    return 1;
}

int cg_json_has_escaped_nul(const char *s, size_t len)
{
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) { if (s[i] == '"') in_str = 1; continue; }
        if (s[i] == '"') { in_str = 0; continue; }
        if (s[i] != '\\' || i + 1 >= len) continue;
        if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0) return 1;
        i++;   /* skip the escaped character */
    }
    return 0;
}

/* ---- direct JSON ------------------------------------------------------ */

static int jw_room(cg_jw *w, size_t n)
{
    if (w->oom) return 0;
    if (w->len + n + 1 <= w->cap) return 1;
    size_t cap = w->cap ? w->cap : 1024;
    while (cap < w->len + n + 1) cap *= 2;
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->oom = 1;
        return 0;
    }
    w->buf = b;
    w->cap = cap;
    return 1;
}

void cg_jw_raw(cg_jw *w, const char *s, size_t n)
{
    if (!jw_room(w, n)) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void cg_jw_lit(cg_jw *w, const char *s) { cg_jw_raw(w, s, strlen(s)); }

/* Worst case 6 bytes out per byte in (a control character as \u00XX). */
static void jw_string(cg_jw *w, const char *s, size_t n, int html)
{
    static const char hex[] = "0123456789abcdef";
    if (!jw_room(w, 6 * n + 2)) return;
    /* bytes that need escaping: 1 in JSON, 2 only in HTML text; runs of
     * the others are copied whole (a reply is mostly such a run) */
#define E8 1, 1, 1, 1, 1, 1, 1, 1
    static const unsigned char esc[256] = { E8, E8, E8, E8, ['"'] = 1, ['\\'] = 1,
                                            ['&'] = 2, ['<'] = 2, ['>'] = 2 };
#undef E8
    const unsigned char stop = html ? 3 : 1;    /* esc[c] & stop: escape c */
    char *o = w->buf + w->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        size_t run = i;
        while (run < n && !(esc[(unsigned char)s[run]] & stop)) run++;
        if (run > i) {
            memcpy(o, s + i, run - i);
            o += run - i;
            i = run;
            if (i == n) break;
        }
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        case '&': memcpy(o, "&amp;", 5); o += 5; break;
        case '<': memcpy(o, "&lt;", 4); o += 4; break;
        case '>': memcpy(o, "&gt;", 4); o += 4; break;
        default:
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
}

void cg_jw_str(cg_jw *w, const char *s, size_t n) { jw_string(w, s, n, 0); }
void cg_jw_str_html(cg_jw *w, const char *s, size_t n) { jw_string(w, s, n, 1); }

char *cg_jw_take(cg_jw *w, size_t *len)
{
    if (w->oom || !jw_room(w, 0)) {
        free(w->buf);
        memset(w, 0, sizeof *w);
        return NULL;
    }
    w->buf[w->len] = '\0';
    char *b = w->buf;
    if (len) *len = w->len;
    memset(w, 0, sizeof *w);
    return b;
}
