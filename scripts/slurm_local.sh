#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine (127.0.0.1), for trying the SLURM
# launchers and for the `cluster` tests (tests/test_cluster.py). Debian/Ubuntu packages:
# slurm-wlm (slurmctld, slurmd, clients), munge, and slurmdbd + MariaDB so that `sacct` works
# (submitit polls job states with it). Needs root for apt-get (once) and for the daemons.
#
#   scripts/slurm_local.sh up      # install if missing, write the configs, start the daemons
#   source "$TPRI_SLURM_DIR/env.sh"  # SLURM_CONF for sbatch / squeue / sacct / submitit
#   scripts/slurm_local.sh down    # stop every daemon it started, by the PID it recorded
#
# Everything (configs, munge key and socket, database, state, logs, pid files) lives under
# TPRI_SLURM_DIR (default /tmp/tpri-slurm-local); nothing is written under /etc.
# Settings (environment): TPRI_SLURM_DIR, TPRI_SLURM_CPUS (default nproc), TPRI_SLURM_NICE
# (default 10: jobs run niced on a shared machine), TPRI_SLURM_PORT (default 6917: slurmctld;
# slurmd, slurmdbd and MariaDB use the next three ports).
set -euo pipefail

DIR=${TPRI_SLURM_DIR:-/tmp/tpri-slurm-local}
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; stopped in reverse

install_packages() {
    local missing=0 cmd
    for cmd in munged mariadbd slurmdbd slurmctld slurmd sbatch sacct; do
        command -v "$cmd" >/dev/null || missing=1
    done
    [ "$missing" = 0 ] && return
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        munge slurmctld slurmd slurm-client slurmdbd mariadb-server >/dev/null
}

alive() { [ -f "$DIR/pid/$1" ] && kill -0 "$(cat "$DIR/pid/$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS COMMAND...: true once COMMAND succeeds
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.2
    done
}

write_configs() {
    local host cpus mem port
    host=$(hostname -s)
    cpus=${TPRI_SLURM_CPUS:-$(nproc)}
    port=${TPRI_SLURM_PORT:-6917}
    # 95% of what slurmd finds: a node reporting less memory than configured is drained
    mem=$(slurmd -C | tr ' ' '\n' | sed -n 's/^RealMemory=//p')
    mem=$((mem * 95 / 100))
    cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/socket
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$((port + 2))
SlurmUser=root
PidFile=$DIR/pid/slurmdbd
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((port + 3))
StorageUser=slurm
StoragePass=local-only
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/slurmdbd.conf"
    cat >"$DIR/slurm.conf" <<EOF
# written by scripts/slurm_local.sh: one node, one partition, on 127.0.0.1
ClusterName=tpri
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/pid/slurmctld
SlurmdPidFile=$DIR/pid/slurmd
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# containers without cgroups: processes tracked through /proc, no binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((port + 2))
AccountingStoragePass=$DIR/munge/socket
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=3600
PropagatePrioProcess=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    echo "export SLURM_CONF=$DIR/slurm.conf" >"$DIR/env.sh"
}

start_munge() {
    [ -s "$DIR/munge/key" ] || head -c 1024 /dev/urandom >"$DIR/munge/key"
    chmod 400 "$DIR/munge/key"
    munged --force --key-file="$DIR/munge/key" --socket="$DIR/munge/socket" \
        --pid-file="$DIR/pid/munged" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
    wait_for 10 test -S "$DIR/munge/socket"
}

start_database() {
    local port=$((${TPRI_SLURM_PORT:-6917} + 3)) sql="mariadb -S $DIR/mysql.sock"
    if [ ! -d "$DIR/db/mysql" ]; then
        mariadb-install-db --user=root --datadir="$DIR/db" --skip-test-db >"$DIR/log/db-install.log" 2>&1
    fi
    setsid mariadbd --user=root --datadir="$DIR/db" --socket="$DIR/mysql.sock" --port="$port" \
        --bind-address=127.0.0.1 --pid-file="$DIR/pid/mariadbd" --log-error="$DIR/log/mariadbd.log" \
        --innodb-buffer-pool-size=32M </dev/null >/dev/null 2>&1 &
    wait_for 60 $sql -e 'select 1'
    $sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'local-only';
             GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
}

up() {
    if alive slurmctld; then
        echo "a cluster of $DIR is running already (slurmctld $(cat "$DIR/pid/slurmctld")); $0 down first" >&2
        exit 1
    fi
    local t0=$SECONDS
    install_packages
    mkdir -p "$DIR"/{munge,state,spool,log,pid,db}
    chmod 700 "$DIR/munge"
    write_configs
    export SLURM_CONF=$DIR/slurm.conf
    start_munge
    start_database
    slurmdbd
    wait_for 30 sacctmgr -n list cluster
    sacctmgr -n -P list cluster format=cluster | grep -qx tpri || sacctmgr -i add cluster tpri >/dev/null
    slurmctld
    wait_for 30 sh -c 'scontrol ping | grep -q UP'
    nice -n "${TPRI_SLURM_NICE:-10}" slurmd
    if ! wait_for 30 sh -c 'sinfo -h -o %T | grep -qE "idle|mixed|allocated"'; then
        echo "the node did not come up; see $DIR/log/slurmd.log and slurmctld.log" >&2
        exit 1
    fi
    echo "SLURM up in $((SECONDS - t0)) s ($DIR); now: source $DIR/env.sh"
}

down() {
    local i name pid
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        [ -f "$DIR/pid/$name" ] || continue
        pid=$(cat "$DIR/pid/$name")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait_for 30 sh -c "! kill -0 $pid" || echo "$name ($pid) still running after 30 s" >&2
        fi
        rm -f "$DIR/pid/$name"
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *)
        echo "usage: $0 up|down (cluster files in TPRI_SLURM_DIR=$DIR)" >&2
        exit 2
        ;;
esac
