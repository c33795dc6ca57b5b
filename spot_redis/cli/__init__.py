"""`spot-redis`: the operator's one command for a deployed stack (status, start, stop, warmup, connect, drill, cost).

main.py dispatches; context.py finds the stack, its outputs, its config and the AWS clients; each subcommand is a
module with `register(subparsers)`.
"""
