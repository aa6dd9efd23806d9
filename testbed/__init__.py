"""Real local servers and data for the demo, the tests and the benchmarks.

Every server binds 127.0.0.1 on a free port, is started and stopped by PID, and is bounded in time.
"""
