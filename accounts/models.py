from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager["User"]):
    """Users are found and created by e-mail address; there is no username."""

    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields) -> "User":
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields) -> "User":
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields) -> "User":
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if not extra_fields["is_staff"] or not extra_fields["is_superuser"]:
            raise ValueError("A superuser must have is_staff and is_superuser set")
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username: str | None) -> "User":
        # E-mail addresses are matched without regard to case.
        return self.get(email__iexact=username)


class User(AbstractUser):
    """A person who logs in: a member organisation's contact, or one of the membership team (staff).

    The e-mail address is the login and is unique without regard to case. Which organisations a person
    belongs to, and in what role, lives in membership.OrganisationMember.
    """

    username = None
    email = models.EmailField(_("e-mail address"), unique=True)
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.email

    def save(self, *args, **kwargs) -> None:
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)


class ConsentRecord(models.Model):
    """One decision by a person about one marketing channel. Rows are only added, never changed.

    A person's current choice for a channel is their newest record for it; with no record, the answer is
    no: consent is off by default.
    """

    class Channel(models.TextChoices):
        NEWSLETTER = "newsletter", "The monthly newsletter"
        EVENTS = "events", "Invitations to events"
        OFFERS = "offers", "Offers from partners and members"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="consent_records")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    granted = models.BooleanField()
    source = models.CharField(max_length=100, help_text="Where the choice was made, e.g. 'my account'.")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["user", "channel", "-recorded_at"], name="accounts_consent_latest")]

    def __str__(self) -> str:
        return f"{self.user}: {self.channel} {'granted' if self.granted else 'withdrawn'}"
