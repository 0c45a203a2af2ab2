from django.apps import AppConfig


class CmsConfig(AppConfig):
    name = "cms"
    verbose_name = "Site"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save
        from taggit.models import Tag
        from wagtail.models import PageViewRestriction, Site
        from wagtail.signals import page_published, page_unpublished, post_page_move

        from cms import receivers
        from cms.events import payments, personal_data, tasks  # noqa: F401  (tasks: so a worker knows them)
        from cms.models import NewsPageTag

        payments.register()
        personal_data.register_sections()
        page_published.connect(receivers.on_page_published, dispatch_uid="cms.page_published")
        page_unpublished.connect(receivers.on_page_changed, dispatch_uid="cms.page_unpublished")
        post_page_move.connect(receivers.on_page_changed, dispatch_uid="cms.page_moved")
        post_save.connect(receivers.on_page_saved, dispatch_uid="cms.page_saved")
        post_delete.connect(receivers.on_page_deleted, dispatch_uid="cms.page_deleted")
        for model in (Site, PageViewRestriction):
            for signal in (post_save, post_delete):
                signal.connect(receivers.on_site_or_privacy_changed, sender=model, dispatch_uid=f"cms.{model.__name__}")
        for signal in (post_save, post_delete):
            signal.connect(receivers.on_news_tags_changed, sender=NewsPageTag, dispatch_uid="cms.NewsPageTag")
        post_save.connect(receivers.on_tag_renamed, sender=Tag, dispatch_uid="cms.Tag")
