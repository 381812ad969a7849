/*
 * bybit.c - fast path of the Bybit orderbook capture reader; see bybit.h.
 *
 * A line is taken only when it is plain JSON (no escapes, no non-ASCII bytes, no duplicate known
 * keys) of the known topic with integer ids and times in range and decimal strings that are whole
 * numbers of ticks / lots; every other line is BB_SLOW and Python, the reference, decides. The
 * book semantics (snapshot, delta, depth, snapshot check) live in apply(), used by both paths.
 */
#include "bybit.h"

#include <stdlib.h>
#include <string.h>

#include "jsonlines.h"

#define MS 1000000LL
#define MAX_MS (JL_INT64_MAX / MS)

typedef struct book {
    jl_side bid, ask;
    bb_level *tmp; /* the levels of the line being parsed */
    size_t tmp_cap;
    bb_level *chk; /* snapshot check scratch */
    size_t chk_cap;
} book;

int bb_init(bb_parser *p) {
    book *b = calloc(1, sizeof *b);
    if (!b) return -1;
    jl_side_init(&b->bid, 1);
    jl_side_init(&b->ask, -1);
    p->book = b;
    return 0;
}

void bb_free(bb_parser *p) {
    book *b = p->book;
    if (!b) return;
    jl_side_free(&b->bid);
    jl_side_free(&b->ask);
    free(b->tmp);
    free(b->chk);
    free(b);
    p->book = NULL;
}

static int grow(bb_level **v, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    bb_level *n = realloc(*v, c * sizeof *n);
    if (!n) return 0;
    *v = n;
    *cap = c;
    return 1;
}

/* ---- the snapshot check -------------------------------------------------- */

static int by_px(const void *a, const void *b) {
    const bb_level *x = a, *y = b;
    if (x->px != y->px) return x->px < y->px ? -1 : 1;
    return x->side < y->side ? -1 : x->side > y->side; /* side holds the wire order here */
}

/* Levels of one side of the snapshot with a size (the last one of a price wins) against our side:
 * -> prices whose size differs or that are on one side only. */
static int64_t side_diff(book *b, jl_side *s, const bb_level *lv, size_t n, int side) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (lv[i].side == side && lv[i].qty) {
            b->chk[m] = lv[i];
            b->chk[m].side = (int64_t)i;
            m++;
        }
    qsort(b->chk, m, sizeof *b->chk, by_px);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (i + 1 < m && b->chk[i + 1].px == b->chk[i].px) continue; /* a later one wins */
        b->chk[k++] = b->chk[i];
    }
    /* our side in ascending price */
    int64_t diff = 0, n_ours = s->n;
    size_t i = 0;
    int64_t j = 0;
    while (i < k || j < n_ours) {
        const jl_level *o = NULL;
        if (j < n_ours) o = s->sign > 0 ? &s->v[s->lo + j] : &s->v[s->lo + n_ours - 1 - j];
        if (i < k && o && b->chk[i].px == o->px) {
            diff += b->chk[i].qty != o->qty;
            i++, j++;
        } else if (i < k && (!o || b->chk[i].px < o->px)) {
            diff++, i++;
        } else {
            diff++, j++;
        }
    }
    return diff;
}

/* ---- one message applied to the book ------------------------------------- */

static void truncate(bb_parser *p, jl_side *s, lob_event *ev, int64_t *k, uint16_t fl) {
    int64_t extra = s->n - p->depth;
    if (extra <= 0) return;
    for (int64_t i = 0; i < extra; i++) jl_put(&ev[(*k)++], (int8_t)s->sign, LOB_EV_SET_LEVEL, s->v[s->lo + i].px, 0, fl);
    jl_side_truncate(s, p->depth);
    p->levels_truncated += extra;
}

static int apply(bb_parser *p, int snap, int64_t u, int64_t tx, int64_t tl, int64_t line, const bb_level *lv,
                 size_t n, bb_msg *msgs, size_t max_msgs, lob_event *ev, size_t max_ev, bb_note *notes,
                 size_t max_notes) {
    book *b = p->book;
    if ((size_t)p->n_msgs >= max_msgs || (size_t)p->n_notes >= max_notes || (size_t)p->n_ev > max_ev ||
        max_ev - (size_t)p->n_ev < 2 * n + 1)
        return BB_FULL;
    if (snap && p->synced && u == p->last_u && !grow(&b->chk, &b->chk_cap, n)) return BB_NOMEM;
    if (jl_side_reserve(&b->bid, (int64_t)n) || jl_side_reserve(&b->ask, (int64_t)n)) return BB_NOMEM;
    lob_event *out = ev + p->n_ev;
    int64_t k = 0;
    uint16_t fl = 0;
    p->messages++;
    if (snap) {
        p->snapshots++;
        if (p->synced) {
            if (u == p->last_u) {
                p->snapshots_checked++;
                for (int side = 1; side >= -1; side -= 2) {
                    int64_t d = side_diff(b, side > 0 ? &b->bid : &b->ask, lv, n, side);
                    if (d) {
                        bb_note *no = &notes[p->n_notes++];
                        no->line = line, no->kind = BB_NOTE_MISMATCH, no->a = side, no->b = u, no->c = d;
                        break;
                    }
                }
            } else {
                p->snapshots_not_comparable++;
                if (u == 1) p->restarts++;
            }
        }
        p->synced = 1;
        p->last_u = u;
        jl_side_clear(&b->bid);
        jl_side_clear(&b->ask);
        fl = LOB_FLAG_SNAPSHOT;
        jl_put(&out[k++], 0, LOB_EV_CLEAR, 0, 0, fl);
    } else {
        if (!p->synced) {
            p->n_pre++;
            if (!p->first_pre) p->first_pre = line;
            fl = LOB_FLAG_PRE_SNAPSHOT;
        } else if (u - 1 != p->last_u) {
            bb_note *no = &notes[p->n_notes++];
            no->line = line, no->kind = BB_NOTE_GAP, no->a = u, no->b = p->last_u, no->c = 0;
        }
        p->last_u = u;
    }
    for (size_t i = 0; i < n; i++) {
        jl_side *s = lv[i].side > 0 ? &b->bid : &b->ask;
        if (lv[i].qty) {
            jl_level l = {lv[i].px, lv[i].qty, 0, 0, 0, 0};
            jl_side_set(s, &l); /* room made above */
        } else if (!jl_side_del(s, lv[i].px) && !snap) {
            p->deletes_of_absent_levels++;
        }
        jl_put(&out[k++], (int8_t)lv[i].side, LOB_EV_SET_LEVEL, lv[i].px, lv[i].qty, fl);
    }
    truncate(p, &b->bid, out, &k, fl);
    truncate(p, &b->ask, out, &k, fl);
    if (k) {
        out[k - 1].flags |= LOB_FLAG_BATCH_END;
        bb_msg *m = &msgs[p->n_msgs++];
        m->line = line, m->tx = tx, m->tl = tl, m->n_ev = k;
        p->n_ev += k;
        p->ev_msgs++;
    }
    return BB_END;
}

int bb_apply(bb_parser *p, int snapshot, int64_t u, int64_t tx, int64_t tl, int64_t line, const bb_level *lv,
             size_t n, bb_msg *msgs, size_t max_msgs, lob_event *ev, size_t max_ev, bb_note *notes,
             size_t max_notes) {
    if (!p->book) return BB_NOMEM;
    return apply(p, snapshot, u, tx, tl, line, lv, n, msgs, max_msgs, ev, max_ev, notes, max_notes);
}

/* ---- one line ------------------------------------------------------------ */

enum { L_SKIP = 0, L_MSG = 1, L_SLOW = 2, L_FULL = 3, L_NOMEM = 4 };

/* [[price, size], ...] appended to b->tmp with side; statistics into st[4]. */
static int levels(jl_cur *c, bb_parser *p, book *b, size_t *n, int64_t side, int32_t *st) {
    if (!jl_eat(c, '[')) return c->bad = 1, 0;
    if (jl_eat(c, ']')) return 1;
    for (;;) {
        jl_dec px, qty;
        if (!jl_eat(c, '[') || !jl_decimal(c, &px) || !jl_eat(c, ',') || !jl_decimal(c, &qty) || !jl_eat(c, ']'))
            return c->bad = 1, 0;
        if (px.digits == 0) return c->bad = 1, 0; /* Python: must be positive */
        jl_stat(&st[0], &st[1], &px);
        jl_stat(&st[2], &st[3], &qty);
        if (!grow(&b->tmp, &b->tmp_cap, *n + 1)) return c->bad = 1, 0;
        bb_level *l = &b->tmp[(*n)++];
        l->side = side;
        l->px = l->qty = 0;
        if (!p->scan && (!jl_to_units(&px, p->px_mant, p->px_exp, &l->px) ||
                         !jl_to_units(&qty, p->qty_mant, p->qty_exp, &l->qty)))
            return c->bad = 1, 0; /* not a whole number of ticks / lots: Python names it */
        if (jl_eat(c, ',')) continue;
        if (jl_eat(c, ']')) return 1;
        return c->bad = 1, 0;
    }
}

static int int_in(jl_cur *c, int64_t lo, int64_t hi, int64_t *v) {
    int is_int;
    if (!jl_number(c, v, &is_int) || !is_int || *v < lo || *v > hi) return c->bad = 1, 0;
    return 1;
}

/* The local receive time prefix: -1 none, -2 not one Python takes here, else ns. */
static int64_t prefix(const char **sp, const char *e) {
    const char *s = *sp, *q = s;
    while (q < e && *q >= '0' && *q <= '9') q++;
    size_t nd = (size_t)(q - s);
    if (nd == 19 && q < e && *q == ' ') {
        if (memcmp(s, "9223372036854775807", 19) > 0) return -2;
        int64_t v = 0;
        for (const char *r = s; r < q; r++) v = v * 10 + (*r - '0');
        *sp = q + 1;
        return v;
    }
    if (nd < 1 || nd > 11) return -2;
    int64_t v = 0;
    for (const char *r = s; r < q; r++) v = v * 10 + (*r - '0');
    if (v > 9223372035LL) return -2; /* past int64 ns */
    v *= 1000000000LL;
    if (q < e && *q == '.') {
        const char *f = ++q;
        while (q < e && *q >= '0' && *q <= '9') q++;
        if (q == f) return -2;
        int64_t fr = 0;
        int k = 0;
        for (const char *r = f; r < q && k < 9; r++, k++) fr = fr * 10 + (*r - '0');
        for (; k < 9; k++) fr *= 10;
        v += fr;
    }
    if (e - q < 2 || q[0] != ':' || q[1] != ' ') return -2;
    *sp = q + 2;
    return v;
}

static int line(bb_parser *p, const char *s, const char *e, bb_msg *msgs, size_t max_msgs, lob_event *ev,
                size_t max_ev, bb_note *notes, size_t max_notes) {
    book *b = p->book;
    while (s < e && jl_is_space((unsigned char)*s)) s++;
    while (e > s && jl_is_space((unsigned char)e[-1])) e--;
    if (s == e) {
        p->blank_lines++;
        return L_SKIP;
    }
    int64_t tl = -1;
    if (*s != '{') {
        tl = prefix(&s, e);
        if (tl == -2) return L_SLOW;
    }
    if (p->local < 0 || p->local != (tl >= 0) || !p->topic_len) return L_SLOW;
    jl_cur c = {s, e, 0};
    int has_topic = 0, has_type = 0, has_ts = 0, has_cts = 0, has_data = 0, snap = 0;
    int64_t ts = 0, cts = -1, u = -1;
    size_t n_b = 0;
    int32_t st[4] = {0, 0, 0, 0};
    const char *ks, *ke, *vs, *ve;
    if (!jl_eat(&c, '{') || jl_eat(&c, '}')) return L_SLOW;
    for (;;) {
        if (!jl_str(&c, &ks, &ke) || !jl_eat(&c, ':')) return L_SLOW;
        if (jl_key_is(ks, ke, "topic")) {
            if (has_topic++ || !jl_str(&c, &vs, &ve)) return L_SLOW;
            if ((size_t)(ve - vs) != (size_t)p->topic_len || memcmp(vs, p->topic, (size_t)p->topic_len)) return L_SLOW;
        } else if (jl_key_is(ks, ke, "type")) {
            if (has_type++ || !jl_str(&c, &vs, &ve)) return L_SLOW;
            if (jl_key_is(vs, ve, "snapshot")) snap = 1;
            else if (!jl_key_is(vs, ve, "delta")) return L_SLOW;
        } else if (jl_key_is(ks, ke, "ts")) {
            if (has_ts++ || !int_in(&c, 0, MAX_MS, &ts)) return L_SLOW;
        } else if (jl_key_is(ks, ke, "cts")) {
            if (has_cts++) return L_SLOW;
            if (jl_peek(&c) == 'n') {
                if (!jl_lit(&c, "null", 4)) return L_SLOW;
            } else if (!int_in(&c, 0, MAX_MS, &cts)) {
                return L_SLOW;
            }
        } else if (jl_key_is(ks, ke, "data")) {
            if (has_data++ || !jl_eat(&c, '{')) return L_SLOW;
            int has_s = 0, has_b = 0, has_a = 0, has_u = 0;
            size_t n_a = 0;
            if (!jl_eat(&c, '}')) {
                for (;;) {
                    if (!jl_str(&c, &ks, &ke) || !jl_eat(&c, ':')) return L_SLOW;
                    if (jl_key_is(ks, ke, "s")) {
                        const char *sym = p->topic + p->sym_off;
                        size_t sn = (size_t)(p->topic_len - p->sym_off);
                        if (has_s++ || !jl_str(&c, &vs, &ve) || (size_t)(ve - vs) != sn || memcmp(vs, sym, sn))
                            return L_SLOW;
                    } else if (jl_key_is(ks, ke, "b")) {
                        if (has_b++ || has_a) return L_SLOW; /* bids are parsed first into tmp */
                        if (!levels(&c, p, b, &n_b, 1, st)) return L_SLOW;
                    } else if (jl_key_is(ks, ke, "a")) {
                        if (has_a++) return L_SLOW;
                        size_t n0 = n_b;
                        if (!levels(&c, p, b, &n_b, -1, st)) return L_SLOW;
                        n_a = n_b - n0;
                    } else if (jl_key_is(ks, ke, "u")) {
                        if (has_u++ || !int_in(&c, 0, JL_INT64_MAX, &u)) return L_SLOW;
                    } else if (!jl_skip_value(&c)) {
                        return L_SLOW;
                    }
                    if (jl_eat(&c, ',')) continue;
                    if (jl_eat(&c, '}')) break;
                    return L_SLOW;
                }
            }
            (void)n_a;
            if (!has_u) return L_SLOW;
        } else if (!jl_skip_value(&c)) {
            return L_SLOW;
        }
        if (c.bad) return L_SLOW;
        if (jl_eat(&c, ',')) continue;
        if (jl_eat(&c, '}')) break;
        return L_SLOW;
    }
    jl_ws(&c);
    if (c.p != c.e || c.bad || !has_topic || !has_type || !has_ts || !has_data) return L_SLOW;
    if (p->px_wire < st[0]) p->px_wire = st[0];
    if (p->px_sig < st[1]) p->px_sig = st[1];
    if (p->qty_wire < st[2]) p->qty_wire = st[2];
    if (p->qty_sig < st[3]) p->qty_sig = st[3];
    if (p->scan) {
        if (snap) p->synced = 1;
        if (snap || n_b) p->ev_msgs++;
        return L_MSG;
    }
    int r = apply(p, snap, u, cts >= 0 ? cts * MS : ts * MS, tl, p->line + 1, b->tmp, n_b, msgs, max_msgs, ev,
                  max_ev, notes, max_notes);
    return r == BB_END ? L_MSG : r == BB_FULL ? L_FULL : L_NOMEM;
}

int bb_parse(bb_parser *p, const char *buf, size_t len, bb_msg *msgs, size_t max_msgs, lob_event *ev,
             size_t max_ev, bb_note *notes, size_t max_notes) {
    if (p->pos < 0) p->pos = 0;
    if (!p->book) return BB_NOMEM;
    while ((size_t)p->pos < len) {
        const char *s = buf + p->pos;
        const char *nl = memchr(s, '\n', len - (size_t)p->pos);
        const char *e = nl ? nl : buf + len;
        const char *next = nl ? nl + 1 : buf + len;
        int r = line(p, s, e, msgs, max_msgs, ev, max_ev, notes, max_notes);
        if (r == L_SLOW) return BB_SLOW;
        if (r == L_FULL) return BB_FULL;
        if (r == L_NOMEM) return BB_NOMEM;
        p->line++;
        p->pos = next - buf;
        if (p->block_msgs > 0 && p->ev_msgs >= p->block_msgs && p->synced) return BB_BLOCK;
    }
    return BB_END;
}
