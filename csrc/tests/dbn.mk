# C unit tests of the DBN reader helpers (csrc/dbn.c), included by csrc/Makefile.
$(BUILD)/test_dbn: tests/test_dbn.c tests/expect.h dbn.c dbn.h book.c lobsim.h internal.h
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -I. tests/test_dbn.c dbn.c book.c -o $@

READER_TESTS += $(BUILD)/test_dbn
