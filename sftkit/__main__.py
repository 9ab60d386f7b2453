"""``python -m sftkit`` (and ``torchrun -m sftkit``, ``accelerate launch -m sftkit``): the sftkit CLI."""

from sftkit.cli import main

if __name__ == "__main__":
    main()
