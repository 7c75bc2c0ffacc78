"""Test-session set-up shared by every test file."""

import signal

# A shell without job control starts background commands with SIGINT ignored, and an
# ignored signal stays ignored across exec: the command-line runs that the tests
# interrupt with SIGINT (Ctrl-C) would never see it.  A handled SIGINT is reset to the
# default in every child, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Reports save their figures in this process: forking a test process (large, often with threads
# of earlier tests' clusters) costs more than it saves here; tests/test_report.py checks the
# forked path in a fresh interpreter.
import phasekit.report  # noqa: E402

phasekit.report._SAVE_PROCESSES = 1


def pytest_collection_finish(session):
    # Long subprocess checks (the Sphinx build, the README tour) start now and run on another
    # core while the other tests run (tests/background.py).
    import background

    background.start_jobs_of({item.module for item in session.items if getattr(item, "module", None)})


def pytest_sessionfinish(session, exitstatus):
    import background

    background.stop_all()
