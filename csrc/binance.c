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

#include "jsonlines.h"

#define MS 1000000LL
#define INT64_MAXV JL_INT64_MAX
#define MAX_MS (INT64_MAXV / MS)
#define MAX_ID (INT64_MAXV - 1)

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
    jl_dec p, q;
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

static void stat(int *wire, int *sig, const jl_dec *d) {
    if (d->frac > *wire) *wire = d->frac;
    if (d->sig > *sig) *sig = d->sig;
}

/* [[price, size], ...] -> events (side), converted; zero sizes dropped when drop_zero. */
static int levels(jl_cur *c, ctx *x, msgf *m, int8_t side, int drop_zero, int64_t *n_out) {
    int64_t n = 0;
    bn_parser *p = x->p;
    if (!jl_eat(c, '[')) return c->bad = 1, 0;
    if (jl_eat(c, ']')) {
        *n_out = 0;
        return 1;
    }
    for (;;) {
        jl_dec px, qty;
        if (!jl_eat(c, '[') || !jl_decimal(c, &px) || !jl_eat(c, ',') || !jl_decimal(c, &qty) || !jl_eat(c, ']'))
            return c->bad = 1, 0;
        if (px.digits == 0) return c->bad = 1, 0; /* price must be positive: Python says so */
        stat(&m->px_wire, &m->px_sig, &px);
        stat(&m->qty_wire, &m->qty_sig, &qty);
        int64_t a = 0, b = 0;
        if (!p->scan && (!jl_to_units(&px, p->px_mant, p->px_exp, &a) || !jl_to_units(&qty, p->qty_mant, p->qty_exp, &b)))
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
        if (jl_eat(c, ',')) continue;
        if (jl_eat(c, ']')) break;
        return c->bad = 1, 0;
    }
    *n_out = n;
    return 1;
}

static void int_field(jl_cur *c, ifield *f) {
    if (f->state != F_ABSENT) { /* duplicate key: Python keeps the last one */
        c->bad = 1;
        return;
    }
    int ch = jl_peek(c);
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        int64_t v;
        int isint;
        if (!jl_number(c, &v, &isint)) return;
        f->state = isint ? F_INT : F_OTHER;
        f->v = v;
    } else {
        if (!jl_skip_value(c)) return;
        f->state = ch == 'n' ? F_OTHER + 1 : F_OTHER; /* F_OTHER + 1: null */
    }
}

/* Optional string-or-null field (s, symbol, e). */
static void str_field(jl_cur *c, int *has, int *is_null, int *is_str, const char **s, const char **e) {
    if (*has) {
        c->bad = 1;
        return;
    }
    *has = 1;
    int ch = jl_peek(c);
    if (ch == '"') {
        *is_str = jl_str(c, s, e);
    } else {
        if (ch == 'n') *is_null = 1;
        jl_skip_value(c);
    }
}

/* A decimal-string field (trade p / q); *ok only for a string the fast path converts. */
static void dec_field(jl_cur *c, int *has, int *ok, jl_dec *d) {
    if (*has) { /* duplicate key: Python keeps the last one */
        c->bad = 1;
        return;
    }
    *has = 1;
    if (jl_peek(c) == '"')
        *ok = jl_decimal(c, d); /* a string that is no decimal: Python's case */
    else
        jl_skip_value(c);
}

static int level_field(jl_cur *c, ctx *x, msgf *m, int *has, int8_t side, int64_t *start, int64_t *n,
                       int64_t *order) {
    if (*has) return c->bad = 1, 0;
    *has = 1;
    *start = x->n_ev;
    *order = 1 + (m->b_order != 0) + (m->a_order != 0);
    return levels(c, x, m, side, x->snapshot_keys, n);
}

/* The members of one object into m. Known keys only at this level. */
static int fields(jl_cur *c, ctx *x, msgf *m, int top) {
    if (!jl_eat(c, '{')) return c->bad = 1, 0;
    if (jl_eat(c, '}')) return 1;
    for (;;) {
        const char *ks, *ke;
        if (!jl_str(c, &ks, &ke) || !jl_eat(c, ':')) return c->bad = 1, 0;
        size_t kn = (size_t)(ke - ks);
        if (top && jl_key_is(ks, ke, "stream")) {
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
                if (jl_peek(c) == 't' && (size_t)(c->e - c->p) >= 4 && memcmp(c->p, "true", 4) == 0) {
                    c->p += 4;
                    m->m_val = 1;
                } else if (jl_peek(c) == 'f' && (size_t)(c->e - c->p) >= 5 && memcmp(c->p, "false", 5) == 0) {
                    c->p += 5;
                    m->m_val = 0;
                } else {
                    jl_skip_value(c);
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
                jl_skip_value(c);
                break;
            case 'A':
                if (m->has_A) return c->bad = 1, 0;
                m->has_A = 1;
                jl_skip_value(c);
                break;
            default:
                jl_skip_value(c);
            }
        } else if (kn == 2 && ks[0] == 'p' && ks[1] == 'u') {
            int_field(c, &m->pu);
        } else if (jl_key_is(ks, ke, "lastUpdateId")) {
            int_field(c, &m->last_id);
        } else if (jl_key_is(ks, ke, "bids")) {
            x->snapshot_keys = 1;
            if (!level_field(c, x, m, &m->has_bids, LOB_SIDE_BID, &m->b_start, &m->b_n, &m->b_order)) return 0;
        } else if (jl_key_is(ks, ke, "asks")) {
            x->snapshot_keys = 1;
            if (!level_field(c, x, m, &m->has_asks, LOB_SIDE_ASK, &m->a_start, &m->a_n, &m->a_order)) return 0;
        } else if (jl_key_is(ks, ke, "symbol")) {
            str_field(c, &m->has_symbol, &m->symbol_null, &m->symbol_str, &m->sym_s, &m->sym_e);
        } else {
            jl_skip_value(c);
        }
        if (c->bad) return 0;
        if (jl_eat(c, ',')) continue;
        if (jl_eat(c, '}')) return 1;
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

static int line(bn_parser *p, const char *s, const char *e, bn_msg *out, ctx *x) {
    const char *q;
    for (q = s; q < e && jl_is_space((unsigned char)*q); q++) {}
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

    jl_cur c = {sp + 1, e, 0};
    msgf m;
    memset(&m, 0, sizeof m);
    x->snapshot_keys = 0;
    int64_t ev0 = x->n_ev;
    int combined = 0;
    const char *name_s = NULL, *name_e = NULL;
    if (!jl_eat(&c, '{')) return L_SLOW;
    const char *save = c.p;
    const char *ks, *ke;
    if (jl_str(&c, &ks, &ke) && jl_key_is(ks, ke, "stream") && jl_eat(&c, ':') && jl_str(&c, &name_s, &name_e)) {
        combined = 1;
        int data_seen = 0;
        if (jl_eat(&c, '}')) return L_SLOW; /* no data */
        if (!jl_eat(&c, ',')) return L_SLOW;
        for (;;) {
            if (!jl_str(&c, &ks, &ke) || !jl_eat(&c, ':')) return x->full ? L_FULL : L_SLOW;
            if (jl_key_is(ks, ke, "data")) {
                if (data_seen || jl_peek(&c) != '{') return L_SLOW;
                data_seen = 1;
                if (!fields(&c, x, &m, 0)) return x->full ? L_FULL : L_SLOW;
            } else if (jl_key_is(ks, ke, "stream")) {
                return L_SLOW;
            } else if (!jl_skip_value(&c)) {
                return L_SLOW;
            }
            if (jl_eat(&c, ',')) continue;
            if (jl_eat(&c, '}')) break;
            return L_SLOW;
        }
        if (!data_seen) return L_SLOW;
    } else {
        c.p = save - 1;
        c.bad = 0;
        if (!fields(&c, x, &m, 1)) return x->full ? L_FULL : L_SLOW;
    }
    jl_ws(&c);
    if (c.p != c.e || c.bad) return L_SLOW;

    int kind;
    if (combined) {
        const char *at = memchr(name_s, '@', (size_t)(name_e - name_s));
        const char *n_s = at ? at + 1 : name_e;
        if (jl_startswith(n_s, name_e, "depth")) kind = BN_DEPTH;
        else if (jl_key_is(n_s, name_e, "trade") || jl_key_is(n_s, name_e, "aggTrade")) kind = BN_TRADE;
        else if (jl_key_is(n_s, name_e, "bookTicker")) kind = 0;
        else return L_SLOW; /* unknown stream: Python reports it */
    } else if (m.last_id.state != F_ABSENT) {
        kind = BN_SNAPSHOT;
    } else {
        if (m.has_e && !m.e_str) return L_SLOW;
        if (m.has_e && jl_key_is(m.e_s, m.e_e, "depthUpdate")) kind = BN_DEPTH;
        else if (m.has_e && (jl_key_is(m.e_s, m.e_e, "trade") || jl_key_is(m.e_s, m.e_e, "aggTrade"))) kind = BN_TRADE;
        else if ((m.has_e && jl_key_is(m.e_s, m.e_e, "bookTicker")) || (m.has_u_key && m.has_B && m.has_A)) kind = 0;
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
            if (!jl_to_units(&m.p, p->px_mant, p->px_exp, &a) || !jl_to_units(&m.q, p->qty_mant, p->qty_exp, &b))
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
