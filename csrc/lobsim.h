/*
 * lobsim.h - the one public contract of the lobsim C core.
 *
 * The cffi build (csrc/build_ffi.py) reads this file as its cdef after
 * dropping preprocessor lines, so everything below the includes must stay
 * plain C declarations that cffi can parse: enums with explicit values,
 * typedefs, prototypes. No macros, no inline functions.
 *
 * Units: prices are integer ticks, quantities integer lots, times integer ns.
 * Every fallible call returns a status code (LOB_OK = 0, negative = error)
 * and writes results through pointers; lob_strerror() names a code.
 * Ownership: a lob_book owns its orders and levels; only ids and copies
 * cross this boundary, never pointers into the book.
 */
#ifndef LOBSIM_H
#define LOBSIM_H

#include <stddef.h>
#include <stdint.h>

/* Status codes. Keep in sync with lob_strerror() and lobsim/_core.py. */
enum {
    LOB_OK = 0,
    LOB_ERR_NOMEM = -1,            /* allocation failed */
    LOB_ERR_INVALID_ARG = -2,      /* NULL pointer or bad argument */
    LOB_ERR_UNKNOWN_ORDER = -3,    /* order id not in the book */
    LOB_ERR_DUPLICATE_ORDER = -4,  /* order id already in the book */
    LOB_ERR_BAD_QTY = -5,          /* qty <= 0, or more than the order has */
    LOB_ERR_BAD_PRICE = -6,        /* price out of the accepted range */
    LOB_ERR_BAD_SIDE = -7,         /* side not +1/-1 where one is needed */
    LOB_ERR_BAD_KIND = -8,         /* unknown event kind, or not for this book type */
    LOB_ERR_BAD_TIF = -9,          /* unknown time in force */
    LOB_ERR_WOULD_CROSS = -10,     /* post-only order would take liquidity */
    LOB_ERR_CAPACITY = -11,        /* output buffer too small; nothing changed */
    LOB_ERR_CORRUPT = -12          /* invariant check failed */
};
enum { LOB_N_ERRORS = 13 };        /* number of codes, 0 and the negatives */

/* Sides: +1 bid / buy, -1 ask / sell, 0 = none or unknown (trades, status). */
enum { LOB_SIDE_NONE = 0, LOB_SIDE_BID = 1, LOB_SIDE_ASK = -1 };

/* Event kinds (lob_event.kind). */
enum {
    LOB_EV_ADD = 1,        /* L3: new resting order (order_id, side, price, qty) */
    LOB_EV_REDUCE = 2,     /* L3: partial cancel, qty = amount removed */
    LOB_EV_DELETE = 3,     /* L3: full cancel of order_id */
    LOB_EV_EXECUTE = 4,    /* L3: resting order traded, qty = amount, side = resting side */
    LOB_EV_MODIFY = 5,     /* L3: new price and/or qty (absolute) for order_id */
    LOB_EV_SET_LEVEL = 6,  /* L2: absolute size at (side, price); qty 0 deletes */
    LOB_EV_TRADE = 7,      /* trade print, side = aggressor (0 unknown); no book change */
    LOB_EV_CLEAR = 8,      /* clear the whole book */
    LOB_EV_STATUS = 9      /* trading status, qty = LOB_STATUS_*; no book change */
};
enum { LOB_EV_KIND_MAX = 9 };

/* Event flags (lob_event.flags), a bit set. */
enum {
    LOB_FLAG_SNAPSHOT = 1,   /* part of a snapshot rather than a live change */
    LOB_FLAG_BATCH_END = 2,  /* last event of an atomic batch: book consistent after it */
    LOB_FLAG_HIDDEN = 4,     /* non-displayed liquidity (e.g. hidden execution print) */
    LOB_FLAG_PRE_SNAPSHOT = 8 /* read before the feed's first snapshot (kept on request): the book
                                 is partial until the user supplies an earlier snapshot */
};

/* Trading status carried in a STATUS event's qty. */
enum { LOB_STATUS_HALT = 1, LOB_STATUS_QUOTING = 2, LOB_STATUS_TRADING = 3 };

/* Time in force for lob_book_submit(). */
enum {
    LOB_TIF_GTC = 0,        /* match, rest the remainder */
    LOB_TIF_IOC = 1,        /* match, cancel the remainder */
    LOB_TIF_FOK = 2,        /* match all now or nothing */
    LOB_TIF_POST_ONLY = 3,  /* rest only; LOB_ERR_WOULD_CROSS if it would match */
    LOB_TIF_MARKET = 4,     /* match at any price, cancel the remainder */
    LOB_TIF_DAY = 5,        /* simulator only: a GTC that expires at the session end */
    LOB_TIF_GTD = 6         /* simulator only: a GTC that expires at its own expire_ns */
};

/* Book types. */
enum { LOB_BOOK_L2 = 2, LOB_BOOK_L3 = 3 };

/* The normalized event, mirrored by lobsim.EVENT_DTYPE (48 bytes). */
typedef struct lob_event {
    int64_t ts_exch;    /* ns, when the venue did it */
    int64_t ts_local;   /* ns, when the user's machine saw it */
    uint64_t order_id;  /* 0 for L2 */
    int64_t price;      /* ticks */
    int64_t qty;        /* lots */
    int8_t side;        /* LOB_SIDE_* */
    uint8_t kind;       /* LOB_EV_* */
    uint16_t flags;     /* LOB_FLAG_* */
    uint32_t reserved;  /* zero; keeps the struct 8-byte aligned */
} lob_event;

/* One fill of an incoming order against a resting one, mirrored by FILL_DTYPE. */
typedef struct lob_fill {
    uint64_t maker_id;         /* resting order */
    uint64_t taker_id;         /* incoming order */
    int64_t price;             /* the resting order's price */
    int64_t qty;
    int64_t maker_remaining;   /* resting order's qty after this fill (0 = gone) */
    int8_t taker_side;         /* LOB_SIDE_BID for a buy */
    uint8_t reserved[7];
} lob_fill;

/* A copy of one resting order with its queue position. */
typedef struct lob_order_info {
    uint64_t order_id;
    int64_t price;
    int64_t qty;
    int64_t qty_ahead;      /* lots resting before it at its level */
    int64_t orders_ahead;   /* orders resting before it at its level */
    int8_t side;
} lob_order_info;

/* Outcome of lob_book_apply() / lob_depth_series(). */
typedef struct lob_apply_result {
    int64_t applied;               /* events applied cleanly */
    int64_t rejected;              /* events skipped (non-strict mode) */
    int64_t first_error_index;     /* first rejected event, or the one that stopped the run; -1 if none */
    int32_t first_error;           /* its status code, LOB_OK if none */
    int64_t by_error[13];          /* rejected count by -code (index 1..12) */
} lob_apply_result;

/* Conservation counters of an L3 book: added == resting + executed + cancelled
 * (cumulative counters wrap modulo 2^64; resting never exceeds INT64_MAX: a
 * change that would push it past is refused with LOB_ERR_BAD_QTY). */
typedef struct lob_book_totals {
    uint64_t added;      /* ADD qty, modify increases, rested submit remainders */
    uint64_t executed;   /* EXECUTE qty and maker qty of submit fills */
    uint64_t cancelled;  /* REDUCE, DELETE, modify decreases, CLEAR */
    uint64_t resting;    /* qty now in the book */
} lob_book_totals;

typedef struct lob_book lob_book;

/* Name of a status code; never NULL, static storage. */
const char *lob_strerror(int code);

/* Create an empty book of type LOB_BOOK_L3 or LOB_BOOK_L2 into *out.
 * The caller owns it and frees it with lob_book_free(). */
int lob_book_new(int book_type, lob_book **out);
/* Free a book and everything it owns; NULL is a no-op. */
void lob_book_free(lob_book *book);

/* L3 operations (LOB_ERR_BAD_KIND on an L2 book). A reduce or execute of an
 * order's whole remaining qty removes it; more than that is LOB_ERR_BAD_QTY.
 * modify: new price, or a larger qty, moves the order to the tail of its
 * (new) level; a smaller qty at the same price keeps its place. */
int lob_book_add(lob_book *book, uint64_t order_id, int side, int64_t price, int64_t qty);
int lob_book_reduce(lob_book *book, uint64_t order_id, int64_t qty);
int lob_book_delete(lob_book *book, uint64_t order_id);
int lob_book_execute(lob_book *book, uint64_t order_id, int64_t qty);
int lob_book_modify(lob_book *book, uint64_t order_id, int64_t price, int64_t qty);

/* L2 operation (LOB_ERR_BAD_KIND on an L3 book): absolute size, 0 deletes. */
int lob_book_set_level(lob_book *book, int side, int64_t price, int64_t qty);

/* Both types: remove everything. */
int lob_book_clear(lob_book *book);

/* What happened to a submitted order (lob_submit_result.outcome). */
enum {
    LOB_SUBMIT_FILLED = 1,    /* filled in full */
    LOB_SUBMIT_RESTED = 2,    /* the remainder rests (GTC, POST_ONLY); filled_qty may be > 0 */
    LOB_SUBMIT_KILLED = 3,    /* remainder cancelled: IOC/MARKET leftover, or FOK that could not fill in full */
    LOB_SUBMIT_REJECTED = 4   /* refused, book unchanged; reject_code says why (LOB_ERR_WOULD_CROSS) */
};

/* Everything lob_book_submit() did with an order: filled + rested + killed == qty
 * (all 0 for a rejection). */
typedef struct lob_submit_result {
    size_t n_fills;        /* fills written (or needed, on LOB_ERR_CAPACITY) */
    int64_t filled_qty;
    int64_t rested_qty;
    int64_t killed_qty;
    int32_t outcome;       /* LOB_SUBMIT_* */
    int32_t reject_code;   /* LOB_ERR_* for a rejection, else LOB_OK */
} lob_submit_result;

/* Match an incoming order against the L3 book (price-time priority, trades at
 * the resting price). Fills go to fills[0..out->n_fills). If more than `cap`
 * fills would be needed, returns LOB_ERR_CAPACITY with out->n_fills = the
 * number needed and the book unchanged. A post-only order that would take
 * liquidity is not an error: LOB_OK with outcome LOB_SUBMIT_REJECTED. Bad
 * arguments (side, qty, price, tif, duplicate id) return their error code.
 * The price of a MARKET order is ignored. */
int lob_book_submit(lob_book *book, uint64_t order_id, int side, int64_t price,
                    int64_t qty, int tif, lob_fill *fills, size_t cap,
                    lob_submit_result *out);

/* Apply n events in order. strict != 0: stop at the first event that cannot
 * be applied and return its code (events before it stay applied). strict == 0:
 * skip such events, count them in *result, return LOB_OK. */
int lob_book_apply(lob_book *book, const lob_event *events, size_t n, int strict,
                   lob_apply_result *result);

/* Apply events and record the top `levels` of each side after every event
 * (batch_end_only == 0) or after events flagged LOB_FLAG_BATCH_END. Row r of
 * each output array holds `levels` entries; empty levels are price 0, qty 0.
 * row_index (may be NULL) gets the event index of each row. Needs
 * rows_cap >= rows produced, else LOB_ERR_CAPACITY before any change. */
int lob_depth_series(lob_book *book, const lob_event *events, size_t n,
                     size_t levels, int batch_end_only, int strict,
                     int64_t *bid_px, int64_t *bid_qty, int64_t *ask_px,
                     int64_t *ask_qty, int64_t *row_index, size_t rows_cap,
                     size_t *rows_out, lob_apply_result *result);

/* Best level of a side: returns 1 and writes price/qty, or 0 if the side is empty. O(1). */
int lob_book_best(const lob_book *book, int side, int64_t *price, int64_t *qty);
/* Top `levels` of both sides, best first, in one consistent read:
 * bid_px/bid_qty and ask_px/ask_qty get `levels` entries each (empty levels
 * are price 0, qty 0); *n_bid / *n_ask = levels present. O(levels). */
int lob_book_depth(const lob_book *book, size_t levels, int64_t *bid_px, int64_t *bid_qty,
                   int64_t *ask_px, int64_t *ask_qty, size_t *n_bid, size_t *n_ask);
size_t lob_book_order_count(const lob_book *book);
size_t lob_book_level_count(const lob_book *book, int side);
/* Copy of a resting order with its queue position. O(orders ahead of it at
 * its level): a walk of the FIFO, meant for inspection, not for hot loops. */
int lob_book_order(const lob_book *book, uint64_t order_id, lob_order_info *out);
int lob_book_totals_get(const lob_book *book, lob_book_totals *out);

/* Memory held by the book's pools, id map and level index, in bytes (it
 * follows live orders and levels: pools shrink when they fall far below
 * capacity, and lob_book_clear() returns to the initial size). */
size_t lob_book_memory(const lob_book *book);

/* Check every invariant (levels sorted, totals and counts match their orders,
 * FIFO links consistent, best cursors right, id map consistent, conservation).
 * LOB_OK, or LOB_ERR_CORRUPT with a description in msg (NUL-terminated). */
int lob_book_check(const lob_book *book, char *msg, size_t msg_len);

/* ======================================================================
 * LOBSTER reader core (csrc/lobster.c)
 *
 * Parses the LOBSTER message and orderbook CSVs block by block and replays
 * the messages against the vendor's top-N book as a stream: a
 * lob_lobster_stream carries the reader's state (known orders, synthetic
 * liquidity for ids the file never added, the vendor's previous row, the
 * running max of times) from one block to the next, so the events do not
 * depend on how the input is cut. The Python reader (lobsim/data/lobster.py)
 * reads the blocks, names errors and builds the report.
 * ====================================================================== */

/* Why a feed stopped early in strict mode (lob_lobster_result.stop_reason). */
enum {
    LOB_LOBSTER_STOP_NONE = 0,           /* ran to the end */
    LOB_LOBSTER_STOP_SIZE_MISMATCH = 1,  /* message size disagrees with a known order's remaining size */
    LOB_LOBSTER_STOP_REMOVED = 2,        /* message on an order the file's own messages already removed */
    LOB_LOBSTER_STOP_UNKNOWN = 3         /* message on an order id never added before it */
};

/* Columns of one orderbook level, in the vendor's order. */
enum { LOB_LOBSTER_ASK_PX = 0, LOB_LOBSTER_ASK_SZ = 1, LOB_LOBSTER_BID_PX = 2, LOB_LOBSTER_BID_SZ = 3 };

/* Columns of a parsed message row, in the file's order (the time as int64 ns). */
enum {
    LOB_LOBSTER_TIME = 0, LOB_LOBSTER_TYPE = 1, LOB_LOBSTER_ID = 2, LOB_LOBSTER_SIZE = 3,
    LOB_LOBSTER_PRICE = 4, LOB_LOBSTER_DIR = 5, LOB_LOBSTER_MSG_COLS = 6
};

/* What a feed found wrong in its input (lob_lobster_result.error; error_row,
 * error_col (0-based column of the row) and error_value say where and what). */
enum {
    LOB_LOBSTER_ERR_NONE = 0,
    LOB_LOBSTER_ERR_TYPE = 1,          /* message type not 1..7 */
    LOB_LOBSTER_ERR_DIRECTION = 2,     /* direction not +-1 */
    LOB_LOBSTER_ERR_SIZE = 3,          /* size <= 0 on a priced message (types 1-6) */
    LOB_LOBSTER_ERR_PRICE = 4,         /* price <= 0 on a priced message */
    LOB_LOBSTER_ERR_PRICE_RANGE = 5,   /* price >= 2^61 on a priced message */
    LOB_LOBSTER_ERR_ID = 6,            /* order id <= 0 on types 1-4 */
    LOB_LOBSTER_ERR_ID_NEGATIVE = 7,   /* order id < 0 */
    LOB_LOBSTER_ERR_STATUS = 8,        /* status (type 7) price not -1, 0 or 1 */
    LOB_LOBSTER_ERR_OFF_TICK = 9,      /* book message price (types 1-4) not a multiple of raw_tick */
    LOB_LOBSTER_ERR_PRICE_SCALE = 10,  /* price * price_mul overflows int64 */
    LOB_LOBSTER_ERR_LOT = 11,          /* message size not a multiple of size_div, or * size_mul overflows */
    LOB_LOBSTER_ERR_BOOK_LOT = 12,     /* orderbook size (error_col) likewise */
    LOB_LOBSTER_ERR_BOOK = 13,         /* orderbook row fails lob_lobster_check_rows (error_col: LOB_SIDE_*) */
    LOB_LOBSTER_ERR_DUPLICATE = 14,    /* an id added twice (error_value: the id) */
    LOB_LOBSTER_ERR_OVERFLOW = 15,     /* a level total overflows int64 */
    LOB_LOBSTER_ERR_BOOK_SCALE = 16    /* orderbook price (error_col) * price_mul overflows int64 */
};

/* Parse complete lines of a header-less integer CSV of `ncols` columns
 * (time_first: column 0 is 'seconds[.fraction]', up to 6 integer digits,
 * stored as ns, digits below 1 ns truncated) into out (row-major, at most
 * cap_rows rows). The last line may lack its newline only if `final`; "\r\n"
 * ends a line too. */
typedef struct lob_lobster_parsed {
    size_t rows;         /* rows written */
    size_t consumed;     /* bytes of buf used: whole lines (all of buf when final and no error) */
    int64_t truncated;   /* times with more than 9 decimals */
    int64_t error_line;  /* 0-based line in buf of the first malformed line, -1 if none */
    int64_t min0, max0;  /* smallest and largest value of column 0 in the rows written (0 if none) */
} lob_lobster_parsed;

/* LOB_OK (it stops early at cap_rows: consumed < len), LOB_ERR_INVALID_ARG
 * (NULL pointer, ncols 0) or LOB_ERR_CORRUPT at a malformed line (wrong
 * column count, a field that is not an integer / time or does not fit int64,
 * an empty line): error_line names it, rows before it are written. */
int lob_lobster_parse(const char *buf, size_t len, int final, size_t ncols, int time_first,
                      int64_t *out, size_t cap_rows, lob_lobster_parsed *result);

/* Check n vendor rows (row-major, 4 * levels columns): per side, sizes >= 0
 * and every occupied level (size > 0) priced in (0, 2^61), a multiple of
 * raw_tick (>= 1), strictly worse than the level before it, which must be
 * occupied too. LOB_OK (*bad_row = -1), LOB_ERR_BAD_PRICE with *bad_row the
 * first bad row (0-based) and *bad_side LOB_SIDE_ASK if its asks are bad,
 * else LOB_SIDE_BID; LOB_ERR_INVALID_ARG (NULL pointer, raw_tick < 1, levels 0). */
int lob_lobster_check_rows(const int64_t *rows, size_t n, size_t levels, int64_t raw_tick, int64_t *bad_row,
                           int *bad_side);

/* Counters and first occurrences of one feed, for the validation report.
 * Rows are 0-based message rows counted from the stream's start; -1 where none. */
typedef struct lob_lobster_result {
    size_t n_events;                  /* events this feed produced (those past cap wait in the stream) */
    int32_t error;                    /* LOB_LOBSTER_ERR_* */
    int64_t error_row;                /* the row of an error, else -1 */
    int64_t error_col;                /* its column (message or orderbook row) */
    int64_t error_value;              /* the offending value */
    int32_t stop_reason;              /* LOB_LOBSTER_STOP_* */
    int64_t stop_row;                 /* strict mode: the row that stopped the replay */
    int64_t seed_mismatch;            /* 1: message 1 adds more than orderbook row 1 shows */
    int64_t out_of_order;             /* rows earlier than the latest time seen before them */
    int64_t out_of_order_row;
    int64_t out_of_order_ts;          /* its time and the latest time before it */
    int64_t out_of_order_max;
    int64_t halts;                    /* status messages with price -1 */
    int64_t halt_row;
    int64_t skipped;                  /* type 5/6 prints between ticks (no event) */
    int64_t skipped_row;
    int64_t skipped_price;
    int64_t order_mismatch;           /* messages naming a known order at another side/price */
    int64_t order_mismatch_row;
    int64_t order_mismatch_id;
    int64_t size_mismatch;            /* messages disagreeing with their order's tracked size */
    int64_t size_mismatch_row;
    int64_t size_mismatch_id;
    int64_t size_mismatch_qty;        /* the message's size */
    int64_t size_mismatch_remaining;  /* the tracked remaining size */
    int64_t removed;                  /* messages on orders already removed by the file */
    int64_t removed_row;
    int64_t removed_id;
    int64_t removed_type;
    int64_t unknown_row;              /* first message on an id never added before it */
    int64_t unknown_id;
    int64_t unknown_type;
    int64_t unknown_from_synthetic;   /* unknown ids taken from synthetic liquidity */
    int64_t unknown_after_forgetting_stale;
    int64_t unknown_from_hidden_depth;
    int64_t depth_revealed;           /* revealed levels raised to the vendor's size */
    int64_t stale_levels_reset;       /* revealed levels lowered to the vendor's size */
    int64_t stale_orders_forgotten;   /* known orders dropped as stale */
    int64_t messages_on_forgotten_orders;
} lob_lobster_result;

typedef struct lob_lobster_stream lob_lobster_stream;

/* A replay of one message/orderbook pair. levels >= 1; raw_tick: the tick in
 * raw price units (USD * 10000, >= 1). Event prices are raw_price * price_mul
 * or raw_price / price_div, event sizes size * size_mul or size / size_div
 * (one of each pair is 1; price_div divides raw_tick). strict != 0: the
 * first size mismatch, removed or unknown id stops the replay. NULL on bad
 * arguments or out of memory. */
lob_lobster_stream *lob_lobster_stream_new(size_t levels, int64_t raw_tick, int64_t price_mul, int64_t price_div,
                                           int64_t size_mul, int64_t size_div, int strict);
void lob_lobster_stream_free(lob_lobster_stream *stream);

/* Replay the next n messages: msgs holds n rows of LOB_LOBSTER_MSG_COLS
 * (the time as UTC ns), book the vendor's n rows after each (4 * levels
 * columns, row-major, LOB_LOBSTER_* order; an empty level has size 0). Both
 * are converted in place (sizes to lots). book_checked != 0: the caller has
 * checked these rows with lob_lobster_check_rows (LOB_OK), so the feed skips
 * that check; otherwise a bad row is LOB_LOBSTER_ERR_BOOK (after the message
 * checks). The first feed starts with the seed
 * batch (the book before message 1 as SNAPSHOT ADDs of synthetic orders, ids
 * 2^63 + serial, or one CLEAR if it is empty); then one batch per message
 * (none for a skipped print), its last event flagged LOB_FLAG_BATCH_END.
 * Events go to events[0..cap), those past cap into the stream (fetch them
 * with lob_lobster_stream_take before the next feed); result->n_events counts all.
 * Returns LOB_OK (also on a strict stop: stop_reason set); on bad input
 * LOB_ERR_INVALID_ARG / LOB_ERR_BAD_PRICE / LOB_ERR_BAD_QTY /
 * LOB_ERR_DUPLICATE_ORDER with result->error set; LOB_ERR_NOMEM. After an
 * error or a strict stop the stream refuses further feeds (LOB_ERR_INVALID_ARG). */
int lob_lobster_stream_feed(lob_lobster_stream *stream, size_t n, int64_t *msgs, int64_t *book, int book_checked,
                            lob_event *events, size_t cap, lob_lobster_result *result);

/* Copy the last feed's events past its cap (result->n_events - cap of them) to dst. */
int lob_lobster_stream_take(lob_lobster_stream *stream, lob_event *dst, size_t n);

/* Bytes of memory the stream holds (its state: grows with the orders seen). */
size_t lob_lobster_stream_memory(const lob_lobster_stream *stream);

/* ======================================================================
 * Synthetic order flow (csrc/synthetic.c)
 *
 * A seeded zero-intelligence L3 market (the model is documented in
 * lobsim/data/synthetic.py), streamed: a lob_synth holds the market's state
 * and writes the next events of a stream of n_events into any buffer, so
 * the bytes do not depend on how the stream is chunked, and are the same for
 * a seed on every platform. A strict L3 book replays them without an error.
 * ====================================================================== */

/* The knobs (lobsim.data.synthetic.generate() documents each). Bounds,
 * checked by lob_synth_new: n_events >= 0; 1 <= tick_levels <= 1e6;
 * 4 * tick_levels < start_price <= 2^40; 1 <= mean_qty <= 1e6;
 * 0 < add_rate <= 1e6; cancel_rate, execute_rate, modify_rate and
 * mean_offset in [0, 1e6]; reduce_share in [0, 1]; volatility in [0, 1000];
 * mean_gap_ns, latency_ns, latency_jitter_ns in [0, 1e12];
 * 0 <= t0_ns <= 2^62; 1 <= first_order_id <= 2^63. */
typedef struct lob_synth_params {
    int64_t n_events;          /* length of the stream; it ends with a complete batch */
    int64_t tick_levels;       /* furthest a new order rests from the latent mid, ticks */
    int64_t start_price;       /* initial latent mid, ticks */
    double mean_qty;           /* mean size of limit and market orders, lots (geometric >= 1) */
    double add_rate;           /* relative rate of limit orders per step */
    double cancel_rate;        /* rate of cancels per resting order */
    double reduce_share;       /* share of cancels that are partial REDUCEs */
    double execute_rate;       /* relative rate of market orders (sweeps) */
    double modify_rate;        /* relative rate of MODIFYs */
    double mean_offset;        /* mean distance of a new order behind the mid, ticks */
    double volatility;         /* standard deviation of the latent mid per step, ticks */
    double mean_gap_ns;        /* mean time between steps (exponential) */
    int64_t latency_ns;        /* feed latency floor */
    double latency_jitter_ns;  /* mean of the exponential feed latency on top */
    int64_t t0_ns;             /* clock before the first step */
    uint64_t first_order_id;   /* ids are consecutive from here (market orders take one too) */
} lob_synth_params;

typedef struct lob_synth lob_synth;

/* Create a generator for params (copied) and seed into *out; the caller owns
 * it and frees it with lob_synth_free(). LOB_ERR_INVALID_ARG for NULL or a
 * knob out of bounds (*out = NULL), LOB_ERR_NOMEM. */
int lob_synth_new(const lob_synth_params *params, uint64_t seed, lob_synth **out);

/* Write the next events of the stream into events[0..cap); *n_out = events
 * written, fewer than cap only when the stream is exhausted (then 0 on every
 * later call). Consecutive calls continue the one stream: a batch may
 * straddle two calls. LOB_ERR_INVALID_ARG for NULL (events may be NULL when
 * cap is 0); LOB_ERR_NOMEM or LOB_ERR_CORRUPT (the generator's own book
 * disagreed with its state; a bug) leave the events before it written,
 * counted in *n_out, and are returned again by every later call. */
int lob_synth_next(lob_synth *state, lob_event *events, size_t cap, size_t *n_out);

/* Free a generator and everything it owns; NULL is a no-op. */
void lob_synth_free(lob_synth *state);

/* ======================================================================
 * Simulated venue and replay loop (csrc/venue.c)
 *
 * The user's orders in the replayed queues. A lob_sim holds two books over
 * one event stream: the venue book at the ts_exch cursor (where the user's
 * orders are matched and queued) and the local book at the ts_local cursor
 * (the strategy's view), joined by two FIFO channels stamped with arrival
 * times (requests local -> venue, responses venue -> local). lob_sim_run()
 * merges everything in time order and returns only at the strategy's
 * wake-ups (timer, local top-of-book change, its own order events), when it
 * needs the next chunk of data, or at a requested local time.
 * ====================================================================== */

/* Order states (lob_sim_msg.state), mirrored by lobsim.OrderState. */
enum {
    LOB_ORD_NEW = 0,               /* sent, not yet at the venue */
    LOB_ORD_ACCEPTED = 1,
    LOB_ORD_PARTIALLY_FILLED = 2,
    LOB_ORD_FILLED = 3,
    LOB_ORD_CANCELLED = 4,
    LOB_ORD_REJECTED = 5,
    LOB_ORD_EXPIRED = 6,
    LOB_ORD_TRIGGERED = 7          /* a stop order's trigger fired: it now works as a market or limit order */
};

/* Why a request was rejected (lob_sim_msg.reason), mirrored by lobsim.RejectReason. */
enum {
    LOB_REJ_NONE = 0,
    LOB_REJ_WOULD_CROSS = 1,    /* post-only that would take liquidity (or a modify into the spread of one) */
    LOB_REJ_UNKNOWN_ORDER = 2,  /* cancel/modify of an id the venue never saw */
    LOB_REJ_TOO_LATE = 3,       /* cancel/modify of an order already filled, cancelled or expired */
    LOB_REJ_INVALID = 4,        /* a field out of range (qty <= 0, price, side, tif) */
    LOB_REJ_DUPLICATE = 5,      /* a new order with an id already used */
    LOB_REJ_VENUE = 6,          /* rejected by the venue per an empirical latency record */
    LOB_REJ_NO_LIQUIDITY = 7,   /* market order with nothing to take */
    LOB_REJ_RISK = 8,           /* refused by the user's own pre-trade risk checks, never sent */
    LOB_REJ_HALTED = 9          /* trading is halted: an order that would trade now is refused */
};

/* Request kinds (which latency applies). */
enum { LOB_REQ_NEW = 0, LOB_REQ_CANCEL = 1, LOB_REQ_MODIFY = 2 };

/* Latency model kinds. */
enum { LOB_LAT_CONSTANT = 0, LOB_LAT_LOGNORMAL = 1, LOB_LAT_EMPIRICAL = 2 };

/* One latency model: entry (local -> venue) and response (venue -> local).
 * latency[LOB_REQ_NEW] also times the fills of resting orders; the answers
 * to a cancel or modify follow that request's model.
 * CONSTANT: entry_ns, response_ns. LOGNORMAL: each latency drawn as
 * median_ns * exp(sigma * N(0,1)), clipped to [min_ns, max_ns], from the
 * simulator's seeded generator. EMPIRICAL: n recorded requests sorted by
 * send_ts; at time t the entry latency is venue_ts - send_ts and the response
 * latency response_ts - venue_ts, interpolated linearly between the records
 * around t (held constant outside them); a record with venue_ts < 0 is a
 * rejection: a request sent when the nearest earlier record is one is
 * rejected (LOB_REJ_VENUE) and learns it after response_ts - send_ts. The
 * arrays are borrowed: they must outlive the simulator. */
typedef struct lob_latency {
    int32_t kind;
    int32_t reserved;
    int64_t entry_ns;
    int64_t response_ns;
    double median_ns;
    double sigma;
    int64_t min_ns;
    int64_t max_ns;
    size_t n;
    const int64_t *send_ts;
    const int64_t *venue_ts;
    const int64_t *response_ts;
} lob_latency;

/* L2 queue models (lob_sim_config.queue_model). */
enum { LOB_QUEUE_RISK_AVERSE = 0, LOB_QUEUE_POWER = 1, LOB_QUEUE_LOG = 2, LOB_QUEUE_CUSTOM = 3 };

/* A custom L2 queue model: the new quantity ahead after a decrease of the
 * level the order rests at. ahead: before; level_before/level_after: the
 * displayed sizes; cancel: the part of the decrease not explained by trades.
 * The result is clamped to [0, level_after]. */
typedef double (*lob_queue_fn)(void *user, double ahead, int64_t level_before,
                               int64_t level_after, int64_t cancel);

typedef struct lob_sim_config {
    int32_t book_type;            /* LOB_BOOK_L2 or LOB_BOOK_L3 (the data's) */
    int32_t queue_model;          /* LOB_QUEUE_* (L2 data only) */
    double queue_power;           /* n of LOB_QUEUE_POWER */
    lob_queue_fn queue_fn;        /* LOB_QUEUE_CUSTOM */
    void *queue_user;
    lob_latency latency[3];       /* by LOB_REQ_*: new, cancel, modify */
    double maker_fee;             /* rate on traded value; negative = rebate */
    double taker_fee;
    double value_per_tick_lot;    /* currency of one lot at one tick (traded value = price * qty * this) */
    int64_t timer_ns;             /* on_timer interval of local time; 0 = none */
    int32_t wake_on_book;         /* nonzero: wake after each local top-of-book change */
    int32_t wake_on_msgs;         /* nonzero: wake when messages reach the strategy; zero: they are
                                     only reported at the next wake-up (a strategy without on_fill /
                                     on_order needs no wake-up of its own for them) */
    uint64_t seed;
    int64_t sample_ns;            /* > 0: an account row (LOB_POS_SAMPLE) every sample_ns of venue time */
    int64_t markout_ns[4];        /* markout horizons after each fill (0 = unused), venue time */
    int64_t session_end_ns;       /* venue time DAY orders expire (0 = no session end: DAY is refused) */
    int32_t trigger_on_mid;       /* stop triggers: 0 = the data's last trade price, 1 = the venue mid */
    int32_t reserved2;
} lob_sim_config;

/* Message kinds (lob_sim_msg.kind). */
enum { LOB_MSG_ORDER = 1, LOB_MSG_FILL = 2 };

/* One order update or fill of a user order: the simulator's results, in the
 * order they happened. ts_exch: venue time (for NEW: when the request will
 * reach the venue); ts_local: when the strategy learns it (for NEW: when it
 * was sent). Fills: price and qty of the fill, maker = the order was resting,
 * fee in currency (negative = rebate), position (lots) and cash (currency)
 * of the venue-side account after it. Order updates: price = the order's
 * limit price, qty = its original qty, state, reason. leaves_qty: open qty
 * after the message. */
typedef struct lob_sim_msg {
    int64_t ts_exch;
    int64_t ts_local;
    uint64_t order_id;
    int64_t price;
    int64_t qty;
    int64_t leaves_qty;
    int64_t position;
    double fee;
    double cash;
    int8_t side;
    uint8_t kind;
    uint8_t state;
    uint8_t reason;
    uint8_t maker;
    uint8_t tif;
    uint8_t request;     /* LOB_REQ_* that caused an order update */
    uint8_t reserved;
} lob_sim_msg;

/* Position rows (lob_sim_pos.kind): a fill at the venue, a timer wake-up, or
 * a sample every sample_ns of venue time. */
enum { LOB_POS_FILL = 1, LOB_POS_TIMER = 2, LOB_POS_SAMPLE = 3 };

/* The account sampled at the venue time of every fill, at every timer
 * wake-up (local time) and every sample_ns of venue time. bid/ask: best
 * prices of the venue book (fill and sample rows) or the local book (timer
 * rows), 0 if that side is empty. A sample at time t shows the venue after
 * every event with ts_exch <= t. */
typedef struct lob_sim_pos {
    int64_t ts;
    int64_t position;
    double cash;
    double fees;
    int64_t bid;
    int64_t ask;
    int32_t kind;
    int32_t reserved;
} lob_sim_pos;

/* Why lob_sim_run() returned. */
enum {
    LOB_RUN_WAKE = 1,       /* a wake-up at *now: see lob_sim_state */
    LOB_RUN_NEED_DATA = 2,  /* feed the next chunk (or lob_sim_end_data) */
    LOB_RUN_UNTIL = 3,      /* reached the local time asked for */
    LOB_RUN_END = 4,        /* data over, every request answered and every response delivered */
    LOB_RUN_FEED = 5        /* stop_on_feed: a data event reached the local view */
};

/* What a wake-up carries. */
typedef struct lob_sim_state {
    int64_t now;              /* local time */
    int32_t timer;            /* 1 if the timer fired at now */
    int32_t book_changed;     /* 1 if the local top of book changed since the last return */
    size_t delivered_begin;   /* lob_sim_delivered() entries [begin, end) reached the strategy since */
    size_t delivered_end;     /* the last return (a NEED_DATA return reports them again next time) */
    size_t n_msgs;            /* messages so far (all, delivered or not) */
    size_t n_pos;             /* position rows so far */
    int64_t events_venue;     /* data events applied at the venue so far */
    int64_t events_local;     /* data events applied to the local view so far */
} lob_sim_state;

/* The venue's mid around one fill, for markouts: bid + ask of the venue book
 * (ticks x 2, integer) at the fill (for a fill caused by a data event: just
 * before that event) and at ts + markout_ns[h], i.e. after
 * every event with ts_exch <= ts + markout_ns[h]; 0 where unknown (a side
 * empty, an unused horizon, or past the end of the data). */
typedef struct lob_sim_markout {
    uint64_t msg;        /* index of the fill in lob_sim_msgs() */
    int64_t ts;          /* venue time of the fill */
    int64_t mid2;
    int64_t after2[4];
} lob_sim_markout;

typedef struct lob_sim lob_sim;

/* Create a simulator (config copied; latency tables borrowed) into *out.
 * LOB_ERR_INVALID_ARG for NULL or a bad config field, LOB_ERR_NOMEM. */
int lob_sim_new(const lob_sim_config *config, lob_sim **out);
void lob_sim_free(lob_sim *sim);

/* Give the next chunk of data events (EVENT_DTYPE, venue order, ts_local
 * already corrected for the clock offset). The array is borrowed until
 * lob_sim_released() says both cursors have passed it. At most 8 chunks
 * may be pending. LOB_ERR_CAPACITY if 8 are. */
int lob_sim_feed(lob_sim *sim, const lob_event *events, size_t n);
/* No more data after the chunks fed so far. */
int lob_sim_end_data(lob_sim *sim);
/* Number of chunks fed so far that both cursors have fully passed. */
size_t lob_sim_released(const lob_sim *sim);

/* Run until a wake-up, the need for data, local time `until` (INT64_MAX =
 * none), the end, or (stop_on_feed) the next data event reaching the local
 * view. *reason = LOB_RUN_*. A data event the book refuses stops the run
 * with its status code (LOB_ERR_*) and *bad_event = its index in its chunk
 * and *bad_chunk = the chunk's number. */
int lob_sim_run(lob_sim *sim, int64_t until, int stop_on_feed, int *reason, lob_sim_state *state,
                int64_t *bad_chunk, int64_t *bad_event);

/* Requests from the strategy at the current local time (the last `now`).
 * submit: a new order (tif LOB_TIF_*; the price of a MARKET order is
 * ignored). Invalid fields are not an error here: the order is sent and the
 * venue rejects it (LOB_REJ_INVALID), as a real gateway would answer. The
 * NEW message is recorded at once. */
int lob_sim_submit(lob_sim *sim, uint64_t order_id, int side, int64_t price, int64_t qty, int tif);
/* lob_sim_submit with a stop and an expiry. has_stop: a stop order, armed at
 * the venue (ACCEPTED, not in the queue, not matched) until the trigger
 * (the data's trades after its arrival, or the venue mid, at or through
 * stop_price: >= for a buy, <= for a sell), then TRIGGERED and worked as a
 * MARKET (tif LOB_TIF_MARKET) or limit order arriving at that venue time.
 * expire_ns: GTD's absolute venue time (0 = none); DAY orders take the
 * session end. An order still open when venue time reaches its expiry is
 * EXPIRED at that time. */
int lob_sim_submit_ex(lob_sim *sim, uint64_t order_id, int side, int64_t price, int64_t qty, int tif,
                      int has_stop, int64_t stop_price, int64_t expire_ns);
int lob_sim_cancel(lob_sim *sim, uint64_t order_id);
/* An order refused before it is sent (the user's pre-trade risk gateway): its
 * NEW and REJECTED messages (reason `reason`) are recorded at the current
 * local time, and the rejection reaches the strategy at once (the next
 * lob_sim_run returns with it before anything else). The id counts as used. */
int lob_sim_reject(lob_sim *sim, uint64_t order_id, int side, int64_t price, int64_t qty, int tif, int reason);
/* A cancel or modify (request LOB_REQ_CANCEL / LOB_REQ_MODIFY) refused before
 * it is sent: one REJECTED message of order_id with that request and reason,
 * the order unchanged, reaching the strategy at once like lob_sim_reject's. */
int lob_sim_reject_request(lob_sim *sim, uint64_t order_id, int request, int side, int64_t price, int64_t qty,
                           int reason);
/* New limit price and new open qty. */
int lob_sim_modify(lob_sim *sim, uint64_t order_id, int64_t price, int64_t qty);

/* Results so far: the message and position arrays (owned by the simulator,
 * valid until the next call that may add to them). */
const lob_sim_msg *lob_sim_msgs(const lob_sim *sim, size_t *n);
const lob_sim_pos *lob_sim_positions(const lob_sim *sim, size_t *n);
/* Indices into the messages, in the order they reached the strategy (NEW
 * messages never do: the strategy sent them). A wake-up's messages are
 * entries [delivered_begin, delivered_end) of this list. */
const size_t *lob_sim_delivered(const lob_sim *sim, size_t *n);
/* One markout record per fill, in fill order (resolved as venue time passes). */
const lob_sim_markout *lob_sim_markouts(const lob_sim *sim, size_t *n);
/* The local (strategy's) and venue books, read-only. */
const lob_book *lob_sim_local_book(const lob_sim *sim);
const lob_book *lob_sim_venue_book(const lob_sim *sim);

/* Fill the latency arrays for requests of `kind` sent at times at[0..n) (the
 * model of config->latency[kind], same seeded generator semantics as a run
 * with a fresh simulator of that seed); entry or response may be NULL. */
int lob_latency_sample(const lob_latency *model, uint64_t seed, const int64_t *at, size_t n,
                       int64_t *entry, int64_t *response);

#endif
