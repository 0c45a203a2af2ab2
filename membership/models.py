from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


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


class OrganisationQuerySet(models.QuerySet["Organisation"]):
    def for_user(self, user) -> "OrganisationQuerySet":
        """The organisations this person belongs to: the only ones a member may see privately."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)

    def in_directory(self) -> "OrganisationQuerySet":
        return self.filter(directory_opt_in=True)


class Organisation(models.Model):
    """A member organisation: the body's members are organisations, each with several staff contacts."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    organisation_type = models.CharField("type", max_length=20, choices=OrganisationType.choices)
    size_band = models.CharField("size", max_length=10, choices=SizeBand.choices)
    town = models.CharField(max_length=100, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    local_authority = models.CharField("local authority area", max_length=100, blank=True)
    website = models.URLField(blank=True)
    company_number = models.CharField(max_length=8, blank=True)
    description = models.TextField(blank=True)
    email_domains = models.CharField(
        "e-mail domains for joining",
        max_length=300,
        blank=True,
        help_text="Comma-separated; people with a verified address at one of these may ask to join.",
    )
    directory_opt_in = models.BooleanField("listed in the member directory", default=False)
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
        indexes = [models.Index(Lower("name"), name="membership_org_name_lower")]

    def __str__(self) -> str:
        return self.name


class OrganisationMember(models.Model):
    """A person's place in an organisation: an admin manages it, a member uses its benefits."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    job_title = models.CharField(max_length=150, blank=True)
    joined_at = models.DateTimeField("since", default=timezone.now)

    class Meta:
        ordering = ["organisation", "user"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "user"], name="membership_member_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.organisation} ({self.get_role_display()})"
