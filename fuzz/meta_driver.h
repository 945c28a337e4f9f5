/*
 * meta_driver.h: the libFuzzer driver shared by the WhatsApp and Messenger
 * connectors (fuzz_whatsapp.c, fuzz_messenger.c call cg_fuzz_meta).
 * The first byte picks the function, the rest is its input:
 *   0..111   parse(): the rest is a webhook body (verify is skipped: an
 *            attacker who has the app secret reaches parse with any bytes);
 *            at most 4 messages, each bounded and NUL-terminated
 *   112..143 verify(): the rest is "<signature header>\n<body>"; a forged
 *            signature must never pass
 *   144..175 handshake(): the rest is the query string; an accepted one
 *            echoes a bounded challenge
 *   176..223 classify(): status from the next two bytes, the rest is the body
 *   224..255 render(): the rest is "<user>|<reply text>" (or just the text),
 *            with the next byte choosing 0..10 buttons (payload or URL);
 *            every request body must be valid JSON
 * Seed corpora: fuzz/corpus/<name>/ (bodies of tests/connectors/<name>).
 */
#ifndef CG_FUZZ_META_DRIVER_H
#define CG_FUZZ_META_DRIVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "civicgate/connector.h"
#include "civicgate/message.h"


static int cg_fuzz_meta(const cg_connector *conn_, const char *name, const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    cg_channel_cfg cfg = { .name = name, .enabled = 1, .token = "EAAtoken", .secret = "app-secret",
                           .verify_token = "verify-me", .api_base = "https://graph.facebook.com",
                           .api_version = "v21.0", .phone_number_id = "106540352242922" };
    char route[64];
    snprintf(route, sizeof route, "/webhooks/%s", name);
    uint8_t sel = data[0];
    data++; size--;
    if (size > conn_->max_body) return 0;
    if (sel < 112) {
        unsigned char *body = malloc(size ? size : 1);   /* exact size: ASan sees overreads */
        if (!body) return 0;
        memcpy(body, data, size);
        cg_http_in req = { .method = "POST", .path = route, .query = "", .body = body, .body_len = size };
        cg_msg out[4];
        size_t n = 99;
        char reason[96];
        cg_err e = conn_->parse(&cfg, &req, out, 4, &n, reason, sizeof reason);
        if (e != CG_OK && n != 0) abort();
        if (n > 4) abort();
        for (size_t i = 0; i < n; i++) {
            if (out[i].text && strlen(out[i].text) > CG_MSG_TEXT_MAX) abort();
            if (!memchr(out[i].user, 0, sizeof out[i].user) || !out[i].user[0]) abort();
            if (!memchr(out[i].msg_id, 0, sizeof out[i].msg_id) || !out[i].msg_id[0]) abort();
            if (!memchr(out[i].media, 0, sizeof out[i].media)) abort();
            if (strcmp(out[i].channel, name) != 0) abort();
            if (out[i].kind == CG_MSG_BUTTON && !out[i].payload) abort();
            cg_msg_free(&out[i]);
        }
        if (!memchr(reason, 0, sizeof reason)) abort();
        free(body);
    } else if (sel < 144) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t hl = nl ? (size_t)(nl - data) : size;
        char *hdr = malloc(hl + 1);
        if (!hdr) return 0;
        memcpy(hdr, data, hl);
        hdr[hl] = '\0';
        size_t bl = nl ? size - hl - 1 : 0;
        unsigned char *body = malloc(bl ? bl : 1);
        if (!body) { free(hdr); return 0; }
        if (bl) memcpy(body, nl + 1, bl);
        cg_http_in req = { .method = "POST", .path = route, .query = "", .body = body, .body_len = bl };
        req.headers[0].name = "x-hub-signature-256";
        req.headers[0].value = hdr;
        req.nheaders = 1;
        /* a random header matching HMAC-SHA256 is a 2^-256 event: treat OK as a bug */
        if (conn_->verify(&cfg, &req) == CG_OK) abort();
        free(body);
        free(hdr);
    } else if (sel < 176) {
        char *q = malloc(size + 1);
        if (!q) return 0;
        memcpy(q, data, size);
        q[size] = '\0';
        cg_http_in req = { .method = "GET", .path = route, .query = q };
        cg_http_resp resp;
        cg_err e = conn_->handshake(&cfg, &req, &resp);
        if (e == CG_OK) {
            if (resp.status != 200 || resp.body_len == 0 || resp.body_len > 128) abort();
            char tok[64];
            if (cg_http_in_query(&req, "hub.verify_token", tok, sizeof tok) != 0 || strcmp(tok, "verify-me") != 0)
                abort();
        } else if (e != CG_E_FORBIDDEN && e != CG_E_BAD_REQUEST) {
            abort();
        }
        free(q);
    } else if (sel < 224) {
        if (size < 2) return 0;
        long status = ((long)data[0] << 8 | data[1]) % 700;
        char *body = malloc(size - 2 ? size - 2 : 1);
        if (!body) return 0;
        memcpy(body, data + 2, size - 2);
        cg_send_result r;
        conn_->classify(status, body, size - 2, &r);
        if (!memchr(r.reason, 0, sizeof r.reason) || !memchr(r.platform_id, 0, sizeof r.platform_id)) abort();
        if ((int)r.kind < CG_SEND_OK || r.kind > CG_SEND_WINDOW_CLOSED) abort();
        if (status >= 200 && status < 300 && r.kind != CG_SEND_OK) abort();
        free(body);
    } else {
        if (size < 1) return 0;
        unsigned nb = data[0] % 11;
        data++; size--;
        cg_reply r;
        memset(&r, 0, sizeof r);
        const uint8_t *bar = memchr(data, '|', size);
        const uint8_t *t = data;
        size_t tl = size;
        snprintf(r.user, sizeof r.user, "16505551234");
        if (bar && (size_t)(bar - data) < sizeof r.user) {
            memcpy(r.user, data, (size_t)(bar - data));
            r.user[bar - data] = '\0';
            t = bar + 1;
            tl = size - (size_t)(bar - data) - 1;
        }
        r.text = malloc(tl + 1);
        if (!r.text) return 0;
        memcpy(r.text, t, tl);
        r.text[tl] = '\0';
        for (unsigned i = 0; i < nb; i++) {
            char title[48];
            snprintf(title, sizeof title, "Choice %u with a rather long title", i);
            r.buttons[i].title = strdup(title);
            if (i % 3 == 2) r.buttons[i].url = strdup("https://gov.example/x");
            else { char p[16]; snprintf(p, sizeof p, "p%u", i); r.buttons[i].payload = strdup(p); }
        }
        r.nbuttons = nb;
        r.from_agent = nb & 1;
        cg_http_out out[CG_MAX_OUT_REQUESTS];
        size_t n = 99;
        cg_err e = conn_->render(&cfg, &r, out, CG_MAX_OUT_REQUESTS, &n);
        if (e != CG_OK && n != 0) abort();
        if (n > CG_MAX_OUT_REQUESTS) abort();
        for (size_t i = 0; i < n; i++) {
            if (out[i].secret_in_url || strstr(out[i].url, "EAAtoken")) abort();
            cJSON *j = cJSON_Parse(out[i].body);
            if (!j) abort();
            cJSON_Delete(j);
            cg_http_out_free(&out[i]);
        }
        cg_reply_free(&r);
    }
    return 0;
}

#endif
