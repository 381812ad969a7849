# Tardis CSV column kernels (csrc/tardis.c), included by csrc/Makefile.
$(BUILD)/test_tardis: tests/test_tardis.c tests/expect.h tardis.c tardis.h
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -I. tests/test_tardis.c tardis.c -o $@

READER_TESTS += $(BUILD)/test_tardis
