"""Where the tests' own files are, for test modules in any folder below tests/."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
BENCH = ROOT / "bench"
