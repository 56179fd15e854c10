#!/usr/bin/env bash
# Starts a single-node Slurm on this machine (for the cluster tests in CI): installs Debian's
# slurm-wlm and munge when missing, then runs munged, slurmctld and slurmd as root without
# systemd. Idempotent: a Slurm that already answers is left alone. Needs root.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "slurm-up: needs root to start slurmctld and slurmd" >&2; exit 1; }
if timeout 5 sinfo -h >/dev/null 2>&1; then echo "slurm-up: Slurm already answers"; exit 0; fi

missing=()
for package in slurm-wlm munge; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# munge: a key, its run directory, the daemon.
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none; }
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

host=$(hostname -s)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=squeeze-ci
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
# A requeued job waits this long (default 120 s) before it starts again.
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MinJobAge=30
KillWait=10
ReturnToService=2
MaxArraySize=10001
NodeName=$host CPUs=$(nproc) RealMemory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 )) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 1 30); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then echo "slurm-up: node $host up with $(nproc) CPUs"; exit 0; fi
    sleep 1
done
echo "slurm-up: Slurm did not come up; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
