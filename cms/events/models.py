"""Events: the programme's pages, and the registrations that fill their places.

Places are counted, never stored: a place is taken by a registration that is confirmed or held awaiting payment,
and every change that takes or frees one locks the event's row first (``cms.events.services``), so two people
can never both take the last place. The page holds only what editors write; it keeps no counters, because
publishing an older revision would roll a counter back.
"""

import secrets
import zoneinfo

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.functional import cached_property
from modelcluster.fields import ParentalManyToManyField
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel
from wagtail.fields import RichTextField
from wagtail.models import Page, PageManager, PageViewRestriction
from wagtail.query import PageQuerySet
from wagtail.search import index

from cms.cache import QuickPrivacyCheck, any_view_restrictions

DEFAULT_TIME_ZONE = "Europe/London"
# Ticket references are read aloud and typed at the door: no 0/O or 1/I/L.
TICKET_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
TICKET_LENGTH = 8
EVENTS_PER_PAGE = 12
RICH_TEXT_FEATURES = ["h2", "h3", "bold", "italic", "link", "ol", "ul"]


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a time zone name such as Europe/London.")


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


def new_ticket_reference() -> str:
    return "".join(secrets.choice(TICKET_ALPHABET) for _ in range(TICKET_LENGTH))


class EventIndexPage(QuickPrivacyCheck, Page):
    """The events programme: what is coming up, soonest first, and what has been, each list paginated."""

    intro = RichTextField(blank=True, features=RICH_TEXT_FEATURES)

    content_panels = [*Page.content_panels, FieldPanel("intro")]
    search_fields = [*Page.search_fields, index.SearchField("intro")]

    parent_page_types = ["cms.HomePage"]
    subpage_types = ["cms.EventPage"]

    class Meta:
        verbose_name = "events index page"

    def get_context(self, request, *args, **kwargs):
        from django.core.paginator import Paginator

        context = super().get_context(request, *args, **kwargs)
        events = _readable_by(request, EventPage.objects.child_of(self))
        events = events.with_places_taken().prefetch_related("free_for_tiers")
        now = timezone.now()
        context["upcoming"] = Paginator(events.upcoming(now), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
        context["past"] = Paginator(events.past(now), EVENTS_PER_PAGE).get_page(request.GET.get("past"))
        return context


def _readable_by(request, events: "EventPageQuerySet") -> "EventPageQuerySet":
    """The events whose own privacy settings (a password, log-in or group restriction on the event's page) let
    this visitor read them: the programme does not name an event its page would refuse. Restrictions on the
    index and above were checked by Wagtail before the index was served."""
    if not any_view_restrictions():
        return events
    restrictions = PageViewRestriction.objects.filter(page__in=events.values("pk")).prefetch_related("groups")
    refused = {restriction.page_id for restriction in restrictions if not restriction.accept_request(request)}
    return events.exclude(pk__in=refused) if refused else events


class EventPageQuerySet(PageQuerySet):
    def upcoming(self, now=None) -> "EventPageQuerySet":
        """Live events that have not yet ended (those under way included), soonest first."""
        return self.live().filter(ends_at__gte=now or timezone.now()).order_by("starts_at", "pk")

    def past(self, now=None) -> "EventPageQuerySet":
        """Live events that have ended, most recent first."""
        return self.live().filter(ends_at__lt=now or timezone.now()).order_by("-starts_at", "-pk")

    def with_places_taken(self) -> "EventPageQuerySet":
        """Annotate ``places_taken``: registrations confirmed or held for payment, in one query with the events."""
        taken = (
            EventRegistration.objects.filter(event=OuterRef("pk"), status__in=EventRegistration.HOLDS_A_PLACE)
            .order_by()
            .values("event")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return self.annotate(places_taken=Coalesce(Subquery(taken), 0))


EventPageManager = PageManager.from_queryset(EventPageQuerySet)


class EventPage(QuickPrivacyCheck, Page):
    """One event: when and where, how many places, what a place costs, and when registration is open.

    Times are stored in UTC and shown in the event's own time zone. The online link is shown only to people
    with a confirmed place. Members of the tiers in ``free_for_tiers`` attend free; other members pay
    ``member_price_pence``; everyone else (the public, lapsed organisations) ``non_member_price_pence``.
    """

    starts_at = models.DateTimeField("starts", help_text="In the back office's time zone (UK time).")
    ends_at = models.DateTimeField("ends")
    time_zone = models.CharField(
        max_length=64,
        default=DEFAULT_TIME_ZONE,
        validators=[validate_time_zone],
        help_text="Where the event happens: the site shows its times in this zone.",
    )
    summary = models.TextField(max_length=300, help_text="One or two sentences for the events list and e-mails.")
    description = RichTextField(blank=True, features=RICH_TEXT_FEATURES)
    venue_name = models.CharField("venue", max_length=200, blank=True)
    venue_address = models.TextField(blank=True)
    online_url = models.URLField(
        "online link",
        blank=True,
        help_text="For online or hybrid events: shown only to people with a confirmed place.",
    )
    capacity = models.PositiveIntegerField(help_text="Places available, in person and online together.")
    member_price_pence = models.PositiveIntegerField(
        "member price (pence)", default=0, help_text="0 for free. For members of active organisations."
    )
    non_member_price_pence = models.PositiveIntegerField(
        "non-member price (pence)", default=0, help_text="0 for free. For the public and lapsed organisations."
    )
    free_for_tiers = ParentalManyToManyField(
        "membership.Tier",
        blank=True,
        related_name="free_events",
        verbose_name="free for members of",
        help_text="Places are included in these tiers: their members attend free.",
    )
    registration_opens_at = models.DateTimeField(
        "registration opens", null=True, blank=True, help_text="Empty: open as soon as the page is published."
    )
    registration_closes_at = models.DateTimeField(
        "registration closes", null=True, blank=True, help_text="Empty: open until the event starts."
    )

    objects = EventPageManager()

    content_panels = [
        *Page.content_panels,
        FieldPanel("summary"),
        MultiFieldPanel(
            [
                FieldRowPanel([FieldPanel("starts_at"), FieldPanel("ends_at")]),
                FieldPanel("time_zone", widget=forms.Select(choices=time_zone_choices())),
            ],
            heading="When",
        ),
        MultiFieldPanel(
            [FieldPanel("venue_name"), FieldPanel("venue_address"), FieldPanel("online_url")], heading="Where"
        ),
        MultiFieldPanel(
            [
                FieldPanel("capacity"),
                FieldRowPanel([FieldPanel("member_price_pence"), FieldPanel("non_member_price_pence")]),
                FieldPanel("free_for_tiers", widget=forms.CheckboxSelectMultiple),
                FieldRowPanel([FieldPanel("registration_opens_at"), FieldPanel("registration_closes_at")]),
            ],
            heading="Places and registration",
        ),
        FieldPanel("description"),
    ]
    search_fields = [
        *Page.search_fields,
        index.SearchField("summary"),
        index.SearchField("description"),
        index.SearchField("venue_name"),
        index.FilterField("starts_at"),
        index.FilterField("ends_at"),
    ]

    parent_page_types = ["cms.EventIndexPage"]
    subpage_types: list[str] = []

    class Meta:
        verbose_name = "event page"

    def clean(self) -> None:
        super().clean()
        errors = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The event must end after it starts."
        if not (self.venue_name or self.online_url):
            errors["venue_name"] = "Give a venue, an online link, or both."
        opens, closes = self.registration_opens_at, self.registration_closes_at
        if opens and closes and closes <= opens:
            errors["registration_closes_at"] = "Registration must close after it opens."
        if errors:
            raise ValidationError(errors)

    @cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone or DEFAULT_TIME_ZONE)

    @property
    def local_starts_at(self):
        return timezone.localtime(self.starts_at, self.zone)

    @property
    def local_ends_at(self):
        return timezone.localtime(self.ends_at, self.zone)

    @property
    def is_online(self) -> bool:
        return bool(self.online_url)

    @property
    def is_in_person(self) -> bool:
        return bool(self.venue_name)

    @property
    def venue_line(self) -> str:
        """The venue and its address on one line: "The Catalyst, 3 Science Square, Newcastle NE4 5TG"."""
        address = [line.strip() for line in self.venue_address.splitlines() if line.strip()]
        return ", ".join([self.venue_name, *address] if self.venue_name else address)

    @property
    def registration_closes(self):
        return self.registration_closes_at or self.starts_at

    def registration_state(self, now=None) -> str:
        """``not_yet``, ``open`` or ``closed``: whether people may register (or join the waitlist) now."""
        now = now or timezone.now()
        if self.registration_opens_at and now < self.registration_opens_at:
            return "not_yet"
        if now >= self.registration_closes or now >= self.ends_at:
            return "closed"
        return "open"

    def has_ended(self, now=None) -> bool:
        return self.ends_at < (now or timezone.now())

    def places_left(self, taken: int) -> int:
        return max(self.capacity - taken, 0)

    @property
    def places_remaining(self) -> int | None:
        """Places left, on events fetched ``with_places_taken()``; None on others."""
        taken = getattr(self, "places_taken", None)
        return None if taken is None else self.places_left(taken)

    def get_context(self, request, *args, **kwargs):
        from cms.events.views import event_page_context

        context = super().get_context(request, *args, **kwargs)
        context.update(event_page_context(request, self, form=kwargs.get("form")))
        return context


class EventRegistrationQuerySet(models.QuerySet["EventRegistration"]):
    def holding_places(self) -> "EventRegistrationQuerySet":
        return self.filter(status__in=EventRegistration.HOLDS_A_PLACE)

    def live(self) -> "EventRegistrationQuerySet":
        return self.filter(status__in=EventRegistration.LIVE)

    def waitlist(self) -> "EventRegistrationQuerySet":
        """The waitlist in the order places are offered: first come, first served."""
        return self.filter(status=EventRegistration.Status.WAITLISTED).order_by("waitlisted_at", "pk")


class EventRegistration(models.Model):
    """One person's place (or place in the queue) at one event, under one of their organisations or as
    themselves.

    A person has at most one live registration per event (a unique constraint backs the check made under the
    event's lock). The price is fixed when they register. ``reference`` is printed on the ticket; the QR code
    carries it signed (``cms.events.tickets``).
    """

    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", "Awaiting payment"
        CONFIRMED = "confirmed", "Confirmed"
        WAITLISTED = "waitlisted", "On the waitlist"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Not paid in time"

    class Pricing(models.TextChoices):
        INCLUDED = "included", "Included in the membership tier"
        MEMBER = "member", "Member price"
        NON_MEMBER = "non_member", "Non-member price"

    HOLDS_A_PLACE = [Status.CONFIRMED, Status.PENDING_PAYMENT]
    LIVE = [Status.CONFIRMED, Status.PENDING_PAYMENT, Status.WAITLISTED]

    event = models.ForeignKey(EventPage, on_delete=models.CASCADE, related_name="registrations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="event_registrations")
    organisation = models.ForeignKey(
        "membership.Organisation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="event_registrations",
        help_text="Empty: registered as an individual.",
    )
    name = models.CharField("name on the badge", max_length=150)
    email = models.EmailField("e-mail")
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    pricing = models.CharField(max_length=12, choices=Pricing.choices)
    price_pence = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="GBP", editable=False)
    reference = models.CharField(max_length=TICKET_LENGTH, unique=True, default=new_ticket_reference, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    waitlisted_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    hold_expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="An unpaid place is released at this time."
    )
    stripe_checkout_session_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=100, blank=True)
    amount_paid_pence = models.PositiveIntegerField(default=0)
    paid_at = models.DateTimeField(null=True, blank=True)
    attended_at = models.DateTimeField("checked in", null=True, blank=True)
    checked_in_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    emailed_status = models.CharField(
        max_length=20, blank=True, editable=False, help_text="The status last e-mailed about, so each goes once."
    )

    objects = EventRegistrationQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "user"],
                condition=Q(status__in=["pending_payment", "confirmed", "waitlisted"]),
                name="cms_eventregistration_one_live_per_person",
            ),
        ]
        indexes = [models.Index(fields=["event", "status"], name="cms_eventreg_event_status")]

    def __str__(self) -> str:
        return f"{self.name} at {self.event.title} ({self.get_status_display()})"

    @property
    def holds_a_place(self) -> bool:
        return self.status in self.HOLDS_A_PLACE

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE

    @property
    def is_paid(self) -> bool:
        return self.price_pence > 0

    @property
    def price_label(self) -> str:
        from membership.billing import format_pence

        return format_pence(self.price_pence) if self.price_pence else "Free"
