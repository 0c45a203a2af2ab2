import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from modelcluster.fields import ParentalKey
from modelcluster.models import ClusterableModel
from taggit.managers import TaggableManager
from taggit.models import TaggedItemBase


class OrganisationType(models.TextChoices):
    CORPORATE = "corporate", "Corporate"
    SME = "sme", "SME"
    STARTUP = "startup", "Start-up"
    CONSULTANCY = "consultancy", "Consultancy"
    EDUCATION = "education", "Education"
    PUBLIC_SECTOR = "public_sector", "Public sector"
    CHARITY = "charity", "Charity"


class SizeBand(models.TextChoices):
    MICRO = "1-9", "1-9 staff"
    SMALL = "10-49", "10-49 staff"
    MEDIUM = "50-249", "50-249 staff"
    LARGE = "250+", "250+ staff"


class Specialism(models.Model):
    """A field the region's tech organisations work in; the membership team keeps the list."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PublicField(models.TextChoices):
    """What an organisation may choose to show on its public directory card."""

    DESCRIPTION = "description", "Description"
    LOGO = "logo", "Logo"
    WEBSITE = "website", "Website"
    TOWN = "town", "Town"
    SIZE = "size_band", "Size"
    TYPE = "organisation_type", "Type"
    SPECIALISMS = "specialisms", "Specialisms"
    SOCIAL = "social", "Social links"


# What an organisation's price is looked up by (the tier's price matrix): locked for its admins once subscribed.
PRICING_FIELDS = ["organisation_type", "size_band"]

DEFAULT_PUBLIC_FIELDS = [
    PublicField.DESCRIPTION,
    PublicField.LOGO,
    PublicField.WEBSITE,
    PublicField.TOWN,
    PublicField.SPECIALISMS,
]
LOGO_MAX_BYTES = 2 * 1024 * 1024
LOGO_MAX_PIXELS = 4000


def validate_logo(upload) -> None:
    """A logo is a real PNG, JPEG or WebP image of at most 2 MB and 4000 pixels a side, whose content is the
    format its name claims (see ``config.uploads``)."""
    from config.uploads import check_image

    if getattr(upload, "_committed", False):
        return  # a logo already stored was checked when it was uploaded
    check_image(
        upload,
        max_bytes=LOGO_MAX_BYTES,
        max_side=LOGO_MAX_PIXELS,
        extensions=["png", "jpg", "jpeg", "webp"],
        kinds="PNG, JPEG or WebP",
        label="The logo",
    )


class TaggedOrganisation(TaggedItemBase):
    content_object = models.ForeignKey("Organisation", on_delete=models.CASCADE, related_name="tagged_items")


class OrganisationQuerySet(models.QuerySet["Organisation"]):
    def for_user(self, user) -> "OrganisationQuerySet":
        """The organisations this person currently belongs to: the only ones a member may see privately."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user, memberships__left_at__isnull=True)

    def administered_by(self, user) -> "OrganisationQuerySet":
        if not user.is_authenticated:
            return self.none()
        return self.filter(
            memberships__user=user,
            memberships__left_at__isnull=True,
            memberships__role=OrganisationMember.Role.ADMIN,
        )

    def in_directory(self) -> "OrganisationQuerySet":
        return self.filter(directory_opt_in=True)


class Organisation(models.Model):
    """A member organisation: the body's members are organisations, each with several staff contacts."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    organisation_type = models.CharField("type", max_length=20, choices=OrganisationType.choices)
    size_band = models.CharField("size", max_length=10, choices=SizeBand.choices)
    specialisms = models.ManyToManyField(Specialism, blank=True, related_name="organisations")
    town = models.CharField(max_length=100, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    local_authority = models.CharField("local authority area", max_length=100, blank=True)
    website = models.URLField(blank=True)
    company_number = models.CharField(
        max_length=8, blank=True, help_text="Companies House number, if the organisation has one."
    )
    description = models.TextField(blank=True, max_length=2000)
    logo = models.ImageField(
        upload_to="logos/",
        blank=True,
        validators=[FileExtensionValidator(["png", "jpg", "jpeg", "webp"]), validate_logo],
        help_text="PNG, JPEG or WebP, at most 2 MB.",
    )
    linkedin_url = models.URLField("LinkedIn", blank=True)
    x_url = models.URLField("X (Twitter)", blank=True)
    github_url = models.URLField("GitHub", blank=True)
    email_domains = models.CharField(
        "e-mail domains for joining",
        max_length=300,
        blank=True,
        help_text="Comma-separated; people with a verified address at one of these may ask to join.",
    )
    directory_opt_in = models.BooleanField("listed in the member directory", default=False)
    public_fields = models.JSONField(
        "shown on the directory card",
        default=list,
        blank=True,
        help_text="Which details the public directory card shows; the name is always shown.",
    )
    billing_contact = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    billing_email = models.EmailField("billing e-mail", blank=True)
    vat_number = models.CharField("VAT number", max_length=20, blank=True)
    needs_purchase_order = models.BooleanField(
        "needs a purchase order", default=False, help_text="Invoices must quote the organisation's PO number."
    )
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_organisations",
        limit_choices_to={"is_staff": True},
    )
    seat_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seats agreed for this organisation, overriding its tier's. Empty: the tier decides.",
    )
    stripe_customer_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    # Attempts to make the Stripe customer that Stripe answered with an error: each retry sends a new key
    # (``billing._ensure_customer``).
    stripe_customer_failures = models.PositiveIntegerField(default=0, editable=False)
    tags = TaggableManager(through=TaggedOrganisation, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["company_number"],
                condition=~models.Q(company_number=""),
                name="membership_org_company_number_unique",
            ),
        ]
        indexes = [
            models.Index(Lower("name"), name="membership_org_name_lower"),
            models.Index(fields=["town"], name="membership_org_town"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def domains(self) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in self.email_domains.split(",") if d.strip()]

    def shows(self, field: str) -> bool:
        """Whether the public directory card may show ``field``."""
        return field in self.public_fields

    def active_members(self) -> "models.QuerySet[OrganisationMember]":
        return self.memberships.filter(left_at__isnull=True)

    def seats_taken(self) -> int:
        """People in the organisation plus invitations still open: each will take a seat."""
        return self.active_members().count() + self.invitations.pending().count()

    def has_live_subscription(self) -> bool:
        return self.subscriptions.filter(status__in=Subscription.LIVE_STATUSES).exists()


class OrganisationMemberQuerySet(models.QuerySet["OrganisationMember"]):
    def active(self) -> "OrganisationMemberQuerySet":
        return self.filter(left_at__isnull=True)

    def admins(self) -> "OrganisationMemberQuerySet":
        return self.active().filter(role=OrganisationMember.Role.ADMIN)


class OrganisationMember(models.Model):
    """A person's place in an organisation: an admin manages it, a member uses its benefits.

    Removing someone keeps the row with ``left_at`` set: their log-in and their history stay, and they
    can be invited back.
    """

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    job_title = models.CharField(max_length=150, blank=True)
    joined_at = models.DateTimeField("since", default=timezone.now)
    left_at = models.DateTimeField(null=True, blank=True)

    objects = OrganisationMemberQuerySet.as_manager()

    class Meta:
        ordering = ["organisation", "user"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "user"],
                condition=models.Q(left_at__isnull=True),
                name="membership_member_unique_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.organisation} ({self.get_role_display()})"

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> "InvitationQuerySet":
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


INVITATION_LIFETIME = timedelta(days=14)


class Invitation(models.Model):
    """An e-mailed invitation to join an organisation: signed, expiring, single use, bound to its address."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=OrganisationMember.Role.choices, default="member")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Changes at every resend, so only the newest link works; the link carries it, signed.
    nonce = models.CharField(max_length=64, default="")
    # The nonce of the last link e-mailed: the e-mail job sends each link once, however often it runs.
    emailed_nonce = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                "organisation",
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="membership_invitation_open_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation for {self.email} to {self.organisation}"

    def refresh_nonce(self) -> None:
        self.nonce = secrets.token_urlsafe(24)
        self.sent_at = timezone.now()
        self.expires_at = self.sent_at + INVITATION_LIFETIME

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class JoinRequest(models.Model):
    """Someone with a verified work address at a listed domain asks to join; an org admin decides."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="join_requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="join_requests")
    email = models.EmailField(help_text="The verified address the request was made with.")
    message = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When the admins were told of the request, and when the requester was told the decision: each e-mail goes once.
    request_emailed_at = models.DateTimeField(null=True, blank=True)
    decision_emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "user"],
                condition=models.Q(status="pending"),
                name="membership_joinrequest_pending_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} asks to join {self.organisation}"


class AuditEntry(models.Model):
    """Who did what to which organisation, and when: every membership or billing state change writes one.

    Rows are only ever added. ``action`` is a dotted name (``membership.member.removed``); ``changes`` holds
    the before and after values where a value changed.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The person the change was about, if any.",
    )
    action = models.CharField(max_length=100, db_index=True)
    summary = models.CharField(max_length=300)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["organisation", "-created_at"], name="membership_audit_org_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}: {self.summary}"


class Note(models.Model):
    """A record of the membership team's contact with an organisation."""

    class Kind(models.TextChoices):
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "E-mail"
        OTHER = "other", "Other"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="notes")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CALL)
    date = models.DateField(default=timezone.localdate)
    body = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-date", "-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} with {self.organisation} on {self.date}"


class FollowUpQuerySet(models.QuerySet["FollowUp"]):
    def open(self) -> "FollowUpQuerySet":
        return self.filter(done_at__isnull=True)


class FollowUp(models.Model):
    """A task for someone on the membership team about an organisation, with a due date."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="follow_ups")
    title = models.CharField(max_length=200)
    due_date = models.DateField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="follow_ups",
        limit_choices_to={"is_staff": True},
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)

    objects = FollowUpQuerySet.as_manager()

    class Meta:
        ordering = ["done_at", "due_date"]
        indexes = [models.Index(fields=["assignee", "done_at", "due_date"], name="membership_followup_todo")]

    def __str__(self) -> str:
        return self.title

    @property
    def done(self) -> bool:
        return self.done_at is not None

    @property
    def overdue(self) -> bool:
        return not self.done and self.due_date < timezone.localdate()


class Tier(ClusterableModel):
    """A level of membership: what it includes, how many people it seats, and its price matrix."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    benefits = models.TextField(blank=True, help_text="One benefit a line, as the Join page lists them.")
    seat_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit on people.")
    is_public = models.BooleanField("listed on the Join page", default=True)
    monthly_billing = models.BooleanField("may be paid monthly", default=False)
    sort_order = models.PositiveSmallIntegerField(default=0)
    stripe_product_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    # Attempts to make the Stripe product that Stripe answered with an error (``billing._ensure_product``).
    stripe_product_failures = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def benefit_list(self) -> list[str]:
        return [line.strip() for line in self.benefits.splitlines() if line.strip()]


class TierPrice(models.Model):
    """What a tier costs an organisation of one type and size: integer pence, GBP, before VAT."""

    tier = ParentalKey(Tier, on_delete=models.CASCADE, related_name="prices")
    organisation_type = models.CharField(max_length=20, choices=OrganisationType.choices)
    size_band = models.CharField(max_length=10, choices=SizeBand.choices)
    annual_pence = models.PositiveIntegerField("annual price (pence, ex VAT)")
    monthly_pence = models.PositiveIntegerField("monthly price (pence, ex VAT)", null=True, blank=True)
    currency = models.CharField(max_length=3, default="GBP", editable=False)

    class Meta:
        ordering = ["tier", "organisation_type", "size_band"]
        constraints = [
            models.UniqueConstraint(
                fields=["tier", "organisation_type", "size_band"], name="membership_tierprice_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier} for {self.get_organisation_type_display()} {self.size_band}: {self.annual_pence}p"


class SubscriptionQuerySet(models.QuerySet["Subscription"]):
    def live(self) -> "SubscriptionQuerySet":
        return self.filter(status__in=Subscription.LIVE_STATUSES)

    def entitled(self, now=None) -> "SubscriptionQuerySet":
        """Subscriptions whose organisation has its tier's benefits at ``now`` (default: now).

        Active, past due (Stripe is retrying) and in grace; but not a grace period that has run out, nor a
        membership set not to renew whose period has ended, even before the daily job has lapsed them.
        """
        now = now or timezone.now()
        Status = Subscription.Status
        return (
            self.filter(status__in=Subscription.ENTITLED_STATUSES)
            .exclude(status=Status.GRACE, grace_ends_at__lte=now)
            .exclude(
                models.Q(cancel_at_period_end=True) | models.Q(auto_renew=False),
                status=Status.ACTIVE,
                current_period_end__lte=now,
            )
        )


class Subscription(models.Model):
    """An organisation's membership of a tier for a period, and how it is paid.

    One live subscription per organisation; ended ones stay as its history. Billing services change the
    status, each change audited.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending payment"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Payment overdue"
        GRACE = "grace", "In grace period"
        LAPSED = "lapsed", "Lapsed"
        CANCELLED = "cancelled", "Cancelled"

    class PaymentMethod(models.TextChoices):
        CARD = "card", "Card"
        INVOICE = "invoice", "Invoice"

    class Interval(models.TextChoices):
        YEAR = "year", "Annual"
        MONTH = "month", "Monthly"

    LIVE_STATUSES = [Status.PENDING, Status.ACTIVE, Status.PAST_DUE, Status.GRACE]
    # Members keep their benefits while a payment is being retried and through the grace period.
    ENTITLED_STATUSES = [Status.ACTIVE, Status.PAST_DUE, Status.GRACE]

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="subscriptions")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.YEAR)
    payment_method = models.CharField(max_length=7, choices=PaymentMethod.choices, default=PaymentMethod.CARD)
    amount_pence = models.PositiveIntegerField("price per period (pence, ex VAT)")
    currency = models.CharField(max_length=3, default="GBP", editable=False)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True, db_index=True)
    auto_renew = models.BooleanField(default=True)
    cancel_at_period_end = models.BooleanField(default=False)
    po_number = models.CharField("purchase order number", max_length=50, blank=True)
    grace_ends_at = models.DateTimeField(null=True, blank=True)
    scheduled_tier = models.ForeignKey(
        Tier,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="A downgrade that takes effect at the next renewal (invoice payers).",
    )
    stripe_subscription_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    stripe_checkout_session_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    stripe_schedule_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    # Each change the portal asks of Stripe takes the next number: its idempotency key includes it, so a retry
    # of one change is recognised by Stripe and a later, different change is not mistaken for it.
    changes_requested = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    # When the membership first had its benefits (its first payment, or an import of a live membership); kept
    # through renewals and lapses. None for one that never started: an abandoned checkout, an unpaid first invoice.
    # A current period that began after it is a renewal.
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation"],
                condition=models.Q(status__in=["pending", "active", "past_due", "grace"]),
                name="membership_subscription_one_live",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organisation}: {self.tier} ({self.get_status_display()})"

    @property
    def is_entitled(self) -> bool:
        return self.status in self.ENTITLED_STATUSES


class Invoice(models.Model):
    """A bill for a subscription, as Stripe holds it (or as finance recorded it when paid out of band)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Awaiting payment"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    stripe_invoice_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    number = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.OPEN)
    amount_due_pence = models.PositiveIntegerField(default=0)
    amount_paid_pence = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="GBP")
    po_number = models.CharField("purchase order number", max_length=50, blank=True)
    hosted_invoice_url = models.URLField(max_length=500, blank=True)
    invoice_pdf = models.URLField(max_length=500, blank=True)
    due_date = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    paid_out_of_band = models.BooleanField(default=False, help_text="Paid by bank transfer and recorded by finance.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.number or self.stripe_invoice_id or f"Invoice {self.pk}"


class StripeEvent(models.Model):
    """The ledger of webhook deliveries: one row per Stripe event id, however often it arrives."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class BillingNotice(models.Model):
    """An e-mail about billing, recorded once per occasion so a job run twice queues it once.

    ``key`` names the occasion, e.g. the period end a renewal reminder is for. The row is written with the
    change that causes the e-mail (``queued_at``); ``delivered_at`` is set by the e-mail task once the message
    has gone. A notice left undelivered (a worker that died, a queue that lost the task) is queued again by the
    daily job, so a notice is sent at least once: rarely twice, never silently not at all.
    """

    class Kind(models.TextChoices):
        RENEWAL_60 = "renewal_60", "Renewal in 60 days"
        RENEWAL_30 = "renewal_30", "Renewal in 30 days"
        RENEWAL_7 = "renewal_7", "Renewal in 7 days"
        CHARGE_NOTICE = "charge_notice", "Card charge notice"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        GRACE_STARTED = "grace_started", "Grace period started"
        LAPSED = "lapsed", "Membership lapsed"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=100)
    queued_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "kind", "key"], name="membership_billingnotice_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.subscription}"


class ActivityKind(models.TextChoices):
    LOGIN = "login", "Logged in"
    EVENT_REGISTERED = "event_registered", "Registered for an event"
    EVENT_ATTENDED = "event_attended", "Attended an event"
    PERK_REDEEMED = "perk_redeemed", "Redeemed a perk"
    PAGE_READ = "page_read", "Read a members-only page"
    PROFILE_UPDATED = "profile_updated", "Updated the organisation's profile"
    COLLEAGUE_JOINED = "colleague_joined", "A colleague joined"
    INVOICE_PAID = "invoice_paid", "Paid an invoice"
    STORY_PUBLISHED = "story_published", "Had a success story published"
    STAFF_INTERACTION = "staff_interaction", "Contact with the membership team"


def kind_number(kind: str) -> int:
    """A kind's number (1 for the first of ActivityKind, and so on), as ``ActivityEvent.kind_number`` stores it."""
    return ActivityKind.values.index(kind) + 1


class ActivityEventQuerySet(models.QuerySet["ActivityEvent"]):
    def since(self, moment) -> "ActivityEventQuerySet":
        return self.filter(occurred_at__gte=moment)


class ActivityEvent(models.Model):
    """One thing an organisation did that shows it is getting value from its membership.

    Rows are only added, through ``membership.activity.record_activity``. ``key`` names the occasion
    (``perk_redeemed:redemption:42``, ``login:7:3:2026-11-21``), so the same occasion is never counted twice.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="activity")
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=30, choices=ActivityKind.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    key = models.CharField(max_length=200, unique=True)
    detail = models.CharField(max_length=200, blank=True)
    # The kind as a small number, kept by the database: the nightly recomputation weighs every row by looking its
    # weight up in an array by this number, where comparing the kind's text against each kind in turn costs more
    # than the rest of the row's arithmetic. A new kind needs a migration here (``makemigrations --check`` in CI
    # says so), and a test checks every kind has its number.
    kind_number = models.GeneratedField(
        expression=models.Case(
            *[models.When(kind=kind, then=models.Value(kind_number(kind))) for kind in ActivityKind.values],
            default=models.Value(0),
        ),
        output_field=models.PositiveSmallIntegerField(),
        db_persist=True,
    )

    objects = ActivityEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["organisation", "-occurred_at"], name="membership_activity_org_time")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d} {self.organisation}: {self.get_kind_display()}"


# Engagement: how much value each organisation is getting, and the tools the engagement manager uses ----------


class EngagementBand(models.TextChoices):
    THRIVING = "thriving", "Thriving"
    STEADY = "steady", "Steady"
    AT_RISK = "at_risk", "At risk"
    DORMANT = "dormant", "Dormant"


# Points for each kind of activity until staff change them: showing up in person and telling a success story
# count most; a log-in or a page read counts a little, as often as it happens.
DEFAULT_WEIGHTS = {
    ActivityKind.LOGIN: 1,
    ActivityKind.EVENT_REGISTERED: 3,
    ActivityKind.EVENT_ATTENDED: 8,
    ActivityKind.PERK_REDEEMED: 5,
    ActivityKind.PAGE_READ: 1,
    ActivityKind.PROFILE_UPDATED: 2,
    ActivityKind.COLLEAGUE_JOINED: 4,
    ActivityKind.INVOICE_PAID: 2,
    ActivityKind.STORY_PUBLISHED: 10,
    ActivityKind.STAFF_INTERACTION: 2,
}


def _default_weights() -> dict[str, int]:
    return {str(kind): points for kind, points in DEFAULT_WEIGHTS.items()}


class EngagementSettings(models.Model):
    """How engagement is scored and when an organisation needs attention: one row, edited by staff.

    Score = the sum over the organisation's activity of ``weight * 0.5 ** (age in days / half-life)``.
    Bands: ``thriving`` from ``thriving_from`` points, ``steady`` from ``steady_from``, ``at risk`` from
    ``at_risk_from``, ``dormant`` below that. Changing the weights or the half-life recomputes every score.
    """

    weights = models.JSONField(default=_default_weights, help_text="Points for one occasion of each kind of activity.")
    half_life_days = models.PositiveSmallIntegerField(
        "half-life (days)",
        default=45,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="After this many days an occasion counts half as much; after twice as long, a quarter.",
    )
    thriving_from = models.FloatField("thriving from (points)", default=30, validators=[MinValueValidator(0)])
    steady_from = models.FloatField("steady from (points)", default=10, validators=[MinValueValidator(0)])
    at_risk_from = models.FloatField(
        "at risk from (points)",
        default=3,
        validators=[MinValueValidator(0)],
        help_text="Below this an organisation is dormant.",
    )
    renewal_window_days = models.PositiveSmallIntegerField(
        "renewal is near within (days)",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(366)],
        help_text="An organisation renewing this soon joins the at-risk queue if its score is low or falling.",
    )
    falling_percent = models.PositiveSmallIntegerField(
        "falling: activity down by (per cent)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Points in the last 90 days this much lower than in the 90 days before count as falling.",
    )
    quiet_days = models.PositiveSmallIntegerField(
        "quiet after (days)",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="A member with no activity for this long joins the at-risk queue whenever it renews.",
    )
    digest_recipients = models.CharField(
        "weekly digest goes to",
        max_length=500,
        blank=True,
        help_text="Comma-separated e-mail addresses of the engagement manager(s). Empty: no digest is sent.",
    )

    class Meta:
        verbose_name = "engagement settings"
        verbose_name_plural = "engagement settings"

    def __str__(self) -> str:
        return "Engagement settings"

    def clean(self) -> None:
        if not self.thriving_from > self.steady_from > self.at_risk_from:
            raise ValidationError("The bands must go down: thriving above steady, steady above at risk.")
        unknown = set(self.weights) - set(ActivityKind.values)
        if unknown:
            raise ValidationError(f"Unknown kinds of activity: {', '.join(sorted(unknown))}.")

    @classmethod
    def load(cls) -> "EngagementSettings":
        """The one row, created with the defaults the first time it is asked for."""
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row

    def weight(self, kind: str) -> float:
        return float(self.weights.get(kind, DEFAULT_WEIGHTS.get(kind, 0)))

    @property
    def recipients(self) -> list[str]:
        return [email.strip() for email in self.digest_recipients.split(",") if email.strip()]


class EngagementScore(models.Model):
    """An organisation's engagement score, kept so that it can be read at any moment without summing again.

    ``level`` is log2 of the organisation's activity points *without* decay, each occasion scaled up by
    ``2 ** (days from 2000-01-01 to the occasion / half-life)``. The score at any moment t is then
    ``2 ** (level - days to t / half-life)``: the decay is applied on reading. So adding one occasion never
    needs the others (incremental), a full recomputation gives the same number, and ordering or banding
    organisations by score now is a comparison on ``level`` alone. Empty when there is no activity.
    """

    organisation = models.OneToOneField(
        Organisation, primary_key=True, on_delete=models.CASCADE, related_name="engagement"
    )
    level = models.FloatField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    recomputed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a full recomputation last stored it (it writes only scores that differ)."
    )

    # No index on level: a row per organisation is read whole in a moment, and without one every update (each
    # occasion recorded, every score each night) can stay on its page.

    def __str__(self) -> str:
        return f"Engagement of {self.organisation_id}"


class EngagementDigest(models.Model):
    """The weekly digest for the engagement manager: one row per week, so a week's digest goes once."""

    week_starting = models.DateField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-week_starting"]

    def __str__(self) -> str:
        return f"Engagement digest for the week of {self.week_starting}"


class MemberImport(models.Model):
    """A spreadsheet of organisations and contacts uploaded by staff: checked and previewed, then imported.

    Nothing is written until staff confirm, and then either every row is imported or none is.
    """

    class Status(models.TextChoices):
        CHECKING = "checking", "Checking"
        CHECKED = "checked", "Ready to import"
        INVALID = "invalid", "Has errors"
        IMPORTING = "importing", "Importing"
        DONE = "done", "Imported"
        FAILED = "failed", "Failed"

    # The file itself is kept in the database, not with public uploads: it holds personal data, and the worker
    # that imports it may run on another machine. It is emptied once the import is finished with.
    content = models.BinaryField(editable=False, default=bytes)
    size = models.PositiveIntegerField(default=0)
    filename = models.CharField(max_length=200)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CHECKING)
    rows = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text="Rows by outcome: new, update, unchanged, error.")
    problems = models.JSONField(default=list, blank=True, help_text="Messages about the file as a whole.")
    extra_columns = models.JSONField(default=list, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("import_members", "Can import organisations and contacts from a spreadsheet")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def in_progress(self) -> bool:
        return self.status in (self.Status.CHECKING, self.Status.IMPORTING)


class MemberImportRow(models.Model):
    """What importing one row of a checked file does, for the preview."""

    class Outcome(models.TextChoices):
        NEW = "new", "New"
        UPDATE = "update", "Update"
        UNCHANGED = "unchanged", "Unchanged"
        ERROR = "error", "Error"

    member_import = models.ForeignKey(MemberImport, on_delete=models.CASCADE, related_name="row_results")
    row_number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    organisation = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    messages = models.JSONField(default=dict, blank=True, help_text="Field name to its messages.")

    class Meta:
        ordering = ["member_import", "row_number"]
        indexes = [models.Index(fields=["member_import", "outcome", "row_number"], name="membership_importrow_outcome")]

    def __str__(self) -> str:
        return f"Row {self.row_number}: {self.outcome}"
