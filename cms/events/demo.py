"""Demo events: a programme across the region, past and upcoming, with registrations and attendance.

Running it again adds nothing: events are found by their slug, and an event that has registrations gets no more.
"""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from cms.events import services
from cms.events.models import DEFAULT_TIME_ZONE, EventIndexPage, EventPage, EventRegistration
from cms.models import HomePage
from membership.activity import record_activity
from membership.models import ActivityKind, OrganisationMember, Tier

Status = EventRegistration.Status
TEAM_GROUP = "Membership team"


@dataclass(frozen=True)
class EventSpec:
    title: str
    days: int  # from today; negative for past events
    start: time
    hours: float
    venue: str
    address: str
    summary: str
    capacity: int
    member_pence: int = 0
    non_member_pence: int = 0
    free_for: list[str] = field(default_factory=list)
    online_url: str = ""
    opens_in_days: int | None = None
    registrations: int = 0  # how many demo people register
    attended: float = 0.8  # of a past event's confirmed places, the share checked in
    with_sample_login: bool = False  # the printed sample log-in attended it


EVENTS = [
    EventSpec(
        "Tech Tuesday: Data Engineering in the North East",
        -62,
        time(18, 0),
        2.5,
        "The Catalyst",
        "3 Science Square\nNewcastle Helix\nNewcastle upon Tyne NE4 5TG",
        "Three of the region's data teams on the pipelines behind their products, then drinks and networking.",
        80,
        non_member_pence=1000,
        registrations=34,
    ),
    EventSpec(
        "Cyber Resilience for SMEs",
        -31,
        time(9, 30),
        3,
        "Sunderland Software Centre",
        "Tavistock Place\nSunderland SR1 1PB",
        "A practical morning with the regional cyber resilience centre: incident plans, supply chains and insurance.",
        60,
        registrations=27,
    ),
    EventSpec(
        "Founders' Breakfast: Raising Your First Round",
        -9,
        time(8, 0),
        1.5,
        "Boiler Shop",
        "20 South Street\nNewcastle upon Tyne NE1 3PE",
        "North East founders and investors on what a first round really takes, over breakfast.",
        40,
        member_pence=0,
        non_member_pence=1500,
        registrations=22,
        with_sample_login=True,
    ),
    EventSpec(
        "Members' Winter Networking Evening",
        12,
        time(18, 30),
        3,
        "BALTIC Centre for Contemporary Art",
        "Gateshead Quays\nSouth Shore Road\nGateshead NE8 3BA",
        "Our members' winter gathering on the Quayside: meet the network, the advisory board and the award winners.",
        150,
        member_pence=1000,
        non_member_pence=2500,
        free_for=["growth", "enterprise", "patron"],
        registrations=18,
    ),
    EventSpec(
        "Online: Winning Public Sector Contracts",
        18,
        time(12, 30),
        1,
        "",
        "",
        "A lunchtime webinar on frameworks, tenders and social value, with procurement leads from two councils.",
        300,
        online_url="https://meet.netech.example/public-sector-contracts",
        registrations=9,
    ),
    EventSpec(
        "AI in Practice: Lessons from Teesside",
        25,
        time(14, 0),
        3.5,
        "Teesside University, The Curve",
        "Southfield Road\nMiddlesbrough TS1 3BX",
        "Teesside teams who have put machine learning into production, and what they would do differently.",
        100,
        non_member_pence=1500,
        registrations=11,
    ),
    EventSpec(
        "Women in Tech North East: Mentoring Circle",
        40,
        time(17, 30),
        2,
        "Durham University, Palatine Centre",
        "Stockton Road\nDurham DH1 3LE",
        "A small, practical mentoring circle pairing people early in their tech careers with experienced leaders.",
        12,
        registrations=15,  # more than the places: three are on the waitlist
    ),
    EventSpec(
        "North East Tech Showcase 2027",
        75,
        time(10, 0),
        8,
        "The Glasshouse International Centre for Music",
        "St Mary's Square\nGateshead Quays\nGateshead NE8 2JR",
        "The region's biggest day of demos, talks and awards. Registration opens a week from today.",
        400,
        member_pence=4500,
        non_member_pence=9500,
        free_for=["enterprise", "patron"],
        opens_in_days=7,
    ),
]


def seed_events() -> dict:
    """The events index, the demo programme and its registrations; returns how many of each now exist."""
    index = _events_index()
    people = _people()
    tiers = {tier.slug: tier for tier in Tier.objects.all()}
    for spec in EVENTS:
        event = index.get_children().filter(slug=_slug(spec.title)).specific().first() or _add_event(index, spec, tiers)
        if not event.registrations.exists():
            _seed_registrations(event, spec, people)
    _grant_team_permissions()
    return {"events": EventPage.objects.count(), "registrations": EventRegistration.objects.count()}


def _slug(title: str) -> str:
    from django.utils.text import slugify

    return slugify(title)[:80]


def _events_index() -> EventIndexPage:
    index = EventIndexPage.objects.filter(slug="events").first()
    if index is None:
        index = EventIndexPage(
            title="Events",
            slug="events",
            intro="<p>Networking evenings, practical workshops and the region's biggest tech showcase. "
            "Members register under their organisation; many events are free with membership.</p>",
        )
        HomePage.objects.get().add_child(instance=index)
    return index


def _at(days: int, moment: time) -> datetime:
    day = timezone.localdate() + timedelta(days=days)
    return timezone.make_aware(datetime.combine(day, moment))


def _add_event(index: EventIndexPage, spec: EventSpec, tiers: dict[str, Tier]) -> EventPage:
    starts_at = _at(spec.days, spec.start)
    event = EventPage(
        title=spec.title,
        slug=_slug(spec.title),
        summary=spec.summary,
        description=f"<p>{spec.summary}</p><p>Doors open 15 minutes before the start. Step-free access throughout.</p>",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=spec.hours),
        time_zone=DEFAULT_TIME_ZONE,
        venue_name=spec.venue,
        venue_address=spec.address,
        online_url=spec.online_url,
        capacity=spec.capacity,
        member_price_pence=spec.member_pence,
        non_member_price_pence=spec.non_member_pence,
        registration_opens_at=_at(spec.opens_in_days, time(9, 0)) if spec.opens_in_days else None,
    )
    index.add_child(instance=event)
    event.free_for_tiers.set([tiers[slug] for slug in spec.free_for if slug in tiers])
    event.save()
    event.save_revision().publish()
    return event


def _people() -> list[OrganisationMember]:
    """Demo contacts to register, the printed sample log-in last (so they can register for upcoming events
    themselves, and still have a past event in My events)."""
    members = list(
        OrganisationMember.objects.active().select_related("user", "organisation").order_by("organisation_id", "pk")
    )
    return members[1:] + members[:1]


def _seed_registrations(event: EventPage, spec: EventSpec, people: list[OrganisationMember]) -> None:
    """Registrations as the service would have made them, written directly: a demo should not send e-mails."""
    if not people or not spec.registrations:
        return
    past = event.has_ended()
    offset = (sum(map(ord, spec.title)) * 7) % len(people)
    chosen = [people[(offset + n * 5) % len(people)] for n in range(spec.registrations)]
    if spec.with_sample_login:
        chosen[0] = people[-1]
    free_tier_ids = set(event.free_for_tiers.values_list("pk", flat=True))
    seen, taken = set(), 0
    for number, membership in enumerate(chosen):
        if membership.user_id in seen:
            continue
        seen.add(membership.user_id)
        offer = services.price_for(event, membership.organisation, free_tier_ids)
        moment = event.starts_at - timedelta(days=20 - number % 15, hours=number % 9)
        confirmed = taken < event.capacity
        taken += confirmed
        registration = EventRegistration.objects.create(
            event=event,
            user=membership.user,
            organisation=membership.organisation,
            name=membership.user.get_full_name() or membership.user.email,
            email=membership.user.email,
            status=Status.CONFIRMED if confirmed else Status.WAITLISTED,
            pricing=offer.pricing,
            price_pence=offer.price_pence,
            amount_paid_pence=offer.price_pence if confirmed else 0,
            paid_at=moment if confirmed and offer.price_pence else None,
            created_at=moment,
            confirmed_at=moment if confirmed else None,
            waitlisted_at=None if confirmed else moment,
            emailed_status=Status.CONFIRMED if confirmed else Status.WAITLISTED,
        )
        record_activity(
            membership.organisation,
            ActivityKind.EVENT_REGISTERED,
            key=services.activity_key(registration),
            person=membership.user,
            detail=event.title,
            occurred_at=moment,
        )
        if past and confirmed and number < len(chosen) * spec.attended:
            _attended(registration)


def _attended(registration: EventRegistration) -> None:
    services.check_in(registration, actor=None)
    arrived = registration.event.starts_at + timedelta(minutes=registration.pk % 40 - 10)
    EventRegistration.objects.filter(pk=registration.pk).update(attended_at=arrived)
    registration.organisation.activity.filter(key=f"event_attended:{services.activity_key(registration)}").update(
        occurred_at=arrived
    )


def _grant_team_permissions() -> None:
    """The membership team sees registrations and checks people in at the door."""
    team = Group.objects.filter(name=TEAM_GROUP).first()
    if team is not None:
        team.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="cms", codename__in=["view_eventregistration", "change_eventregistration"]
            )
        )
