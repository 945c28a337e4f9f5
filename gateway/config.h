/*
 * config.h: the gateway's configuration (gateway/config.c).
 *
 * Loaded once from a JSON file (civicgate serve --config FILE), then every
 * secret may be overridden from the environment (CIVICGATE_TELEGRAM_BOT_TOKEN,
 * ...; see docs/configuration.md). Unknown keys are errors; every error names
 * the key ("channels.telegram.api_base: must be an http(s) URL"). Runtime code
 * sees only validated values. The struct owns all its strings.
 */
#ifndef CG_CONFIG_H
#define CG_CONFIG_H

#include <stddef.h>
#include "civicgate/connector.h"

#define CG_MAX_ORIGINS 16
#define CG_MAX_ADMIN_TOKENS 32
#define CG_ADMIN_NAME_MAX 64           /* bytes of an admin token's name, NUL included */

/* One admin token: its name (who, in the audit log) and the SHA-256 of the
 * token itself; the token is never stored. */
typedef struct cg_admin_token {
    char name[CG_ADMIN_NAME_MAX];
    unsigned char sha256[32];
} cg_admin_token;

/* ---- agents (issue 5; parsed by config_agents.c) ------------------------ */
#define CG_AGENTS_MAX_USERS      500
#define CG_AGENT_NAME_MAX        64     /* bytes, NUL included: [a-z0-9._-], 1..63 */
#define CG_OFFICE_MAX_RANGES     4      /* opening ranges per weekday */
#define CG_OFFICE_MAX_HOLIDAYS   64

typedef struct cg_agent_user {
    char name[CG_AGENT_NAME_MAX];
    char *display_name;            /* owned */
    char *password_hash;           /* owned: "$argon2id$..." (crypto_pwhash_str) */
    int supervisor;                /* role "supervisor" (else "agent") */
} cg_agent_user;

/* Office hours: per weekday (0 = Sunday) up to CG_OFFICE_MAX_RANGES
 * [start, end) ranges in minutes after local midnight, in timezone (a name
 * of the system tz database); holidays are local dates yyyymmdd. */
typedef struct cg_office_hours {
    int enabled;                   /* agents.office_hours present: else always open */
    char timezone[64];
    unsigned short range[7][CG_OFFICE_MAX_RANGES][2];
    int nranges[7];
    int holidays[CG_OFFICE_MAX_HOLIDAYS];
    size_t nholidays;
} cg_office_hours;

typedef struct cg_agents_cfg {
    cg_agent_user *users; size_t nusers;  /* agents.users, owned */
    int session_ttl_s;             /* agents.session_ttl_s, default 12 h */
    int disconnect_grace_s;        /* agents.disconnect_grace_s, default 120 */
    int no_agent_timeout_s;        /* agents.no_agent_timeout_s, default 900 (0: never offer) */
    int login_max_failures;        /* agents.login_max_failures per 15 min, default 5 */
    int avg_handle_s;              /* agents.avg_handle_s: first guess of a case's length, default 300 */
    cg_office_hours office;        /* agents.office_hours */
} cg_agents_cfg;

typedef struct cg_config {
    char *listen_address;          /* listen.address, default "127.0.0.1" */
    int listen_port;               /* listen.port, default 8080 */
    char *tls_cert;                /* listen.tls_cert: PEM certificate chain, or NULL (plain HTTP) */
    char *tls_key;                 /* listen.tls_key: its PEM private key */
    char *redis_url;               /* redis.url, default "redis://127.0.0.1:6379/0" */
    char *intents_dir;             /* intents.dir, default "intents" */
    int intents_watch;             /* intents.watch: reload when a file changes (default false) */
    int intents_watch_debounce_ms; /* intents.watch_debounce_ms, default 500 */
    char *www_dir;                 /* www.dir: static files, default "gateway/www" */
    char *log_level;               /* log.level: "debug", "info" (default), "warn", "error" */
    int log_debug_content;         /* log.debug_content: log citizens' ids and texts (default false) */
    const char *metrics_token;     /* metrics.token: bearer token for GET /metrics; unset = loopback only */
    /* admin.tokens (+ CIVICGATE_ADMIN_TOKEN, hashed at load, named "env") */
    cg_admin_token admin_tokens[CG_MAX_ADMIN_TOKENS]; size_t nadmin_tokens;

    /* channels: one entry per connector in cg_connectors[], same order. */
    cg_channel_cfg telegram, whatsapp, messenger;
    int webchat_enabled;
    char *origins[CG_MAX_ORIGINS]; size_t norigins;   /* channels.webchat.allowed_origins */

    /* limits and policy */
    size_t max_body;               /* limits.max_body, default 1 MiB */
    int citizen_per_minute;        /* limits.citizen_messages_per_minute, default 30; 0 = no limit */
    int session_ttl_s;             /* retention.sessions_s, default 30 days */
    int transcript_ttl_s;          /* retention.transcripts_s, default 90 days */
    int transcript_max;            /* retention.transcript_max_entries, default 500 */
    int dedupe_ttl_s;              /* retention.dedupe_s, default 2 days */
    int audit_ttl_s;               /* retention.audit_s, default 365 days */
    int analytics_ttl_s;           /* retention.analytics_s, default 180 days */
    int analytics_min_count;       /* analytics.unmatched_min_count: citizens per shown group, default 3 */
    int outbox_max_attempts;       /* outbox.max_attempts, default 8 */
    int outbox_timeout_ms;         /* outbox.timeout_ms, default 10000 */
    int shutdown_grace_ms;         /* shutdown_grace_ms, default 5000 */

    cg_agents_cfg agents;          /* agents.* (human agents, issue 5) */

    /* runtime: storage for strings owned by this struct (env overrides) */
    char *owned[32]; size_t nowned;
} cg_config;

/* Defaults for every key. */
void cg_config_defaults(cg_config *c);
/* Parse JSON text (path used in messages), then apply environment overrides.
 * Returns 0, or -1 with a message naming the key in err. */
int cg_config_parse(cg_config *c, const char *json, size_t len, const char *path,
                    char *err, size_t errcap);
/* Read the file and parse it. */
int cg_config_load(cg_config *c, const char *path, char *err, size_t errcap);
void cg_config_free(cg_config *c);
/* Channel config by connector name; NULL when unknown. */
const cg_channel_cfg *cg_config_channel(const cg_config *c, const char *name);

/* config_agents.c: "agents.users" and "agents.office_hours" (called by the
 * walk of config.c). 0, or -1 with the reason (naming path) in err. */
int cg_config_agents_users(cg_agents_cfg *a, const void *json_array, const char *path, char *err, size_t cap);
int cg_config_office_hours(cg_office_hours *o, const void *json_object, const char *path, char *err, size_t cap);
void cg_config_agents_free(cg_agents_cfg *a);
/* The configured user called name, or NULL. */
const cg_agent_user *cg_config_agent(const cg_config *c, const char *name);

#endif
