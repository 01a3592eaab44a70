#!/usr/bin/env bash
# Start a one-node SLURM cluster on localhost for tests/test_slurm.py (run as root; Debian/Ubuntu).
#
#   tests/slurm/cluster-up.sh               # slurmctld + slurmd + munged, no accounting database
#   tests/slurm/cluster-up.sh --accounting  # also MariaDB + slurmdbd (sacct works, as on real clusters)
#   tests/slurm/cluster-down.sh             # stops what this script started, by PID
#
# Installs slurm-wlm and munge (and mariadb-server, slurmdbd with --accounting) when missing.
# State, logs and configuration live in $SLURM_TEST_DIR (default /var/tmp/sepsis-cs-slurm);
# /etc/slurm/slurm.conf (and slurmdbd.conf) become symlinks to them, because the plugin's job step
# drops SLURM_CONF from the environment of the srun it starts inside each job. An existing
# /etc/slurm/slurm.conf that is not such a symlink is never overwritten. cluster-down.sh removes the
# symlinks again: a slurm.conf without a running controller costs every `snakemake` call ~9 s (the
# SLURM plugin runs `scontrol show config` when it is imported, whichever executor is used).
# Started daemons are recorded as "name pid" lines in $SLURM_TEST_DIR/pids.
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/var/tmp/sepsis-cs-slurm}
PARTITION=${SLURM_TEST_PARTITION:-sepsis_test}
CLUSTER=sepsis_cs_test
ACCOUNTING=0
for arg in "$@"; do
    case "$arg" in
        --accounting) ACCOUNTING=1 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "cluster-up.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

log() { echo "cluster-up: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts slurmctld, slurmd and munged)"

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

if [ -s "$DIR/pids" ]; then
    while read -r name pid; do
        pid_alive "$pid" && die "$name (pid $pid) from an earlier start is still running; run tests/slurm/cluster-down.sh first"
    done <"$DIR/pids"
fi

retry() { # retry <attempts> <command...>
    local n=$1 i; shift
    for ((i = 1; i <= n; i++)); do
        "$@" && return 0
        log "attempt $i/$n failed: $*"; sleep $((i * 5))
    done
    return 1
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    retry 3 apt-get update -q -o Acquire::Retries=3
    retry 3 apt-get install -y -q --no-install-recommends -o Acquire::Retries=3 -o Dpkg::Options::=--force-confold "$@"
}

need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
if [ "$ACCOUNTING" = 1 ]; then
    command -v slurmdbd >/dev/null || need+=(slurmdbd)
    command -v mariadbd >/dev/null || command -v mysqld >/dev/null || need+=(mariadb-server)
fi
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_install "${need[@]}" >"${TMPDIR:-/tmp}/cluster-up-apt.log" 2>&1 || { tail -30 "${TMPDIR:-/tmp}/cluster-up-apt.log" >&2; die "apt-get install failed"; }
fi

ETC=/etc/slurm
for f in slurm.conf slurmdbd.conf; do
    if [ -e "$ETC/$f" ] && ! [ "$(readlink "$ETC/$f" 2>/dev/null)" = "$DIR/$f" ]; then
        die "$ETC/$f exists and was not written by this script; refusing to replace a real SLURM configuration"
    fi
done

rm -rf "$DIR"
mkdir -p "$DIR"/{state,spool,log,jobs}
chmod 755 "$DIR"
: >"$DIR/pids"
# on any failure below, stop what was already started (and remove the /etc/slurm links)
trap 'rc=$?; if [ $rc -ne 0 ]; then log "start failed, stopping what was started"; "$(dirname "$0")/cluster-down.sh" || true; fi' EXIT
record() { echo "$1 $2" >>"$DIR/pids"; }

# start <name> <logfile> <command...>: run a daemon in the foreground mode of its own session, record its PID
start() {
    local name=$1 logfile=$2; shift 2
    nohup setsid "$@" >>"$logfile" 2>&1 </dev/null &
    local pid=$!
    record "$name" "$pid"
    log "started $name (pid $pid)"
}

wait_for() { # wait_for <seconds> <what> <command...>
    local secs=$1 what=$2 i; shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what not ready after ${secs}s (logs in $DIR/log)"
}

# --- munge (authentication) --------------------------------------------------------------------
MUNGE_SOCKET=/run/munge/munge.socket.2
if pgrep -x munged >/dev/null && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running (not started here, will not be stopped)"
else
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge /var/lib/munge /var/log/munge
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    start munged "$DIR/log/munged.out" setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for 20 munged bash -c 'munge -n </dev/null | unmunge'
fi

# --- accounting database (optional) ------------------------------------------------------------
ACCT_LINES="AccountingStorageType=accounting_storage/none"
if [ "$ACCOUNTING" = 1 ]; then
    DB_PORT=${SLURM_TEST_DB_PORT:-3307}
    DB_PASS=sepsis_cs_test
    MARIADBD=$(command -v mariadbd || command -v mysqld)
    INSTALL_DB=$(command -v mariadb-install-db || command -v mysql_install_db)
    MYSQL=$(command -v mariadb || command -v mysql)
    install -d -o mysql -g mysql "$DIR/mysql" "$DIR/mysqlrun"
    "$INSTALL_DB" --no-defaults --user=mysql --datadir="$DIR/mysql" --auth-root-authentication-method=socket \
        >"$DIR/log/mysql-install.log" 2>&1 || die "mariadb-install-db failed (see $DIR/log/mysql-install.log)"
    start mariadbd "$DIR/log/mariadbd.log" "$MARIADBD" --no-defaults --user=mysql --datadir="$DIR/mysql" \
        --socket="$DIR/mysqlrun/mysql.sock" --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DIR/mysqlrun/mariadbd.pid" \
        --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900
    wait_for 60 MariaDB "$MYSQL" --no-defaults --socket="$DIR/mysqlrun/mysql.sock" -u root -e 'SELECT 1'
    "$MYSQL" --no-defaults --socket="$DIR/mysqlrun/mysql.sock" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
    cat >"$DIR/slurmdbd.conf" <<EOF
# written by tests/slurm/cluster-up.sh --accounting
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/slurmdbd.conf"
    mkdir -p "$ETC" && ln -sfn "$DIR/slurmdbd.conf" "$ETC/slurmdbd.conf"
    ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
fi

# --- slurm.conf --------------------------------------------------------------------------------
NODE=$(hostname -s)
# CPUs, sockets, cores and RealMemory exactly as slurmd detects them (else the node is drained)
HW=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
cat >"$DIR/slurm.conf" <<EOF
# One-node test cluster written by tests/slurm/cluster-up.sh (/etc/slurm/slurm.conf links here)
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# finished jobs stay visible to squeue for 10 min (the plugin's squeue mode needs >= 3x its poll interval)
MinJobAge=600
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
JobCompType=jobcomp/none
$ACCT_LINES
NodeName=$NODE NodeAddr=127.0.0.1 $HW State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p "$ETC" && ln -sfn "$DIR/slurm.conf" "$ETC/slurm.conf"
unset SLURM_CONF

if [ "$ACCOUNTING" = 1 ]; then
    start slurmdbd "$DIR/log/slurmdbd.out" slurmdbd -D
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i add account sepsis_test Description=tests Organization=tests >/dev/null 2>&1 || true
    sacctmgr -i add user root Account=sepsis_test >/dev/null 2>&1 || true
fi

start slurmctld "$DIR/log/slurmctld.out" slurmctld -D -i
wait_for 60 slurmctld scontrol ping
start slurmd "$DIR/log/slurmd.out" slurmd -D
wait_for 60 "node $NODE" bash -c "sinfo -h -N -n '$NODE' -o %t | grep -Eq '^(idle|mix|alloc)'"

# a job must really run before we say the cluster works
jobid=$(cd "$DIR/jobs" && sbatch --parsable -p "$PARTITION" -t 1 --mem=10 -o "$DIR/jobs/smoke.out" --wrap 'echo ok')
wait_for 60 "smoke job $jobid" bash -c "grep -qx ok '$DIR/jobs/smoke.out'"

log "ready: partition $PARTITION on node $NODE ($HW); accounting=$ACCOUNTING"
