/*
 * ws_out.c: see ws_out.h.
 */
#include "ws_out.h"

#include <stdlib.h>
#include <string.h>

struct cg_ws_frame {
    struct cg_ws_frame *next;
    size_t len;
    unsigned char data[];        /* LWS_PRE headroom, then the frame */
};

int cg_ws_out_push(cg_ws_out *q, const char *frame, size_t len, size_t max)
{
    if (q->n >= max) return -1;
    cg_ws_frame *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f) return -2;
    f->next = NULL;
    f->len = len;
    memcpy(f->data + LWS_PRE, frame, len);
    if (q->tail) q->tail->next = f;
    else q->head = f;
    q->tail = f;
    q->n++;
    return 0;
}

int cg_ws_out_write(cg_ws_out *q, struct lws *wsi)
{
    cg_ws_frame *f = q->head;
    if (!f) return 0;
    if (lws_write(wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT) < (int)f->len) return -1;
    q->head = f->next;
    if (!q->head) q->tail = NULL;
    q->n--;
    free(f);
    return 1;
}

void cg_ws_out_clear(cg_ws_out *q)
{
    while (q->head) {
        cg_ws_frame *f = q->head;
        q->head = f->next;
        free(f);
    }
    q->tail = NULL;
    q->n = 0;
}

void cg_ws_write_close(struct lws *wsi, int code)
{
    /* 4 is LWS_WRITE_CLOSE, which lws-write.h leaves out of the public enum
     * but lws_write() handles */
    unsigned char buf[LWS_PRE + 2];
    buf[LWS_PRE] = (unsigned char)((code >> 8) & 0xff);
    buf[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    lws_write(wsi, buf + LWS_PRE, 2, (enum lws_write_protocol)4);
}
