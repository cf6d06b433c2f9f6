#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The soak under faults (issue 17, tests/soak/): a fake root with a running dm2d driven through
# random, seeded, logged steps, with its invariants checked after every step.
#   bench/soak.sh --minutes N [--seed S] [--steps N] [--build DIR] [--keep]
# As root (tmpfs mounts in a private mount namespace). Without --seed a random one is taken
# and printed; on a violation the last lines name the seed, the step and the command to replay.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$here/tests/soak/soak.py" "$@"
