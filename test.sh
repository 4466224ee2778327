#!/usr/bin/env bash
# The whole test suite: the Rust tests (unit, property, aws-sdk-s3
# end-to-end), then the real-client suite against the binary they built.
# The clients are installed first by compat-tests/clients/install.sh
# (idempotent: a few seconds when everything is there; apt needs root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
compat-tests/clients/install.sh
cargo test --workspace
cargo build --workspace --bins   # no-op: the tests built it (same features)
compat-tests/clients/run.sh
