"""Test and bench tooling, never imported by a service: `testkit.platform` starts the
whole platform as processes (as `make run` does) for the e2e tests, UI tests and benches."""
