/*
 * test_config.c: gateway/config.c against the files in tests/fixtures/config/.
 *
 * Three tables: files that must be refused with a message naming the key
 * (bad_cases), environment overrides (env_cases), and valid files whose
 * parsed values are checked field by field (test_full, test_defaults, ...).
 * The example configuration shipped in config/ must parse too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define FIX CG_SOURCE_DIR "/tests/fixtures/config/"

static const char *const all_env[] = {
    "CIVICGATE_REDIS_URL", "CIVICGATE_TELEGRAM_BOT_TOKEN", "CIVICGATE_TELEGRAM_WEBHOOK_SECRET",
    "CIVICGATE_WHATSAPP_ACCESS_TOKEN", "CIVICGATE_WHATSAPP_APP_SECRET", "CIVICGATE_WHATSAPP_VERIFY_TOKEN",
    "CIVICGATE_MESSENGER_PAGE_ACCESS_TOKEN", "CIVICGATE_MESSENGER_APP_SECRET", "CIVICGATE_MESSENGER_VERIFY_TOKEN",
    "CIVICGATE_ADMIN_TOKEN", NULL};

static void clear_env(void)
{
    for (size_t i = 0; all_env[i]; i++) unsetenv(all_env[i]);
}

static int load(cg_config *c, const char *file, char *err, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, FIX "%s", file);
    cg_config_defaults(c);
    err[0] = '\0';
    return cg_config_load(c, path, err, cap);
}

/* ---- refused files ------------------------------------------------------ */

static const struct { const char *file, *msg; } bad_cases[] = {
    {"bad_address.json", "listen.address: must be an IPv4 or IPv6 address"},
    {"bad_admin_hash.json", "admin.tokens[0].sha256: must be 64 hex digits"},
    {"bad_admin_dup.json", "admin.tokens[1].name: \"ops\" is already used by admin.tokens[0]"},
    {"bad_admin_key.json", "admin.tokens[0].token: unknown key"},
    {"bad_admin_env_name.json", "admin.tokens[0].name: \"env\" is reserved for CIVICGATE_ADMIN_TOKEN"},
    {"bad_watch_debounce.json", "intents.watch_debounce_ms: must be an integer from 50 to 60000"},
    {"bad_api_base_path.json", "channels.telegram.api_base: must be an http(s) URL without a path"},
    {"bad_api_base_scheme.json", "channels.telegram.api_base: must be an http(s) URL"},
    {"bad_api_base_type.json", "channels.whatsapp.api_base: must be a string"},
    {"bad_api_version.json", "channels.whatsapp.api_version: must look like \"v21.0\""},
    {"bad_channels_unknown.json", "channels.signal: unknown key"},
    {"bad_grace.json", "shutdown_grace_ms: must be an integer from 0 to 600000"},
    {"bad_listen_type.json", "listen: must be an object"},
    {"bad_log_level.json", "log.level: must be one of"},
    {"bad_max_body.json", "limits.max_body: must be an integer from 1024 to 67108864"},
    {"bad_origin_item.json", "channels.webchat.allowed_origins[0]: must be a string"},
    {"bad_origin_path.json", "channels.webchat.allowed_origins[0]: must be an origin"},
    {"bad_origin_slash.json", "channels.webchat.allowed_origins[1]: must be an origin"},
    {"bad_origin_type.json", "channels.webchat.allowed_origins: must be an array of strings"},
    {"bad_origins_many.json", "channels.webchat.allowed_origins: at most 16 origins"},
    {"bad_outbox.json", "outbox.max_attempts: must be an integer from 1 to 100"},
    {"bad_rate_negative.json", "channels.telegram.max_per_second: must be an integer from 0 to 100000"},
    {"bad_phone_id.json", "channels.whatsapp.phone_number_id: must be 1-32 digits"},
    {"bad_template_name.json", "channels.whatsapp.reengagement_template.name: must be 1-512 characters of a-z 0-9 _"},
    {"bad_template_language.json", "channels.whatsapp.reengagement_template.language: must be a language code"},
    {"bad_template_half.json", "channels.whatsapp.reengagement_template: needs both name and language"},
    {"bad_template_unknown.json", "channels.whatsapp.reengagement_template.params: unknown key"},
    {"bad_mark_read.json", "channels.whatsapp.mark_read: must be true or false"},
    {"bad_port_big.json", "listen.port: must be an integer from 1 to 65535"},
    {"bad_port_float.json", "listen.port: must be an integer"},
    {"bad_port_string.json", "listen.port: must be an integer"},
    {"bad_port_zero.json", "listen.port: must be an integer from 1 to 65535"},
    {"bad_redis_db.json", "redis.url: database must be a number"},
    {"bad_redis_scheme.json", "redis.url: must be a redis://host[:port][/db] URL"},
    {"bad_retention.json", "retention.sessions_s: must be an integer from 60"},
    {"bad_analytics_min.json", "analytics.unmatched_min_count: must be an integer from 2 to 1000"},
    {"bad_secret_charset.json", "channels.telegram.webhook_secret: must be 1-256 characters of A-Z a-z 0-9 _ -"},
    {"bad_secret_empty.json", "channels.telegram.webhook_secret: must be 1-256"},
    {"bad_secret_long.json", "channels.telegram.webhook_secret: must be 1-256"},
    {"bad_token_space.json", "channels.telegram.bot_token: must be 1-512 printable characters"},
    {"bad_agent_password.json", "agents.users[0].password_hash: required, a hash made by `civicgate hash-password`"},
    {"bad_agent_role.json", "agents.users[0].role: required, \"agent\" or \"supervisor\""},
    {"bad_agent_name.json", "agents.users[0].name: required, 1-63 characters"},
    {"bad_agent_duplicate.json", "agents.users[1].name: \"alice\" is defined twice"},
    {"bad_agent_key.json", "agents.users[0].password: unknown key"},
    {"bad_agents_timezone.json", "agents.office_hours.timezone: required, a zone of the system tz database"},
    {"bad_agents_grace.json", "agents.disconnect_grace_s: must be an integer from 5 to 86400"},
    {"bad_unknown_key.json", "channels.telegram.api_bse: unknown key"},
    {"bad_unknown_top.json", "lisen: unknown key"},
    {"bad_webchat_enabled.json", "channels.webchat.enabled: must be true or false"},
    {"bad_duplicate.json", "listen.port: duplicate key"},
    {"bad_syntax.json", "bad_syntax.json:4:"},
    {"bad_toplevel.json", "the top level must be an object"},
    {"bad_trailing.json", "bad_trailing.json:1:16: invalid JSON: text after the top-level object"},
    {"does_not_exist.json", "does_not_exist.json: No such file or directory"},
};

static void test_bad_files(void **state)
{
    (void)state;
    clear_env();
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        cg_config c;
        char err[512];
        int rc = load(&c, bad_cases[i].file, err, sizeof err);
        if (rc != -1 || !strstr(err, bad_cases[i].msg)) {
            print_error("%s: rc %d, error \"%s\", expected to contain \"%s\"\n", bad_cases[i].file, rc, err,
                        bad_cases[i].msg);
            fail();
        }
        /* the message starts with the file path */
        if (strcmp(bad_cases[i].file, "does_not_exist.json") != 0) assert_non_null(strstr(err, FIX));
        cg_config_free(&c);
    }
}

/* ---- valid files -------------------------------------------------------- */

static void test_agents(void **state)
{
    (void)state;
    clear_env();
    cg_config c;
    char err[512];
    cg_config_defaults(&c);
    assert_int_equal(c.agents.nusers, 0);
    assert_int_equal(c.agents.session_ttl_s, 12 * 3600);
    assert_int_equal(c.agents.disconnect_grace_s, 120);
    assert_int_equal(c.agents.no_agent_timeout_s, 900);
    assert_int_equal(c.agents.office.enabled, 0);
    cg_config_free(&c);
    if (load(&c, "agents.json", err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(c.agents.nusers, 2);
    assert_string_equal(c.agents.users[0].name, "alice");
    assert_string_equal(c.agents.users[0].display_name, "Alice Martín");
    assert_int_equal(c.agents.users[0].supervisor, 0);
    assert_string_equal(c.agents.users[1].display_name, "sam.o");   /* defaults to the name */
    assert_int_equal(c.agents.users[1].supervisor, 1);
    assert_true(!strncmp(c.agents.users[1].password_hash, "$argon2id$", 10));
    assert_ptr_equal(cg_config_agent(&c, "sam.o"), &c.agents.users[1]);
    assert_null(cg_config_agent(&c, "sam"));
    assert_int_equal(c.agents.session_ttl_s, 3600);
    assert_int_equal(c.agents.disconnect_grace_s, 30);
    assert_int_equal(c.agents.no_agent_timeout_s, 0);
    assert_int_equal(c.agents.login_max_failures, 3);
    assert_int_equal(c.agents.avg_handle_s, 240);
    assert_int_equal(c.agents.office.enabled, 1);
    assert_string_equal(c.agents.office.timezone, "Europe/Madrid");
    assert_int_equal(c.agents.office.nranges[1], 2);          /* monday */
    assert_int_equal(c.agents.office.range[1][1][0], 15 * 60);
    assert_int_equal(c.agents.office.range[1][1][1], 17 * 60 + 30);
    assert_int_equal(c.agents.office.range[6][0][1], 24 * 60); /* saturday until midnight */
    assert_int_equal(c.agents.office.nranges[0], 0);          /* sunday closed */
    assert_int_equal(c.agents.office.nholidays, 1);
    assert_int_equal(c.agents.office.holidays[0], 20261225);
    cg_config_free(&c);
}

static void test_defaults(void **state)
{
    (void)state;
    clear_env();
    cg_config c;
    char err[256];
    cg_config_defaults(&c);
    assert_int_equal(cg_config_parse(&c, "{}", 2, "(defaults)", err, sizeof err), 0);
    assert_string_equal(c.listen_address, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(c.intents_dir, "intents");
    assert_int_equal(c.intents_watch, 0);
    assert_int_equal(c.intents_watch_debounce_ms, 500);
    assert_int_equal(c.nadmin_tokens, 0);
    assert_int_equal(c.audit_ttl_s, 365 * 86400);
    assert_int_equal(c.analytics_ttl_s, 180 * 86400);
    assert_int_equal(c.analytics_min_count, 3);
    assert_string_equal(c.www_dir, "gateway/www");
    assert_string_equal(c.log_level, "info");
    assert_int_equal(c.log_debug_content, 0);
    assert_int_equal(c.webchat_enabled, 1);
    assert_int_equal(c.norigins, 2);
    assert_string_equal(c.origins[0], "http://localhost:8080");
    assert_string_equal(c.origins[1], "http://127.0.0.1:8080");
    assert_int_equal(c.max_body, 1024 * 1024);
    assert_int_equal(c.session_ttl_s, 30 * 86400);
    assert_int_equal(c.transcript_ttl_s, 90 * 86400);
    assert_int_equal(c.transcript_max, 500);
    assert_int_equal(c.dedupe_ttl_s, 2 * 86400);
    assert_int_equal(c.outbox_max_attempts, 8);
    assert_int_equal(c.outbox_timeout_ms, 10000);
    assert_int_equal(c.shutdown_grace_ms, 5000);
    assert_string_equal(c.telegram.api_base, "https://api.telegram.org");
    assert_string_equal(c.whatsapp.api_base, "https://graph.facebook.com");
    assert_string_equal(c.whatsapp.api_version, "v21.0");
    assert_int_equal(c.whatsapp.mark_read, 1);           /* default: read receipts on */
    assert_null(c.whatsapp.template_name);               /* no template: late replies are held */
    assert_string_equal(c.messenger.api_version, "v21.0");
    assert_int_equal(c.telegram.enabled, 0);
    assert_int_equal(c.whatsapp.enabled, 0);
    assert_int_equal(c.messenger.enabled, 0);
    assert_null(c.telegram.token);
    assert_ptr_equal(cg_config_channel(&c, "telegram"), &c.telegram);
    assert_ptr_equal(cg_config_channel(&c, "messenger"), &c.messenger);
    assert_null(cg_config_channel(&c, "webchat"));
    assert_null(cg_config_channel(&c, "signal"));
    cg_config_free(&c);
}

static void test_full(void **state)
{
    (void)state;
    clear_env();
    cg_config c;
    char err[512];
    int rc = load(&c, "full.json", err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.listen_address, "0.0.0.0");
    assert_int_equal(c.listen_port, 9090);
    assert_string_equal(c.redis_url, "redis://redis.internal:6380/2");
    assert_string_equal(c.intents_dir, "/srv/civicgate/intents");
    assert_int_equal(c.intents_watch, 1);
    assert_int_equal(c.intents_watch_debounce_ms, 250);
    /* admin tokens: names kept, hashes decoded (either case), no token stored */
    static const unsigned char ops_sha[32] = {
        0x9c, 0x0f, 0x6f, 0xb1, 0xcd, 0xf6, 0x2c, 0x09, 0x8e, 0xda, 0x1d, 0xff, 0x5f, 0x5f, 0x93, 0x18,
        0x4a, 0xfd, 0xc1, 0x93, 0x66, 0x7b, 0xf2, 0x24, 0xa2, 0x9e, 0x47, 0x0e, 0x71, 0x48, 0x5a, 0xe0};
    assert_int_equal(c.nadmin_tokens, 2);
    assert_string_equal(c.admin_tokens[0].name, "ops");
    assert_memory_equal(c.admin_tokens[0].sha256, ops_sha, 32);
    assert_string_equal(c.admin_tokens[1].name, "alice@example.gov");
    assert_int_equal(c.admin_tokens[1].sha256[8], 0x88);
    assert_int_equal(c.admin_tokens[1].sha256[15], 0xff);
    assert_string_equal(c.www_dir, "/srv/civicgate/www");
    assert_string_equal(c.log_level, "warn");
    assert_int_equal(c.log_debug_content, 1);
    assert_string_equal(c.metrics_token, "prom-scrape-1");
    assert_int_equal(c.max_body, 262144);
    assert_int_equal(c.session_ttl_s, 86400);
    assert_int_equal(c.transcript_ttl_s, 172800);
    assert_int_equal(c.transcript_max, 100);
    assert_int_equal(c.dedupe_ttl_s, 3600);
    assert_int_equal(c.outbox_max_attempts, 5);
    assert_int_equal(c.outbox_timeout_ms, 2500);
    assert_int_equal(c.shutdown_grace_ms, 1500);
    assert_string_equal(c.telegram.token, "123456:ABC-def");
    assert_string_equal(c.telegram.secret, "Sec_ret-1");
    assert_string_equal(c.telegram.api_base, "http://127.0.0.1:9999");
    assert_int_equal(c.telegram.enabled, 1);
    assert_int_equal(c.telegram.max_per_second, 0);
    assert_int_equal(c.telegram.max_per_chat_per_second, 5);
    assert_int_equal(c.whatsapp.max_per_second, 80);   /* default: the platform's limit */
    assert_string_equal(c.whatsapp.phone_number_id, "1234567890");
    assert_int_equal(c.whatsapp.mark_read, 0);
    assert_string_equal(c.whatsapp.template_name, "continue_conversation");
    assert_string_equal(c.whatsapp.template_language, "pt_BR");
    assert_string_equal(c.whatsapp.token, "EAAG-wa");
    assert_string_equal(c.whatsapp.secret, "wa-app-secret");
    assert_string_equal(c.whatsapp.verify_token, "wa-verify");
    assert_string_equal(c.whatsapp.api_base, "https://graph.example.com");
    assert_string_equal(c.whatsapp.api_version, "v19.0");
    assert_int_equal(c.whatsapp.enabled, 1);
    assert_string_equal(c.messenger.token, "EAAG-page");
    assert_string_equal(c.messenger.secret, "fb-app-secret");
    assert_string_equal(c.messenger.verify_token, "fb-verify");
    assert_string_equal(c.messenger.api_base, "https://graph.facebook.com");
    assert_int_equal(c.messenger.enabled, 1);
    assert_int_equal(c.webchat_enabled, 0);
    assert_int_equal(c.norigins, 2);
    assert_string_equal(c.origins[0], "https://www.example.gov");
    assert_string_equal(c.origins[1], "https://example.gov:8443");
    assert_string_equal(c.telegram.name, "telegram");
    cg_config_free(&c);
}

static void test_other_valid(void **state)
{
    (void)state;
    clear_env();
    static const char *const ok_files[] = {"empty.json", "ipv6.json", "redis_password.json",
                                           "telegram_partial.json", NULL};
    for (size_t i = 0; ok_files[i]; i++) {
        cg_config c;
        char err[512];
        int rc = load(&c, ok_files[i], err, sizeof err);
        if (rc) print_error("%s: %s\n", ok_files[i], err);
        assert_int_equal(rc, 0);
        if (!strcmp(ok_files[i], "ipv6.json")) {
            assert_string_equal(c.listen_address, "::1");
            assert_int_equal(c.listen_port, 1);
        }
        if (!strcmp(ok_files[i], "telegram_partial.json")) {
            /* a token without its webhook secret does not enable the channel */
            assert_string_equal(c.telegram.token, "123:abc");
            assert_int_equal(c.telegram.enabled, 0);
        }
        cg_config_free(&c);
    }
}

static void test_example_config(void **state)
{
    (void)state;
    clear_env();
    cg_config c;
    char err[512];
    cg_config_defaults(&c);
    int rc = cg_config_load(&c, CG_SOURCE_DIR "/config/civicgate.example.json", err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    cg_config_free(&c);
}

/* ---- environment -------------------------------------------------------- */

typedef struct env_case {
    const char *name;
    const char *file;
    const char *env[8][2];
    int ok;
    const char *msg;        /* error substring when !ok */
    int telegram, whatsapp, messenger;   /* expected enabled flags when ok */
} env_case;

static const env_case env_cases[] = {
    {"telegram from env", "empty.json",
     {{"CIVICGATE_TELEGRAM_BOT_TOKEN", "999:env"}, {"CIVICGATE_TELEGRAM_WEBHOOK_SECRET", "from-env_1"}},
     1, NULL, 1, 0, 0},
    {"env overrides file", "full.json",
     {{"CIVICGATE_TELEGRAM_BOT_TOKEN", "999:env"}, {"CIVICGATE_REDIS_URL", "redis://10.0.0.5:6379/1"}},
     1, NULL, 1, 1, 1},
    {"token alone", "empty.json", {{"CIVICGATE_TELEGRAM_BOT_TOKEN", "999:env"}}, 1, NULL, 0, 0, 0},
    {"secret completes file token", "telegram_partial.json", {{"CIVICGATE_TELEGRAM_WEBHOOK_SECRET", "abc"}}, 1,
     NULL, 1, 0, 0},
    {"whatsapp needs phone id", "empty.json",
     {{"CIVICGATE_WHATSAPP_ACCESS_TOKEN", "t"}, {"CIVICGATE_WHATSAPP_APP_SECRET", "s"},
      {"CIVICGATE_WHATSAPP_VERIFY_TOKEN", "v"}},
     1, NULL, 0, 0, 0},
    {"messenger from env", "empty.json",
     {{"CIVICGATE_MESSENGER_PAGE_ACCESS_TOKEN", "t"}, {"CIVICGATE_MESSENGER_APP_SECRET", "s"},
      {"CIVICGATE_MESSENGER_VERIFY_TOKEN", "v"}},
     1, NULL, 0, 0, 1},
    {"bad secret in env", "empty.json", {{"CIVICGATE_TELEGRAM_WEBHOOK_SECRET", "has space"}}, 0,
     "CIVICGATE_TELEGRAM_WEBHOOK_SECRET (environment): must be 1-256 characters", 0, 0, 0},
    {"bad redis url in env", "empty.json", {{"CIVICGATE_REDIS_URL", "localhost:6379"}}, 0,
     "CIVICGATE_REDIS_URL (environment): must be a redis://", 0, 0, 0},
    {"redis unix socket in env", "empty.json", {{"CIVICGATE_REDIS_URL", "unix:///run/redis/redis.sock?db=2"}}, 1,
     NULL, 0, 0, 0},
    {"redis unix socket, no db", "empty.json", {{"CIVICGATE_REDIS_URL", "unix:///tmp/r.sock"}}, 1, NULL, 0, 0, 0},
    {"redis unix socket, relative path", "empty.json", {{"CIVICGATE_REDIS_URL", "unix://redis.sock"}}, 0,
     "CIVICGATE_REDIS_URL (environment): must be unix:///absolute/path.sock", 0, 0, 0},
    {"redis unix socket, bad db", "empty.json", {{"CIVICGATE_REDIS_URL", "unix:///tmp/r.sock?db=x"}}, 0,
     "CIVICGATE_REDIS_URL (environment): database must be a number", 0, 0, 0},
    {"redis unix socket, path too long", "empty.json",
     {{"CIVICGATE_REDIS_URL", "unix:///tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock"}}, 0,
     "must be unix:///absolute/path.sock", 0, 0, 0},
    {"empty env ignored", "full.json", {{"CIVICGATE_TELEGRAM_BOT_TOKEN", ""}}, 1, NULL, 1, 1, 1},
    {"admin token from env", "full.json", {{"CIVICGATE_ADMIN_TOKEN", "correct-horse-battery-staple-admin-token"}},
     1, NULL, 1, 1, 1},
    {"short admin token in env", "empty.json", {{"CIVICGATE_ADMIN_TOKEN", "tooshort"}}, 0,
     "CIVICGATE_ADMIN_TOKEN (environment): must be 32-512 printable characters", 0, 0, 0},
};

static void test_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
        const env_case *k = &env_cases[i];
        clear_env();
        for (size_t j = 0; j < 8 && k->env[j][0]; j++) setenv(k->env[j][0], k->env[j][1], 1);
        cg_config c;
        char err[512];
        int rc = load(&c, k->file, err, sizeof err);
        if ((rc == 0) != k->ok || (!k->ok && !strstr(err, k->msg))) {
            print_error("%s: rc %d err \"%s\"\n", k->name, rc, err);
            fail();
        }
        if (k->ok) {
            if (c.telegram.enabled != k->telegram || c.whatsapp.enabled != k->whatsapp ||
                c.messenger.enabled != k->messenger) {
                print_error("%s: enabled %d %d %d\n", k->name, c.telegram.enabled, c.whatsapp.enabled,
                            c.messenger.enabled);
                fail();
            }
            for (size_t j = 0; j < 8 && k->env[j][0]; j++) {
                const char *n = k->env[j][0], *v = k->env[j][1];
                if (!*v) continue;
                if (!strcmp(n, "CIVICGATE_TELEGRAM_BOT_TOKEN")) assert_string_equal(c.telegram.token, v);
                if (!strcmp(n, "CIVICGATE_TELEGRAM_WEBHOOK_SECRET")) assert_string_equal(c.telegram.secret, v);
                if (!strcmp(n, "CIVICGATE_REDIS_URL")) assert_string_equal(c.redis_url, v);
                if (!strcmp(n, "CIVICGATE_MESSENGER_APP_SECRET")) assert_string_equal(c.messenger.secret, v);
            }
            if (!strcmp(k->name, "empty env ignored")) assert_string_equal(c.telegram.token, "123456:ABC-def");
            if (!strcmp(k->name, "admin token from env")) {
                /* appended as "env", kept only as its SHA-256 (the same as ops' in full.json) */
                assert_int_equal(c.nadmin_tokens, 3);
                assert_string_equal(c.admin_tokens[2].name, "env");
                assert_memory_equal(c.admin_tokens[2].sha256, c.admin_tokens[0].sha256, 32);
            }
        }
        cg_config_free(&c);
    }
    clear_env();
}

/* Parsing twice into one struct replaces values without leaking (ASan). */
static void test_reparse(void **state)
{
    (void)state;
    clear_env();
    cg_config c;
    char err[256];
    cg_config_defaults(&c);
    const char *a = "{\"channels\":{\"telegram\":{\"bot_token\":\"1:a\",\"webhook_secret\":\"x\"},"
                    "\"webchat\":{\"allowed_origins\":[\"https://a.gov\"]}}}";
    const char *b = "{\"channels\":{\"telegram\":{\"bot_token\":\"2:b\"},"
                    "\"webchat\":{\"allowed_origins\":[]}}}";
    assert_int_equal(cg_config_parse(&c, a, strlen(a), "a", err, sizeof err), 0);
    assert_int_equal(cg_config_parse(&c, b, strlen(b), "b", err, sizeof err), 0);
    assert_string_equal(c.telegram.token, "2:b");
    assert_string_equal(c.telegram.secret, "x");
    assert_int_equal(c.norigins, 0);
    cg_config_free(&c);
    /* the environment's admin token is not added twice */
    setenv("CIVICGATE_ADMIN_TOKEN", "correct-horse-battery-staple-admin-token", 1);
    cg_config_defaults(&c);
    assert_int_equal(cg_config_parse(&c, "{}", 2, "a", err, sizeof err), 0);
    assert_int_equal(cg_config_parse(&c, "{}", 2, "b", err, sizeof err), 0);
    assert_int_equal(c.nadmin_tokens, 1);
    assert_string_equal(c.admin_tokens[0].name, "env");
    cg_config_free(&c);
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_files),   cmocka_unit_test(test_defaults), cmocka_unit_test(test_full),
        cmocka_unit_test(test_other_valid), cmocka_unit_test(test_example_config), cmocka_unit_test(test_env),
        cmocka_unit_test(test_reparse),     cmocka_unit_test(test_agents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
