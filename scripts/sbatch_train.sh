#!/bin/bash
# One long job under SLURM, requeued after its time limit or a preemption and resumed from its
# checkpoint: `sbatch scripts/sbatch_train.sh experiment=temporal_order_60 max_iter=40000`
# (the arguments are train.py's overrides; the job dir is outputs/slurm/<job id>).
#SBATCH --time=04:00:00
#SBATCH --signal=USR2@120          # SIGUSR2 to the job two minutes before the limit
#SBATCH --requeue                  # a preempted job goes back to the queue
#SBATCH --open-mode=append         # a requeued job appends to its log instead of truncating it
#SBATCH --output=outputs/slurm/%j.log
srun python train.py "$@" hydra.run.dir="outputs/slurm/$SLURM_JOB_ID"
code=$?
if [ "$code" -eq 143 ]; then  # stopped by the signal after writing its checkpoint
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$code"
