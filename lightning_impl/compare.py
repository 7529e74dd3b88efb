"""Kept so `python -m lightning_impl.compare` still works: the comparison lives in `cifar_common.compare`."""
import sys

from cifar_common.compare import main

if __name__ == "__main__":
    sys.exit(main())
