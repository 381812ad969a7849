/*
 * jsonlines.c - shared JSON / decimal / book-side primitives of the C line parsers; see jsonlines.h.
 */
#include "jsonlines.h"

#include <stdlib.h>

typedef unsigned __int128 u128;

const uint64_t JL_POW10[20] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
    10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

/* A JSON number (RFC 8259 grammar). *is_int: no fraction / exponent and it fits int64. */
int jl_number(jl_cur *c, int64_t *val, int *is_int) {
    jl_ws(c);
    const char *q = c->p;
    int neg = 0;
    if (q < c->e && *q == '-') neg = 1, q++;
    if (q >= c->e || *q < '0' || *q > '9') return c->bad = 1, 0;
    const char *d0 = q;
    if (*q == '0') {
        q++;
    } else {
        while (q < c->e && *q >= '0' && *q <= '9') q++;
    }
    size_t nd = (size_t)(q - d0);
    int frac = 0;
    if (q < c->e && *q == '.') {
        q++;
        if (q >= c->e || *q < '0' || *q > '9') return c->bad = 1, 0;
        while (q < c->e && *q >= '0' && *q <= '9') q++;
        frac = 1;
    }
    if (q < c->e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < c->e && (*q == '+' || *q == '-')) q++;
        if (q >= c->e || *q < '0' || *q > '9') return c->bad = 1, 0;
        while (q < c->e && *q >= '0' && *q <= '9') q++;
        frac = 1;
    }
    *is_int = 0;
    if (!frac && nd <= 18) {
        int64_t v = 0;
        for (size_t i = 0; i < nd; i++) v = v * 10 + (d0[i] - '0');
        *val = neg ? -v : v;
        *is_int = 1;
    }
    c->p = q;
    return 1;
}

/* Skip any JSON value (bounded nesting, iterative). */
int jl_skip_value(jl_cur *c) {
    char stack[JL_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        int ch = jl_peek(c);
        const char *s, *e;
        int64_t v;
        int isint;
        if (ch == '{' || ch == '[') {
            if (depth == JL_MAX_DEPTH) return c->bad = 1, 0;
            c->p++;
            stack[depth++] = (char)ch;
            int close = ch == '{' ? '}' : ']';
            if (jl_peek(c) == close) {
                c->p++;
                depth--;
                goto after_value;
            }
            if (ch == '{') {
                if (!jl_str(c, &s, &e) || !jl_eat(c, ':')) return c->bad = 1, 0;
            }
            continue;
        } else if (ch == '"') {
            if (!jl_str(c, &s, &e)) return 0;
        } else if (ch == 't') {
            if (!jl_lit(c, "true", 4)) return 0;
        } else if (ch == 'f') {
            if (!jl_lit(c, "false", 5)) return 0;
        } else if (ch == 'n') {
            if (!jl_lit(c, "null", 4)) return 0;
        } else {
            if (!jl_number(c, &v, &isint)) return 0;
        }
    after_value:
        while (depth > 0) {
            char top = stack[depth - 1];
            if (jl_eat(c, ',')) {
                if (top == '{' && (!jl_str(c, &s, &e) || !jl_eat(c, ':'))) return c->bad = 1, 0;
                break;
            }
            if (jl_eat(c, top == '{' ? '}' : ']')) {
                depth--;
                continue;
            }
            return c->bad = 1, 0;
        }
        if (depth == 0) return 1;
    }
}

/* ---- decimals ------------------------------------------------------------ */

/* "digits[.digits]" inside a JSON string, at most 18 significant digits. */
int jl_decimal(jl_cur *c, jl_dec *d) {
    const char *s, *e;
    if (!jl_str(c, &s, &e)) return 0;
    if (!jl_decimal_bytes(s, e, d)) return c->bad = 1, 0;
    return 1;
}

int jl_decimal_bytes(const char *s, const char *e, jl_dec *d) {
    const char *q = s;
    uint64_t v = 0;
    int nsig = 0, frac = 0, sig = 0;
    if (q >= e || *q < '0' || *q > '9') return 0;
    while (q < e && *q >= '0' && *q <= '9') {
        if (v || *q != '0') {
            v = v * 10 + (uint64_t)(*q - '0');
            if (++nsig > 18) return 0;
        }
        q++;
    }
    if (q < e && *q == '.') {
        q++;
        if (q >= e) return 0;
        while (q < e && *q >= '0' && *q <= '9') {
            v = v * 10 + (uint64_t)(*q - '0');
            frac++;
            if (*q != '0') sig = frac;
            if (v && ++nsig > 18) return 0;
            q++;
        }
    }
    if (q != e || frac > 18) return 0;
    d->digits = v;
    d->frac = frac;
    d->sig = sig;
    return 1;
}

/* digits * 10^-frac in units of mant * 10^exp, exactly; 0 if not a whole number in int64. */
int jl_to_units(const jl_dec *d, int64_t mant, int32_t exp, int64_t *out) {
    if (d->digits == 0) {
        *out = 0;
        return 1;
    }
    int64_t s = -(int64_t)d->frac - (int64_t)exp; /* value = digits * 10^s units of 10^exp */
    u128 v;
    if (s >= 0) {
        if (s > 19) return 0;
        v = (u128)d->digits * JL_POW10[s];
    } else {
        if (-s > 19) return 0;
        uint64_t p = JL_POW10[-s];
        if (d->digits % p) return 0;
        v = d->digits / p;
    }
    u128 m = (u128)(uint64_t)mant;
    if (v % m) return 0;
    v /= m;
    if (v > (u128)JL_INT64_MAX) return 0;
    *out = (int64_t)v;
    return 1;
}


/* ---- one side of an L2 book ---------------------------------------------- */

void jl_side_init(jl_side *s, int sign) {
    memset(s, 0, sizeof *s);
    s->sign = sign;
}

void jl_side_free(jl_side *s) {
    free(s->v);
    s->v = NULL;
    s->lo = s->n = s->cap = 0;
}

void jl_side_clear(jl_side *s) {
    s->lo = s->cap / 2; /* room at both ends */
    s->n = 0;
    s->top_dirty = 1;
}

/* first index (relative to lo) whose key is >= the key of px */
static int64_t lower(const jl_side *s, int64_t px) {
    const jl_level *v = s->v + s->lo;
    int64_t a = 0, b = s->n;
    if (s->sign > 0) {
        while (a < b) {
            int64_t m = a + (b - a) / 2;
            if (v[m].px < px) a = m + 1;
            else b = m;
        }
    } else {
        while (a < b) {
            int64_t m = a + (b - a) / 2;
            if (v[m].px > px) a = m + 1;
            else b = m;
        }
    }
    return a;
}

int64_t jl_side_find(const jl_side *s, int64_t px) {
    int64_t i = lower(s, px);
    return i < s->n && s->v[s->lo + i].px == px ? i : -1;
}

int jl_side_reserve(jl_side *s, int64_t extra) {
    if (s->lo >= extra && s->cap - s->lo - s->n >= extra) return 0;
    /* room for extra levels at both ends (inserts go to the nearer end) */
    int64_t need = s->n + 2 * extra;
    if (s->cap < need) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        while (cap < need) cap *= 2;
        jl_level *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    int64_t lo = (s->cap - s->n) / 2;
    memmove(s->v + lo, s->v + s->lo, (size_t)s->n * sizeof *s->v);
    s->lo = lo;
    return 0;
}

int jl_side_set(jl_side *s, const jl_level *l) {
    int64_t i = lower(s, l->px);
    if (i < s->n && s->v[s->lo + i].px == l->px) {
        s->v[s->lo + i] = *l;
        if (s->n - 1 - i < 10) s->top_dirty = 1;
        return 0;
    }
    if (s->lo + s->n == s->cap && !(s->lo > 0 && i < s->n - i) && jl_side_reserve(s, 1)) return -1;
    jl_level *v = s->v + s->lo;
    if (s->lo > 0 && (i < s->n - i || s->lo + s->n == s->cap)) { /* the front part moves down */
        memmove(v - 1, v, (size_t)i * sizeof *v);
        s->lo--;
        s->v[s->lo + i] = *l;
    } else {
        memmove(v + i + 1, v + i, (size_t)(s->n - i) * sizeof *v);
        v[i] = *l;
    }
    s->n++;
    if (s->n - 1 - i < 10) s->top_dirty = 1;
    return 0;
}

int jl_side_del(jl_side *s, int64_t px) {
    int64_t i = jl_side_find(s, px);
    if (i < 0) return 0;
    if (s->n - 1 - i < 10) s->top_dirty = 1;
    jl_level *v = s->v + s->lo;
    memmove(v + i, v + i + 1, (size_t)(s->n - i - 1) * sizeof *v);
    s->n--;
    return 1;
}

void jl_side_truncate(jl_side *s, int64_t depth) {
    if (s->n <= depth) return;
    if (depth < 10) s->top_dirty = 1;
    s->lo += s->n - depth;
    s->n = depth;
}
