#!/usr/bin/env bash
# The whole test suite: the Rust tests (unit, property, aws-sdk-s3
# end-to-end), then the real-client suite against the binary they built.
# The clients come from compat-tests/clients/install.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
cargo test --workspace
cargo build --bin arbor
compat-tests/clients/run.sh
