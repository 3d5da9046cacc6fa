"""Train an RNN with TP or BP: `python train.py [overrides]` (see conf/config.yaml)."""

import signal

# Ctrl-C before the job has anything to save (imports, composing the config) ends the process
# quietly instead of with a KeyboardInterrupt traceback; the job installs its own handler.
signal.signal(signal.SIGINT, signal.SIG_DFL)

from tpri.app import main  # noqa: E402

if __name__ == "__main__":
    main()
