"""Code shared by the Lambdas (packaged with each of them as the `common` package by infra/alerting.py)."""
