/*
 * config.c: the gateway's configuration, parsed and validated once.
 *
 * The file is JSON (docs/configuration.md lists every key). Parsing is driven
 * by two const tables, in the manner of Redis's config.c:
 *   cfg_objects[]  every object path that may appear ("", "listen", ...)
 *   cfg_keys[]     every leaf key: path, type, target field, range, checker
 * A key that is in neither table is an error ("channels.telegram.api_bse:
 * unknown key"), as is a wrong type, a value out of range or a duplicate key.
 * After the file, cfg_env[] applies secrets and the Redis URL from the
 * environment (same checkers, errors name the variable), and
 * CIVICGATE_ADMIN_TOKEN, which alone is given in clear and kept only as its
 * SHA-256 (apply_env_admin); then the channels are enabled when their
 * secrets are all present. Admin tokens (admin.tokens) are stored hashed:
 * the file holds {"name", "sha256"} pairs, never a token.
 *
 * API in call order:
 *   cg_config_defaults()   every key at its default (strings owned)
 *   cg_config_parse()      JSON text → overlay on the defaults, then the env
 *   cg_config_load()       read a file (≤ CFG_MAX_FILE) and parse it
 *   cg_config_channel()    a channel's cg_channel_cfg by connector name
 *   cg_config_free()
 *
 * Extending: a new key needs a field in config.h, a default in
 * cg_config_defaults(), a row in cfg_keys[] (and its object in cfg_objects[]
 * when new), a row in cfg_env[] when it is a secret, a line in
 * docs/configuration.md and config/civicgate.example.json, and a case in
 * tests/unit/test_config.c. A new channel also needs cg_config_channel() and
 * its enable rule in enable_channels().
 */
#include "config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_FILE   (256 * 1024)
#define CFG_MAX_STR    2048            /* any string value */
#define CFG_MAX_SECRET 512
#define CFG_ADMIN_TOKEN_MIN 32         /* CIVICGATE_ADMIN_TOKEN: a long random string */

/* ---- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Replace a char * field owned by the struct directly. */
static int set_str(char **slot, const char *v)
{
    char *d = strdup(v);
    if (!d) return -1;
    free(*slot);
    *slot = d;
    return 0;
}

/* Replace a const char * slot whose storage lives in c->owned[]. */
static int set_owned(cg_config *c, const char **slot, const char *v)
{
    char *d = strdup(v);
    if (!d) return -1;
    for (size_t i = 0; i < c->nowned; i++) {
        if (c->owned[i] && c->owned[i] == *slot) {
            free(c->owned[i]);
            c->owned[i] = d;
            *slot = d;
            return 0;
        }
    }
    if (c->nowned >= sizeof c->owned / sizeof c->owned[0]) { free(d); return -1; }
    c->owned[c->nowned++] = d;
    *slot = d;
    return 0;
}

/* ---- value checkers: 0 ok, or -1 with why ------------------------------- */

typedef int (*cfg_check)(const char *v, char *why, size_t cap);

static int printable_ascii(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f) return 0;
    return 1;
}

static int check_nonempty(const char *v, char *why, size_t cap)
{
    if (!*v) { set_err(why, cap, "must not be empty"); return -1; }
    return 0;
}

static int check_ip(const char *v, char *why, size_t cap)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1) return 0;
    set_err(why, cap, "must be an IPv4 or IPv6 address (e.g. \"127.0.0.1\")");
    return -1;
}

/* scheme://host[:port] followed by what rest_ok allows. Host: letters,
 * digits, '.', '-', or a bracketed IPv6 literal. */
static int check_url_generic(const char *v, const char *const *schemes, int path_ok, char *why,
                             size_t cap, const char *what)
{
    const char *p = NULL;
    for (size_t i = 0; schemes[i]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(v, schemes[i], n) == 0) { p = v + n; break; }
    }
    if (!p || strlen(v) > 1024 || !printable_ascii(v)) goto bad;
    const char *h = p;
    if (*p == '[') {
        while (*p && *p != ']') p++;
        if (*p != ']' || p == h + 1) goto bad;
        p++;
    } else {
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_') p++;
        if (p == h) goto bad;
    }
    if (*p == ':') {
        p++;
        long port = 0; const char *d = p;
        while (isdigit((unsigned char)*p) && p - d < 6) port = port * 10 + (*p++ - '0');
        if (p == d || port < 1 || port > 65535) goto bad;
    }
    if (*p == '\0') return 0;
    if (path_ok && *p == '/') return 0;
    if (!path_ok && *p == '/' && p[1] == '\0') {
        set_err(why, cap, "must be %s, without a trailing '/'", what);
        return -1;
    }
bad:
    set_err(why, cap, "must be %s", what);
    return -1;
}

static int check_api_base(const char *v, char *why, size_t cap)
{
    static const char *const s[] = {"https://", "http://", NULL};
    return check_url_generic(v, s, 0, why, cap, "an http(s) URL without a path (e.g. \"https://api.telegram.org\")");
}

static int check_origin(const char *v, char *why, size_t cap)
{
    static const char *const s[] = {"https://", "http://", NULL};
    return check_url_generic(v, s, 0, why, cap, "an origin: scheme://host[:port] (e.g. \"https://www.example.gov\")");
}

/* A Redis database number (digits, at most 4 of them): 0, or -1. */
static int check_db_number(const char *d)
{
    int db = 0;
    if (!*d) return -1;
    for (; *d; d++) {
        if (!isdigit((unsigned char)*d) || db > 1000) return -1;
        db = db * 10 + (*d - '0');
    }
    return 0;
}

/* unix:///absolute/path.sock[?db=N]: what the store connects to (store.c
 * parse_url); the path fits a sockaddr_un. */
static int check_redis_unix(const char *v, char *why, size_t cap)
{
    const char *p = v + 7, *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (*p != '/' || n < 2 || n > 107 || !printable_ascii(v)) {
        set_err(why, cap, "must be unix:///absolute/path.sock[?db=N] with a path of at most 107 bytes");
        return -1;
    }
    if (q && (strncmp(q, "?db=", 4) != 0 || check_db_number(q + 4) != 0)) {
        set_err(why, cap, "database must be a number (unix:///run/redis/redis.sock?db=0)");
        return -1;
    }
    return 0;
}

static int check_redis_url(const char *v, char *why, size_t cap)
{
    static const char *const s[] = {"redis://", NULL};
    if (strncmp(v, "unix://", 7) == 0) return check_redis_unix(v, why, cap);
    /* redis://[user:password@]host[:port][/db] */
    const char *at = strrchr(v, '@');
    char tmp[1100];
    if (at && strncmp(v, "redis://", 8) == 0 && at > v + 8) {
        snprintf(tmp, sizeof tmp, "redis://%s", at + 1);
        v = tmp;
    }
    if (check_url_generic(v, s, 1, why, cap, "a redis://host[:port][/db] URL (or unix:///path.sock[?db=N])") < 0) return -1;
    const char *path = strchr(v + 8, '/');
    if (path && path[1] && check_db_number(path + 1) != 0) {
        set_err(why, cap, "database must be a number (redis://host:port/0)");
        return -1;
    }
    return 0;
}

/* Telegram's allowed charset for secret_token: 1-256 of A-Z a-z 0-9 _ - */
static int check_webhook_secret(const char *v, char *why, size_t cap)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 256;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '_' || v[i] == '-';
    if (!ok) { set_err(why, cap, "must be 1-256 characters of A-Z a-z 0-9 _ -"); return -1; }
    return 0;
}

static int check_secret(const char *v, char *why, size_t cap)
{
    size_t n = strlen(v);
    if (n == 0 || n > CFG_MAX_SECRET || !printable_ascii(v)) {
        set_err(why, cap, "must be 1-%d printable characters without spaces", CFG_MAX_SECRET);
        return -1;
    }
    return 0;
}

static int check_api_version(const char *v, char *why, size_t cap)
{
    const char *p = v;
    int ok = *p++ == 'v' && isdigit((unsigned char)*p);
    while (ok && isdigit((unsigned char)*p)) p++;
    if (ok && *p == '.') {
        p++;
        ok = isdigit((unsigned char)*p);
        while (ok && isdigit((unsigned char)*p)) p++;
    }
    if (!ok || *p || strlen(v) > 12) { set_err(why, cap, "must look like \"v21.0\""); return -1; }
    return 0;
}

static int check_digits(const char *v, char *why, size_t cap)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 32;
    for (size_t i = 0; ok && i < n; i++) ok = isdigit((unsigned char)v[i]);
    if (!ok) { set_err(why, cap, "must be 1-32 digits"); return -1; }
    return 0;
}

/* WhatsApp template names: 1-512 of a-z 0-9 _ (Meta's rule for names). */
static int check_template_name(const char *v, char *why, size_t cap)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 512;
    for (size_t i = 0; ok && i < n; i++) ok = islower((unsigned char)v[i]) || isdigit((unsigned char)v[i]) || v[i] == '_';
    if (!ok) { set_err(why, cap, "must be 1-512 characters of a-z 0-9 _ (the template's name in WhatsApp Manager)"); return -1; }
    return 0;
}

/* A template language code: "en", "en_US", "pt_BR", "zh_HK", "fil". */
static int check_template_language(const char *v, char *why, size_t cap)
{
    size_t n = strlen(v), i = 0;
    while (i < n && islower((unsigned char)v[i])) i++;
    int ok = i >= 2 && i <= 3;
    if (ok && i < n) ok = v[i] == '_' && n - i - 1 == 2 && isupper((unsigned char)v[i + 1]) && isupper((unsigned char)v[i + 2]);
    if (!ok) { set_err(why, cap, "must be a language code such as \"en\" or \"en_US\""); return -1; }
    return 0;
}

static int check_log_level(const char *v, char *why, size_t cap)
{
    if (!strcmp(v, "debug") || !strcmp(v, "info") || !strcmp(v, "warn") || !strcmp(v, "error")) return 0;
    set_err(why, cap, "must be one of \"debug\", \"info\", \"warn\", \"error\"");
    return -1;
}

/* ---- the tables --------------------------------------------------------- */

typedef enum {
    T_STR,      /* char * field, owned */
    T_CHSTR,    /* const char * field in a cg_channel_cfg, stored in owned[] */
    T_INT,      /* int field, integer in [min, max] */
    T_SIZE,     /* size_t field, integer in [min, max] */
    T_BOOL,     /* int field, true/false */
    T_ORIGINS,  /* the allowed_origins array */
    T_ADMIN_TOKENS, /* admin.tokens: [{"name", "sha256"}] */
    T_AGENT_USERS, /* agents.users (config_agents.c) */
    T_OFFICE    /* agents.office_hours (config_agents.c) */
} cfg_type;

typedef struct cfg_key {
    const char *path;
    cfg_type type;
    size_t off;
    long long min, max;
    cfg_check check;
} cfg_key;

#define F(field) offsetof(cg_config, field)
#define DAY (24LL * 3600)

static const cfg_key cfg_keys[] = {
    {"listen.address", T_STR, F(listen_address), 0, 0, check_ip},
    {"listen.port", T_INT, F(listen_port), 1, 65535, NULL},
    {"listen.tls_cert", T_STR, F(tls_cert), 0, 0, check_nonempty},
    {"listen.tls_key", T_STR, F(tls_key), 0, 0, check_nonempty},
    {"redis.url", T_STR, F(redis_url), 0, 0, check_redis_url},
    {"intents.dir", T_STR, F(intents_dir), 0, 0, check_nonempty},
    {"www.dir", T_STR, F(www_dir), 0, 0, check_nonempty},
    {"log.level", T_STR, F(log_level), 0, 0, check_log_level},
    {"log.debug_content", T_BOOL, F(log_debug_content), 0, 1, NULL},
    {"metrics.token", T_CHSTR, F(metrics_token), 0, 0, check_secret},
    {"limits.max_body", T_SIZE, F(max_body), 1024, 64LL * 1024 * 1024, NULL},
    {"limits.citizen_messages_per_minute", T_INT, F(citizen_per_minute), 0, 100000, NULL},
    {"retention.sessions_s", T_INT, F(session_ttl_s), 60, 3650 * DAY, NULL},
    {"retention.transcripts_s", T_INT, F(transcript_ttl_s), 60, 3650 * DAY, NULL},
    {"retention.transcript_max_entries", T_INT, F(transcript_max), 1, 100000, NULL},
    {"retention.dedupe_s", T_INT, F(dedupe_ttl_s), 60, 30 * DAY, NULL},
    {"retention.audit_s", T_INT, F(audit_ttl_s), 3600, 3650 * DAY, NULL},
    {"retention.analytics_s", T_INT, F(analytics_ttl_s), 3600, 3650 * DAY, NULL},
    {"analytics.unmatched_min_count", T_INT, F(analytics_min_count), 2, 1000, NULL},
    {"intents.watch", T_BOOL, F(intents_watch), 0, 1, NULL},
    {"intents.watch_debounce_ms", T_INT, F(intents_watch_debounce_ms), 50, 60000, NULL},
    {"admin.tokens", T_ADMIN_TOKENS, 0, 0, CG_MAX_ADMIN_TOKENS, NULL},
    {"outbox.max_attempts", T_INT, F(outbox_max_attempts), 1, 100, NULL},
    {"outbox.timeout_ms", T_INT, F(outbox_timeout_ms), 100, 120000, NULL},
    {"shutdown_grace_ms", T_INT, F(shutdown_grace_ms), 0, 600000, NULL},

    {"channels.telegram.bot_token", T_CHSTR, F(telegram.token), 0, 0, check_secret},
    {"channels.telegram.webhook_secret", T_CHSTR, F(telegram.secret), 0, 0, check_webhook_secret},
    {"channels.telegram.api_base", T_CHSTR, F(telegram.api_base), 0, 0, check_api_base},
    {"channels.telegram.max_per_second", T_INT, F(telegram.max_per_second), 0, 100000, NULL},
    {"channels.telegram.max_per_chat_per_second", T_INT, F(telegram.max_per_chat_per_second), 0, 100000, NULL},

    {"channels.whatsapp.phone_number_id", T_CHSTR, F(whatsapp.phone_number_id), 0, 0, check_digits},
    {"channels.whatsapp.access_token", T_CHSTR, F(whatsapp.token), 0, 0, check_secret},
    {"channels.whatsapp.app_secret", T_CHSTR, F(whatsapp.secret), 0, 0, check_secret},
    {"channels.whatsapp.verify_token", T_CHSTR, F(whatsapp.verify_token), 0, 0, check_secret},
    {"channels.whatsapp.api_base", T_CHSTR, F(whatsapp.api_base), 0, 0, check_api_base},
    {"channels.whatsapp.api_version", T_CHSTR, F(whatsapp.api_version), 0, 0, check_api_version},
    {"channels.whatsapp.max_per_second", T_INT, F(whatsapp.max_per_second), 0, 100000, NULL},
    {"channels.whatsapp.max_per_chat_per_second", T_INT, F(whatsapp.max_per_chat_per_second), 0, 100000, NULL},
    {"channels.whatsapp.mark_read", T_BOOL, F(whatsapp.mark_read), 0, 1, NULL},
    {"channels.whatsapp.reengagement_template.name", T_CHSTR, F(whatsapp.template_name), 0, 0, check_template_name},
    {"channels.whatsapp.reengagement_template.language", T_CHSTR, F(whatsapp.template_language), 0, 0,
     check_template_language},

    {"channels.messenger.page_access_token", T_CHSTR, F(messenger.token), 0, 0, check_secret},
    {"channels.messenger.app_secret", T_CHSTR, F(messenger.secret), 0, 0, check_secret},
    {"channels.messenger.verify_token", T_CHSTR, F(messenger.verify_token), 0, 0, check_secret},
    {"channels.messenger.api_base", T_CHSTR, F(messenger.api_base), 0, 0, check_api_base},
    {"channels.messenger.api_version", T_CHSTR, F(messenger.api_version), 0, 0, check_api_version},
    {"channels.messenger.max_per_second", T_INT, F(messenger.max_per_second), 0, 100000, NULL},
    {"channels.messenger.max_per_chat_per_second", T_INT, F(messenger.max_per_chat_per_second), 0, 100000, NULL},

    {"channels.webchat.enabled", T_BOOL, F(webchat_enabled), 0, 1, NULL},
    {"channels.webchat.allowed_origins", T_ORIGINS, 0, 0, CG_MAX_ORIGINS, check_origin},

    {"agents.users", T_AGENT_USERS, 0, 0, CG_AGENTS_MAX_USERS, NULL},
    {"agents.session_ttl_s", T_INT, F(agents.session_ttl_s), 300, 30 * DAY, NULL},
    {"agents.disconnect_grace_s", T_INT, F(agents.disconnect_grace_s), 5, DAY, NULL},
    {"agents.no_agent_timeout_s", T_INT, F(agents.no_agent_timeout_s), 0, 7 * DAY, NULL},
    {"agents.login_max_failures", T_INT, F(agents.login_max_failures), 1, 1000, NULL},
    {"agents.avg_handle_s", T_INT, F(agents.avg_handle_s), 10, DAY, NULL},
    {"agents.office_hours", T_OFFICE, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL}
};

static const char *const cfg_objects[] = {
    "", "listen", "redis", "intents", "www", "log", "metrics", "limits", "retention", "outbox", "admin", "channels",
    "analytics",
    "channels.telegram", "channels.whatsapp", "channels.messenger", "channels.webchat",
    "channels.whatsapp.reengagement_template", "agents", NULL
};

typedef struct cfg_env {
    const char *name;
    cfg_type type;       /* T_STR or T_CHSTR */
    size_t off;
    cfg_check check;
} cfg_env;

static const cfg_env cfg_envs[] = {
    {"CIVICGATE_REDIS_URL", T_STR, F(redis_url), check_redis_url},
    {"CIVICGATE_METRICS_TOKEN", T_CHSTR, F(metrics_token), check_secret},
    {"CIVICGATE_TELEGRAM_BOT_TOKEN", T_CHSTR, F(telegram.token), check_secret},
    {"CIVICGATE_TELEGRAM_WEBHOOK_SECRET", T_CHSTR, F(telegram.secret), check_webhook_secret},
    {"CIVICGATE_WHATSAPP_ACCESS_TOKEN", T_CHSTR, F(whatsapp.token), check_secret},
    {"CIVICGATE_WHATSAPP_APP_SECRET", T_CHSTR, F(whatsapp.secret), check_secret},
    {"CIVICGATE_WHATSAPP_VERIFY_TOKEN", T_CHSTR, F(whatsapp.verify_token), check_secret},
    {"CIVICGATE_MESSENGER_PAGE_ACCESS_TOKEN", T_CHSTR, F(messenger.token), check_secret},
    {"CIVICGATE_MESSENGER_APP_SECRET", T_CHSTR, F(messenger.secret), check_secret},
    {"CIVICGATE_MESSENGER_VERIFY_TOKEN", T_CHSTR, F(messenger.verify_token), check_secret},
    {NULL, 0, 0, NULL}
};

/* ---- defaults ----------------------------------------------------------- */

static const char *const default_origins[] = {"http://localhost:8080", "http://127.0.0.1:8080", NULL};

void cg_config_defaults(cg_config *c)
{
    memset(c, 0, sizeof *c);
    /* strdup failures leave NULLs, caught by cg_config_parse's final check */
    c->listen_address = strdup("127.0.0.1");
    c->listen_port = 8080;
    c->redis_url = strdup("redis://127.0.0.1:6379/0");
    c->intents_dir = strdup("intents");
    c->intents_watch = 0;
    c->intents_watch_debounce_ms = 500;
    c->www_dir = strdup("gateway/www");
    c->log_level = strdup("info");
    c->log_debug_content = 0;

    c->telegram.name = "telegram";
    c->whatsapp.name = "whatsapp";
    c->messenger.name = "messenger";
    set_owned(c, &c->telegram.api_base, "https://api.telegram.org");
    set_owned(c, &c->whatsapp.api_base, "https://graph.facebook.com");
    set_owned(c, &c->whatsapp.api_version, "v21.0");
    set_owned(c, &c->messenger.api_base, "https://graph.facebook.com");
    set_owned(c, &c->messenger.api_version, "v21.0");
    /* The platforms' documented sending limits (Telegram: about 30 messages/s
     * overall and 1/s per chat; WhatsApp Cloud API: 80/s; Messenger: ~40/s). */
    c->telegram.max_per_second = 30;
    c->whatsapp.max_per_second = 80;
    c->messenger.max_per_second = 40;
    c->whatsapp.mark_read = 1;
    c->telegram.max_per_chat_per_second = c->whatsapp.max_per_chat_per_second =
        c->messenger.max_per_chat_per_second = 1;

    c->webchat_enabled = 1;
    for (size_t i = 0; default_origins[i]; i++) {
        c->origins[i] = strdup(default_origins[i]);
        c->norigins++;
    }

    c->max_body = 1024 * 1024;
    c->citizen_per_minute = 30;
    c->session_ttl_s = 30 * DAY;
    c->transcript_ttl_s = 90 * DAY;
    c->transcript_max = 500;
    c->dedupe_ttl_s = 2 * DAY;
    c->audit_ttl_s = 365 * DAY;
    c->analytics_ttl_s = 180 * DAY;
    c->analytics_min_count = 3;
    c->outbox_max_attempts = 8;
    c->outbox_timeout_ms = 10000;
    c->shutdown_grace_ms = 5000;

    c->agents.session_ttl_s = 12 * 3600;
    c->agents.disconnect_grace_s = 120;
    c->agents.no_agent_timeout_s = 900;
    c->agents.login_max_failures = 5;
    c->agents.avg_handle_s = 300;
}

void cg_config_free(cg_config *c)
{
    if (!c) return;
    free(c->listen_address);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->redis_url);
    free(c->intents_dir);
    free(c->www_dir);
    free(c->log_level);
    for (size_t i = 0; i < c->norigins; i++) free(c->origins[i]);
    for (size_t i = 0; i < c->nowned; i++) free(c->owned[i]);
    cg_config_agents_free(&c->agents);
    memset(c, 0, sizeof *c);
}

/* ---- the walk ----------------------------------------------------------- */

static int is_object_path(const char *p)
{
    for (size_t i = 0; cfg_objects[i]; i++)
        if (!strcmp(cfg_objects[i], p)) return 1;
    return 0;
}

static const cfg_key *find_key(const char *p)
{
    for (const cfg_key *k = cfg_keys; k->path; k++)
        if (!strcmp(k->path, p)) return k;
    return NULL;
}

static int apply_string(cg_config *c, cfg_type t, size_t off, const char *v)
{
    if (t == T_STR) return set_str((char **)((char *)c + off), v);
    return set_owned(c, (const char **)((char *)c + off), v);
}

/* An admin token's name: 1-63 of A-Z a-z 0-9 . _ @ - (it appears in the
 * audit log and the logs). */
static int check_admin_name(const char *v, char *why, size_t cap)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n < CG_ADMIN_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '_' || v[i] == '@' || v[i] == '-';
    if (!ok) {
        set_err(why, cap, "must be 1-%d characters of A-Z a-z 0-9 . _ @ -", CG_ADMIN_NAME_MAX - 1);
        return -1;
    }
    if (!strcmp(v, "env")) {
        set_err(why, cap, "\"env\" is reserved for CIVICGATE_ADMIN_TOKEN");
        return -1;
    }
    return 0;
}

/* 64 hex digits (either case) → 32 bytes; -1 when not. */
static int parse_sha256_hex(const char *v, unsigned char out[32])
{
    if (strlen(v) != 64) return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = isxdigit((unsigned char)v[2 * i]), lo = isxdigit((unsigned char)v[2 * i + 1]);
        if (!hi || !lo) return -1;
        char b[3] = {v[2 * i], v[2 * i + 1], '\0'};
        out[i] = (unsigned char)strtoul(b, NULL, 16);
    }
    return 0;
}

/* admin.tokens: an array of {"name": ..., "sha256": ...}, names unique. */
static int apply_admin_tokens(cg_config *c, const cfg_key *k, const cJSON *v, const char *path, char *err,
                              size_t cap)
{
    char why[160];
    if (!cJSON_IsArray(v)) {
        set_err(err, cap, "%s: must be an array of {\"name\", \"sha256\"} objects", path);
        return -1;
    }
    if (cJSON_GetArraySize(v) > k->max) {
        set_err(err, cap, "%s: at most %lld tokens", path, k->max);
        return -1;
    }
    cg_admin_token tmp[CG_MAX_ADMIN_TOKENS];
    size_t n = 0;
    for (const cJSON *e = v->child; e; e = e->next, n++) {
        if (!cJSON_IsObject(e)) {
            set_err(err, cap, "%s[%zu]: must be an object {\"name\", \"sha256\"}", path, n);
            return -1;
        }
        const cJSON *name = NULL, *hash = NULL;
        for (const cJSON *f = e->child; f; f = f->next) {
            const char *fn = f->string ? f->string : "";
            if (!strcmp(fn, "name") && !name) name = f;
            else if (!strcmp(fn, "sha256") && !hash) hash = f;
            else {
                set_err(err, cap, "%s[%zu].%s: %s", path, n, fn,
                        !strcmp(fn, "name") || !strcmp(fn, "sha256") ? "duplicate key" : "unknown key");
                return -1;
            }
        }
        if (!cJSON_IsString(name)) {
            set_err(err, cap, "%s[%zu].name: must be a string", path, n);
            return -1;
        }
        if (check_admin_name(name->valuestring, why, sizeof why) < 0) {
            set_err(err, cap, "%s[%zu].name: %s", path, n, why);
            return -1;
        }
        if (!cJSON_IsString(hash) || parse_sha256_hex(hash->valuestring, tmp[n].sha256) < 0) {
            set_err(err, cap, "%s[%zu].sha256: must be 64 hex digits (civicgate hash-token prints them)", path, n);
            return -1;
        }
        snprintf(tmp[n].name, sizeof tmp[n].name, "%s", name->valuestring);
        for (size_t j = 0; j < n; j++) {
            if (!strcmp(tmp[j].name, tmp[n].name)) {
                set_err(err, cap, "%s[%zu].name: \"%s\" is already used by %s[%zu]", path, n, tmp[n].name, path, j);
                return -1;
            }
        }
    }
    memcpy(c->admin_tokens, tmp, n * sizeof tmp[0]);
    c->nadmin_tokens = n;
    return 0;
}

static int apply_key(cg_config *c, const cfg_key *k, const cJSON *v, const char *path, char *err,
                     size_t cap)
{
    char why[160];
    switch (k->type) {
    case T_STR:
    case T_CHSTR:
        if (!cJSON_IsString(v)) { set_err(err, cap, "%s: must be a string", path); return -1; }
        if (strlen(v->valuestring) > CFG_MAX_STR) {
            set_err(err, cap, "%s: longer than %d bytes", path, CFG_MAX_STR);
            return -1;
        }
        if (k->check && k->check(v->valuestring, why, sizeof why) < 0) {
            set_err(err, cap, "%s: %s", path, why);
            return -1;
        }
        if (apply_string(c, k->type, k->off, v->valuestring) < 0) {
            set_err(err, cap, "%s: out of memory", path);
            return -1;
        }
        return 0;
    case T_INT:
    case T_SIZE: {
        double d = v->valuedouble;
        if (!cJSON_IsNumber(v) || d != (double)(long long)d) {
            set_err(err, cap, "%s: must be an integer", path);
            return -1;
        }
        if (d < (double)k->min || d > (double)k->max) {
            set_err(err, cap, "%s: must be an integer from %lld to %lld", path, k->min, k->max);
            return -1;
        }
        if (k->type == T_INT) *(int *)((char *)c + k->off) = (int)d;
        else *(size_t *)((char *)c + k->off) = (size_t)d;
        return 0;
    }
    case T_BOOL:
        if (!cJSON_IsBool(v)) { set_err(err, cap, "%s: must be true or false", path); return -1; }
        *(int *)((char *)c + k->off) = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    case T_ADMIN_TOKENS:
        return apply_admin_tokens(c, k, v, path, err, cap);
    case T_ORIGINS: {
        if (!cJSON_IsArray(v)) { set_err(err, cap, "%s: must be an array of strings", path); return -1; }
        int n = cJSON_GetArraySize(v);
        if (n > k->max) {
            set_err(err, cap, "%s: at most %lld origins", path, k->max);
            return -1;
        }
        char *tmp[CG_MAX_ORIGINS] = {0};
        int i = 0, rc = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            if (!cJSON_IsString(e)) {
                set_err(err, cap, "%s[%d]: must be a string", path, i);
                rc = -1;
                break;
            }
            if (k->check(e->valuestring, why, sizeof why) < 0) {
                set_err(err, cap, "%s[%d]: %s", path, i, why);
                rc = -1;
                break;
            }
            if (!(tmp[i] = strdup(e->valuestring))) {
                set_err(err, cap, "%s: out of memory", path);
                rc = -1;
                break;
            }
        }
        if (rc < 0) {
            for (int j = 0; j < CG_MAX_ORIGINS; j++) free(tmp[j]);
            return -1;
        }
        for (size_t j = 0; j < c->norigins; j++) free(c->origins[j]);
        memcpy(c->origins, tmp, sizeof tmp);
        c->norigins = (size_t)n;
        return 0;
    }
    case T_AGENT_USERS:
        return cg_config_agents_users(&c->agents, v, path, err, cap);
    case T_OFFICE:
        return cg_config_office_hours(&c->agents.office, v, path, err, cap);
    }
    return -1;
}

static int walk(cg_config *c, const cJSON *obj, const char *prefix, char *err, size_t cap)
{
    char path[256];
    for (const cJSON *e = obj->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (strlen(prefix) + strlen(name) + 2 > sizeof path) {
            set_err(err, cap, "%s%s%.40s...: unknown key", prefix, *prefix ? "." : "", name);
            return -1;
        }
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name);
        for (const cJSON *f = obj->child; f != e; f = f->next) {
            if (f->string && !strcmp(f->string, name)) {
                set_err(err, cap, "%s: duplicate key", path);
                return -1;
            }
        }
        if (is_object_path(path)) {
            if (!cJSON_IsObject(e)) { set_err(err, cap, "%s: must be an object", path); return -1; }
            if (walk(c, e, path, err, cap) < 0) return -1;
            continue;
        }
        const cfg_key *k = find_key(path);
        if (!k) { set_err(err, cap, "%s: unknown key", path); return -1; }
        if (apply_key(c, k, e, path, err, cap) < 0) return -1;
    }
    return 0;
}

static int apply_env(cg_config *c, char *err, size_t cap)
{
    char why[160];
    for (const cfg_env *e = cfg_envs; e->name; e++) {
        const char *v = getenv(e->name);
        if (!v || !*v) continue;
        if (strlen(v) > CFG_MAX_STR) {
            set_err(err, cap, "%s (environment): longer than %d bytes", e->name, CFG_MAX_STR);
            return -1;
        }
        if (e->check(v, why, sizeof why) < 0) {
            set_err(err, cap, "%s (environment): %s", e->name, why);
            return -1;
        }
        if (apply_string(c, e->type, e->off, v) < 0) {
            set_err(err, cap, "%s: out of memory", e->name);
            return -1;
        }
    }
    return 0;
}

/* CIVICGATE_ADMIN_TOKEN: one more admin token, named "env", given in clear
 * and kept only as its SHA-256. */
static int apply_env_admin(cg_config *c, char *err, size_t cap)
{
    const char *v = getenv("CIVICGATE_ADMIN_TOKEN");
    if (!v || !*v) return 0;
    size_t n = strlen(v);
    if (n < CFG_ADMIN_TOKEN_MIN || n > CFG_MAX_SECRET || !printable_ascii(v)) {
        set_err(err, cap, "CIVICGATE_ADMIN_TOKEN (environment): must be %d-%d printable characters without spaces "
                "(civicgate admin-token makes one)", CFG_ADMIN_TOKEN_MIN, CFG_MAX_SECRET);
        return -1;
    }
    size_t slot = c->nadmin_tokens;   /* a parse before this one may have added it */
    for (size_t i = 0; i < c->nadmin_tokens; i++)
        if (!strcmp(c->admin_tokens[i].name, "env")) slot = i;
    if (slot == CG_MAX_ADMIN_TOKENS) {
        set_err(err, cap, "CIVICGATE_ADMIN_TOKEN (environment): admin.tokens already holds %d tokens",
                CG_MAX_ADMIN_TOKENS);
        return -1;
    }
    cg_admin_token *t = &c->admin_tokens[slot];
    if (slot == c->nadmin_tokens) c->nadmin_tokens++;
    snprintf(t->name, sizeof t->name, "env");
    crypto_hash_sha256(t->sha256, (const unsigned char *)v, n);
    return 0;
}

static void enable_channels(cg_config *c)
{
    c->telegram.enabled = c->telegram.token && c->telegram.secret;
    c->whatsapp.enabled = c->whatsapp.token && c->whatsapp.secret && c->whatsapp.verify_token &&
                          c->whatsapp.phone_number_id;
    c->messenger.enabled = c->messenger.token && c->messenger.secret && c->messenger.verify_token;
}

/* Line and column (1-based) of byte offset off in s. */
static void line_col(const char *s, size_t off, int *line, int *col)
{
    *line = 1; *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') { (*line)++; *col = 1; }
        else (*col)++;
    }
}

int cg_config_parse(cg_config *c, const char *json, size_t len, const char *path, char *err,
                    size_t errcap)
{
    char msg[400];
    if (!path) path = "(config)";
    if (len > CFG_MAX_FILE) {
        set_err(err, errcap, "%s: larger than %d bytes", path, CFG_MAX_FILE);
        return -1;
    }
    if (!c->listen_address || !c->redis_url || !c->intents_dir || !c->www_dir || !c->log_level) {
        set_err(err, errcap, "%s: out of memory", path);
        return -1;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        int line, col;
        size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= json && ep <= json + len) off = (size_t)(ep - json);
        line_col(json, off, &line, &col);
        set_err(err, errcap, "%s:%d:%d: invalid JSON", path, line, col);
        return -1;
    }
    /* cJSON stops after the first value: anything but space after it is an error */
    size_t used = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
    for (size_t i = used; i < len; i++) {
        if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' && json[i] != '\r') {
            int line, col;
            line_col(json, i, &line, &col);
            set_err(err, errcap, "%s:%d:%d: invalid JSON: text after the top-level object", path, line, col);
            cJSON_Delete(root);
            return -1;
        }
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        snprintf(msg, sizeof msg, "the top level must be an object");
        rc = -1;
    } else {
        rc = walk(c, root, "", msg, sizeof msg);
    }
    cJSON_Delete(root);
    if (rc == 0 && !c->tls_cert != !c->tls_key) {
        snprintf(msg, sizeof msg, "listen.tls_cert and listen.tls_key: set both (TLS) or neither (plain HTTP)");
        rc = -1;
    }
    if (rc == 0 && !c->whatsapp.template_name != !c->whatsapp.template_language) {
        snprintf(msg, sizeof msg, "channels.whatsapp.reengagement_template: needs both name and language");
        rc = -1;
    }
    if (rc == 0) rc = apply_env(c, msg, sizeof msg);
    if (rc == 0) rc = apply_env_admin(c, msg, sizeof msg);
    if (rc < 0) {
        set_err(err, errcap, "%s: %s", path, msg);
        return -1;
    }
    enable_channels(c);
    return 0;
}

int cg_config_load(cg_config *c, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(CFG_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        set_err(err, errcap, "%s: out of memory", path);
        return -1;
    }
    size_t n = fread(buf, 1, CFG_MAX_FILE + 1, f);
    int rd_err = ferror(f);
    fclose(f);
    int rc;
    if (rd_err) {
        set_err(err, errcap, "%s: read error", path);
        rc = -1;
    } else if (n > CFG_MAX_FILE) {
        set_err(err, errcap, "%s: larger than %d bytes", path, CFG_MAX_FILE);
        rc = -1;
    } else {
        rc = cg_config_parse(c, buf, n, path, err, errcap);
    }
    free(buf);
    return rc;
}

const cg_channel_cfg *cg_config_channel(const cg_config *c, const char *name)
{
    if (!name) return NULL;
    if (!strcmp(name, "telegram")) return &c->telegram;
    if (!strcmp(name, "whatsapp")) return &c->whatsapp;
    if (!strcmp(name, "messenger")) return &c->messenger;
    return NULL;
}
