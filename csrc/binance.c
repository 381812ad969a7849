/*
 * binance.c - fast path of the Binance capture reader; see binance.h.
 *
 * A line is accepted only when it is plain JSON of a known shape (no string
 * escapes, no non-ASCII bytes, no duplicate known keys, integers where the
 * reader wants integers, decimal strings "digits[.digits]" that are whole
 * numbers of ticks / lots) and belongs to the known symbol. The same
 * decisions as the Python reader are made on such lines; everything else is
 * BN_SLOW and goes to Python, which is the reference.
 */
#include "binance.h"

#include <string.h>

#define MS 1000000LL
#define INT64_MAXV 9223372036854775807LL
#define MAX_MS (INT64_MAXV / MS)
#define MAX_ID (INT64_MAXV - 1)
#define MAX_DEPTH 64 /* nesting of skipped values; deeper goes to Python */

typedef unsigned __int128 u128;

static const uint64_t POW10[20] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
    10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

/* ---- cursor over one line ------------------------------------------------ */

typedef struct cur {
    const char *p, *e;
    int bad; /* set on anything the fast path does not take */
} cur;

static void ws(cur *c) {
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

static int eat(cur *c, char ch) {
    ws(c);
    if (c->p < c->e && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int peek(cur *c) {
    ws(c);
    return c->p < c->e ? (unsigned char)*c->p : -1;
}

/* A string without escapes, control or non-ASCII bytes: [*s, *e) between the quotes. */
static int str(cur *c, const char **s, const char **e) {
    if (!eat(c, '"')) return c->bad = 1, 0;
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

static int lit(cur *c, const char *w, size_t n) {
    if ((size_t)(c->e - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return c->bad = 1, 0;
}

/* A JSON number (RFC 8259 grammar). *is_int: no fraction / exponent and it fits int64. */
static int number(cur *c, int64_t *val, int *is_int) {
    ws(c);
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
static int skip_value(cur *c) {
    char stack[MAX_DEPTH];
    int depth = 0;
    for (;;) {
        int ch = peek(c);
        const char *s, *e;
        int64_t v;
        int isint;
        if (ch == '{' || ch == '[') {
            if (depth == MAX_DEPTH) return c->bad = 1, 0;
            c->p++;
            stack[depth++] = (char)ch;
            int close = ch == '{' ? '}' : ']';
            if (peek(c) == close) {
                c->p++;
                depth--;
                goto after_value;
            }
            if (ch == '{') {
                if (!str(c, &s, &e) || !eat(c, ':')) return c->bad = 1, 0;
            }
            continue;
        } else if (ch == '"') {
            if (!str(c, &s, &e)) return 0;
        } else if (ch == 't') {
            if (!lit(c, "true", 4)) return 0;
        } else if (ch == 'f') {
            if (!lit(c, "false", 5)) return 0;
        } else if (ch == 'n') {
            if (!lit(c, "null", 4)) return 0;
        } else {
            if (!number(c, &v, &isint)) return 0;
        }
    after_value:
        while (depth > 0) {
            char top = stack[depth - 1];
            if (eat(c, ',')) {
                if (top == '{' && (!str(c, &s, &e) || !eat(c, ':'))) return c->bad = 1, 0;
                break;
            }
            if (eat(c, top == '{' ? '}' : ']')) {
                depth--;
                continue;
            }
            return c->bad = 1, 0;
        }
        if (depth == 0) return 1;
    }
}

/* ---- decimals ------------------------------------------------------------ */

typedef struct dec {
    uint64_t digits; /* all significant digits as an integer */
    int frac;        /* fractional digits as written */
    int sig;         /* fractional digits without trailing zeros */
} dec;

/* "digits[.digits]" inside a JSON string, at most 18 significant digits. */
static int decimal(cur *c, dec *d) {
    const char *s, *e;
    if (!str(c, &s, &e)) return 0;
    const char *q = s;
    uint64_t v = 0;
    int nsig = 0, frac = 0, sig = 0;
    if (q >= e || *q < '0' || *q > '9') return c->bad = 1, 0;
    while (q < e && *q >= '0' && *q <= '9') {
        if (v || *q != '0') {
            v = v * 10 + (uint64_t)(*q - '0');
            if (++nsig > 18) return c->bad = 1, 0;
        }
        q++;
    }
    if (q < e && *q == '.') {
        q++;
        if (q >= e) return c->bad = 1, 0;
        while (q < e && *q >= '0' && *q <= '9') {
            v = v * 10 + (uint64_t)(*q - '0');
            frac++;
            if (*q != '0') sig = frac;
            if (v && ++nsig > 18) return c->bad = 1, 0;
            q++;
        }
    }
    if (q != e || frac > 18) return c->bad = 1, 0;
    d->digits = v;
    d->frac = frac;
    d->sig = sig;
    return 1;
}

/* digits * 10^-frac in units of mant * 10^exp, exactly; 0 if not a whole number in int64. */
static int to_units(const dec *d, int64_t mant, int32_t exp, int64_t *out) {
    if (d->digits == 0) {
        *out = 0;
        return 1;
    }
    int64_t s = -(int64_t)d->frac - (int64_t)exp; /* value = digits * 10^s units of 10^exp */
    u128 v;
    if (s >= 0) {
        if (s > 19) return 0;
        v = (u128)d->digits * POW10[s];
    } else {
        if (-s > 19) return 0;
        uint64_t p = POW10[-s];
        if (d->digits % p) return 0;
        v = d->digits / p;
    }
    u128 m = (u128)(uint64_t)mant;
    if (v % m) return 0;
    v /= m;
    if (v > (u128)INT64_MAXV) return 0;
    *out = (int64_t)v;
    return 1;
}

/* ---- one message --------------------------------------------------------- */

enum { F_ABSENT = 0, F_INT = 1, F_OTHER = 2 };

typedef struct ifield {
    int state;
    int64_t v;
} ifield;

typedef struct msgf {
    ifield E, T, U, u, pu, last_id;
    int has_e, has_s, has_symbol, has_m, has_p, has_q, has_b, has_a, has_bids, has_asks;
    int has_B, has_A, has_u_key;
    int s_null, symbol_null, s_str, symbol_str, e_null;
    const char *e_s, *e_e; /* "e" string */
    int e_str;
    const char *s_s, *s_e, *sym_s, *sym_e;
    int m_val; /* -1 not a bool */
    dec p, q;
    int p_ok, q_ok;
    /* level arrays: events [start, start + n) written in order of appearance */
    int64_t b_start, b_n, a_start, a_n, b_order, a_order; /* order: 1 first, 2 second */
    int32_t n_zero;
    /* scan statistics of this message */
    int px_wire, px_sig, qty_wire, qty_sig;
} msgf;

typedef struct ctx {
    bn_parser *p;
    lob_event *ev;
    size_t max_ev;
    int64_t n_ev; /* next free event */
    int full;
    int snapshot_keys; /* levels of bids/asks drop zero sizes */
} ctx;

static void stat(int *wire, int *sig, const dec *d) {
    if (d->frac > *wire) *wire = d->frac;
    if (d->sig > *sig) *sig = d->sig;
}

/* [[price, size], ...] -> events (side), converted; zero sizes dropped when drop_zero. */
static int levels(cur *c, ctx *x, msgf *m, int8_t side, int drop_zero, int64_t *n_out) {
    int64_t n = 0;
    bn_parser *p = x->p;
    if (!eat(c, '[')) return c->bad = 1, 0;
    if (eat(c, ']')) {
        *n_out = 0;
        return 1;
    }
    for (;;) {
        dec px, qty;
        if (!eat(c, '[') || !decimal(c, &px) || !eat(c, ',') || !decimal(c, &qty) || !eat(c, ']'))
            return c->bad = 1, 0;
        if (px.digits == 0) return c->bad = 1, 0; /* price must be positive: Python says so */
        stat(&m->px_wire, &m->px_sig, &px);
        stat(&m->qty_wire, &m->qty_sig, &qty);
        int64_t a = 0, b = 0;
        if (!p->scan && (!to_units(&px, p->px_mant, p->px_exp, &a) || !to_units(&qty, p->qty_mant, p->qty_exp, &b)))
            return c->bad = 1, 0; /* not a whole number of ticks / lots: Python names it */
        if (!p->scan && !(drop_zero && qty.digits == 0)) {
            if ((size_t)x->n_ev >= x->max_ev) {
                x->full = 1;
                return c->bad = 1, 0;
            }
            lob_event *e = &x->ev[x->n_ev++];
            e->price = a;
            e->qty = b;
            e->side = side;
            n++;
        } else if (drop_zero && qty.digits == 0) {
            m->n_zero++;
        }
        if (eat(c, ',')) continue;
        if (eat(c, ']')) break;
        return c->bad = 1, 0;
    }
    *n_out = n;
    return 1;
}

static int key_is(const char *s, const char *e, const char *k) {
    size_t n = strlen(k);
    return (size_t)(e - s) == n && memcmp(s, k, n) == 0;
}

static void int_field(cur *c, ifield *f) {
    if (f->state != F_ABSENT) { /* duplicate key: Python keeps the last one */
        c->bad = 1;
        return;
    }
    int ch = peek(c);
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        int64_t v;
        int isint;
        if (!number(c, &v, &isint)) return;
        f->state = isint ? F_INT : F_OTHER;
        f->v = v;
    } else {
        if (!skip_value(c)) return;
        f->state = ch == 'n' ? F_OTHER + 1 : F_OTHER; /* F_OTHER + 1: null */
    }
}

/* Optional string-or-null field (s, symbol, e). */
static void str_field(cur *c, int *has, int *is_null, int *is_str, const char **s, const char **e) {
    if (*has) {
        c->bad = 1;
        return;
    }
    *has = 1;
    int ch = peek(c);
    if (ch == '"') {
        *is_str = str(c, s, e);
    } else {
        if (ch == 'n') *is_null = 1;
        skip_value(c);
    }
}

/* A decimal-string field (trade p / q); *ok only for a string the fast path converts. */
static void dec_field(cur *c, int *has, int *ok, dec *d) {
    if (*has) { /* duplicate key: Python keeps the last one */
        c->bad = 1;
        return;
    }
    *has = 1;
    if (peek(c) == '"')
        *ok = decimal(c, d); /* a string that is no decimal: Python's case */
    else
        skip_value(c);
}

static int level_field(cur *c, ctx *x, msgf *m, int *has, int8_t side, int64_t *start, int64_t *n,
                       int64_t *order) {
    if (*has) return c->bad = 1, 0;
    *has = 1;
    *start = x->n_ev;
    *order = 1 + (m->b_order != 0) + (m->a_order != 0);
    return levels(c, x, m, side, x->snapshot_keys, n);
}

/* The members of one object into m. Known keys only at this level. */
static int fields(cur *c, ctx *x, msgf *m, int top) {
    if (!eat(c, '{')) return c->bad = 1, 0;
    if (eat(c, '}')) return 1;
    for (;;) {
        const char *ks, *ke;
        if (!str(c, &ks, &ke) || !eat(c, ':')) return c->bad = 1, 0;
        size_t kn = (size_t)(ke - ks);
        if (top && key_is(ks, ke, "stream")) {
            return c->bad = 1, 0; /* a wrapper not in the usual order: Python */
        } else if (kn == 1) {
            switch (*ks) {
            case 'E': int_field(c, &m->E); break;
            case 'T': int_field(c, &m->T); break;
            case 'U': int_field(c, &m->U); break;
            case 'u': m->has_u_key = 1; int_field(c, &m->u); break;
            case 'e': str_field(c, &m->has_e, &m->e_null, &m->e_str, &m->e_s, &m->e_e); break;
            case 's': str_field(c, &m->has_s, &m->s_null, &m->s_str, &m->s_s, &m->s_e); break;
            case 'm':
                if (m->has_m) return c->bad = 1, 0;
                m->has_m = 1;
                m->m_val = -1;
                if (peek(c) == 't' && (size_t)(c->e - c->p) >= 4 && memcmp(c->p, "true", 4) == 0) {
                    c->p += 4;
                    m->m_val = 1;
                } else if (peek(c) == 'f' && (size_t)(c->e - c->p) >= 5 && memcmp(c->p, "false", 5) == 0) {
                    c->p += 5;
                    m->m_val = 0;
                } else {
                    skip_value(c);
                }
                break;
            case 'p': dec_field(c, &m->has_p, &m->p_ok, &m->p); break;
            case 'q': dec_field(c, &m->has_q, &m->q_ok, &m->q); break;
            case 'b':
                if (!level_field(c, x, m, &m->has_b, LOB_SIDE_BID, &m->b_start, &m->b_n, &m->b_order)) return 0;
                break;
            case 'a':
                if (!level_field(c, x, m, &m->has_a, LOB_SIDE_ASK, &m->a_start, &m->a_n, &m->a_order)) return 0;
                break;
            case 'B':
                if (m->has_B) return c->bad = 1, 0;
                m->has_B = 1;
                skip_value(c);
                break;
            case 'A':
                if (m->has_A) return c->bad = 1, 0;
                m->has_A = 1;
                skip_value(c);
                break;
            default:
                skip_value(c);
            }
        } else if (kn == 2 && ks[0] == 'p' && ks[1] == 'u') {
            int_field(c, &m->pu);
        } else if (key_is(ks, ke, "lastUpdateId")) {
            int_field(c, &m->last_id);
        } else if (key_is(ks, ke, "bids")) {
            x->snapshot_keys = 1;
            if (!level_field(c, x, m, &m->has_bids, LOB_SIDE_BID, &m->b_start, &m->b_n, &m->b_order)) return 0;
        } else if (key_is(ks, ke, "asks")) {
            x->snapshot_keys = 1;
            if (!level_field(c, x, m, &m->has_asks, LOB_SIDE_ASK, &m->a_start, &m->a_n, &m->a_order)) return 0;
        } else if (key_is(ks, ke, "symbol")) {
            str_field(c, &m->has_symbol, &m->symbol_null, &m->symbol_str, &m->sym_s, &m->sym_e);
        } else {
            skip_value(c);
        }
        if (c->bad) return 0;
        if (eat(c, ',')) continue;
        if (eat(c, '}')) return 1;
        return c->bad = 1, 0;
    }
}

/* 1 if the symbol matches, 0 if it is another one, -1 if Python must decide. */
static int symbol_ok(bn_parser *p, int has, int is_null, int is_str, const char *s, const char *e) {
    if (!has || is_null) return 1;
    if (!is_str) return -1;
    if (p->symbol_len == 0) return -1;
    size_t n = (size_t)(e - s);
    int same = n == (size_t)p->symbol_len;
    for (size_t i = 0; same && i < n; i++) {
        char ch = s[i];
        if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
        same = ch == p->symbol[i];
    }
    if (same) return 1;
    return p->symbol_filter ? 0 : -1;
}

static int id_ok(const ifield *f, int64_t lo, int64_t hi) {
    return f->state == F_INT && f->v >= lo && f->v <= hi;
}

static int startswith(const char *s, const char *e, const char *w) {
    size_t n = strlen(w);
    return (size_t)(e - s) >= n && memcmp(s, w, n) == 0;
}

/* Result of one line. */
enum { L_SKIP = 0, L_MSG = 1, L_SLOW = 2, L_FULL = 3 };

static void rotate(lob_event *ev, int64_t n, int64_t k) {
    /* [0, k) <-> [k, n) by three reversals */
    int64_t i, j;
    lob_event t;
    for (i = 0, j = k - 1; i < j; i++, j--) t = ev[i], ev[i] = ev[j], ev[j] = t;
    for (i = k, j = n - 1; i < j; i++, j--) t = ev[i], ev[i] = ev[j], ev[j] = t;
    for (i = 0, j = n - 1; i < j; i++, j--) t = ev[i], ev[i] = ev[j], ev[j] = t;
}

static int is_space(unsigned char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int line(bn_parser *p, const char *s, const char *e, bn_msg *out, ctx *x) {
    const char *q;
    for (q = s; q < e && is_space((unsigned char)*q); q++) {}
    if (q == e) {
        p->blank++;
        return L_SKIP;
    }
    /* the Python reader's quick bookTicker skip, byte for byte */
    const char *sp = memchr(s, ' ', (size_t)(e - s));
    int64_t spi = sp ? sp - s : -1;
    static const char ST[] = "{\"stream\":\"";
    if ((int64_t)(e - s) >= spi + 12 && memcmp(s + spi + 1, ST, 11) == 0) {
        const char *lo = s + spi + 12, *hi = s + spi + 120 < e ? s + spi + 120 : e;
        const char *end = lo < hi ? memchr(lo, '"', (size_t)(hi - lo)) : NULL;
        if (end && end - lo >= 11 && memcmp(end - 11, "@bookTicker", 11) == 0) {
            p->ticker++;
            return L_SKIP;
        }
    }
    if (spi <= 0 || spi > 19) return L_SLOW;
    uint64_t tl = 0;
    for (q = s; q < sp; q++) {
        if (*q < '0' || *q > '9') return L_SLOW;
        tl = tl * 10 + (uint64_t)(*q - '0');
    }
    if (spi == 19 && (memcmp(s, "9223372036854775807", 19) > 0)) return L_SLOW;

    cur c = {sp + 1, e, 0};
    msgf m;
    memset(&m, 0, sizeof m);
    x->snapshot_keys = 0;
    int64_t ev0 = x->n_ev;
    int combined = 0;
    const char *name_s = NULL, *name_e = NULL;
    if (!eat(&c, '{')) return L_SLOW;
    const char *save = c.p;
    const char *ks, *ke;
    if (str(&c, &ks, &ke) && key_is(ks, ke, "stream") && eat(&c, ':') && str(&c, &name_s, &name_e)) {
        combined = 1;
        int data_seen = 0;
        if (eat(&c, '}')) return L_SLOW; /* no data */
        if (!eat(&c, ',')) return L_SLOW;
        for (;;) {
            if (!str(&c, &ks, &ke) || !eat(&c, ':')) return x->full ? L_FULL : L_SLOW;
            if (key_is(ks, ke, "data")) {
                if (data_seen || peek(&c) != '{') return L_SLOW;
                data_seen = 1;
                if (!fields(&c, x, &m, 0)) return x->full ? L_FULL : L_SLOW;
            } else if (key_is(ks, ke, "stream")) {
                return L_SLOW;
            } else if (!skip_value(&c)) {
                return L_SLOW;
            }
            if (eat(&c, ',')) continue;
            if (eat(&c, '}')) break;
            return L_SLOW;
        }
        if (!data_seen) return L_SLOW;
    } else {
        c.p = save - 1;
        c.bad = 0;
        if (!fields(&c, x, &m, 1)) return x->full ? L_FULL : L_SLOW;
    }
    ws(&c);
    if (c.p != c.e || c.bad) return L_SLOW;

    int kind;
    if (combined) {
        const char *at = memchr(name_s, '@', (size_t)(name_e - name_s));
        const char *n_s = at ? at + 1 : name_e;
        if (startswith(n_s, name_e, "depth")) kind = BN_DEPTH;
        else if (key_is(n_s, name_e, "trade") || key_is(n_s, name_e, "aggTrade")) kind = BN_TRADE;
        else if (key_is(n_s, name_e, "bookTicker")) kind = 0;
        else return L_SLOW; /* unknown stream: Python reports it */
    } else if (m.last_id.state != F_ABSENT) {
        kind = BN_SNAPSHOT;
    } else {
        if (m.has_e && !m.e_str) return L_SLOW;
        if (m.has_e && key_is(m.e_s, m.e_e, "depthUpdate")) kind = BN_DEPTH;
        else if (m.has_e && (key_is(m.e_s, m.e_e, "trade") || key_is(m.e_s, m.e_e, "aggTrade"))) kind = BN_TRADE;
        else if ((m.has_e && key_is(m.e_s, m.e_e, "bookTicker")) || (m.has_u_key && m.has_B && m.has_A)) kind = 0;
        else return L_SLOW;
    }
    if (kind == 0) {
        x->n_ev = ev0;
        p->ticker++;
        return L_SKIP;
    }
    int sym = kind == BN_SNAPSHOT ? symbol_ok(p, m.has_symbol, m.symbol_null, m.symbol_str, m.sym_s, m.sym_e)
                                  : symbol_ok(p, m.has_s, m.s_null, m.s_str, m.s_s, m.s_e);
    if (sym < 0) return L_SLOW;
    if (sym == 0) {
        x->n_ev = ev0;
        p->other_symbol++;
        return L_SKIP;
    }
    memset(out, 0, sizeof *out);
    out->ts_local = (int64_t)tl;
    out->kind = (int8_t)kind;
    out->pu = -1;
    if (kind == BN_DEPTH) {
        /* fields in Python's order of checks; any problem -> Python names it */
        if (!id_ok(&m.E, 0, MAX_MS) || !id_ok(&m.U, 0, MAX_ID) || !id_ok(&m.u, 0, MAX_ID)) return L_SLOW;
        if (m.pu.state != F_ABSENT) {
            if (!id_ok(&m.pu, -1, MAX_ID)) return L_SLOW;
            out->has_pu = 1;
            out->pu = m.pu.v;
        }
        if (!m.has_b || !m.has_a || x->snapshot_keys) return L_SLOW;
        out->ts = m.E.v * MS;
        out->U = m.U.v;
        out->u = m.u.v;
    } else if (kind == BN_TRADE) {
        const ifield *t = m.T.state != F_ABSENT ? &m.T : &m.E;
        if (!id_ok(t, 0, MAX_MS)) return L_SLOW;
        if (!m.has_m || m.m_val < 0 || !m.p_ok || !m.q_ok) return L_SLOW;
        if (m.p.digits == 0 || m.q.digits == 0) return L_SLOW; /* must be positive */
        if (m.has_b || m.has_a || m.has_bids || m.has_asks) return L_SLOW; /* odd trade: Python */
        stat(&m.px_wire, &m.px_sig, &m.p);
        stat(&m.qty_wire, &m.qty_sig, &m.q);
        out->ts = t->v * MS;
        if (!p->scan) {
            int64_t a, b;
            if (!to_units(&m.p, p->px_mant, p->px_exp, &a) || !to_units(&m.q, p->qty_mant, p->qty_exp, &b))
                return L_SLOW;
            if ((size_t)x->n_ev >= x->max_ev) return L_FULL;
            lob_event *ev = &x->ev[x->n_ev++];
            ev->price = a;
            ev->qty = b;
            ev->side = m.m_val ? LOB_SIDE_ASK : LOB_SIDE_BID;
        }
    } else {
        if (!m.has_bids || !m.has_asks || m.has_b || m.has_a) return L_SLOW;
        if (m.E.state == F_OTHER) return L_SLOW;
        if (m.E.state == F_INT && !id_ok(&m.E, 0, MAX_MS)) return L_SLOW;
        if (!id_ok(&m.last_id, 0, MAX_ID)) return L_SLOW;
        out->ts = m.E.state == F_INT ? m.E.v * MS : -1;
        out->u = m.last_id.v;
        out->n_zero = m.n_zero;
    }
    if (kind != BN_TRADE) {
        /* depth / snapshot levels: bids first, then asks */
        if (m.a_order == 1 && m.b_order == 2 && m.a_n && m.b_n) rotate(&x->ev[ev0], m.a_n + m.b_n, m.a_n);
        if (kind == BN_SNAPSHOT && !p->scan) {
            /* make room for the CLEAR in front */
            if ((size_t)x->n_ev >= x->max_ev) return L_FULL;
            memmove(&x->ev[ev0 + 1], &x->ev[ev0], (size_t)(x->n_ev - ev0) * sizeof(lob_event));
            x->n_ev++;
            lob_event *cl = &x->ev[ev0];
            cl->price = 0;
            cl->qty = 0;
            cl->side = 0;
        }
    }
    /* statistics and the common fields of the message's events */
    if (m.px_wire > p->px_wire) p->px_wire = m.px_wire;
    if (m.px_sig > p->px_sig) p->px_sig = m.px_sig;
    if (m.qty_wire > p->qty_wire) p->qty_wire = m.qty_wire;
    if (m.qty_sig > p->qty_sig) p->qty_sig = m.qty_sig;
    out->ev_start = ev0;
    out->n_ev = (int32_t)(x->n_ev - ev0);
    if (!p->scan) {
        uint8_t k = kind == BN_TRADE ? LOB_EV_TRADE : LOB_EV_SET_LEVEL;
        uint16_t fl = kind == BN_SNAPSHOT ? LOB_FLAG_SNAPSHOT : 0;
        int64_t ts = kind == BN_SNAPSHOT ? 0 : out->ts;
        for (int64_t i = ev0; i < x->n_ev; i++) {
            lob_event *ev = &x->ev[i];
            ev->ts_exch = ts;
            ev->ts_local = (int64_t)tl;
            ev->order_id = 0;
            ev->kind = k;
            ev->flags = fl;
            ev->reserved = 0;
        }
        if (kind == BN_SNAPSHOT) x->ev[ev0].kind = LOB_EV_CLEAR;
        if (kind != BN_TRADE && x->n_ev > ev0) x->ev[x->n_ev - 1].flags |= LOB_FLAG_BATCH_END;
    }
    return L_MSG;
}

int bn_parse(bn_parser *p, const char *buf, size_t len, bn_msg *msgs, size_t max_msgs, lob_event *ev,
             size_t max_ev) {
    if (p->pos < 0) p->pos = 0;
    while ((size_t)p->pos < len) {
        const char *s = buf + p->pos;
        const char *nl = memchr(s, '\n', len - (size_t)p->pos);
        const char *e = nl ? nl : buf + len;
        const char *next = nl ? nl + 1 : buf + len;
        while (e > s && (e[-1] == '\r' || e[-1] == '\n')) e--;
        if ((size_t)p->n_msgs >= max_msgs) return BN_FULL;
        ctx x = {p, ev, max_ev, p->n_ev, 0, 0};
        bn_msg *out = &msgs[p->n_msgs];
        int r = line(p, s, e, out, &x);
        if (r == L_SLOW || r == L_FULL) {
            if (x.full) r = L_FULL;
            /* counters a rejected line may have touched are not committed: only line() commits them on
               success paths, after every check */
            return r == L_FULL ? BN_FULL : BN_SLOW;
        }
        if (r == L_MSG) {
            out->line = p->line + 1;
            p->n_msgs++;
            p->n_ev = x.n_ev;
        }
        p->line++;
        p->pos = next - buf;
    }
    return BN_END;
}

int64_t bn_gather(const bn_rec *recs, size_t n_recs, int64_t blk0, lob_event *const *bufs,
                  const int64_t *buf_len, size_t n_bufs, lob_event *out, size_t max_out, int64_t *uid_out) {
    size_t pos = 0;
    for (size_t i = 0; i < n_recs; i++) {
        const bn_rec *r = &recs[i];
        int64_t b = r->blk - blk0;
        if (b < 0 || (size_t)b >= n_bufs || !bufs[b] || r->n < 0 || r->ev0 < 0 || r->ev0 > buf_len[b] ||
            r->n > buf_len[b] - r->ev0 || (size_t)r->n > max_out - pos)
            return -1;
        lob_event *dst = out + pos;
        size_t n = (size_t)r->n;
        memcpy(dst, bufs[b] + r->ev0, n * sizeof *dst);
        if (r->set_ts)
            for (size_t k = 0; k < n; k++) dst[k].ts_exch = r->ts;
        if (r->tl_new >= 0)
            for (size_t k = 0; k < n; k++) dst[k].ts_local = r->tl_new;
        if (r->fl)
            for (size_t k = 0; k < n; k++) dst[k].flags |= r->fl;
        if (uid_out)
            for (size_t k = 0; k < n; k++) uid_out[pos + k] = r->uid;
        pos += n;
    }
    return (int64_t)pos;
}
