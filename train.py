"""Train an RNN with TP or BP: `python train.py [overrides]` (see conf/config.yaml)."""

from tpri.app import main

if __name__ == "__main__":
    main()
