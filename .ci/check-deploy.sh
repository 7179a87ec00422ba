#!/usr/bin/env bash
# Deployment checks that are not pytest tests, for the CI log (the pytest side
# -- unit verify + exposure <= 2.0, installer in a temporary root, ansible
# syntax-check + lint, broker ACL/bridge examples -- runs in `make test`):
#   - the full `systemd-analyze security` table for the unit, and its score;
#   - shellcheck on deploy/install.sh when shellcheck is installed
#     (Debian: shellcheck; under CI=true it must be there).
set -euo pipefail
cd "$(dirname "$0")/.."
CI=${CI:-}

unit=systemd/edge-monitor.service
echo "== systemd-analyze security --offline=yes $unit"
systemd-analyze security --offline=yes --no-pager "$unit" | grep -E '✗|Overall'
score=$(systemd-analyze security --offline=yes --no-pager "$unit" \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "exposure score: $score (limit 2.0)"
awk -v s="$score" 'BEGIN { exit !(s != "" && s + 0 <= 2.0) }' || { echo "exposure $score > 2.0" >&2; exit 1; }

echo "== shellcheck deploy/install.sh .ci/*.sh"
if command -v shellcheck >/dev/null; then
    shellcheck deploy/install.sh .ci/*.sh && echo "shellcheck: clean"
elif [[ $CI == true ]]; then
    echo "CI=true but shellcheck is not installed (apt-get install shellcheck)" >&2; exit 1
else
    echo "shellcheck not installed: skipped"
fi
