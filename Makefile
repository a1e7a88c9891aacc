# attnd — top-level build.  One Makefile, no recursion into module folders.
#
#   make                  build everything into $(BUILD) (default build/release/)
#   make check            install missing packages, build, run every Check suite
#   make check SANITIZE=address|undefined   the same under a sanitizer (jemalloc off)
#   make demo             install, build, generate the demo database, start attnd, ask it
#   make bench            the benchmark suite (see bench/README.md)
#   make fuzz FUZZ_SECONDS=N   each libFuzzer harness N s under ASan+UBSan (clang;
#                         tests/fuzz/, docs/RELIABILITY.md); FUZZ_ONLY="a b" picks some,
#                         FUZZ_RUNS=M stops each after M executions
#   make fuzz-cov         line coverage of each harness's target files by its corpus
#   make soak SOAK_SECONDS=N   mixed load against a real attnd (tools/soak)
#   make install PREFIX=/usr/local DESTDIR=
#
# Objects live in build/<flavour>/, so sanitizer and release objects never mix.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= $(PREFIX)/etc
DOCDIR     ?= $(PREFIX)/share/doc/attnd
PKG_CONFIG ?= pkg-config
CC         ?= cc
CFLAGS     ?= -O2 -g
SANITIZE   ?=

ifeq ($(SANITIZE),)
BUILD ?= build/release
MALLOC_PKG = jemalloc
else
BUILD ?= build/$(SANITIZE)
MALLOC_PKG =
override CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SANITIZE)
endif

PKGS = sqlite3 libzmq openblas libcjson inih libsodium libmicrohttpd hiredis $(MALLOC_PKG)
# Evaluated lazily: `make deps` must work before the libraries exist.
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) check 2>/dev/null)
PKG_LIBS   = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

# User CFLAGS come first; the warnings and the standard cannot be dropped.
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP -I. $(PKG_CFLAGS)
ifeq ($(SANITIZE),)
override CFLAGS += -DATTN_WITH_JEMALLOC
endif
# clang (make fuzz, make fuzz-cov) has no `#pragma GCC target`: the kernel
# files get their instruction sets from flags instead (still chosen at run
# time).  The libFuzzer flavour instruments every object for coverage.
ifneq ($(findstring clang,$(CC)),)
override CFLAGS += -Wno-unknown-pragmas
$(BUILD)/attn/%avx2.o: override CFLAGS += -mavx2 -mfma
$(BUILD)/attn/%avx512.o: override CFLAGS += -mavx512f -mavx2 -mfma
$(BUILD)/attn/%avx512bf16.o: override CFLAGS += -mavx512f -mavx512bf16 -mavx2 -mfma
endif
ifeq ($(FUZZ_ENGINE),1)
override CFLAGS += -fsanitize=fuzzer-no-link
endif
override LDLIBS += $(PKG_LIBS) -lpthread -lm

BIN = $(BUILD)/bin

# A library per module: every .c in the folder except the program mains.
# util/pid.c interposes getpid(): only in the programs that ask for it.
UTIL_SRC   = $(filter-out util/pid.c,$(wildcard util/*.c))
ATTN_SRC   = $(wildcard attn/*.c)
# store/ is the SQLite core plus one folder per job (import/, embed/, gen/, ...).
STORE_SRC  = $(wildcard store/*.c store/*/*.c)
SRV_SRC    = $(filter-out daemon/attnd.c,$(wildcard daemon/*.c))
CLI_SRC    = $(filter-out clients/attn_%.c,$(wildcard clients/*.c))
TOOL_SRC   = $(filter-out tools/attnctl.c,$(wildcard tools/*.c))
TEST_SUITES = $(wildcard tests/check_*.c)
TEST_UTIL  = $(filter-out $(TEST_SUITES),$(wildcard tests/*.c))
# Fuzz harnesses: tests/fuzz/fz_<name>.c, corpus tests/fuzz/<name>/.
FUZZ_NAMES = $(patsubst tests/fuzz/fz_%.c,%,$(wildcard tests/fuzz/fz_*.c))
FUZZ_UTIL  = $(filter-out tests/fuzz/fz_%.c tests/fuzz/replay.c,$(wildcard tests/fuzz/*.c))
FUZZ_ONLY ?= $(FUZZ_NAMES)
FUZZ_SECONDS ?= 60

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBUTIL  = $(BUILD)/libutil.a
LIBATTN  = $(BUILD)/libattn.a
LIBSTORE = $(BUILD)/libstore.a
LIBSRV   = $(BUILD)/libsrv.a
LIBCLI   = $(BUILD)/libcli.a
LIBTOOL  = $(BUILD)/libtool.a
# Link order: dependants before dependencies.
ALL_LIBS = $(LIBSRV) $(LIBTOOL) $(LIBCLI) $(LIBSTORE) $(LIBATTN) $(LIBUTIL)

PROGRAMS = $(BIN)/attnd $(BIN)/attnctl $(BIN)/attn-query $(BIN)/attn-batch $(BIN)/attn-load
TESTS    = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SUITES))
# Each harness over its corpus, without libFuzzer: part of make check.
REPLAYS  = $(patsubst %,$(BUILD)/fuzz/replay-%,$(FUZZ_NAMES))
FUZZERS  = $(patsubst %,$(BUILD)/fuzz/fz-%,$(FUZZ_ONLY))

.SECONDARY:
.PHONY: all check check-run demo demo-stop bench install uninstall clean deps valgrind \
        fuzz fuzz-build fuzz-cov soak
BENCH_PROGRAMS = $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
all: $(PROGRAMS) $(BENCH_PROGRAMS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIBUTIL):  $(call obj,$(UTIL_SRC))
$(LIBATTN):  $(call obj,$(ATTN_SRC))
$(LIBSTORE): $(call obj,$(STORE_SRC))
$(LIBSRV):   $(call obj,$(SRV_SRC))
$(LIBCLI):   $(call obj,$(CLI_SRC))
$(LIBTOOL):  $(call obj,$(TOOL_SRC))
$(BUILD)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BIN)/attnd: $(call obj,daemon/attnd.c util/pid.c) $(ALL_LIBS)
$(BIN)/attnctl: $(call obj,tools/attnctl.c) $(ALL_LIBS)
$(BIN)/attn-query: $(call obj,clients/attn_query.c) $(ALL_LIBS)
$(BIN)/attn-batch: $(call obj,clients/attn_batch.c util/pid.c) $(ALL_LIBS)
$(BIN)/attn-load: $(call obj,clients/attn_load.c util/pid.c) $(ALL_LIBS)
$(PROGRAMS):
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(ALL_LIBS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# The echo servers pay what attnd pays for libzmq's fork checks.
$(BUILD)/bench/echo_server: $(call obj,util/pid.c)
$(BUILD)/tests/check_pid: $(call obj,util/pid.c)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(call obj,$(TEST_UTIL)) $(ALL_LIBS)
	$(CC) $(CFLAGS) $(LDFLAGS) $(TEST_LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

$(BUILD)/fuzz/replay-%: $(BUILD)/tests/fuzz/replay.o $(BUILD)/tests/fuzz/fz_%.o \
                        $(call obj,$(FUZZ_UTIL) $(TEST_UTIL)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

$(BUILD)/fuzz/fz-%: $(BUILD)/tests/fuzz/fz_%.o $(call obj,$(FUZZ_UTIL) $(TEST_UTIL)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

# check_oom alone routes our libraries' allocations through its failure
# injector (tests/oom/alloc.h): the linker's --wrap, so no production code
# changes and no other binary is affected.
comma := ,
OOM_WRAP = malloc calloc realloc free strdup strndup posix_memalign aligned_alloc
$(BUILD)/tests/check_oom: $(call obj,$(wildcard tests/oom/*.c))
# private: the programs it waits for must not inherit the flags.
$(BUILD)/tests/check_oom: private TEST_LDFLAGS = $(patsubst %,-Wl$(comma)--wrap=%,$(OOM_WRAP))

# Suites that run the programs need them built, even when made one by one.
$(TESTS): | $(PROGRAMS)

# The end-to-end suites find the programs through these.
$(BUILD)/tests/%.o: override CPPFLAGS += -DATTN_BIN_DIR='"$(abspath $(BIN))"' -DATTN_SRC_DIR='"$(abspath .)"'

deps:
	@tools/install-deps

# `check` installs what is missing, then builds and runs in a sub-make so that
# the pkg-config flags are read after the install.
check: deps
	@$(MAKE) --no-print-directory check-run

check-run: $(PROGRAMS) $(TESTS) $(REPLAYS)
	@tools/run-tests $(BUILD) $(TESTS) $(REPLAYS)

valgrind: $(PROGRAMS) $(TESTS) $(REPLAYS)
	@ATTN_VALGRIND=1 tools/run-tests $(BUILD) $(TESTS) $(REPLAYS)

# clang, ASan + UBSan, libFuzzer; objects in build/fuzz/.  One harness at a
# time for FUZZ_SECONDS each (tools/fuzz); the report is build/fuzz/report.txt.
fuzz: deps
	@tools/install-deps --fuzz
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang SANITIZE=address,undefined \
	    FUZZ_ENGINE=1 CFLAGS="-O1 -g" fuzz-build
	@FUZZ_RUNS=$(FUZZ_RUNS) tools/fuzz build/fuzz $(FUZZ_SECONDS) $(FUZZ_ONLY)

fuzz-build: $(FUZZERS)

# Line coverage of each harness's target files by its corpus (seeds, regress
# inputs and what make fuzz kept in build/fuzz/corpus/): replays built by
# clang with source-based coverage, reported by llvm-cov (tools/fuzz-cov).
COV_FLAGS = -O1 -g -fprofile-instr-generate -fcoverage-mapping
fuzz-cov: deps
	@tools/install-deps --fuzz
	@$(MAKE) --no-print-directory BUILD=build/fuzz-cov CC=clang CFLAGS="$(COV_FLAGS)" \
	    LDFLAGS="-fprofile-instr-generate" $(patsubst %,build/fuzz-cov/fuzz/replay-%,$(FUZZ_ONLY))
	@tools/fuzz-cov build/fuzz-cov build/fuzz/corpus $(FUZZ_ONLY)

# Not part of check: SOAK_SECONDS (default 10 minutes) of mixed load against
# a real attnd (tools/soak says what and when it passes); results in build/soak/.
SOAK_SECONDS ?= 600
soak: deps
	@$(MAKE) --no-print-directory all $(BUILD)/soak/peer
	@tools/soak $(BUILD) $(SOAK_SECONDS)

$(BUILD)/soak/peer: $(BUILD)/tests/soak/peer.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

demo: deps
	@$(MAKE) --no-print-directory all
	@tools/demo $(BIN)

demo-stop:
	@tools/demo --stop

bench: deps
	@tools/install-deps --bench
	@$(MAKE) --no-print-directory all
	@bench/run $(BUILD)

install: $(PROGRAMS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/attnd $(DESTDIR)$(DOCDIR)
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)
	install -m 644 conf/attnd.conf $(DESTDIR)$(SYSCONFDIR)/attnd/attnd.conf
	install -m 644 conf/attnd-alerts.yml $(DESTDIR)$(SYSCONFDIR)/attnd/attnd-alerts.yml
	install -m 644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGRAMS)))
	rm -f $(DESTDIR)$(SYSCONFDIR)/attnd/attnd.conf $(DESTDIR)$(SYSCONFDIR)/attnd/attnd-alerts.yml

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
