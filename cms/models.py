from django.db import models
from wagtail.admin.panels import FieldPanel, MultiFieldPanel
from wagtail.fields import RichTextField
from wagtail.models import Page
from wagtail.search import index

from membership.models import Organisation


class HomePage(Page):
    """The front door of the site: what the body is, why to join, and what is on."""

    hero_heading = models.CharField(max_length=120, default="The North East's tech community")
    hero_text = models.TextField(
        blank=True,
        default="We bring the region's tech organisations together: events for networking, perks that save "
        "members money, and a stage for the region's successes.",
    )
    hero_cta_label = models.CharField("call-to-action label", max_length=40, default="Become a member")
    hero_cta_url = models.CharField("call-to-action link", max_length=200, default="/join/")
    body = RichTextField(blank=True, features=["h2", "h3", "bold", "italic", "link", "ol", "ul"])

    content_panels = [
        *Page.content_panels,
        MultiFieldPanel(
            [
                FieldPanel("hero_heading"),
                FieldPanel("hero_text"),
                FieldPanel("hero_cta_label"),
                FieldPanel("hero_cta_url"),
            ],
            heading="Hero",
        ),
        FieldPanel("body"),
    ]
    search_fields = [*Page.search_fields, index.SearchField("hero_text"), index.SearchField("body")]

    parent_page_types = ["wagtailcore.Page"]
    max_count = 1

    class Meta:
        verbose_name = "home page"

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        organisations = Organisation.objects.all()
        context["member_count"] = organisations.count()
        context["town_count"] = organisations.exclude(town="").values("town").distinct().count()
        return context
