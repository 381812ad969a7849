/*
 * jsonlines.h - shared internal pieces of the C line parsers of JSON captures (binance.c, bybit.c,
 * kraken.c): a cursor over one line with the JSON primitives, exact decimal strings converted to
 * ticks / lots, and one sorted side of an L2 book. Internal C API: not part of the cffi cdef.
 *
 * Every function stays inside [p, e) of its cursor; anything it does not take exactly sets
 * cur.bad (the caller hands the line to the Python path, which is the reference).
 */
#ifndef LOBSIM_JSONLINES_H
#define LOBSIM_JSONLINES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lobsim.h"

#define JL_INT64_MAX 9223372036854775807LL
#define JL_MAX_DEPTH 64 /* nesting of skipped values; deeper goes to Python */

extern const uint64_t JL_POW10[20];

/* ---- cursor over one line ------------------------------------------------ */

typedef struct jl_cur {
    const char *p, *e;
    int bad; /* set on anything the fast path does not take */
} jl_cur;

static inline void jl_ws(jl_cur *c) {
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

static inline int jl_eat(jl_cur *c, char ch) {
    jl_ws(c);
    if (c->p < c->e && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static inline int jl_peek(jl_cur *c) {
    jl_ws(c);
    return c->p < c->e ? (unsigned char)*c->p : -1;
}

/* A string without escapes, control or non-ASCII bytes: [*s, *e) between the quotes. */
static inline int jl_str(jl_cur *c, const char **s, const char **e) {
    if (!jl_eat(c, '"')) return c->bad = 1, 0;
    const char *q = c->p;
    while (q < c->e) {
        unsigned char ch = (unsigned char)*q;
        if (ch == '"') break;
        if (ch == '\\' || ch < 0x20 || ch >= 0x80) return c->bad = 1, 0;
        q++;
    }
    if (q >= c->e) return c->bad = 1, 0;
    *s = c->p;
    *e = q;
    c->p = q + 1;
    return 1;
}

static inline int jl_lit(jl_cur *c, const char *w, size_t n) {
    if ((size_t)(c->e - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return c->bad = 1, 0;
}

static inline int jl_key_is(const char *s, const char *e, const char *k) {
    size_t n = strlen(k);
    return (size_t)(e - s) == n && memcmp(s, k, n) == 0;
}

static inline int jl_startswith(const char *s, const char *e, const char *w) {
    size_t n = strlen(w);
    return (size_t)(e - s) >= n && memcmp(s, w, n) == 0;
}

/* Python's bytes.isspace() */
static inline int jl_is_space(unsigned char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* A JSON number (RFC 8259 grammar). *is_int: no fraction / exponent and it fits int64. */
int jl_number(jl_cur *c, int64_t *val, int *is_int);

/* Skip any JSON value (bounded nesting, iterative). */
int jl_skip_value(jl_cur *c);

/* ---- decimals ------------------------------------------------------------ */

typedef struct jl_dec {
    uint64_t digits; /* all significant digits as an integer */
    int frac;        /* fractional digits as written */
    int sig;         /* fractional digits without trailing zeros */
} jl_dec;

/* "digits[.digits]" inside a JSON string, at most 18 significant digits and 18 fractional digits. */
int jl_decimal(jl_cur *c, jl_dec *d);

/* The same on the bytes [s, e) (no quotes). */
int jl_decimal_bytes(const char *s, const char *e, jl_dec *d);

/* digits * 10^-frac in units of mant * 10^exp, exactly; 0 if not a whole number in int64. */
int jl_to_units(const jl_dec *d, int64_t mant, int32_t exp, int64_t *out);

/* most fractional digits as written / without trailing zeros (the scan's statistics) */
static inline void jl_stat(int32_t *wire, int32_t *sig, const jl_dec *d) {
    if (d->frac > *wire) *wire = d->frac;
    if (d->sig > *sig) *sig = d->sig;
}

/* an L2 event without its times (the reader sets them per message) */
static inline void jl_put(lob_event *e, int8_t side, uint8_t kind, int64_t px, int64_t qty, uint16_t fl) {
    e->ts_exch = 0;
    e->ts_local = 0;
    e->order_id = 0;
    e->price = px;
    e->qty = qty;
    e->side = side;
    e->kind = kind;
    e->flags = fl;
    e->reserved = 0;
}

/* ---- one side of an L2 book ---------------------------------------------- */

/* A level: price in ticks, size in lots, and (for checksums) the digits of the wire strings without
 * the decimal point and leading zeros, as hi * 10^19 + lo. */
typedef struct jl_level {
    int64_t px, qty;
    uint64_t pd_lo, pd_hi, qd_lo, qd_hi;
} jl_level;

/* Levels sorted by key (bids: price; asks: -price), best last, in v[lo, lo + n). */
typedef struct jl_side {
    jl_level *v;
    int64_t lo, n, cap;
    int sign;      /* +1 bids, -1 asks */
    int top_dirty; /* set when one of the best 10 levels changed */
} jl_side;

void jl_side_init(jl_side *s, int sign);
void jl_side_free(jl_side *s);
void jl_side_clear(jl_side *s);
/* index of price px in v[lo, lo + n) (relative to lo), or -1 */
int64_t jl_side_find(const jl_side *s, int64_t px);
/* room for `extra` more levels without allocating -> 0, or -1 when out of memory */
int jl_side_reserve(jl_side *s, int64_t extra);
/* set a level (qty > 0) -> 0, or -1 when out of memory */
int jl_side_set(jl_side *s, const jl_level *l);
/* delete price px -> 1 if it was there, 0 if absent */
int jl_side_del(jl_side *s, int64_t px);
/* the level of rank r (0 = best), r < n */
static inline jl_level *jl_side_rank(jl_side *s, int64_t r) { return &s->v[s->lo + s->n - 1 - r]; }
/* drop the worst levels beyond depth (the caller reads them first with jl_side_rank) */
void jl_side_truncate(jl_side *s, int64_t depth);

#endif
