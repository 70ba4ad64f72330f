"""CPU of reading one postfix_exporter page (queues, ages, rejection counters),
beside the anchor: prometheus_client's parser merely walking the same page.

    python bench/mta_parse.py
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from noc_collectors.mta import MtaMetrics, read_mta

PAGE = (Path(__file__).parent.parent / "tests/data/postfix_exporter_0.3.0.prom").read_text()
ROUNDS = 2000


def cpu_ms_per_page(work: object) -> float:
    start = time.process_time()
    for _ in range(ROUNDS):
        work()  # type: ignore[operator]
    return (time.process_time() - start) * 1000 / ROUNDS


def main() -> None:
    metrics = MtaMetrics()
    anchor = cpu_ms_per_page(
        lambda: [s for f in text_string_to_metric_families(PAGE) for s in f.samples]
    )
    ours = cpu_ms_per_page(lambda: read_mta(PAGE, metrics))
    print(f"page: {len(PAGE)} bytes, {ROUNDS} rounds")
    print(f"anchor, prometheus_client parse only: {anchor:.3f} CPU-ms per page")
    print(
        f"read_mta (parse + select + histogram floor): {ours:.3f} CPU-ms per page "
        f"({ours / anchor:.2f}x the anchor)"
    )


if __name__ == "__main__":
    main()
