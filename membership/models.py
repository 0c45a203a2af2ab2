import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator
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
    """A logo is a real PNG, JPEG or WebP image of at most 2 MB and 4000 pixels a side."""
    from PIL import Image, UnidentifiedImageError

    if upload.size > LOGO_MAX_BYTES:
        raise ValidationError("The logo must be 2 MB or smaller.")
    position = upload.tell() if hasattr(upload, "tell") else 0
    try:
        with Image.open(upload) as image:
            kind, (width, height) = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValidationError("The logo must be a PNG, JPEG or WebP image.") from error
    finally:
        upload.seek(position)
    if kind not in {"PNG", "JPEG", "WEBP"}:
        raise ValidationError("The logo must be a PNG, JPEG or WebP image.")
    if width > LOGO_MAX_PIXELS or height > LOGO_MAX_PIXELS:
        raise ValidationError(f"The logo must be at most {LOGO_MAX_PIXELS} pixels wide and high.")


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

    def entitled(self) -> "SubscriptionQuerySet":
        """Subscriptions whose organisation has its tier's benefits now."""
        return self.filter(status__in=Subscription.ENTITLED_STATUSES)


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
    stripe_subscription_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    stripe_checkout_session_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
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
    """An e-mail about billing that went out, so a job run twice sends it once.

    ``key`` names the occasion, e.g. the period end a renewal reminder is for.
    """

    class Kind(models.TextChoices):
        RENEWAL_60 = "renewal_60", "Renewal in 60 days"
        RENEWAL_30 = "renewal_30", "Renewal in 30 days"
        RENEWAL_7 = "renewal_7", "Renewal in 7 days"
        CHARGE_NOTICE = "charge_notice", "Card charge notice"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        LAPSED = "lapsed", "Membership lapsed"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=100)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "kind", "key"], name="membership_billingnotice_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.subscription}"
