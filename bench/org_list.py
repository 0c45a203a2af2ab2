"""The staff organisations list, page of 50: throughput against a trivial view at 20,000 organisations,
and again once the database holds 200,000.

Targets: a ratio of at least 0.12 at 20,000; at 200,000 the ratio stays within 80% of the 20,000 figure.
The trivial view is the back office's empty page (bench/urls.py): the same log-in, two-factor check and
menu, with no content, so the figure is what the listing itself costs. Against the public robots.txt,
which does nothing at all, the ratio is printed too, for information.
"""

from bench.harness import EMPTY_BACK_OFFICE, TRIVIAL, Bench, Figure, report

LIST = "/admin/membership/organisation/"


def run() -> list[Figure]:
    with Bench("org_list") as bench:
        bench.create_database()
        bench.seed(20_000)
        bench.login_staff()
        bench.start()
        status, body = bench.get(LIST)
        assert status == 200 and b"organisations" in body.lower(), f"the list did not render ({status})"
        assert bench.get(EMPTY_BACK_OFFICE)[0] == 200, "the empty back-office page did not render"
        small = bench.compare(LIST, against=EMPTY_BACK_OFFICE)
        bare = bench.compare(LIST, against=TRIVIAL, rounds=3)
        bench.__exit__()

        # Contacts are not needed for the list's cost; organisations are.
        bench.seed(200_000, "--without-contacts")
        bench.start()
        large = bench.compare(LIST, against=EMPTY_BACK_OFFICE)

    scaling = large["ratio"] / small["ratio"]
    return [
        Figure("org list / empty back-office page, 20k orgs", small["ratio"], ">= 0.12", small["ratio"] >= 0.12, small),
        Figure("org list ratio, 200k orgs / 20k orgs", scaling, ">= 0.80", scaling >= 0.80, large),
        Figure("org list / robots.txt, 20k orgs (information)", bare["ratio"], "none", True, bare),
    ]


if __name__ == "__main__":
    report("Staff organisations list", run())
