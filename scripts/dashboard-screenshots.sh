#!/usr/bin/env bash
# Regenerate the dashboard screenshots in docs/screenshots/ by running the browser end-to-end tests with
# BASTION_SCREENSHOTS set (Debian's /usr/bin/chromium, driven by Playwright; nothing is downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
BASTION_SCREENSHOTS="${1:-docs/screenshots}" .venv/bin/pytest -q -p no:cacheprovider -m e2e tests/web/test_e2e.py
