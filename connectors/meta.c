/*
 * meta.c: the parts the WhatsApp Cloud API and Messenger connectors share
 * (see meta.h for the API in call order).
 *
 * Signature: Meta signs every webhook POST with X-Hub-Signature-256:
 * "sha256=" + hex(HMAC-SHA256(app_secret, raw body)). The HMAC covers the
 * bytes as sent (Meta escapes non-ASCII as \uXXXX, so re-serialised JSON
 * would differ): it is computed over req->body before any parsing and
 * compared in constant time (CRYPTO_memcmp on the decoded 32 bytes).
 *
 * Handshake: when a webhook is subscribed, Meta sends GET with hub.mode,
 * hub.verify_token and hub.challenge; the challenge is echoed as text/plain
 * only when the token is ours.
 *
 * Parse and render frames: both platforms wrap their events the same way
 * ({"object","entry":[...]}) and send long texts the same way (split, one
 * request per piece, the buttons on the last). cg_meta_parse and
 * cg_meta_send_text hold that frame; a connector gives what differs, a
 * cg_meta_webhook (its object and an entry reader) and a cg_meta_text_plan
 * (its limits and a body builder).
 *
 * Text helpers: counting characters (UTF-16 units, the stricter reading of
 * Meta's "characters"), splitting long texts at a line / sentence / word
 * boundary, shortening button titles with "…" without cutting a word or a
 * UTF-8 sequence.
 *
 * Extending: a third Meta platform (Instagram) reuses all of this; only the
 * Graph error codes that carry policy live in each connector's classify.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "civicgate/text.h"
#include "meta.h"

#define META_CHALLENGE_MAX 128
#define META_TOKEN_MAX     256

void cg_meta_reason(char *reason, size_t cap, const char *fmt, ...)
{
    if (!reason || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, cap, fmt, ap);
    va_end(ap);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

cg_err cg_meta_verify(const cg_channel_cfg *cfg, const cg_http_in *req)
{
    if (!cfg || !req || !cfg->secret || !cfg->secret[0]) return CG_E_AUTH;
    const char *h = cg_http_in_header(req, "x-hub-signature-256");
    if (!h || strncmp(h, "sha256=", 7) != 0) return CG_E_AUTH;
    h += 7;
    if (strlen(h) != 64) return CG_E_AUTH;
    unsigned char want[32];
    int bad = 0;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)h[2 * i]), lo = hexval((unsigned char)h[2 * i + 1]);
        bad |= (hi < 0) | (lo < 0);
        want[i] = (unsigned char)((hi & 15) << 4 | (lo & 15));
    }
    if (bad) return CG_E_AUTH;
    unsigned char got[EVP_MAX_MD_SIZE];
    unsigned int glen = 0;
    static const unsigned char empty[1] = { 0 };
    if (!HMAC(EVP_sha256(), cfg->secret, (int)strlen(cfg->secret), req->body ? req->body : empty,
              req->body ? req->body_len : 0, got, &glen) || glen != 32)
        return CG_E_AUTH;
    int diff = CRYPTO_memcmp(want, got, 32);
    OPENSSL_cleanse(got, sizeof got);
    return diff == 0 ? CG_OK : CG_E_AUTH;
}

cg_err cg_meta_handshake(const cg_channel_cfg *cfg, const cg_http_in *req, cg_http_resp *resp)
{
    if (!cfg || !req || !resp) return CG_E_INTERNAL;
    char mode[32], token[META_TOKEN_MAX], challenge[META_CHALLENGE_MAX + 1];
    if (cg_http_in_query(req, "hub.mode", mode, sizeof mode) != 0 || strcmp(mode, "subscribe") != 0)
        return CG_E_FORBIDDEN;
    if (!cfg->verify_token || !cfg->verify_token[0]) return CG_E_FORBIDDEN;
    if (cg_http_in_query(req, "hub.verify_token", token, sizeof token) != 0) return CG_E_FORBIDDEN;
    int ok = cg_secure_equal(token, strlen(token), cfg->verify_token, strlen(cfg->verify_token));
    OPENSSL_cleanse(token, sizeof token);
    if (!ok) return CG_E_FORBIDDEN;
    if (cg_http_in_query(req, "hub.challenge", challenge, sizeof challenge) != 0 || !challenge[0])
        return CG_E_BAD_REQUEST;
    size_t clen = strlen(challenge);
    for (size_t i = 0; i < clen; i++) {
        char c = challenge[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
              c == '_' || c == '-'))
            return CG_E_BAD_REQUEST;
    }
    memset(resp, 0, sizeof *resp);
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type, "text/plain");
    memcpy(resp->body, challenge, clen);
    resp->body_len = clen;
    return CG_OK;
}

cg_err cg_meta_each(cg_meta_batch *b, const cJSON *o, const char *key, cg_meta_each_fn *each,
                    const void *arg)
{
    const cJSON *item;
    cg_err e;
    cJSON_ArrayForEach(item, cg_meta_arr(o, key)) {
        if (!cJSON_IsObject(item)) {
            cg_meta_reason(b->reason, b->cap, "%s[] holds a non-object", key);
            return CG_E_BAD_REQUEST;
        }
        if ((e = each(b, item, arg)) != CG_OK) return e;
    }
    return CG_OK;
}

cg_msg *cg_meta_new(cg_meta_batch *b)
{
    if (b->n >= b->max) {
        cg_meta_reason(b->reason, b->cap, "more than %zu %s in one webhook", b->max, b->hook->unit);
        return NULL;
    }
    cg_msg *m = &b->out[b->n];
    memset(m, 0, sizeof *m);
    snprintf(m->channel, sizeof m->channel, "%s", b->hook->channel);
    return m;
}

cg_err cg_meta_keep(cg_meta_batch *b, cg_msg *m, cg_err e, int emit)
{
    if (e != CG_OK || !emit) {
        cg_msg_free(m);
        return e;
    }
    b->n++;
    return CG_OK;
}

cg_err cg_meta_parse(const cg_meta_webhook *w, const cg_channel_cfg *cfg, const cg_http_in *req,
                     cg_msg *out, size_t max, size_t *n, char *reason, size_t cap)
{
    if (n) *n = 0;
    if (reason && cap) reason[0] = '\0';
    if (!req || !out || !n) return CG_E_INTERNAL;
    cJSON *root;
    cg_err e = cg_meta_parse_body(req, &root, reason, cap);
    if (e != CG_OK) return e;
    cg_meta_batch b = { cfg, out, max, 0, reason, cap, w };
    const char *object = cg_meta_str(root, "object");
    const cJSON *entries = cg_meta_arr(root, "entry");
    if (!object || strcmp(object, w->object) != 0 || !entries) {
        cg_meta_reason(reason, cap, "%s", w->not_ours);
        e = CG_E_BAD_REQUEST;
        goto done;
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, entries) {
        if ((e = w->entry(&b, entry)) != CG_OK) goto done;
    }
done:
    if (e != CG_OK) {
        for (size_t i = 0; i < b.n; i++) cg_msg_free(&out[i]);
        b.n = 0;
    }
    *n = b.n;
    cJSON_Delete(root);
    return e;
}

cg_err cg_meta_parse_body(const cg_http_in *req, cJSON **root, char *reason, size_t cap)
{
    *root = NULL;
    if (req->body_len > CG_META_MAX_BODY) {
        cg_meta_reason(reason, cap, "body over %u bytes", CG_META_MAX_BODY);
        return CG_E_TOO_LARGE;
    }
    if (!req->body || req->body_len == 0) {
        cg_meta_reason(reason, cap, "body is empty");
        return CG_E_BAD_REQUEST;
    }
    const char *body = (const char *)req->body, *end = NULL;
    cJSON *r = cJSON_ParseWithLengthOpts(body, req->body_len, &end, 0);
    if (!r) {
        size_t off = end && end >= body ? (size_t)(end - body) : 0;
        cg_meta_reason(reason, cap, "body is not JSON at offset %zu", off);
        return CG_E_BAD_REQUEST;
    }
    size_t off = end ? (size_t)(end - body) : req->body_len;
    while (off < req->body_len && (body[off] == ' ' || body[off] == '\n' || body[off] == '\r' ||
                                   body[off] == '\t' || body[off] == '\0'))
        off++;
    if (off < req->body_len) {
        cg_meta_reason(reason, cap, "body has bytes after the JSON value at offset %zu", off);
        cJSON_Delete(r);
        return CG_E_BAD_REQUEST;
    }
    if (cg_json_has_escaped_nul(body, req->body_len)) {
        cg_meta_reason(reason, cap, "body has a string with an escaped NUL");
        cJSON_Delete(r);
        return CG_E_BAD_REQUEST;
    }
    if (!cJSON_IsObject(r)) {
        cg_meta_reason(reason, cap, "body is not a JSON object");
        cJSON_Delete(r);
        return CG_E_BAD_REQUEST;
    }
    *root = r;
    return CG_OK;
}

const char *cg_meta_str(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *cg_meta_obj(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsObject(v) ? v : NULL;
}

const cJSON *cg_meta_arr(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsArray(v) ? v : NULL;
}

int cg_meta_digits(const char *s, size_t max)
{
    if (!s || !s[0]) return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] < '0' || s[n] > '9' || n + 1 >= max) return 0;
    return 1;
}

int cg_meta_id_ok(const char *id)
{
    return id && id[0] && strlen(id) < CG_MSGID_MAX && cg_text_valid_utf8(id, strlen(id));
}

cg_err cg_meta_location(cg_msg *m, const cJSON *o, const char *lat_key, const char *lon_key,
                        const char *bad, char *reason, size_t cap)
{
    const cJSON *la = cJSON_GetObjectItemCaseSensitive(o, lat_key);
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(o, lon_key);
    if (!cJSON_IsNumber(la) || !cJSON_IsNumber(lo) || !(la->valuedouble >= -90 && la->valuedouble <= 90) ||
        !(lo->valuedouble >= -180 && lo->valuedouble <= 180)) {
        cg_meta_reason(reason, cap, "%s", bad);
        return CG_E_BAD_REQUEST;
    }
    m->kind = CG_MSG_LOCATION;
    m->lat = la->valuedouble;
    m->lon = lo->valuedouble;
    return CG_OK;
}

void cg_meta_unsupported(cg_msg *m, const char *type)
{
    m->kind = CG_MSG_UNSUPPORTED;
    size_t tl = strlen(type), k = 0;
    while (k < tl && k < sizeof m->media - 1 && (unsigned char)type[k] >= 0x20 && (unsigned char)type[k] < 0x7F) k++;
    memcpy(m->media, type, k);
    m->media[k] = '\0';
}

static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t i = max;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

char *cg_meta_dup_utf8(const char *s, size_t max, int *bad)
{
    *bad = 0;
    size_t len = strlen(s);
    if (!cg_text_valid_utf8(s, len)) { *bad = 1; return NULL; }
    len = utf8_cut(s, len, max);
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

cg_err cg_meta_take_text(char **dst, const char *s, size_t max, const char *what, char *reason, size_t cap)
{
    int bad;
    *dst = cg_meta_dup_utf8(s, max, &bad);
    if (*dst) return CG_OK;
    if (bad) {
        cg_meta_reason(reason, cap, "%s is not valid UTF-8", what);
        return CG_E_BAD_REQUEST;
    }
    return CG_E_NOMEM;
}

cg_err cg_meta_take_payload(char **dst, const char *p, size_t max, const char *what, char *reason, size_t cap)
{
    size_t len = strlen(p);
    if (len == 0 || len > max || !cg_text_valid_utf8(p, len)) {
        cg_meta_reason(reason, cap, "%s is empty, over %zu bytes or not UTF-8", what, max);
        return CG_E_BAD_REQUEST;
    }
    *dst = strdup(p);
    return *dst ? CG_OK : CG_E_NOMEM;
}

static size_t seq_len(unsigned char ch)
{
    return ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : 4;
}

size_t cg_meta_chars(const char *s, size_t len)
{
    size_t units = 0;
    for (size_t i = 0; i < len;) {
        size_t l = seq_len((unsigned char)s[i]);
        units += l == 4 ? 2 : 1;
        i += l;
    }
    return units;
}

static int is_blank(char ch) { return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'; }

size_t cg_meta_chunk(const char *s, size_t len, size_t max_chars)
{
    size_t units = 0, i = 0;
    while (i < len) {
        size_t l = seq_len((unsigned char)s[i]);
        size_t u = l == 4 ? 2 : 1;
        if (units + u > max_chars || i + l > len) break;
        units += u;
        i += l;
    }
    if (i >= len) return len;
    size_t limit = i, floor = limit / 2;
    for (size_t k = limit; k > floor; k--)
        if (s[k - 1] == '\n') return k;
    for (size_t k = limit; k > floor + 1; k--)
        if (is_blank(s[k - 1]) && (s[k - 2] == '.' || s[k - 2] == '!' || s[k - 2] == '?')) return k;
    for (size_t k = limit; k > floor; k--)
        if (is_blank(s[k - 1])) return k;
    return limit ? limit : seq_len((unsigned char)s[0]);
}

/* Byte offset in s[0..len) where a tail of at most max_chars characters
 * starts, moved forward to just after a line end, else a sentence end, else
 * a space (searching at most half of the rest), else left at a character
 * boundary. */
static size_t meta_tail(const char *s, size_t len, size_t max_chars)
{
    size_t total = cg_meta_chars(s, len), p = 0, units = 0;
    while (p < len && total - units > max_chars) {
        size_t l = seq_len((unsigned char)s[p]);
        units += l == 4 ? 2 : 1;
        p += l;
    }
    size_t lim = p + (len - p) / 2;
    for (size_t k = p; k < lim; k++)
        if (s[k] == '\n') return k + 1;
    for (size_t k = p; k + 1 < lim; k++)
        if ((s[k] == '.' || s[k] == '!' || s[k] == '?') && is_blank(s[k + 1])) return k + 2;
    for (size_t k = p; k < lim; k++)
        if (is_blank(s[k])) return k + 1;
    return p;
}

size_t cg_meta_split(const char *s, size_t len, size_t max_chars, size_t last_max, size_t *starts,
                     size_t *lens, size_t max)
{
    size_t cnt = 0, off = 0;
    while (off < len && is_blank(s[off])) off++;
    while (off < len) {
        size_t k = cg_meta_chunk(s + off, len - off, max_chars);
        size_t kl = k;
        while (kl && is_blank(s[off + kl - 1])) kl--;
        if (cnt >= max) return max + 1;
        starts[cnt] = off;
        lens[cnt] = kl;
        cnt++;
        off += k;
        while (off < len && is_blank(s[off])) off++;
    }
    if (cnt && cg_meta_chars(s + starts[cnt - 1], lens[cnt - 1]) > last_max) {
        size_t st = starts[cnt - 1], ln = lens[cnt - 1];
        size_t t = meta_tail(s + st, ln, last_max);
        size_t hl = t;
        while (hl && is_blank(s[st + hl - 1])) hl--;
        while (t < ln && is_blank(s[st + t])) t++;
        if (cnt >= max) return max + 1;
        lens[cnt - 1] = hl;
        starts[cnt] = st + t;
        lens[cnt] = ln - t;
        cnt++;
    }
    return cnt;
}

char *cg_meta_shorten(const char *title, size_t max_chars)
{
    size_t len = strlen(title);
    if (cg_meta_chars(title, len) <= max_chars) return strdup(title);
    /* room for the ellipsis (one character) */
    size_t keep = 0, units = 0;
    while (keep < len) {
        size_t l = seq_len((unsigned char)title[keep]);
        size_t u = l == 4 ? 2 : 1;
        if (units + u > max_chars - 1 || keep + l > len) break;
        units += u;
        keep += l;
    }
    /* back to a word end when the cut falls inside a word */
    if (keep < len && !is_blank(title[keep])) {
        size_t k = keep;
        while (k > 0 && !is_blank(title[k - 1])) k--;
        if (k > 0) keep = k;
    }
    while (keep > 0 && (is_blank(title[keep - 1]) || strchr(",;:.-", title[keep - 1]))) keep--;
    char *d = malloc(keep + 4);
    if (!d) return NULL;
    memcpy(d, title, keep);
    memcpy(d + keep, "\xE2\x80\xA6", 4);   /* "…" and the NUL */
    return d;
}

int cg_meta_cfg_ok(const cg_channel_cfg *cfg)
{
    return cfg && cfg->token && cfg->token[0] && cfg->api_base && cfg->api_base[0] && cfg->api_version &&
           cfg->api_version[0];
}

cg_err cg_meta_send_text(const cg_channel_cfg *cfg, const char *path, const cg_reply *r,
                         const cg_meta_text_plan *plan, cg_http_out *out, size_t max, size_t *n)
{
    char *text = cg_meta_reply_text(r, plan->links_in_text);
    if (!text) return CG_E_NOMEM;
    size_t tlen = strlen(text);
    if (tlen == 0 && plan->need_text) { free(text); return CG_E_INTERNAL; }
    size_t starts[CG_MAX_OUT_REQUESTS], lens[CG_MAX_OUT_REQUESTS];
    size_t cap = max < CG_MAX_OUT_REQUESTS ? max : CG_MAX_OUT_REQUESTS;
    size_t cnt = cg_meta_split(text, tlen, plan->max_chars, plan->last_max, starts, lens, cap);
    if (cnt > cap) { free(text); return CG_E_INTERNAL; }
    size_t made = 0;
    cg_err e = CG_OK;
    for (size_t i = 0; i < cnt; i++) {
        char *piece = malloc(lens[i] + 1);
        cJSON *b = NULL;
        if (piece) {
            memcpy(piece, text + starts[i], lens[i]);
            piece[lens[i]] = '\0';
            b = plan->body(r, piece, i + 1 == cnt, plan->arg);
            free(piece);
        }
        if (!b) { e = CG_E_NOMEM; break; }
        if ((e = cg_meta_request(cfg, path, b, &out[made])) != CG_OK) break;
        made++;
    }
    free(text);
    if (e != CG_OK) {
        for (size_t i = 0; i < made; i++) cg_http_out_free(&out[i]);
        return e;
    }
    *n = made;
    return CG_OK;
}

cg_err cg_meta_request(const cg_channel_cfg *cfg, const char *path, cJSON *body, cg_http_out *o)
{
    memset(o, 0, sizeof *o);
    memcpy(o->method, "POST", 5);
    o->secret_in_url = 0;
    size_t blen = strlen(cfg->api_base);
    while (blen && cfg->api_base[blen - 1] == '/') blen--;
    size_t need = blen + strlen(cfg->api_version) + strlen(path) + 3;
    o->url = malloc(need);
    if (o->url) snprintf(o->url, need, "%.*s/%s/%s", (int)blen, cfg->api_base, cfg->api_version, path);
    o->headers[0] = strdup("Content-Type: application/json");
    size_t alen = strlen(cfg->token) + 23;
    o->headers[1] = malloc(alen);
    if (o->headers[1]) snprintf(o->headers[1], alen, "Authorization: Bearer %s", cfg->token);
    o->nheaders = 2;
    o->body = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!o->url || !o->headers[0] || !o->headers[1] || !o->body) {
        if (o->headers[1]) OPENSSL_cleanse(o->headers[1], strlen(o->headers[1]));
        cg_http_out_free(o);
        return CG_E_NOMEM;
    }
    o->body_len = strlen(o->body);
    return CG_OK;
}

static long json_long(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v) && v->valuedouble >= -2e9 && v->valuedouble <= 2e9) return (long)v->valuedouble;
    return 0;
}

void cg_meta_graph_error(const char *body, size_t len, cg_meta_error *e)
{
    memset(e, 0, sizeof *e);
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *err = cg_meta_obj(root, "error");
    if (err) {
        e->present = 1;
        e->code = json_long(err, "code");
        e->subcode = json_long(err, "error_subcode");
        e->is_transient = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(err, "is_transient"));
        const char *msg = cg_meta_str(err, "message");
        const char *details = cg_meta_str(cg_meta_obj(err, "error_data"), "details");
        if (msg && !cg_text_valid_utf8(msg, strlen(msg))) msg = NULL;
        if (details && !cg_text_valid_utf8(details, strlen(details))) details = NULL;
        char buf[sizeof e->message * 2];
        if (msg && details && strcmp(msg, details) != 0) snprintf(buf, sizeof buf, "%s (%s)", msg, details);
        else snprintf(buf, sizeof buf, "%s", msg ? msg : details ? details : "");
        size_t cut = utf8_cut(buf, strlen(buf), sizeof e->message - 1);
        memcpy(e->message, buf, cut);
        e->message[cut] = '\0';
    }
    cJSON_Delete(root);
}

void cg_meta_platform_id(const char *body, size_t len, const char *arr, const char *key,
                         cg_send_result *out)
{
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const char *id = NULL;
    if (arr) {
        const cJSON *a = cg_meta_arr(root, arr);
        id = cg_meta_str(a ? cJSON_GetArrayItem(a, 0) : NULL, "id");
    } else if (key) {
        id = cg_meta_str(root, key);
    }
    if (id && strlen(id) < sizeof out->platform_id && cg_text_valid_utf8(id, strlen(id)))
        snprintf(out->platform_id, sizeof out->platform_id, "%s", id);
    cJSON_Delete(root);
}

void cg_meta_classify(const char *name, const cg_meta_policy *policies, const char *arr,
                      const char *key, long status, const char *body, size_t len,
                      cg_send_result *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (status == 0) {
        out->kind = CG_SEND_RETRY;
        snprintf(out->reason, sizeof out->reason, "%s: no response", name);
        return;
    }
    if (status >= 200 && status < 300) {
        out->kind = CG_SEND_OK;
        cg_meta_platform_id(body, len, arr, key, out);
        return;
    }
    cg_meta_error ge;
    cg_meta_graph_error(body, len, &ge);
    out->code = ge.code;
    const char *prefix = NULL;
    int matched = 0;
    if (ge.present) {
        for (const cg_meta_policy *p = policies; p->code >= 0; p++) {
            if (p->code == ge.code && (p->subcode == 0 || p->subcode == ge.subcode)) {
                out->kind = p->kind;
                prefix = p->prefix;
                matched = 1;
                break;
            }
        }
        if (!matched && ge.code >= 200 && ge.code <= 299) { out->kind = CG_SEND_BAD_CONFIG; matched = 1; }
        if (!matched && ge.is_transient) { out->kind = CG_SEND_RETRY; matched = 1; }
    }
    if (!matched) {
        if (status == 429) out->kind = CG_SEND_THROTTLED;
        else if (status == 401) out->kind = CG_SEND_BAD_CONFIG;
        else if (status >= 500 || status == 408) out->kind = CG_SEND_RETRY;
        else out->kind = CG_SEND_FAILED;
    }
    const char *msg = ge.message[0] ? ge.message : "(no message)";
    if (prefix) snprintf(out->reason, sizeof out->reason, "%s%s", prefix, msg);
    else if (ge.present) snprintf(out->reason, sizeof out->reason, "%s %ld/%ld: %s", name, status, ge.code, msg);
    else snprintf(out->reason, sizeof out->reason, "%s %ld: %s", name, status, msg);
    /* never leave a cut UTF-8 sequence at the end of the reason */
    size_t rl = strlen(out->reason);
    if (rl == sizeof out->reason - 1) {
        size_t i = rl;
        while (i > 0 && ((unsigned char)out->reason[i - 1] & 0xC0) == 0x80) i--;
        if (i > 0 && ((unsigned char)out->reason[i - 1] & 0xC0) == 0xC0) out->reason[i - 1] = '\0';
    }
}

char *cg_meta_reply_text(const cg_reply *r, int links_in_text)
{
    const char *t = r->text ? r->text : "";
    size_t tl = strlen(t);
    while (tl && is_blank(t[tl - 1])) tl--;
    while (tl && is_blank(*t)) { t++; tl--; }
    size_t need = tl + 3;
    for (size_t i = 0; links_in_text && i < r->nbuttons; i++)
        if (!r->buttons[i].payload) need += strlen(r->buttons[i].title) + strlen(r->buttons[i].url) + 4;
    char *s = malloc(need), *o = s;
    if (!s) return NULL;
    memcpy(o, t, tl);
    o += tl;
    int first = 1;
    for (size_t i = 0; links_in_text && i < r->nbuttons; i++) {
        const cg_reply_btn *b = &r->buttons[i];
        if (b->payload) continue;
        if (o > s) { *o++ = '\n'; if (first) *o++ = '\n'; }
        first = 0;
        o += sprintf(o, "%s: %s", b->title, b->url);
    }
    *o = '\0';
    return s;
}
