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

#endif /* LOBSIM_INTERNAL_H */
