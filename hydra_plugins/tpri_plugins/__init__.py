"""tpri's Hydra plugins (Hydra loads plugins from the `hydra_plugins` namespace only):
`sweeper.PlannedSweeper` (conf/hydra/sweeper/planned.yaml, the default sweeper)."""
