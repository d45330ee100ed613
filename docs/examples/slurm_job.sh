#!/bin/bash
#SBATCH --time=24:00:00
# SLURM sends SIGTERM at the time limit, then SIGKILL KillWait seconds later
# (30 by default). Ask for SIGTERM 10 minutes early instead, long enough for
# the running calls to finish: the job ends with every result saved.
#SBATCH --signal=B:TERM@600
# "exec": python receives the signal itself, not a bash that waits for it.
exec python sweep.py
