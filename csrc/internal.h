/*
 * internal.h - private helpers shared by the C sources of the core.
 *
 * Not part of the public contract: lobsim.h is the cffi cdef and holds only
 * declarations; this header may hold macros and inline functions and is never
 * seen by cffi. One definition of each helper, so the sources cannot drift.
 */
#ifndef LOBSIM_INTERNAL_H
#define LOBSIM_INTERNAL_H

#include "lobsim.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Capacity of an array's first allocation, in elements. */
#define LOB_GROW_FIRST 16

/* Make the array *p (capacity *cap elements of elem bytes each) hold at least
 * `need` elements, doubling the capacity (from LOB_GROW_FIRST when empty).
 * Returns LOB_OK, or LOB_ERR_NOMEM with *p and *cap unchanged when the size
 * would overflow or realloc fails. Call it through LOB_GROW, which takes the
 * element size from the array itself so no two size arguments can be swapped. */
static inline int lob_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return LOB_OK;
    size_t c = *cap ? *cap : LOB_GROW_FIRST;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return LOB_ERR_NOMEM;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return LOB_ERR_NOMEM;
    *p = q;
    *cap = c;
    return LOB_OK;
}

/* LOB_GROW(arr, cap, need): grow the array lvalue `arr` whose capacity lvalue
 * (size_t) is `cap` to at least `need` elements; LOB_OK or LOB_ERR_NOMEM. */
#define LOB_GROW(arr, cap, need) lob_grow((void **)&(arr), &(cap), (need), sizeof *(arr))

/* Fibonacci hashing: multiply by 2^64 / golden ratio and use the HIGH bits of
 * the product (x >> (64 - bits) for a table of 2^bits slots); they spread
 * sequential keys well, the low bits do not. */
static inline uint64_t lob_fib_mix(uint64_t x) { return x * 0x9E3779B97F4A7C15ULL; }

/* A strong 64-bit mix (the MurmurHash3 finalizer): every input bit changes
 * about half the output bits, so a hash of (id ^ seed) with a secret seed
 * cannot be steered into one bucket by choosing ids. A bijection. */
static inline uint64_t lob_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ULL;
    x ^= x >> 33;
    return x;
}

/* A random odd multiplier for multiply-shift hashing (defined in book.c): hash maps
 * keyed by ids from the data use one, so crafted ids cannot pile into one probe
 * chain. Never affects results, only speed. */
uint64_t lob_hash_seed(const void *addr);

/* Book internals for the simulator (csrc/venue.c); defined in book.c. */

/* Apply one event (what lob_book_apply does per event). */
int lob_book_apply_one(lob_book *book, const lob_event *e);
/* A resting L3 order's side, price, qty and priority stamp: 1 if found, else 0. */
int lob_book_peek(const lob_book *book, uint64_t id, int *side, int64_t *price, int64_t *qty, uint64_t *stamp);
/* The last priority stamp handed out: orders appended later get larger ones. */
uint64_t lob_book_stamp_now(const lob_book *book);
/* Displayed qty at (side, price), 0 if no level. */
int64_t lob_book_level_qty(lob_book *book, int side, int64_t price);
/* The orders of level (side, price) in FIFO order: up to cap ids and qtys
 * written; returns how many the level holds (L3; 0 for L2 or no level). */
size_t lob_book_level_fifo(const lob_book *book, int side, int64_t price, uint64_t *ids, int64_t *qtys, size_t cap);

/* xoshiro256** seeded through splitmix64: the simulator's random numbers. */
typedef struct { uint64_t s[4]; } lob_rng;

static inline uint64_t lob_rng_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline void lob_rng_seed(lob_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = lob_rng_splitmix(&seed);
}

static inline uint64_t lob_rng_next(lob_rng *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform double in (0, 1). */
static inline double lob_rng_unit(lob_rng *r) { return ((double)(lob_rng_next(r) >> 11) + 0.5) * 0x1p-53; }

#endif /* LOBSIM_INTERNAL_H */
