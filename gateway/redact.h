/*
 * redact.h: personal data out of citizens' text before it is stored for
 * analytics or written to a log (gateway/redact.c). Pure: no I/O, no state.
 *
 * What is replaced, by placeholder (each span once, left to right):
 *   <email>  local@domain.tld (letters of any script allowed)
 *   <date>   2026-11-27, 27/11/2026, 27.11.26 (one separator kind, d-m-y or y-m-d)
 *   <phone>  a digit sequence of 7-15 digits with separators (space - . ( ) /)
 *            or a leading +: "+1 (555) 123-4567", "06 12 34 56 78"
 *   <id>     an IBAN ("DE89 3704 0044 0532 0130 00"), or a word mixing letters
 *            and 3 or more digits: "AB123456", "X1234567Z", "12345678Z"
 *            (Spanish DNI), "I-485"
 *   <num>    any other run of 3 or more digits: "5551234567", "12345"
 * Digits are any Unicode decimal digits (Arabic-Indic, fullwidth,
 * Devanagari...). Numbers of one or two digits stay ("section 8", "2 kids"):
 * they identify no one and carry the question's meaning.
 */
#ifndef CG_REDACT_H
#define CG_REDACT_H

#include <stddef.h>

/* Longest text redacted; longer input is cut (at a character boundary). */
#define CG_REDACT_MAX_IN 8192

/* text[0..len) (UTF-8) with every span above replaced by its placeholder.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL on
 * invalid UTF-8 (or a NUL byte) or allocation failure. */
char *cg_redact(const char *text, size_t len);

#endif
