/* expect.h - the tiny assertion kit shared by the C unit tests. Each test
 * program counts checks and failures and ends with report(), which prints
 * the "N passed, M failed" line CI reads. */
#ifndef LOBSIM_TEST_EXPECT_H
#define LOBSIM_TEST_EXPECT_H

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

static int report(void) {
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}

#endif
