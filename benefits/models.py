"""The perks catalogue: who offers a perk, the perk itself, its pool of codes and every redemption.

Caps and codes are exact: a redemption is made only by ``benefits.services.redeem_perk``, which holds the
perk's row lock while it counts, takes a code and writes, and the database refuses a code issued twice.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator
from django.db import models
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from wagtail.fields import RichTextField

from membership.models import Organisation, Tier, validate_logo

NEW_FOR_DAYS = 30


class Category(models.TextChoices):
    SOFTWARE = "software", "Software and cloud"
    PROFESSIONAL = "professional", "Professional services"
    WORKSPACE = "workspace", "Workspace"
    TALENT = "talent", "Recruitment and talent"
    TRAINING = "training", "Events and training"
    FINANCE = "finance", "Finance and funding"
    MARKETING = "marketing", "Marketing and design"
    WELLBEING = "wellbeing", "Health and wellbeing"


class Provider(models.Model):
    """Who gives a perk: a partner company, or one of the body's member organisations."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    organisation = models.OneToOneField(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="perk_provider",
        help_text="Set when the provider is a member organisation; its admins then see how their offers do.",
    )
    website = models.URLField(blank=True)
    description = models.TextField(blank=True, max_length=1000)
    logo = models.ImageField(
        upload_to="perk-providers/",
        blank=True,
        validators=[FileExtensionValidator(["png", "jpg", "jpeg", "webp"]), validate_logo],
        help_text="PNG, JPEG or WebP, at most 2 MB. A member provider without one shows its organisation's logo.",
    )
    contact_email = models.EmailField(
        blank=True, help_text="Where contact requests from members go, for perks redeemed by contact request."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_member(self) -> bool:
        return self.organisation_id is not None

    @property
    def logo_file(self):
        if self.logo:
            return self.logo
        return self.organisation.logo if self.organisation_id and self.organisation.logo else None


class PerkQuerySet(models.QuerySet["Perk"]):
    def published(self) -> PerkQuerySet:
        return self.filter(status=Perk.Status.PUBLISHED)

    def available(self, today=None) -> PerkQuerySet:
        """Published perks whose dates include today: the catalogue."""
        today = today or timezone.localdate()
        return (
            self.published()
            .filter(Q(starts_on__isnull=True) | Q(starts_on__lte=today))
            .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=today))
        )

    def new(self) -> PerkQuerySet:
        return self.filter(published_at__gte=timezone.now() - timedelta(days=NEW_FOR_DAYS))

    def search(self, query: str) -> PerkQuerySet:
        query = query.strip()
        if not query:
            return self
        return self.filter(
            Q(title__icontains=query)
            | Q(summary__icontains=query)
            | Q(value_line__icontains=query)
            | Q(provider__name__icontains=query)
        )

    def with_codes_left(self) -> PerkQuerySet:
        return self.annotate(codes_left=Count("codes", filter=Q(codes__redemption__isnull=True)))


class Perk(models.Model):
    """An offer to member organisations, and the rules for who may redeem it and how often."""

    class Method(models.TextChoices):
        UNIQUE_CODE = "unique_code", "A unique code from the pool"
        SHARED_CODE = "shared_code", "A code everyone uses"
        LINK = "link", "A link to the provider's offer page"
        CONTACT = "contact", "A contact request sent to the provider"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING = "pending", "Pending approval"
        PUBLISHED = "published", "Published"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    title = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="perks")
    category = models.CharField(max_length=20, choices=Category.choices)
    summary = models.CharField(max_length=240, help_text="One or two sentences for the catalogue card.")
    description = RichTextField(blank=True, features=["h3", "bold", "italic", "link", "ol", "ul"])
    value_line = models.CharField(max_length=80, help_text='What a member gets, e.g. "20% off for 12 months".')
    terms = models.TextField(blank=True, help_text="The conditions, shown on the perk's page before redeeming.")
    method = models.CharField("how it is redeemed", max_length=20, choices=Method.choices)
    shared_code = models.CharField(max_length=100, blank=True, help_text="For a shared code: the code itself.")
    redemption_url = models.URLField(
        "redemption link", max_length=500, blank=True, help_text="For a link: where members claim the offer."
    )
    eligible_tiers = models.ManyToManyField(
        Tier, blank=True, related_name="perks", help_text="Leave empty to offer it to every member organisation."
    )
    starts_on = models.DateField(null=True, blank=True)
    ends_on = models.DateField(null=True, blank=True)
    cap_per_organisation = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most redemptions one organisation may make. Empty: no limit."
    )
    total_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most redemptions across all members. Empty: no limit."
    )
    low_codes_threshold = models.PositiveIntegerField(
        default=10, help_text="Staff are told when a pool of unique codes falls to this many."
    )
    featured = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    rejection_reason = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    redemption_count = models.PositiveIntegerField(default=0, editable=False)
    low_codes_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    objects = PerkQuerySet.as_manager()

    class Meta:
        ordering = ["-featured", "title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_cap__isnull=True) | Q(redemption_count__lte=models.F("total_cap")),
                name="benefits_perk_within_total_cap",
            ),
        ]
        permissions = [("approve_perk", "Can approve or reject offers members submit")]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        # "New" in the catalogue counts from the day a perk is first published.
        if self.status == self.Status.PUBLISHED and self.published_at is None:
            self.published_at = timezone.now()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "published_at"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("benefits:perk", args=[self.slug])

    def clean(self) -> None:
        errors = {}
        if self.method == self.Method.SHARED_CODE and not self.shared_code.strip():
            errors["shared_code"] = "Give the code members should use."
        if self.method == self.Method.LINK and not self.redemption_url:
            errors["redemption_url"] = "Give the link where members claim the offer."
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            errors["ends_on"] = "The offer cannot end before it starts."
        if self.cap_per_organisation == 0:
            errors["cap_per_organisation"] = "Leave it empty for no limit, or allow at least one redemption."
        if self.total_cap == 0:
            errors["total_cap"] = "Leave it empty for no limit, or allow at least one redemption."
        if errors:
            raise ValidationError(errors)

    @property
    def is_new(self) -> bool:
        return bool(self.published_at and self.published_at >= timezone.now() - timedelta(days=NEW_FOR_DAYS))

    @property
    def is_running(self) -> bool:
        today = timezone.localdate()
        return (
            self.status == self.Status.PUBLISHED
            and (self.starts_on is None or self.starts_on <= today)
            and (self.ends_on is None or self.ends_on >= today)
        )


class PerkCode(models.Model):
    """One code in a perk's pool. A code is issued once: the redemption that took it is on the row."""

    perk = models.ForeignKey(Perk, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(max_length=100)
    added_at = models.DateTimeField(default=timezone.now)
    redemption = models.OneToOneField(
        "Redemption", null=True, blank=True, on_delete=models.SET_NULL, related_name="perk_code"
    )

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["perk", "code"], name="benefits_code_once_per_perk")]

    def __str__(self) -> str:
        return self.code


class RedemptionQuerySet(models.QuerySet["Redemption"]):
    def for_person(self, user) -> RedemptionQuerySet:
        return self.filter(person=user)


class Redemption(models.Model):
    """A member organisation's use of a perk: who, for which organisation, when, and the code they got."""

    perk = models.ForeignKey(Perk, on_delete=models.PROTECT, related_name="redemptions")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="redemptions")
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="redemptions"
    )
    code = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True, max_length=1000, help_text="For contact requests: what the member asked.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = RedemptionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["perk", "person", "organisation"], name="benefits_redeem_once_per_person"),
        ]
        indexes = [models.Index(fields=["perk", "organisation"], name="benefits_redemption_perk_org")]

    def __str__(self) -> str:
        return f"{self.perk} for {self.organisation}"
