"""The Hydra configs of tpri; installed as the package `tpri.conf` (read as `pkg://tpri.conf`)."""
