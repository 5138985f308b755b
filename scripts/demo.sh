#!/usr/bin/env bash
# The main job: today the engine demo (a unit programmed the way Linux boots it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p viommu --example demo
