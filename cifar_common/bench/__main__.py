"""`python -m cifar_common.bench`: the benchmark driver."""
from cifar_common.bench.driver import main

raise SystemExit(main())
