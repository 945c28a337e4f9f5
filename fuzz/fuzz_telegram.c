/*
 * fuzz_telegram.c: libFuzzer driver for the Telegram connector.
 * The first byte picks the function, the rest is its input:
 *   0..127   parse(): the rest is a webhook body (verify is skipped: the
 *            secret is checked before parse in the gateway, and an attacker
 *            who has it reaches parse with any bytes)
 *   128..223 classify(): status from the next two bytes, the rest is the body
 *   224..255 render(): the rest is "<chat id>|<reply text>" (or just the
 *            text), with two buttons; every request body must be valid JSON
 * Seed corpus: fuzz/corpus/telegram/ (the bodies of tests/connectors/telegram).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "civicgate/connector.h"
#include "civicgate/message.h"
#include "telegram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    cg_channel_cfg cfg = { .name = "telegram", .enabled = 1, .token = "123:abc", .secret = "s",
                           .api_base = "https://api.telegram.org" };
    uint8_t sel = data[0];
    data++; size--;
    if (size > cg_telegram.max_body) return 0;
    if (sel < 128) {
        /* copy so that ASan catches reads past the end */
        unsigned char *body = malloc(size ? size : 1);
        if (!body) return 0;
        memcpy(body, data, size);
        cg_http_in req = { .method = "POST", .path = "/webhooks/telegram", .query = "",
                           .body = body, .body_len = size };
        cg_msg out[2];
        size_t n = 0;
        char reason[96];
        cg_err e = cg_telegram.parse(&cfg, &req, out, 2, &n, reason, sizeof reason);
        if (e != CG_OK && n != 0) abort();
        if (n > 1) abort();
        for (size_t i = 0; i < n; i++) {
            if (out[i].text && strlen(out[i].text) > CG_MSG_TEXT_MAX) abort();
            if (!memchr(out[i].user, 0, sizeof out[i].user) || !out[i].user[0]) abort();
            cg_msg_free(&out[i]);
        }
        if (!memchr(reason, 0, sizeof reason)) abort();
        free(body);
    } else if (sel < 224) {
        if (size < 2) return 0;
        long status = ((long)data[0] << 8 | data[1]) % 700;
        char *body = malloc(size - 2 ? size - 2 : 1);
        if (!body) return 0;
        memcpy(body, data + 2, size - 2);
        cg_send_result r;
        cg_telegram.classify(status, body, size - 2, &r);
        if ((unsigned)r.kind > CG_SEND_FAILED || r.retry_after_ms < 0) abort();
        if (!memchr(r.reason, 0, sizeof r.reason) || !memchr(r.platform_id, 0, sizeof r.platform_id)) abort();
        free(body);
    } else {
        /* "<user>|<text>": the user part is tried as a chat id */
        cg_reply rep;
        memset(&rep, 0, sizeof rep);
        const uint8_t *bar = memchr(data, '|', size < 40 ? size : 40);
        size_t ulen = bar ? (size_t)(bar - data) : 0;
        if (bar && ulen < sizeof rep.user) {
            memcpy(rep.user, data, ulen);
            rep.user[ulen] = '\0';
            data += ulen + 1;
            size -= ulen + 1;
        } else {
            memcpy(rep.user, "-100123", 8);
        }
        rep.text = malloc(size + 1);
        if (!rep.text) return 0;
        memcpy(rep.text, data, size);
        rep.text[size] = '\0';
        rep.buttons[0].title = strdup("Yes");
        rep.buttons[0].payload = strdup("yes");
        rep.buttons[1].title = strdup("Site");
        rep.buttons[1].url = strdup("https://example.gov/");
        rep.nbuttons = 2;
        if (sel & 1) rep.callback_id = strdup("42");
        cg_http_out out[CG_MAX_OUT_REQUESTS];
        size_t n = 0;
        if (cg_telegram.render(&cfg, &rep, out, CG_MAX_OUT_REQUESTS, &n) == CG_OK) {
            if (n > CG_MAX_OUT_REQUESTS) abort();
            for (size_t i = 0; i < n; i++) {
                /* every body must be valid JSON of its stated length */
                if (!out[i].body || strlen(out[i].body) != out[i].body_len) abort();
                cJSON *b = cJSON_ParseWithLength(out[i].body, out[i].body_len);
                if (!b) abort();
                cJSON_Delete(b);
                cg_http_out_free(&out[i]);
            }
        } else if (n != 0) {
            abort();
        }
        cg_reply_free(&rep);
    }
    return 0;
}
