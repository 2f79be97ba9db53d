"""Running a spec's plan on a cluster: SLURM jobs made from the plan's steps (each job runs
`neuroexec apply --target STEP`, so locks, fingerprints and resume work as they do locally), pre-emption
(SIGTERM at a time limit: checkpoint, requeue) and torchrun under srun. SLURM schedules; this package only
submits."""
