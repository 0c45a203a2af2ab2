"""A public news page: throughput against a trivial view on the same gunicorn, rendered on every request and
then served from the page cache.

Targets, against the public ``robots.txt`` (behind the same middleware, no database work): a ratio of at least
0.15 uncached, and at least 0.5 with the page cache on (``PAGE_CACHE=true``). The uncached ratio is printed
against the site's empty public page too (``bench/urls.py``: header, navigation and footer around no content),
for information: that figure is what the news page's own work costs beyond the site's frame.

The page is the demo's newest story: a listing image, a body with a quote and a call to action, tags and a
"more news" list. Requests are anonymous, as a search engine or a shared link sends them. With the page cache on,
each of the two gunicorn workers keeps its own local-memory cache (production shares one in Redis).
"""

import http.client

from bench.harness import EMPTY_PUBLIC_PAGE, TRIVIAL, Bench, Figure, report

PAGE = "/news/sunderland-software-centre-expands/"


def _cache_state(bench: Bench) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=30)
    conn.request("GET", PAGE)
    response = conn.getresponse()
    response.read()
    return response.getheader("X-Page-Cache") or ""


def _check(bench: Bench, *, cached: bool) -> None:
    status, body = bench.get(PAGE)
    assert status == 200 and b"Sunderland Software Centre" in body, f"the news page did not render ({status})"
    states = [_cache_state(bench) for _ in range(6)]
    if cached:  # later requests must come from the cache, or the figure would measure nothing
        assert "hit" in states, f"the page cache did not answer: {states}"
    else:
        assert not any(states), f"the page cache answered while off: {states}"


def run() -> list[Figure]:
    with Bench("news_page") as bench:
        bench.create_database()
        bench.seed(60)
        bench.env["PAGE_CACHE"] = "false"
        bench.start()
        _check(bench, cached=False)
        assert bench.get(EMPTY_PUBLIC_PAGE)[0] == 200, "the empty public page did not render"
        uncached = bench.compare(PAGE, against=TRIVIAL)
        frame = bench.compare(PAGE, against=EMPTY_PUBLIC_PAGE, rounds=3)
        bench.__exit__()

        bench.env["PAGE_CACHE"] = "true"
        bench.start()
        _check(bench, cached=True)
        cached = bench.compare(PAGE, against=TRIVIAL)

    return [
        Figure("news page / robots.txt, uncached", uncached["ratio"], ">= 0.15", uncached["ratio"] >= 0.15, uncached),
        Figure("news page / robots.txt, page cache on", cached["ratio"], ">= 0.50", cached["ratio"] >= 0.5, cached),
        Figure("news page / empty public page, uncached (information)", frame["ratio"], "none", True, frame),
    ]


if __name__ == "__main__":
    report("News page", run())
