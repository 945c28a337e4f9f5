/*
 * conncase.c: see conncase.h.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conncase.h"

char *cg_case_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = '\0'; if (len) *len = (size_t)n; }
    return b;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **cg_case_list(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char **v = NULL;
    size_t cnt = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        v = realloc(v, (cnt + 1) * sizeof *v);
        size_t need = strlen(dir) + l + 2;
        v[cnt] = malloc(need);
        snprintf(v[cnt], need, "%s/%s", dir, e->d_name);
        cnt++;
    }
    closedir(d);
    qsort(v, cnt, sizeof *v, cmp_str);
    *n = cnt;
    return v;
}

cJSON *cg_case_load(const char *path)
{
    char *s = cg_case_slurp(path, NULL);
    assert_non_null(s);
    cJSON *c = cJSON_Parse(s);
    free(s);
    if (!c) fail_msg("%s: case file is not JSON", path);
    return c;
}

char *cg_case_expand(const cJSON *spec)
{
    if (!spec || cJSON_IsNull(spec)) return NULL;
    if (cJSON_IsString(spec)) return strdup(spec->valuestring);
    assert_true(cJSON_IsArray(spec));
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    const cJSON *seg;
    cJSON_ArrayForEach(seg, spec) {
        const char *s;
        int times = 1;
        if (cJSON_IsString(seg)) s = seg->valuestring;
        else {
            s = cJSON_GetObjectItem(seg, "repeat")->valuestring;
            times = cJSON_GetObjectItem(seg, "times")->valueint;
        }
        size_t sl = strlen(s);
        for (int i = 0; i < times; i++) {
            if (len + sl + 1 > cap) { cap = (len + sl + 1) * 2; out = realloc(out, cap); }
            memcpy(out + len, s, sl);
            len += sl;
        }
    }
    out[len] = '\0';
    return out;
}

void cg_case_expand_texts(cJSON *node)
{
    cJSON *ch;
    cJSON_ArrayForEach(ch, node) {
        if (ch->string && (strcmp(ch->string, "text") == 0 || strcmp(ch->string, "body") == 0) &&
            cJSON_IsArray(ch)) {
            char *s = cg_case_expand(ch);
            cJSON_ReplaceItemInObjectCaseSensitive(node, ch->string, cJSON_CreateString(s));
            free(s);
            return cg_case_expand_texts(node);
        }
        if (cJSON_IsObject(ch) || cJSON_IsArray(ch)) cg_case_expand_texts(ch);
    }
}

const char *cg_case_kind_name(cg_msg_kind k)
{
    static const char *const names[] = { "text", "button", "start", "language", "location", "media",
                                         "edited", "blocked", "unblocked", "status", "unsupported" };
    return (size_t)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

const char *cg_case_status_name(cg_err e)
{
    switch (e) {
    case CG_OK: return "ok";
    case CG_E_AUTH: return "auth";
    case CG_E_FORBIDDEN: return "forbidden";
    case CG_E_BAD_REQUEST: return "bad_request";
    case CG_E_TOO_LARGE: return "too_large";
    case CG_E_INTERNAL: return "internal";
    case CG_E_NOMEM: return "nomem";
    default: return "other";
    }
}

const char *cg_case_send_name(cg_send_kind k)
{
    static const char *const names[] = { "ok", "retry", "throttled", "contact_gone", "bad_config", "failed",
                                         "window_closed" };
    return (size_t)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

void cg_case_check_str(const char *cname, const char *field, const char *want, const char *got)
{
    if (!want && !got) return;
    if (!want || !got || strcmp(want, got) != 0) {
        fail_msg("%s: %s: want %.80s%s, got %.80s%s", cname, field, want ? want : "NULL",
                 want && strlen(want) > 80 ? "..." : "", got ? got : "NULL",
                 got && strlen(got) > 80 ? "..." : "");
    }
}

unsigned char *cg_case_from_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        b[i] = (unsigned char)v;
    }
    *len = n;
    return b;
}

void cg_case_run_dir(const char *dir, void (*fn)(const char *), size_t min_cases)
{
    size_t n;
    char **files = cg_case_list(dir, &n);
    if (n < min_cases) fail_msg("%s: only %zu cases", dir, n);
    for (size_t i = 0; i < n; i++) {
        fn(files[i]);
        free(files[i]);
    }
    free(files);
    print_message("%zu cases in %s passed\n", n, dir);
}
