/* expect.h - the tiny assertion kit shared by the C unit tests. Each test
 * program counts checks and failures and ends with report(), which prints
 * the "N passed, M failed" line CI reads. */
#ifndef LOBSIM_TEST_EXPECT_H
#define LOBSIM_TEST_EXPECT_H

#include <stdint.h>
#include <stdio.h>

static int failures = 0;
static int checks = 0;

#define EXPECT(cond)                                                                      \
    do {                                                                                  \
        checks++;                                                                         \
        if (!(cond)) {                                                                    \
            failures++;                                                                   \
            fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                                 \
    } while (0)

#define EXPECT_EQ(a, b) EXPECT((long long)(a) == (long long)(b))

/* A fixed-seed xorshift64 for the random-input tests: the same inputs on every run. */
static uint64_t test_rng = 88172645463325252ULL;
static inline uint64_t test_rand(void) {
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return test_rng;
}

static int report(void) {
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}

#endif
