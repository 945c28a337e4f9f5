# civicgate: the README's commands.
#   make          build build/civicgate (release)
#   make run      install what is missing, build, start Redis if needed, serve the demo
#   make test     install what is missing, build with ASan+UBSan, run the whole suite
#   make fuzz     run every libFuzzer target for FUZZ_SECONDS each
#   make bench-intents   matcher accuracy and speed on ../shared/datasets
#   make bench-compare   civicgate vs Bottender, Telegraf and a C echo bot (bench/compare/run.sh)
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN ?= build-asan
FUZZB ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 20

.PHONY: all build run test unit e2e intents-eval compose-check fuzz fuzz-build fuzz-short bench-intents bench-compare deps clean

all: build

build:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target civicgate

deps:
	scripts/install-deps.sh build

run: deps build
	scripts/run-demo.sh

asan:
	@test -f $(ASAN)/CMakeCache.txt || cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCG_SANITIZE=ON >/dev/null
	cmake --build $(ASAN) -j $(JOBS)

test:
	scripts/install-deps.sh test
	$(MAKE) build
	scripts/ct-check.sh $(BUILD)
	$(MAKE) asan
	$(MAKE) unit intents-eval fuzz-short e2e compose-check
	@echo "make test: all suites passed"

unit:
	cd $(ASAN) && ctest --output-on-failure

intents-eval:
	scripts/intents-eval.sh $(ASAN)/civicgate

e2e:
	@if [ -f tests/e2e/package.json ]; then CIVICGATE_BIN=$(CURDIR)/$(ASAN)/civicgate scripts/e2e.sh; fi

compose-check:
	docker-compose -f docker-compose.yml config -q

fuzz-build:
	@test -f $(FUZZB)/CMakeCache.txt || CC=clang cmake -S . -B $(FUZZB) -DCMAKE_BUILD_TYPE=Debug -DCG_FUZZ=ON \
	  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" >/dev/null
	cmake --build $(FUZZB) -j $(JOBS)

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZB) $(FUZZ_SECONDS)

fuzz-short: fuzz-build
	scripts/fuzz.sh $(FUZZB) $(FUZZ_TEST_SECONDS)

bench-intents: build
	bench/intents/run.sh $(BUILD)/civicgate

bench-compare:
	bench/compare/run.sh

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZB)
