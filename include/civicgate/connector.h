/*
 * connector.h: the contract every messaging platform implements.
 *
 * A connector is a pure translator: bytes in, structs out, and structs in,
 * HTTP request description out. It does no I/O, reads no clock and keeps no
 * globals, so each function is tested with payload files alone and every
 * parse() is a fuzz target. The gateway (http.c, outbox.c) does the I/O.
 *
 * Registering a new platform: add its cg_connector to cg_connectors[] in
 * connectors/registry.c, its keys to gateway/config.c, its doc section to
 * docs/configuration.md and a case table under tests/connectors/<name>/.
 */
#ifndef CIVICGATE_CONNECTOR_H
#define CIVICGATE_CONNECTOR_H

#include <stddef.h>
#include "civicgate/message.h"

/* Closed vocabulary of connector results; http.c maps them to statuses. */
typedef enum {
    CG_OK = 0,
    CG_E_AUTH,          /* 401: signature / secret missing or wrong */
    CG_E_FORBIDDEN,     /* 403: handshake token wrong */
    CG_E_BAD_REQUEST,   /* 400: malformed body; reason says why */
    CG_E_TOO_LARGE,     /* 413 */
    CG_E_UNAVAILABLE,   /* 503: Redis down; the platform retries */
    CG_E_NOMEM,         /* 500 */
    CG_E_INTERNAL       /* 500 */
} cg_err;

int cg_err_http_status(cg_err e);

/* Per-channel configuration, validated by gateway/config.c. Strings borrowed
 * from the config, live for the process. */
typedef struct cg_channel_cfg {
    const char *name;
    int enabled;
    const char *token;          /* telegram bot_token; whatsapp access_token; messenger page_access_token */
    const char *secret;         /* telegram webhook_secret; whatsapp/messenger app_secret */
    const char *verify_token;   /* whatsapp/messenger hub.verify_token */
    const char *api_base;       /* "https://api.telegram.org" */
    const char *api_version;    /* "v21.0" */
    const char *phone_number_id;
    int max_per_second;         /* outbox: messages per second on this channel, 0 = no limit */
    int max_per_chat_per_second;/* outbox: messages per second to one chat, 0 = no limit */
    const char *template_name;     /* whatsapp reengagement_template.name: sent outside the 24-hour window, or NULL */
    const char *template_language; /* whatsapp reengagement_template.language ("en_US") */
    int mark_read;                 /* whatsapp mark_read: mark inbound messages as read (default 1) */
} cg_channel_cfg;

#define CG_HTTP_MAX_HEADERS 16

typedef struct cg_header { const char *name; const char *value; } cg_header;

/* An inbound HTTP request, borrowed for the duration of the call. Header names
 * are lower case. body is the raw bytes as received (not NUL-terminated). */
typedef struct cg_http_in {
    const char *method;
    const char *path;
    const char *query;          /* raw query string without '?', or "" */
    cg_header headers[CG_HTTP_MAX_HEADERS]; size_t nheaders;
    const unsigned char *body; size_t body_len;
} cg_http_in;

const char *cg_http_in_header(const cg_http_in *r, const char *lower_name);
/* URL-decoded value of a query parameter into buf; 0, or -1 when absent/too long. */
int cg_http_in_query(const cg_http_in *r, const char *name, char *buf, size_t cap);

/* A response body for handshakes. */
typedef struct cg_http_resp {
    int status;
    char content_type[48];
    char body[512];
    size_t body_len;
} cg_http_resp;

/* An outbound request the outbox sends. All strings owned; free with
 * cg_http_out_free(). */
typedef struct cg_http_out {
    char method[8];
    char *url;
    char *headers[6]; size_t nheaders;   /* "Name: value" lines */
    char *body; size_t body_len;
    int secret_in_url;                   /* url holds a token: never log it */
} cg_http_out;

void cg_http_out_free(cg_http_out *o);

#define CG_MAX_OUT_REQUESTS 8

typedef enum {
    CG_SEND_OK = 0,
    CG_SEND_RETRY,          /* transient: 5xx, timeout, connection error: backoff */
    CG_SEND_THROTTLED,      /* 429: wait retry_after_ms at least */
    CG_SEND_CONTACT_GONE,   /* the citizen blocked the bot: mark and stop */
    CG_SEND_BAD_CONFIG,     /* our token is wrong: dead-letter, alert */
    CG_SEND_FAILED,         /* permanent: dead-letter with reason */
    CG_SEND_WINDOW_CLOSED   /* the platform's reply window is closed (WhatsApp 131047):
                               re-engage with a template and hold the reply */
    /* a new kind goes last, and fuzz/meta_driver.h's range check follows it */
} cg_send_kind;

typedef struct cg_send_result {
    cg_send_kind kind;
    long retry_after_ms;    /* CG_SEND_THROTTLED; 0 when the platform gave none */
    char reason[160];
    char platform_id[CG_MSGID_MAX];  /* id of the sent message, when returned */
    long code;              /* the platform's error code (Graph error.code), 0 when none */
} cg_send_result;

enum {
    CG_CONN_RAW_BODY  = 1u << 0,  /* verify() needs the exact bytes (HMAC) */
    CG_CONN_HANDSHAKE = 1u << 1   /* GET handshake (Meta hub.challenge) */
};

typedef struct cg_connector {
    const char *name;           /* "telegram": also the route segment /webhooks/<name> */
    unsigned flags;
    size_t max_body;            /* checked before verify() and parse() */
    size_t max_text;            /* platform's message length limit (characters) */
    /* CG_OK or CG_E_AUTH. Constant-time compare of secrets. */
    cg_err (*verify)(const cg_channel_cfg *cfg, const cg_http_in *req);
    /* GET handshake; NULL when the platform has none. */
    cg_err (*handshake)(const cg_channel_cfg *cfg, const cg_http_in *req, cg_http_resp *resp);
    /* body → up to max messages in out[] (*n set). On CG_E_BAD_REQUEST, reason
     * (cap bytes) says why. Messages that need no processing are not emitted. */
    cg_err (*parse)(const cg_channel_cfg *cfg, const cg_http_in *req, cg_msg *out, size_t max,
                    size_t *n, char *reason, size_t cap);
    /* reply → up to max requests to send in order (*n set). */
    cg_err (*render)(const cg_channel_cfg *cfg, const cg_reply *reply, cg_http_out *out, size_t max,
                     size_t *n);
    /* status 0 means no HTTP response (timeout, connection refused). */
    void (*classify)(long status, const char *body, size_t len, cg_send_result *out);
    /* The read receipt of the citizen's message msg_id (a platform id from
     * parse) into *out (owned by the caller: cg_http_out_free); classified
     * with classify(). NULL when the platform has none. */
    cg_err (*render_read)(const cg_channel_cfg *cfg, const char *user, const char *msg_id, cg_http_out *out);
} cg_connector;

/* NULL-terminated table of every connector (connectors/registry.c). */
extern const cg_connector *const cg_connectors[];
const cg_connector *cg_connector_find(const char *name);

/* 1 when every button of r is sendable: at most CG_REPLY_MAX_BUTTONS, each
 * with a non-empty UTF-8 title and either a payload of 1..payload_max bytes
 * (UTF-8) or an http(s) URL. *npay and *nurl (may be NULL) count each kind.
 * Connectors call it before rendering; it never truncates. */
int cg_reply_buttons_valid(const cg_reply *r, size_t payload_max, size_t *npay, size_t *nurl);

/* 1 when a string in the JSON text s[0..len) holds the escape \u0000: cJSON
 * would decode it to a NUL and silently cut the string there, so parsers
 * refuse such bodies instead. */
int cg_json_has_escaped_nul(const char *s, size_t len);

/* A JSON text written directly, for the render paths every reply takes:
 * building a cJSON tree and printing it cost about 30 instructions a byte.
 * Strings must already be valid UTF-8 (connectors check); they are escaped
 * as cJSON does (quote, backslash, control characters; the rest as is).
 * Zero-initialise; a failed allocation sets oom and later calls do nothing;
 * cg_jw_take() hands the NUL-terminated text over (NULL after oom, or
 * free()d by the caller). */
typedef struct cg_jw {
    char *buf;
    size_t len, cap;
    int oom;
} cg_jw;
void cg_jw_raw(cg_jw *w, const char *s, size_t n);
void cg_jw_lit(cg_jw *w, const char *s);                     /* raw, NUL-terminated */
void cg_jw_str(cg_jw *w, const char *s, size_t n);           /* a JSON string */
/* A JSON string whose content is s HTML-escaped first (& < > as entities),
 * in the same pass: Telegram's parse_mode HTML. */
void cg_jw_str_html(cg_jw *w, const char *s, size_t n);
char *cg_jw_take(cg_jw *w, size_t *len);

/* Constant-time equality of two byte strings (lengths may differ). */
int cg_secure_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
