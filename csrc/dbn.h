/*
 * dbn.h - Databento DBN reader helpers (csrc/dbn.c): the record scanner and
 * the MBO order tracker behind lobsim/data/dbn.py. Read as part of the cffi
 * cdef (preprocessor lines dropped): plain declarations only.
 *
 * The tracker keeps its state (live orders, fills not yet reconciled, the
 * open batch) between calls, so a file is fed in blocks of any size and the
 * events are the same as in one call.
 */
#ifndef LOBSIM_DBN_H
#define LOBSIM_DBN_H

#include "lobsim.h"

/* Anomalies the tracker notes (lob_dbn_mbo_result.note_count / notes index). */
enum {
    LOB_DBN_UNKNOWN_CANCEL = 0,   /* C of an unknown order id: skipped (a = id) */
    LOB_DBN_UNKNOWN_MODIFY = 1,   /* M of an unknown order id: applied as an add (a = id) */
    LOB_DBN_CANCEL_EXCEEDS = 2,   /* C larger than the order (a = id, b = cancelled, c = order size) */
    LOB_DBN_DUPLICATE_ADD = 3,    /* A of a resting id: the old order is replaced (a = id) */
    LOB_DBN_ADD_NO_SIDE_SIZE = 4, /* A without side or size: skipped (a = id, b = side char, c = size) */
    LOB_DBN_UNKNOWN_ACTION = 5,   /* an action letter outside A C M R T F N: skipped (b = action byte) */
    LOB_DBN_TRADE_NO_PRICE = 6    /* T with UNDEF_PRICE: skipped (b = size) */
};
enum { LOB_DBN_N_NOTES = 7, LOB_DBN_MAX_NOTES = 5 };

/* Counters (lob_dbn_mbo_result.counts index); see lobsim/data/dbn.py for their meaning. */
enum {
    LOB_DBN_CANCEL_ABSORBED = 0,
    LOB_DBN_READDED = 1,
    LOB_DBN_CANCEL_BELOW_EXECUTED = 2,
    LOB_DBN_MODIFY_SIDE_CHANGE = 3,
    LOB_DBN_MODIFY_TO_ZERO = 4,
    LOB_DBN_FILL_NOT_EMITTED = 5,
    LOB_DBN_FILL_UNKNOWN_ORDER = 6,
    LOB_DBN_FILL_NOT_AT_RESTING = 7,
    LOB_DBN_FILL_EXCEEDS_ORDER = 8,
    LOB_DBN_FILL_EXECUTED = 9,
    LOB_DBN_FILLS_UNRECONCILED = 10,
    LOB_DBN_NONE_ACTION = 11,
    LOB_DBN_SNAPSHOT_RUNS_WITHOUT_LAST = 12
};
enum { LOB_DBN_N_COUNTS = 13 };

/* One noted anomaly: the record (index in the call's input) and its values. */
typedef struct lob_dbn_note {
    int64_t record;
    uint64_t a;
    int64_t b;
    int64_t c;
} lob_dbn_note;

/* What one lob_dbn_mbo_run / lob_dbn_mbo_finish call did (counts are this call's). */
typedef struct lob_dbn_mbo_result {
    int64_t n_events;       /* events written */
    int mark_prev;          /* 1: a batch ends on the last event of an earlier call */
    int64_t counts[13];     /* LOB_DBN_N_COUNTS */
    int64_t note_count[7];  /* per anomaly: how many in this call */
    int64_t note_n[7];      /* per anomaly: examples stored below (at most LOB_DBN_MAX_NOTES) */
    lob_dbn_note notes[7][5];
    int64_t resting;        /* live orders after the call */
} lob_dbn_mbo_result;

typedef struct lob_dbn_mbo lob_dbn_mbo;

/* A new tracker; execute = 1: F records of resting orders become EXECUTE events. */
int lob_dbn_mbo_new(lob_dbn_mbo **out, int execute);
void lob_dbn_mbo_free(lob_dbn_mbo *t);

/* Feed n MBO records (DBN layout, `stride` bytes apart: 56, or 64 with ts_out).
 * Writes the events (price = the record's 1e-9 price, qty = its size; the
 * caller converts to ticks and lots) and, per event, the index of its record
 * in ev_rec. cap >= 2 * n always suffices (LOB_ERR_CAPACITY otherwise,
 * nothing changed). Never fails on any record values. */
int lob_dbn_mbo_run(lob_dbn_mbo *t, const uint8_t *records, size_t n, size_t stride, lob_event *out,
                    int64_t *ev_rec, size_t cap, lob_dbn_mbo_result *res);

/* End of input: fills still unreconciled are counted; an open snapshot run
 * ends (res->mark_prev = 1 when that batch end needs marking). */
int lob_dbn_mbo_finish(lob_dbn_mbo *t, lob_dbn_mbo_result *res);

/* Record boundaries of DBN records in buf[0..len): offsets of complete
 * records (at most cap), their count and the bytes they span. Stops at the
 * first incomplete record. LOB_ERR_CORRUPT when a record's length field is
 * below the 16-byte record header (*consumed = its offset). */
int lob_dbn_scan(const uint8_t *buf, size_t len, int64_t *offsets, size_t cap, size_t *n_out, size_t *consumed);

#endif /* LOBSIM_DBN_H */
