/*
 * fuzz_webchat.c: libFuzzer driver for the web-chat frame translator.
 * Each input is one client frame, parsed as from a connection before hello
 * (user "") and after it; a parsed message is rendered back as a reply; the
 * raw input is rendered as reply text, title, lang and error reason (the
 * output must be valid UTF-8) and tried as welcome history JSON.
 * Seed corpus: fuzz/corpus/webchat/ (the frames of tests/connectors/webchat).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/webchat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Strict UTF-8 check of a NUL-terminated string (what a browser demands of a
 * WebSocket text frame). */
static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s, n, cp, min;
        if (c < 0x80) { s++; continue; }
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (unsigned k = 1; k <= n; k++) {
            if ((s[k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        s += n + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *frame = malloc(size ? size : 1);
    if (!frame) return 0;
    memcpy(frame, data, size);   /* not NUL-terminated on purpose */
    static const char *const users[] = { "", "wc0123456789abcdef0123456789abcd" };
    for (size_t u = 0; u < 2; u++) {
        cg_wc_frame f;
        char reason[64];
        cg_err e = cg_webchat_parse(frame, size, users[u], &f, reason, sizeof reason);
        if (!memchr(reason, 0, sizeof reason)) abort();
        if (e == CG_OK && (f.kind == CG_WC_MESSAGE || f.kind == CG_WC_BUTTON)) {
            if (!f.msg.text == !f.msg.payload) abort();
            if (strncmp(f.msg.msg_id, users[u], strlen(users[u])) != 0) abort();
            cg_reply r;
            memset(&r, 0, sizeof r);
            r.text = f.msg.text ? f.msg.text : f.msg.payload;
            char *out = cg_webchat_render_reply(&r, f.lang);
            if (!out) abort();
            free(out);
        }
        if (e == CG_OK && f.kind == CG_WC_HELLO && f.token[0] && !cg_webchat_token_valid(f.token)) abort();
        cg_msg_free(&f.msg);
    }
    if (size < 4096) {
        char *h = malloc(size + 1);
        if (h) {
            memcpy(h, data, size);
            h[size] = '\0';
            /* any bytes as reply text, title and lang: the frame must be UTF-8 */
            cg_reply r;
            memset(&r, 0, sizeof r);
            r.text = h;
            r.buttons[0].title = h;
            r.buttons[0].url = h;
            r.nbuttons = 1;
            char *out = cg_webchat_render_reply(&r, h);
            if (!out || !valid_utf8((const unsigned char *)out)) abort();
            free(out);
            out = cg_webchat_render_error(h);
            if (!out || !valid_utf8((const unsigned char *)out)) abort();
            free(out);
            char *w = cg_webchat_render_welcome("0000000000000000000000000000000000000000000000000000000000000000", h);
            free(w);
            free(h);
        }
    }
    free(frame);
    return 0;
}
