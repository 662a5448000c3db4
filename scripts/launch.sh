#!/usr/bin/env bash
# Starts one msmedcap process per GPU (or CPU worker) with torchrun's environment (RANK,
# WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so that `msmedcap train` joins one c10d
# group: NCCL on CUDA devices, Gloo on CPU.
#
# One machine, 4 GPUs:
#   scripts/launch.sh --nproc 4 -- build/msmedcap train -c configs/models/msmedcap-opt2.7b.json \
#       -c configs/stages/stage2.json -c my-data.json --device cuda --run-dir runs/stage2
#   (each process takes cuda:LOCAL_RANK; loader.batch_size is per process)
#
# Two machines with 8 GPUs each (run on both; node 0's address is the rendezvous):
#   node0$ scripts/launch.sh --nnodes 2 --node-rank 0 --nproc 8 --master-addr node0 -- build/msmedcap train ...
#   node1$ scripts/launch.sh --nnodes 2 --node-rank 1 --nproc 8 --master-addr node0 -- build/msmedcap train ...
#   Gloo picks the interface of the machine's hostname; set GLOO_SOCKET_IFNAME=eth0 (NCCL:
#   NCCL_SOCKET_IFNAME) when that is the wrong one.
#
# Slurm: no launcher needed; `srun --ntasks-per-node=8 build/msmedcap train ...` sets
# SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and msmedcap takes the first host of
# SLURM_JOB_NODELIST as the rendezvous (or MASTER_ADDR / MASTER_PORT when exported).
#
# A Ctrl-C or SIGTERM reaches every process: each saves (rank 0 writes) and they exit 130/143.
# The launcher exits with the first non-zero status of its processes.
set -euo pipefail

nproc=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nproc) nproc="$2"; shift 2 ;;
    --nnodes) nnodes="$2"; shift 2 ;;
    --node-rank) node_rank="$2"; shift 2 ;;
    --master-addr) master_addr="$2"; shift 2 ;;
    --master-port) master_port="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "launch.sh: unknown option $1 (options before --, the command after it)" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "launch.sh: no command after --" >&2; exit 2; }
for v in "$nproc" "$nnodes" "$node_rank" "$master_port"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "launch.sh: '$v' is not a number" >&2; exit 2; }
done
(( node_rank < nnodes )) || { echo "launch.sh: --node-rank $node_rank outside --nnodes $nnodes" >&2; exit 2; }

world=$(( nproc * nnodes ))
pids=()
forward() { for p in "${pids[@]}"; do kill -s "$1" "$p" 2>/dev/null || true; done; }
trap 'forward INT' INT
trap 'forward TERM' TERM
for (( local = 0; local < nproc; local++ )); do
  RANK=$(( node_rank * nproc + local )) LOCAL_RANK=$local WORLD_SIZE=$world \
    MASTER_ADDR=$master_addr MASTER_PORT=$master_port "$@" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do
  s=0
  wait "$p" || s=$?
  # A wait interrupted by a trapped signal returns >128 while the child still runs: wait again.
  while (( s > 128 )) && kill -0 "$p" 2>/dev/null; do s=0; wait "$p" || s=$?; done
  (( status == 0 && s != 0 )) && status=$s
done
exit "$status"
