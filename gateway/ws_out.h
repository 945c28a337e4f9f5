/*
 * ws_out.h: the outgoing frame queue of a server WebSocket, shared by the
 * web chat (http_webchat.c) and the agents' console (agents_ws.c).
 *
 * Frames are copied in with LWS_PRE bytes of headroom and written one per
 * LWS_CALLBACK_SERVER_WRITEABLE, as lws requires; the queue is bounded by
 * the caller's max (a client that does not read is closed, not buffered
 * for without end). The close frame is written by hand: lws 4.1 sends
 * nothing when a writeable callback returns -1.
 *
 * Ownership: the queue owns its frames; cg_ws_out_clear() frees them.
 * Loop thread only.
 */
#ifndef CG_WS_OUT_H
#define CG_WS_OUT_H

#include <stddef.h>
#include <libwebsockets.h>

typedef struct cg_ws_frame cg_ws_frame;
typedef struct cg_ws_out {
    cg_ws_frame *head, *tail;
    size_t n;
} cg_ws_out;

/* Queue a copy of len bytes. 0; -1 when n ≥ max (full); -2 out of memory. */
int cg_ws_out_push(cg_ws_out *q, const char *frame, size_t len, size_t max);
/* Write the first frame as a text message and drop it: 1 written, 0 the
 * queue was empty, -1 the write failed (hang up). */
int cg_ws_out_write(cg_ws_out *q, struct lws *wsi);
void cg_ws_out_clear(cg_ws_out *q);
/* A close frame with code (RFC 6455 status). */
void cg_ws_write_close(struct lws *wsi, int code);

#endif
