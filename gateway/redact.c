/*
 * redact.c: cg_redact() (redact.h), personal data → placeholders.
 *
 * The text is decoded once into code points (utf8proc) with their byte
 * offsets, then scanned left to right. At each word boundary the rules are
 * tried in a fixed order, the first that takes a span wins:
 *   email → IBAN → date → phone → word (<id> / <num>)
 * and anything no rule takes is copied byte for byte. Every rule looks only
 * forward from a boundary, so the scan is linear in practice (each rule's
 * look-ahead is bounded by the word or digit sequence it examines).
 *
 * Extending: a new kind of span is one more rule function (returning the
 * index after the span, or 0) called from cg_redact() in its place in the
 * order, a row in tests/unit/test_redact.c, and a line in redact.h.
 */
#include "redact.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PHONE_MIN_DIGITS 7
#define PHONE_MAX_DIGITS 15
#define NUM_MIN_DIGITS   3
#define ID_MIN_DIGITS    3

typedef struct rd_text {
    const char *src;
    int32_t *cp;       /* code points */
    size_t *off;       /* byte offset of each; off[n] = end */
    size_t n;
} rd_text;

typedef struct rd_out { char *p; size_t n, cap; int oom; } rd_out;

static void put(rd_out *o, const char *s, size_t n)
{
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        while (cap < o->n + n + 1) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) { o->oom = 1; return; }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static int is_digit(int32_t c)
{
    if (c >= '0' && c <= '9') return 1;
    return c >= 0x80 && utf8proc_category(c) == UTF8PROC_CATEGORY_ND;
}

static int is_letter(int32_t c)
{
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
        return 1;
    default:
        return 0;
    }
}

static int is_alnum(int32_t c) { return is_digit(c) || is_letter(c); }

static int at(const rd_text *t, size_t i) { return i < t->n ? t->cp[i] : 0; }

/* ---- rules: each returns the index just after its span, or 0 ------------ */

static int email_local(int32_t c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static size_t rule_email(const rd_text *t, size_t i)
{
    size_t j = i;
    while (j < t->n && email_local(t->cp[j])) j++;
    if (j == i || at(t, j) != '@') return 0;
    size_t k = j + 1, last_dot = 0;
    while (k < t->n && (is_alnum(t->cp[k]) || t->cp[k] == '.' || t->cp[k] == '-')) k++;
    while (k > j + 1 && t->cp[k - 1] == '.') k--;   /* "write to a@b.org." */
    for (size_t m = j + 2; m + 1 < k; m++)
        if (t->cp[m] == '.') last_dot = m;
    if (!last_dot || k - last_dot - 1 < 2) return 0;
    for (size_t m = last_dot + 1; m < k; m++)
        if (!is_letter(t->cp[m])) return 0;
    return k;
}

/* Digits from i; *end set after them. */
static size_t digit_run(const rd_text *t, size_t i, size_t *end)
{
    size_t j = i;
    while (j < t->n && is_digit(t->cp[j])) j++;
    *end = j;
    return j - i;
}

static size_t rule_date(const rd_text *t, size_t i)
{
    size_t e1, e2, e3;
    size_t a = digit_run(t, i, &e1);
    int32_t sep = at(t, e1);
    if (!a || (sep != '-' && sep != '/' && sep != '.')) return 0;
    size_t b = digit_run(t, e1 + 1, &e2);
    if (!b || b > 2 || at(t, e2) != sep) return 0;
    size_t c = digit_run(t, e2 + 1, &e3);
    int ymd = a == 4 && c >= 1 && c <= 2;
    int dmy = a <= 2 && (c == 2 || c == 4);
    if (!ymd && !dmy) return 0;
    if (is_alnum(at(t, e3))) return 0;
    return e3;
}

static int phone_sep(int32_t c)
{
    return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/' || c == 0xA0;
}

static size_t rule_phone(const rd_text *t, size_t i)
{
    size_t j = i, digits = 0, last = 0, seps = 0;
    int plus = 0;
    if (at(t, j) == '+') { plus = 1; j++; }
    else if (at(t, j) == '(') j++;
    if (!is_digit(at(t, j))) return 0;
    while (j < t->n) {
        if (is_digit(t->cp[j])) {
            digits++;
            last = j + 1;
            j++;
            continue;
        }
        size_t s = 0;
        while (j < t->n && phone_sep(t->cp[j]) && s < 3) { j++; s++; }
        if (!s || !is_digit(at(t, j))) break;
        seps++;
        if (digits > PHONE_MAX_DIGITS) break;
    }
    if (digits < PHONE_MIN_DIGITS || digits > PHONE_MAX_DIGITS || (!seps && !plus)) return 0;
    if (is_letter(at(t, last))) return 0;
    if (at(t, last) == ')') last++;
    return last;
}

static int ascii_letter(int32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int ascii_digit(int32_t c) { return c >= '0' && c <= '9'; }
static int ascii_alnum(int32_t c) { return ascii_letter(c) || ascii_digit(c); }

/* IBAN: country letters, check digits, then the account in one run or in
 * groups of at most 8 separated by single spaces; 15-34 characters of which
 * at least 10 digits ("DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819"). */
static size_t rule_iban(const rd_text *t, size_t i)
{
    if (!ascii_letter(at(t, i)) || !ascii_letter(at(t, i + 1)) || !ascii_digit(at(t, i + 2)) ||
        !ascii_digit(at(t, i + 3)))
        return 0;
    size_t j = i + 4, len = 4, digits = 2, end = j;
    /* the rest of the first word, then groups " xxxx"; only the first group
     * (a bank code) may be letters alone, so that the next word stays */
    for (int g = 0; len <= 34; g++) {
        size_t k = j, gd = 0;
        if (g > 0) {
            if (at(t, j) != ' ') break;
            k = j + 1;
        }
        size_t st = k;
        while (ascii_alnum(at(t, k))) gd += ascii_digit(at(t, k++));
        size_t gl = k - st;
        if (g > 0 && (gl == 0 || gl > 8 || (gd == 0 && g > 1))) break;
        len += gl;
        digits += gd;
        j = end = k;
    }
    if (len < 15 || len > 34 || digits < 10 || is_alnum(at(t, end))) return 0;
    return end;
}

/* A word: letters and digits, with single inner '-' or '_' between them. */
static size_t rule_word(const rd_text *t, size_t i, const char **placeholder)
{
    size_t j = i, digits = 0, letters = 0;
    while (j < t->n) {
        int32_t c = t->cp[j];
        if (is_digit(c)) { digits++; j++; continue; }
        if (is_letter(c)) { letters++; j++; continue; }
        if ((c == '-' || c == '_') && is_alnum(at(t, j + 1)) && j > i) { j++; continue; }
        break;
    }
    if (j == i) return 0;
    if (letters && digits >= ID_MIN_DIGITS) { *placeholder = "<id>"; return j; }
    if (!letters && digits >= NUM_MIN_DIGITS) { *placeholder = "<num>"; return j; }
    return 0;
}

/* ---- the scan ---------------------------------------------------------- */

char *cg_redact(const char *text, size_t len)
{
    if (!text) return NULL;
    if (len > CG_REDACT_MAX_IN) {
        len = CG_REDACT_MAX_IN;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80) len--;
    }
    rd_text t = { text, malloc((len + 1) * sizeof(int32_t)), malloc((len + 1) * sizeof(size_t)), 0 };
    rd_out o = { 0 };
    char *res = NULL;
    if (!t.cp || !t.off) goto done;
    for (size_t p = 0; p < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + p, (utf8proc_ssize_t)(len - p), &c);
        if (k <= 0 || c == 0) goto done;
        t.cp[t.n] = c;
        t.off[t.n++] = p;
        p += (size_t)k;
    }
    t.off[t.n] = len;
    put(&o, "", 0);
    for (size_t i = 0; i < t.n;) {
        int boundary = i == 0 || !is_alnum(t.cp[i - 1]);
        size_t end = 0;
        const char *ph = NULL;
        if (boundary) {
            if ((end = rule_email(&t, i))) ph = "<email>";
            else if ((end = rule_iban(&t, i))) ph = "<id>";
            else if ((end = rule_date(&t, i))) ph = "<date>";
            else if ((end = rule_phone(&t, i))) ph = "<phone>";
            else end = rule_word(&t, i, &ph);
        }
        if (end && ph) {
            put(&o, ph, strlen(ph));
            i = end;
        } else if (boundary && is_alnum(t.cp[i])) {
            /* a word no rule took: copy it whole (a rule only starts at a boundary) */
            size_t j = i;
            while (j < t.n && (is_alnum(t.cp[j]) ||
                               ((t.cp[j] == '-' || t.cp[j] == '_') && j > i && is_alnum(at(&t, j + 1)))))
                j++;
            put(&o, text + t.off[i], t.off[j] - t.off[i]);
            i = j;
        } else {
            put(&o, text + t.off[i], t.off[i + 1] - t.off[i]);
            i++;
        }
    }
    if (!o.oom) {
        res = o.p;
        o.p = NULL;
    }
done:
    free(o.p);
    free(t.cp);
    free(t.off);
    return res;
}
