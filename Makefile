# viprouter — the single entry point for humans and CI (DESIGN.md §2.8).
# `make run` starts the router on its embedded default configuration; `make test` runs every test.

CARGO   ?= cargo
PYTHON  ?= python3
VENV    ?= .venv
RUN_DIR ?= .run
VHOME   ?= $(CURDIR)/$(RUN_DIR)/volttron_home
PORT    ?= 22916
BIN     := target/release/viprouter
T       ?= frame_stream
VENV11  ?= .venv-volttron11
# The modular platform must run as an unprivileged user, who cannot reach a Python under /root
# (pyenv): prefer the distribution's interpreter for this venv.
PYTHON11 ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PYTHON))
SECS    ?= 30
# The workplace's shared folder (vendored VOLTTRON 9.0.4, benchmark anchors): beside the checkout
# (../shared) or, for git worktrees one level deeper, ../../shared; /work/shared as a last resort.
SHARED  ?= $(firstword $(wildcard $(CURDIR)/../shared $(CURDIR)/../../shared /work/shared) $(CURDIR)/../shared)
VT9_VENV ?= .venv-volttron9
VT9_SRC  := $(CURDIR)/volttron-9.0.4
VT9_PY   := $(VT9_VENV)/bin/python
VT9_STAMP := $(VT9_VENV)/.viprouter-volttron
VT9_ENV  := VIPROUTER_BIN=$(CURDIR)/$(BIN) VT9_VENV=$(CURDIR)/$(VT9_VENV) VT9_SRC=$(VT9_SRC)
VT9_JOBS ?= 4

.PHONY: test-multiplatform test-rabbitmq bench-link bench-rabbitmq sizes bench-rabbitmq-mem
.PHONY: volttron9 test-volttron9-agents python-test volttron9-platform volttron9-suite volttron9-baseline volttron9-test
.PHONY: volttron11 test-volttron11
.PHONY: bench-instr bench-instr-check bench-instr-update
.PHONY: all build release run test test-unit interop venv fuzz-replay fuzz fuzz-build clippy fmt-check bench bench-subs bench-io bench-threads ci clean

all: build

build:
	$(CARGO) build

release: $(BIN)

$(BIN): FORCE
	$(CARGO) build --release --bin viprouter

FORCE:

## run: the router on an embedded default VOLTTRON_HOME (git-ignored, under .run/): ipc + tcp://127.0.0.1:$(PORT)
## On x86-64 it runs the static musl build the Debian package ships (idle RSS ~1.6 MB, glibc's ~3.3 MB).
RUN_TRIPLE ?= $(if $(filter x86_64,$(shell uname -m)),x86_64-unknown-linux-musl)
RUN_BIN    := $(if $(RUN_TRIPLE),target/$(RUN_TRIPLE)/release/viprouter,$(BIN))
run:
	$(if $(RUN_TRIPLE),$(call apt_ensure,musl-tools))
	$(if $(RUN_TRIPLE),rustup target add $(RUN_TRIPLE) >/dev/null 2>&1 || true)
	$(CARGO) build --release $(if $(RUN_TRIPLE),--target $(RUN_TRIPLE)) --bin viprouter
	@mkdir -p "$(VHOME)"
	@test -f "$(VHOME)/config" || printf '[volttron]\n# embedded default of `make run` (see README)\nvip-address = tcp://127.0.0.1:$(PORT)\ninstance-name = viprouter-dev\nallow-auth = False\n' > "$(VHOME)/config"
	@echo "viprouter: VOLTTRON_HOME=$(VHOME)"
	@echo "  connect agents to ipc://@$(VHOME)/run/vip.socket or tcp://127.0.0.1:$(PORT) (NULL mechanism)"
	@echo "  e.g.  VOLTTRON_HOME=$(VHOME) VOLTTRON_VIP_ADDR=tcp://127.0.0.1:$(PORT) python your_agent.py"
	@echo "  Ctrl-C stops it."
	exec $(RUN_BIN) --volttron-home "$(VHOME)"

## test: unit, property, fuzz-corpus replay and zero-allocation tests, the pyzmq interop suite,
## real VOLTTRON 9.0.4 agents, the systemd checks (unit files verified; READY/WATCHDOG/RELOADING/STOPPING;
## socket activation), a VOLTTRON 9 platform on viprouter with VOLTTRON's own tests (volttron9-test),
## linked platforms (test-multiplatform), the RabbitMQ bridge against real rabbitmq-server nodes
## (test-rabbitmq), and modular VOLTTRON's agents and platform on viprouter (test-volttron11)
test: venv test-unit interop test-volttron9-agents systemd-verify systemd-check volttron9-test test-multiplatform test-rabbitmq test-volttron11

# VIPROUTER_REQUIRE_PYZMQ: tests/curve_pyzmq.rs fails, rather than skips, without pyzmq (`test` makes the venv first)
test-unit:
	VIPROUTER_REQUIRE_PYZMQ=1 $(CARGO) test --all-targets

venv: $(VENV)/.installed

$(VENV)/.installed: tests/interop/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
	touch $@

## interop: real libzmq peers (pyzmq) against the release binary
interop: release venv
	VIPROUTER_BIN=$(CURDIR)/$(BIN) $(VENV)/bin/python -m pytest tests/interop -q

## volttron9: the release binary and .venv-volttron9 = VOLTTRON 9.0.4 (../shared/vendor/volttron9/install.sh;
## the tree lands in ./volttron-9.0.4) + viprouter-volttron (python/), with viprouter beside it in bin/
volttron9: release $(VT9_STAMP)
	ln -sf $(CURDIR)/$(BIN) $(VT9_VENV)/bin/viprouter

$(VT9_STAMP): python/pyproject.toml $(wildcard python/viprouter_volttron/*.py) $(wildcard $(SHARED)/vendor/volttron9/*)
	@test -x "$(SHARED)/vendor/volttron9/install.sh" || { echo "make volttron9: $(SHARED)/vendor/volttron9/install.sh not found: VOLTTRON 9.0.4 is vendored in the shared directory beside the checkout (make SHARED=/path/to/shared volttron9)" >&2; exit 1; }
	$(SHARED)/vendor/volttron9/install.sh $(VT9_VENV)
	$(VT9_PY) -m pip install --quiet --disable-pip-version-check ./python mypy==1.13.0
	rm -rf python/build python/*.egg-info
	touch $@

## volttron9-test: python-test + volttron9-platform + volttron9-suite (what `make test` runs)
volttron9-test: python-test volttron9-platform volttron9-suite

## python-test: viprouter-volttron's unit tests and mypy --strict; the suite runner's check/record
python-test: volttron9
	$(VT9_PY) -m pytest python/tests tests/volttron9_suite/test_run_suite.py -q -p no:cacheprovider
	cd python && ../$(VT9_VENV)/bin/mypy viprouter_volttron

## volttron9-platform: a VOLTTRON 9.0.4 platform on viprouter through vctl (tests/volttron9_platform)
volttron9-platform: volttron9
	$(VT9_ENV) $(VT9_PY) -m pytest tests/volttron9_platform -q -p no:cacheprovider

## volttron9-suite: VOLTTRON's own tests on viprouter (the 13 files of issue #10), failing on any test
## that passes on VOLTTRON's router (tests/volttron9_suite/baseline.json); VT9_JOBS pytest processes
volttron9-suite: volttron9
	@mkdir -p $(RUN_DIR)
	$(VT9_ENV) $(VT9_PY) tests/volttron9_suite/run_suite.py run --router viprouter --jobs $(VT9_JOBS) --retry tests/volttron9_suite/baseline.json --out $(RUN_DIR)/vt9-suite.json
	$(VT9_PY) tests/volttron9_suite/run_suite.py check $(RUN_DIR)/vt9-suite.json

## volttron9-baseline: every file on both routers, then rewrite tests/volttron9_suite/baseline.json
volttron9-baseline: volttron9
	@mkdir -p $(RUN_DIR)
	$(VT9_ENV) $(VT9_PY) tests/volttron9_suite/run_suite.py run --router volttron --jobs $(VT9_JOBS) --out $(RUN_DIR)/vt9-baseline-volttron.json
	$(VT9_ENV) $(VT9_PY) tests/volttron9_suite/run_suite.py run --router viprouter --jobs $(VT9_JOBS) --out $(RUN_DIR)/vt9-baseline-viprouter.json
	$(VT9_PY) tests/volttron9_suite/run_suite.py record --volttron $(RUN_DIR)/vt9-baseline-volttron.json --viprouter $(RUN_DIR)/vt9-baseline-viprouter.json

## test-volttron9-agents: VOLTTRON 9.0.4's agent library (unmodified) against the release binary,
## CURVE and NULL, tcp and ipc (tests/volttron9, see its README)
test-volttron9-agents: volttron9
	VIPROUTER_BIN=$(CURDIR)/$(BIN) $(VT9_VENV)/bin/python -m pytest tests/volttron9 -q

## volttron11: .venv-volttron11 with modular VOLTTRON pinned exactly (tests/volttron11/requirements.txt,
## from PyPI) and the project's package (python/, editable): `viprouter-volttron`, `vctl`
volttron11: $(VENV11)/.installed

$(VENV11)/.installed: tests/volttron11/requirements.txt python/pyproject.toml
	$(PYTHON11) -m venv $(VENV11)
	$(VENV11)/bin/pip install --quiet --disable-pip-version-check -r tests/volttron11/requirements.txt
	$(VENV11)/bin/pip install --quiet --disable-pip-version-check -e python
	touch $@

## test-volttron11: the package's unit tests (+ mypy --strict), then modular VOLTTRON's own agents and
## platform against the release binary (tests/volttron11/README.md; as root: it creates a user)
test-volttron11: release volttron11
	cd python && ../$(VENV11)/bin/mypy viprouter_volttron tests/test_modular.py tests/test_modular_supervisor.py
	VIPROUTER_BIN=$(CURDIR)/$(BIN) $(VENV11)/bin/python -m pytest python/tests tests/volttron11 -q

## test-multiplatform: two platforms linked on loopback — VOLTTRON 9.0.4 and viprouter in every
## combination — with real agents on both sides, issue #14's scenarios (tests/multiplatform/README.md)
test-multiplatform: volttron9
	VIPROUTER_BIN=$(CURDIR)/$(BIN) $(VT9_VENV)/bin/python -m pytest tests/multiplatform -q -p no:cacheprovider -rxXs --timeout 300 --timeout-method thread

## bench-link: issue #14's table — external RPC round trip and publish throughput over one link vs
## local, viprouter<->viprouter and VOLTTRON 9.0.4<->VOLTTRON 9.0.4 alternately, real 9.0.4 agents
## (tests/multiplatform/bench_link.py; not part of `make test`). LINKBENCH_ARGS: e.g. --rounds 3
LINKBENCH_ARGS ?= --rounds 3
bench-link: volttron9
	@mkdir -p target/bench-results
	VIPROUTER_BIN=$(CURDIR)/$(BIN) nice $(VT9_PY) tests/multiplatform/bench_link.py --kind viprouter --kind volttron $(LINKBENCH_ARGS) --json target/bench-results/link.json

## test-rabbitmq: the RabbitMQ bridge (#15) against private rabbitmq-server nodes on loopback
## (Debian's package, installed by .ci/run): gateways, pika RMQ agents, federation, outage, TLS,
## and VOLTTRON 9.0.4's own RabbitMQ bus (its RMQRouter and agents, VT9_PIKA beside its venv)
VT9_PIKA := .vt9-pika
test-rabbitmq: release venv volttron9 $(VT9_PIKA)/.installed
	VIPROUTER_BIN=$(CURDIR)/$(BIN) VT9_VENV=$(CURDIR)/$(VT9_VENV) VT9_PIKA=$(CURDIR)/$(VT9_PIKA) $(VENV)/bin/python -m pytest tests/rabbitmq -q -p no:cacheprovider -rxXs

## bench-rabbitmq: issue #15's table — external RPC round trip and exported publish throughput between two
## instances on one private RabbitMQ node: two viprouter gateways vs two VOLTTRON 9.0.4 RMQ-bus instances,
## same run, the same VOLTTRON agents (tests/rabbitmq/bench_rabbitmq.py; not part of `make test`).
## RMQBENCH_ARGS: e.g. --rounds 3
RMQBENCH_ARGS ?= --rounds 3
bench-rabbitmq: release venv volttron9 $(VT9_PIKA)/.installed
	@mkdir -p target/bench-results
	VIPROUTER_BIN=$(CURDIR)/$(BIN) VT9_VENV=$(CURDIR)/$(VT9_VENV) VT9_PIKA=$(CURDIR)/$(VT9_PIKA) nice $(VENV)/bin/python tests/rabbitmq/bench_rabbitmq.py $(RMQBENCH_ARGS) --json target/bench-results/rabbitmq.json

## pika 1.2.0 (VOLTTRON 9.0.4's pin) for VOLTTRON's RabbitMQ-bus processes only, outside the VOLTTRON 9
## venv: with pika importable VOLTTRON's own fixtures add RabbitMQ variants to volttron9-suite
$(VT9_PIKA)/.installed: $(VT9_STAMP)
	rm -rf $(VT9_PIKA)
	$(VT9_PY) -m pip install --quiet --disable-pip-version-check --target $(VT9_PIKA) pika==1.2.0
	touch $@

fuzz-replay:
	$(CARGO) test --test fuzz_replay

fuzz-build:
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build --fuzz-dir tests/fuzz

## fuzz: T=<target> SECS=<seconds>; new inputs go to tests/fuzz/work/ (see tests/fuzz/README.md)
fuzz:
	mkdir -p tests/fuzz/work/$(T)
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tests/fuzz $(T) tests/fuzz/work/$(T) tests/fuzz/corpus/$(T) -- -max_total_time=$(SECS)

## clippy: the crate and the fuzz crate (tests/fuzz, its own workspace), warnings as errors
clippy:
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTC_BOOTSTRAP=1 $(CARGO) clippy --manifest-path tests/fuzz/Cargo.toml --all-targets -- -D warnings

fmt-check:
	$(CARGO) fmt --check

## bench: ../shared/bench/compare.sh against viprouter and the libzmq anchors (same run, ratios)
bench:
	tests/bench/compare.sh

## bench-io: CURVE route, viprouter vs zmqrouter vs direct, with a generator of 2 libzmq I/O threads
bench-io:
	tests/bench/io_threads.sh --io-threads 2 --security curve --workload route

## bench-threads: fan-out, viprouter vs zmqrouter, with the CPU share of every generator and router
## thread (tests/bench/threads_cpu.sh): the generator's single libzmq I/O thread sets a ceiling
bench-threads:
	tests/bench/threads_cpu.sh --workload fanout --security plain

## bench-instr: instructions per message (callgrind; route plain/CURVE, fan-out, 1000 connects) for
## viprouter and zmqrouter -> target/bench-results/instr.json (tests/bench/instr.sh, ~2 min)
bench-instr: release
	$(call apt_ensure,valgrind libzmq3-dev libsodium-dev pkg-config)
	@mkdir -p target/bench-results
	rm -f target/bench-results/instr.json
	VIPBENCH_DIR=$(SHARED)/bench VIPROUTER_BIN=$(CURDIR)/$(BIN) tests/bench/instr.sh --router viprouter --out target/bench-results/instr.json
	VIPBENCH_DIR=$(SHARED)/bench tests/bench/instr.sh --router zmqrouter --out target/bench-results/instr.json

## bench-instr-check (CI): viprouter's figures against tests/bench/instr-baseline.json; fails on
## any more than 5% above it. A deliberate increase is a commit of bench-instr-update with the reason.
bench-instr-check: release
	$(call apt_ensure,valgrind libzmq3-dev libsodium-dev pkg-config)
	VIPBENCH_DIR=$(SHARED)/bench VIPROUTER_BIN=$(CURDIR)/$(BIN) tests/bench/instr.sh --router viprouter --check tests/bench/instr-baseline.json

## bench-instr-update: rewrite viprouter's (and zmqrouter's) figures in tests/bench/instr-baseline.json
bench-instr-update: bench-instr
	cp target/bench-results/instr.json tests/bench/instr-baseline.json

## bench-subs: publish cost and latency with 10 vs 10 000 subscriptions in the pubsub index
## (tests/bench/subs.sh: viprouter bench fanout and fanout-lat, --extra-subs 10 and 10000)
bench-subs:
	tests/bench/subs.sh

## sizes: stripped static release binaries with and without the RabbitMQ bridge (default features,
## `rabbitmq` without TLS, neither) for aarch64 armv7 armv6 amd64, one build at a time under nice,
## and their table (cross/sizes.sh; ARCHES=... VARIANTS=... narrow it; ~3-6 min a build on 2 cores)
sizes:
	cross/sizes.sh

## bench-rabbitmq-mem: VmRSS/VmHWM and `query stats` buffer bytes of the static musl router with the
## bridge to a private rabbitmq-server, idle and under export, inbound, and external RPC load, and
## without the bridge (tests/rabbitmq/mem.py; not part of `make test`). RMQMEM_ARGS: e.g. -n 5000
RMQMEM_ARGS ?=
bench-rabbitmq-mem: cross-amd64 venv
	VIPROUTER_BIN=$(abspath $(DIST_DIR))/viprouter-x86_64-unknown-linux-musl nice $(VENV)/bin/python tests/rabbitmq/mem.py $(RMQMEM_ARGS)

## ci: what .ci/run runs: every host test, then the unit and interop tests on aarch64 and armv7 under qemu
ci: test ci-arm

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(VENV11) $(RUN_DIR) $(VT9_VENV) volttron-9.0.4 $(VT9_PIKA)

-include cross/cross.mk
