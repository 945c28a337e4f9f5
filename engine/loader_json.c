/*
 * loader_json.c: one intent file's bytes → a cJSON tree whose every value
 * knows its line and column, for the loader's diagnostics.
 *
 * cJSON parses; it reports only the offset of a syntax error and keeps no
 * positions. So after a successful parse a small scanner walks the same
 * bytes and records, in document order, the offset of every value and of its
 * key; a pre-order walk of the cJSON tree visits values in that same order,
 * which pairs each cJSON node with its offsets (cg_jpos, sorted by node
 * pointer for lookup). Offsets become line:column only when a diagnostic is
 * emitted. Columns count characters (UTF-8 code points), as editors show.
 *
 * API in call order:
 *   cg_jfile_open()      limits, UTF-8, depth, syntax, position map
 *   cg_ld_check_keys()   duplicate and unknown keys of one object
 *   cg_ld_report()       "path:line:col: jp: message" into the diagnostics
 *   cg_jfile_close()
 *
 * Extending: checks on the raw bytes go in cg_jfile_open(); checks on
 * meaning go in loader.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "loader_internal.h"

/* ---- raw-byte checks ------------------------------------------------------ */

/* Offset of the first byte that is not valid UTF-8 or is NUL, or SIZE_MAX. */
static size_t utf8_bad_at(const char *s, size_t n, size_t *badlen)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c && c < 0x80) { i++; continue; }
        utf8proc_int32_t cp;
        size_t left = n - i > 4 ? 4 : n - i;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)left, &cp);
        if (k <= 0 || cp == 0) { *badlen = 1; return i; }
        i += (size_t)k;
    }
    return SIZE_MAX;
}

/* Offset of the bracket that opens level CG_LD_MAX_DEPTH + 1, or SIZE_MAX.
 * Works on invalid JSON too (runs before the parser). */
static size_t too_deep_at(const char *s, size_t n)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > CG_LD_MAX_DEPTH) return i;
        } else if ((c == '}' || c == ']') && depth > 0) depth--;
    }
    return SIZE_MAX;
}

/* ---- scanner: positions, and syntax errors cJSON cannot place -------------
 *
 * Run on input cJSON accepted, it records where each value and key is. Run
 * on input cJSON refused, it finds the first error with a precise offset
 * and a reason (cJSON's own offset often points past the mistake, e.g. after
 * the brace that follows a trailing comma). It accepts what cJSON accepts
 * (raw control characters in strings, loose numbers). */

typedef struct scan {
    const char *s; size_t n, i;
    uint32_t *koff, *voff; size_t cnt, cap;
    size_t nul_escape;        /* offset of a "\u0000" escape, or SIZE_MAX */
    int fail;
    size_t err_off;           /* first error: offset and reason */
    const char *why;
} scan;

static void sc_fail(scan *c, size_t off, const char *why)
{
    if (c->fail) return;
    c->fail = 1;
    c->err_off = off;
    c->why = why;
}

static void sc_ws(scan *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
                           c->s[c->i] == '\r'))
        c->i++;
}

static void sc_emit(scan *c, size_t koff, size_t voff)
{
    if (c->cnt == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        uint32_t *k = realloc(c->koff, cap * sizeof *k);
        if (!k) { sc_fail(c, voff, "out of memory"); return; }
        c->koff = k;
        uint32_t *v = realloc(c->voff, cap * sizeof *v);
        if (!v) { sc_fail(c, voff, "out of memory"); return; }
        c->voff = v;
        c->cap = cap;
    }
    c->koff[c->cnt] = koff == SIZE_MAX ? UINT32_MAX : (uint32_t)koff;
    c->voff[c->cnt] = (uint32_t)voff;
    c->cnt++;
}

static void sc_string(scan *c)
{
    size_t start = c->i++;
    while (c->i < c->n && c->s[c->i] != '"') {
        unsigned char b = (unsigned char)c->s[c->i];
        if (b < 0x20) {   /* JSON forbids them raw; cJSON lets them through */
            sc_fail(c, c->i, b == '\n' || b == '\r' ? "line break inside a string (a missing closing '\"'? "
                                                      "write \\n for a new line)"
                                                    : "control character inside a string (write \\t for a tab)");
            return;
        }
        if (c->s[c->i] == '\\') {
            if (c->i + 1 >= c->n) break;
            char e = c->s[c->i + 1];
            if (!strchr("\"\\/bfnrtu", e)) {
                sc_fail(c, c->i, "invalid escape in a string (write \\\\ for a backslash)");
                return;
            }
            if (e == 'u' && c->i + 5 < c->n && strncmp(c->s + c->i, "\\u0000", 6) == 0 &&
                c->nul_escape == SIZE_MAX)
                c->nul_escape = c->i;
            c->i++;
        }
        c->i++;
    }
    if (c->i >= c->n) { sc_fail(c, start, "unterminated string (no closing '\"')"); return; }
    c->i++;
}

static int sc_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* A character that cannot start what was expected. */
static void sc_unexpected(scan *c, const char *expected)
{
    char ch = c->s[c->i];
    if ((unsigned char)ch < 0x20) sc_fail(c, c->i, "control character outside a string");
    else if (ch == '/') sc_fail(c, c->i, "comments are not allowed in JSON");
    else if (ch == '\'') sc_fail(c, c->i, "strings need double quotes");
    else sc_fail(c, c->i, expected);
}

static void sc_value(scan *c, size_t koff, int depth)
{
    sc_ws(c);
    if (c->fail) return;
    if (c->i >= c->n) { sc_fail(c, c->n, "unexpected end of file"); return; }
    if (depth > CG_LD_MAX_DEPTH + 1) { sc_fail(c, c->i, "nested too deep"); return; }
    sc_emit(c, koff, c->i);
    char ch = c->s[c->i];
    if (ch == '{' || ch == '[') {
        int obj = ch == '{';
        char close = obj ? '}' : ']';
        c->i++;
        sc_ws(c);
        if (c->i < c->n && c->s[c->i] == close) { c->i++; return; }
        size_t comma = SIZE_MAX;
        while (!c->fail) {
            size_t k = SIZE_MAX;
            sc_ws(c);
            if (c->i >= c->n) { sc_fail(c, c->n, "unexpected end of file"); return; }
            if (comma != SIZE_MAX && c->s[c->i] == close) {
                sc_fail(c, comma, obj ? "trailing comma before '}'" : "trailing comma before ']'");
                return;
            }
            if (obj) {
                if (c->s[c->i] != '"') { sc_unexpected(c, "expected a key in double quotes"); return; }
                k = c->i;
                sc_string(c);
                if (c->fail) return;
                sc_ws(c);
                if (c->i >= c->n) { sc_fail(c, c->n, "unexpected end of file"); return; }
                if (c->s[c->i] != ':') { sc_unexpected(c, "expected ':' after the key"); return; }
                c->i++;
            }
            sc_value(c, k, depth + 1);
            if (c->fail) return;
            sc_ws(c);
            if (c->i >= c->n) {
                sc_fail(c, c->n, obj ? "unexpected end of file (missing '}')" : "unexpected end of file (missing ']')");
                return;
            }
            if (c->s[c->i] == ',') { comma = c->i++; continue; }
            if (c->s[c->i] == close) { c->i++; return; }
            sc_unexpected(c, obj ? "expected ',' or '}' (a missing comma?)" : "expected ',' or ']' (a missing comma?)");
            return;
        }
    } else if (ch == '"') {
        sc_string(c);
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        while (c->i < c->n && (sc_alnum(c->s[c->i]) || c->s[c->i] == '+' || c->s[c->i] == '-' ||
                               c->s[c->i] == '.'))
            c->i++;
    } else {
        static const char *const lit[] = { "true", "false", "null" };
        for (int q = 0; q < 3; q++) {
            size_t n = strlen(lit[q]);
            if (c->n - c->i >= n && memcmp(c->s + c->i, lit[q], n) == 0 &&
                (c->i + n == c->n || !sc_alnum(c->s[c->i + n]))) {
                c->i += n;
                return;
            }
        }
        sc_unexpected(c, "expected a value (a string in double quotes, a number, an object, an array, "
                         "true, false or null)");
    }
}

/* Pre-order list of cJSON nodes; count must equal the scanner's. */
static int collect(const cJSON *j, cg_jpos *out, size_t *k, size_t max)
{
    if (*k >= max) return -1;
    out[(*k)++].node = j;
    for (const cJSON *c = j->child; c; c = c->next)
        if (collect(c, out, k, max) < 0) return -1;
    return 0;
}

static int pos_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const cg_jpos *)a)->node, y = (uintptr_t)((const cg_jpos *)b)->node;
    return x < y ? -1 : x > y;
}

/* Fills f->pos. Returns 0; or -1 with *err_off and *why set when the bytes
 * break a JSON rule cJSON does not enforce (raw control characters, a
 * "\u0000" escape). Leaves f->pos empty when the map cannot be built (then
 * diagnostics about values carry no line: honest rather than wrong). */
static int build_positions(cg_jfile *f, size_t *err_off, const char **why)
{
    scan c = { .s = f->buf, .n = f->len, .i = f->base, .nul_escape = SIZE_MAX };
    sc_value(&c, SIZE_MAX, 1);
    int rc = 0;
    if (c.fail && strcmp(c.why, "out of memory") != 0) {
        *err_off = c.err_off;
        *why = c.why;
        rc = -1;
    } else if (c.nul_escape != SIZE_MAX) {
        *err_off = c.nul_escape;
        *why = "\\u0000 is not allowed in strings";
        rc = -1;
    }
    if (!c.fail) {
        f->pos = calloc(c.cnt ? c.cnt : 1, sizeof *f->pos);
        size_t k = 0;
        if (f->pos && collect(f->root, f->pos, &k, c.cnt) == 0 && k == c.cnt) {
            for (size_t i = 0; i < k; i++) {
                f->pos[i].koff = c.koff[i];
                f->pos[i].voff = c.voff[i];
            }
            f->npos = k;
            qsort(f->pos, k, sizeof *f->pos, pos_cmp);
        } else {
            free(f->pos);
            f->pos = NULL;
        }
    }
    free(c.koff);
    free(c.voff);
    return rc;
}

/* ---- offsets → line:column ------------------------------------------------ */

static void off_line_col(cg_jfile *f, size_t off, int *line, int *col)
{
    *line = *col = 0;
    if (off > f->len) return;
    if (!f->lines) {
        size_t n = 1;
        for (size_t i = 0; i < f->len; i++) n += f->buf[i] == '\n';
        f->lines = malloc(n * sizeof *f->lines);
        if (!f->lines) return;
        f->lines[0] = 0;
        f->nlines = 1;
        for (size_t i = 0; i < f->len; i++)
            if (f->buf[i] == '\n') f->lines[f->nlines++] = i + 1;
    }
    size_t lo = 0, hi = f->nlines;   /* last line start <= off */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->lines[mid] <= off) lo = mid;
        else hi = mid;
    }
    size_t start = f->lines[lo] < f->base ? f->base : f->lines[lo];
    int c = 1;
    /* positions are mostly asked for in document order: continue from the
     * last one when it is on the same line, so that a long line costs O(n)
     * in all rather than per value */
    if (f->c_line == (int)lo + 1 && f->c_off >= start && f->c_off <= off) {
        start = f->c_off;
        c = f->c_col;
    }
    for (size_t i = start; i < off && i < f->len; i++)
        if (((unsigned char)f->buf[i] & 0xC0) != 0x80) c++;
    f->c_off = off;
    f->c_line = (int)lo + 1;
    f->c_col = c;
    *line = (int)lo + 1;
    *col = c;
}

static size_t node_off(const cg_jfile *f, const cJSON *at, int at_key)
{
    if (!at || !f->pos) return SIZE_MAX;
    cg_jpos key = { .node = at };
    const cg_jpos *p = bsearch(&key, f->pos, f->npos, sizeof *f->pos, pos_cmp);
    if (!p) return SIZE_MAX;
    return at_key && p->koff != UINT32_MAX ? p->koff : p->voff;
}

void cg_ld_line_col(cg_jfile *f, const cJSON *at, int at_key, int *line, int *col)
{
    *line = *col = 0;
    size_t off = f ? node_off(f, at, at_key) : SIZE_MAX;
    if (off != SIZE_MAX) off_line_col(f, off, line, col);
}

/* ---- reporting -------------------------------------------------------------- */

static void emit_v(cg_ld *L, cg_diag_level lvl, size_t off, const char *jp, const char *fmt, va_list ap)
{
    cg_jfile *f = L->f;
    if (lvl == CG_DIAG_ERROR) L->errors++;
    if (f) {   /* capped per level, so that hidden errors never hide behind warnings */
        unsigned *shown = &f->ndiags[lvl == CG_DIAG_ERROR ? 0 : 1];
        if (*shown > CG_LD_MAX_FILE_DIAGS) return;
        if ((*shown)++ == CG_LD_MAX_FILE_DIAGS) {
            cg_diags_add(L->d, lvl, f->path, 0, 0, "too many %s in this file; the rest are not shown",
                         lvl == CG_DIAG_ERROR ? "errors" : "warnings");
            return;
        }
    }
    char msg[900];
    vsnprintf(msg, sizeof msg, fmt, ap);
    int line = 0, col = 0;
    if (f && off != SIZE_MAX) off_line_col(f, off, &line, &col);
    int has_jp = jp && *jp;
    cg_diags_add(L->d, lvl, f ? f->path : "", line, col, "%s%s%s", has_jp ? jp : "",
                 has_jp ? ": " : "", msg);
}

static void emit_off(cg_ld *L, cg_diag_level lvl, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit_off(cg_ld *L, cg_diag_level lvl, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit_v(L, lvl, off, "", fmt, ap);
    va_end(ap);
}

void cg_ld_report(cg_ld *L, cg_diag_level lvl, const cJSON *at, int at_key, const char *jp,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit_v(L, lvl, L->f ? node_off(L->f, at, at_key) : SIZE_MAX, jp, fmt, ap);
    va_end(ap);
}

const char *cg_ld_show(char buf[64], const char *s)
{
    size_t n = strlen(s), cut = n > 40 ? 40 : n;
    while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    size_t k = 0;
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[k++] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (cut < n) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = '\0';
    return buf;
}

const char *cg_ld_type_name(const cJSON *j)
{
    if (cJSON_IsObject(j)) return "object";
    if (cJSON_IsArray(j)) return "array";
    if (cJSON_IsString(j)) return "string";
    if (cJSON_IsNumber(j)) return "number";
    if (cJSON_IsBool(j)) return "boolean";
    return "null";
}

/* ---- opening a file ------------------------------------------------------------ */

/* cJSON refused the file at off: find the real first error with the
 * scanner; fall back to cJSON's offset when they disagree. */
static void syntax_error(cg_ld *L, cg_jfile *f, size_t off)
{
    scan c = { .s = f->buf, .n = f->len, .i = f->base, .nul_escape = SIZE_MAX };
    sc_value(&c, SIZE_MAX, 1);
    free(c.koff);
    free(c.voff);
    if (c.fail) {
        emit_off(L, CG_DIAG_ERROR, c.err_off, "syntax error: %s", c.why);
        return;
    }
    unsigned char ch = off < f->len ? (unsigned char)f->buf[off] : 0;
    if (ch >= 0x21 && ch < 0x7f) emit_off(L, CG_DIAG_ERROR, off, "syntax error near '%c'", ch);
    else emit_off(L, CG_DIAG_ERROR, off, "syntax error");
}

int cg_jfile_open(cg_ld *L, cg_jfile *f, const cg_intents_file *src)
{
    L->f = f;
    f->path = src->path ? src->path : "";
    if (src->len > CG_MAX_FILE_BYTES) {
        emit_off(L, CG_DIAG_ERROR, SIZE_MAX, "file too large (%zu bytes; at most %d)", src->len,
                 CG_MAX_FILE_BYTES);
        return -1;
    }
    f->buf = malloc(src->len + 1);
    if (!f->buf) {
        emit_off(L, CG_DIAG_ERROR, SIZE_MAX, "out of memory");
        return -1;
    }
    if (src->len) memcpy(f->buf, src->data, src->len);
    f->buf[src->len] = '\0';
    f->len = src->len;

    size_t badlen = 0, bad = utf8_bad_at(f->buf, f->len, &badlen);
    if (bad != SIZE_MAX) {
        if (f->buf[bad] == '\0') emit_off(L, CG_DIAG_ERROR, bad, "NUL byte in the file");
        else emit_off(L, CG_DIAG_ERROR, bad, "invalid UTF-8 (byte 0x%02X)", (unsigned char)f->buf[bad]);
        return -1;
    }
    if (f->len >= 3 && memcmp(f->buf, "\xEF\xBB\xBF", 3) == 0) f->base = 3;

    size_t deep = too_deep_at(f->buf + f->base, f->len - f->base);
    if (deep != SIZE_MAX) {
        emit_off(L, CG_DIAG_ERROR, deep + f->base, "nested deeper than %d levels", CG_LD_MAX_DEPTH);
        return -1;
    }

    const char *end = NULL;
    f->root = cJSON_ParseWithLengthOpts(f->buf + f->base, f->len - f->base, &end, 0);
    if (!f->root) {
        size_t off = end && end >= f->buf && end <= f->buf + f->len ? (size_t)(end - f->buf) : f->base;
        syntax_error(L, f, off);
        return -1;
    }
    size_t tail = end ? (size_t)(end - f->buf) : f->len;
    while (tail < f->len && (f->buf[tail] == ' ' || f->buf[tail] == '\t' || f->buf[tail] == '\n' ||
                             f->buf[tail] == '\r'))
        tail++;
    if (tail < f->len) {
        emit_off(L, CG_DIAG_ERROR, tail, "syntax error: text after the end of the JSON value");
        return -1;
    }
    size_t bad_off = 0;
    const char *why = NULL;
    if (build_positions(f, &bad_off, &why) != 0) {
        emit_off(L, CG_DIAG_ERROR, bad_off, "%s%s", strncmp(why, "\\u0000", 6) ? "syntax error: " : "", why);
        return -1;
    }
    return 0;
}

void cg_jfile_close(cg_jfile *f)
{
    cJSON_Delete(f->root);
    free(f->buf);
    free(f->pos);
    free(f->lines);
    memset(f, 0, sizeof *f);
}

/* ---- keys ------------------------------------------------------------------------ */

static int key_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int c = strcmp(x->string, y->string);
    if (c) return c;
    return (uintptr_t)x < (uintptr_t)y ? -1 : (uintptr_t)x > (uintptr_t)y;
}

size_t cg_ld_check_keys(cg_ld *L, const cJSON *obj, const char *jp, const char *const *known)
{
    size_t errs = 0, n = 0, nknown = 0;
    char b1[64];
    if (known) while (known[nknown]) nknown++;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    if (n == 0) return 0;

    if (known) {
        for (const cJSON *c = obj->child; c; c = c->next) {
            size_t k = 0;
            while (k < nknown && strcmp(known[k], c->string) != 0) k++;
            if (k < nknown) continue;
            const char *sug = cg_ld_suggest(c->string, known, nknown);
            if (sug)
                cg_ld_report(L, CG_DIAG_ERROR, c, 1, jp, "unknown key \"%s\" (did you mean \"%s\"?)",
                             cg_ld_show(b1, c->string), sug);
            else
                cg_ld_report(L, CG_DIAG_ERROR, c, 1, jp, "unknown key \"%s\"", cg_ld_show(b1, c->string));
            errs++;
        }
    }
    if (n < 2) return errs;
    const cJSON **v = malloc(n * sizeof *v);
    if (!v) {
        cg_ld_report(L, CG_DIAG_ERROR, obj, 0, jp, "out of memory");
        return errs + 1;
    }
    size_t k = 0;
    for (const cJSON *c = obj->child; c; c = c->next) v[k++] = c;
    qsort(v, n, sizeof *v, key_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(v[j]->string, v[i]->string) == 0) j++;
        if (j - i > 1) {
            /* report every later occurrence, pointing at the first one */
            const cJSON *first = v[i];
            for (size_t q = i + 1; q < j; q++)
                if (node_off(L->f, v[q], 1) < node_off(L->f, first, 1)) first = v[q];
            int line, col;
            cg_ld_line_col(L->f, first, 1, &line, &col);
            for (size_t q = i; q < j; q++) {
                if (v[q] == first) continue;
                cg_ld_report(L, CG_DIAG_ERROR, v[q], 1, jp, "duplicate key \"%s\" (first at line %d)",
                             cg_ld_show(b1, v[q]->string), line);
                errs++;
            }
        }
        i = j;
    }
    free(v);
    return errs;
}

/* ---- suggestions --------------------------------------------------------------- */

#define SUGGEST_MAX 64

/* Optimal string alignment distance (Levenshtein plus adjacent swaps). */
static size_t osa(const char *a, size_t n, const char *b, size_t m)
{
    static const size_t W = SUGGEST_MAX + 1;
    size_t d[(SUGGEST_MAX + 1) * (SUGGEST_MAX + 1)];
    for (size_t i = 0; i <= n; i++) d[i * W] = i;
    for (size_t j = 0; j <= m; j++) d[j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[(i - 1) * W + j] + 1;
            if (d[i * W + j - 1] + 1 < best) best = d[i * W + j - 1] + 1;
            if (d[(i - 1) * W + j - 1] + cost < best) best = d[(i - 1) * W + j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[(i - 2) * W + j - 2] + 1 < best)
                best = d[(i - 2) * W + j - 2] + 1;
            d[i * W + j] = best;
        }
    }
    return d[n * W + m];
}

const char *cg_ld_suggest(const char *word, const char *const *cands, size_t ncands)
{
    size_t n = strlen(word);
    if (n == 0 || n > SUGGEST_MAX) return NULL;
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (size_t i = 0; i < ncands; i++) {
        size_t m = strlen(cands[i]);
        if (m > SUGGEST_MAX) continue;
        size_t dd = osa(word, n, cands[i], m);
        size_t limit = m <= 3 ? 1 : m <= 6 ? 2 : 3;
        if (dd <= limit && dd < bestd) { bestd = dd; best = cands[i]; }
    }
    return best;
}
