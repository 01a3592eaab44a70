#!/usr/bin/env bash
# Stop the one-node test cluster started by tests/slurm/cluster-up.sh, by the PIDs it recorded
# (in reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged), then removes the
# /etc/slurm symlinks it created (a slurm.conf without a controller slows every snakemake call by ~9 s).
# Safe to call twice.
set -uo pipefail

DIR=${SLURM_TEST_DIR:-/var/tmp/sepsis-cs-slurm}
PIDS="$DIR/pids"

remove_links() {
    for f in slurm.conf slurmdbd.conf; do
        if [ "$(readlink "/etc/slurm/$f" 2>/dev/null)" = "$DIR/$f" ]; then
            rm -f "/etc/slurm/$f"
        fi
    done
}

if ! [ -s "$PIDS" ]; then
    echo "cluster-down: nothing recorded in $PIDS" >&2
    remove_links
    exit 0
fi

# cancel what is still queued so slurmd has no job steps left
if [ -f "$DIR/slurm.conf" ]; then
    timeout 10 scancel --full --user=root >/dev/null 2>&1 || true
fi

tac "$PIDS" | while read -r name pid; do
    [ -n "$pid" ] || continue
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "cluster-down: $name (pid $pid) already stopped" >&2
        continue
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "cluster-down: $name (pid $pid) ignored SIGTERM, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    echo "cluster-down: stopped $name (pid $pid)" >&2
done
: >"$PIDS"
remove_links
