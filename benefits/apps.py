from django.apps import AppConfig


class BenefitsConfig(AppConfig):
    name = "benefits"
    verbose_name = "Benefits"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from benefits.catalogue_cache import on_change
        from benefits.models import Perk, Provider
        from membership.models import Tier

        # What the catalogue shows changed: the cached copy for visitors is out of date.
        for model in (Perk, Provider, Tier):
            post_save.connect(on_change, sender=model, dispatch_uid=f"benefits.catalogue.save.{model.__name__}")
            post_delete.connect(on_change, sender=model, dispatch_uid=f"benefits.catalogue.delete.{model.__name__}")
        m2m_changed.connect(on_change, sender=Perk.eligible_tiers.through, dispatch_uid="benefits.catalogue.tiers")
        from benefits.personal_data import register_sections
        from membership.views import register_portal_link

        register_portal_link("Perks", "benefits:organisation_perks")
        register_portal_link("Our offers", "benefits:offers", admin_only=True)
        register_sections()
