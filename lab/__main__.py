"""python -m lab up|down|status|info: see lab/control.py."""

from lab.control import main

main()
